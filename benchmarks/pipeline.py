"""The TM pipeline on one mission: HAL sample -> far-side node -> relay (light time) -> ground control.

One set of five service processes serves both measurements, changing only the clock rate (through the
public retained clock topic) between levels; the HK period is fixed in a benchmark copy of the mission
profile (active and idle alike), so the nominal offered TM rate is `streams * rate / hk_period_s`:

1. memory at rest (clock nearly stopped), then the peak under load;
2. a ramp of offered rates. Delivered = rows ground control archived per second, counted after the
   fact by the source's wall_time (so archive batching does not quantise it), with loss from the rows'
   sequence counts; latency beyond the configured light time from a subscriber to one relayed stream.
   A level is sustained with >= 90 % of the nominal rate archived, nothing lost and p99 <= 100 ms.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    ServiceSet,
    Observer,
    archive_max_id,
    light_time_s,
    percentile,
    sequence_losses,
    set_clock_rate,
    write_profile,
    clear_retained,
    wait_for,
)

HK_PERIOD_S = 0.1  # simulated seconds, for every node (active or idle), relay housekeeping included
STREAMS = 4  # drill, arm, ascent (relayed) + the relay's own housekeeping (straight to ground)
RELAYED_STREAMS = 3
SUSTAINED = 0.9  # of the nominal offered rate archived (sources skip late samples rather than backfill)
P99_LIMIT_MS = 100.0  # and p99 added latency at most this


def rate_for(msgs_per_s: float) -> float:
    """Clock rate giving `msgs_per_s` ground TM messages per wall second."""
    return msgs_per_s * HK_PERIOD_S / STREAMS


def run(url: str, workdir: Path, *, levels: list[int], measure_s: float, settle_s: float,
        latency_levels: list[int], log: Any, profile_dir: Path | None = None) -> dict[str, Any]:
    mission = f"bench-tm-{int(time.time()) % 100000}"
    profile = write_profile(workdir / "tm-profile.yaml", hk_period_s=HK_PERIOD_S, idle_hk_period_s=HK_PERIOD_S)
    rest_rate = 0.001
    services = ServiceSet(url, mission, profile, rest_rate, workdir, profile_dir=profile_dir)
    watcher = Observer(url, [(f"lgs/v1/{mission}/sys/#", 1)], name="watch", record=False)
    result: dict[str, Any] = {"mission": mission, "hk_period_s": HK_PERIOD_S, "streams": STREAMS}
    try:
        services.start_all(watcher)
        clock = watcher.clocks[mission]
        time.sleep(3.0)
        result["rss_rest_mb"] = services.rss_mb()
        log(f"  at rest: RSS {fmt_rss(result['rss_rest_mb'])}")

        # ---- ramp of offered rates. Delivered = what ground control archived; latency from a subscriber
        # to one relayed stream only (the drill's: a quarter of the load, so it disturbs little) ----------
        observer = Observer(url, [(f"lgs/v1/{mission}/ground/lander-drill/tm/+", 0)], name="latency")
        ramp: list[dict[str, Any]] = []
        rss_load: dict[str, float] = {}
        failures = 0  # consecutive levels not sustained: two end the ramp
        try:
            for offered in levels:
                rate = rate_for(offered)
                clock = set_clock_rate(url, mission, clock, rate)
                delay = light_time_s() / rate
                time.sleep(max(settle_s, 2 * delay + 0.5))
                observer.take()
                cpu0, start, t0 = services.cpu_percent(), time.monotonic(), time.time()
                time.sleep(measure_s)
                cpu1, end, t1 = services.cpu_percent(), time.monotonic(), time.time()
                # late arrivals count if they are archived within the light time plus a second
                time.sleep(1.0 + delay)
                archived, published = archived_between(services.archive, t0, t1)
                delivered = archived / (t1 - t0)
                samples = [x for x in observer.take() if t0 <= x.wall < t1]
                added = [1000.0 * (x.recv - x.wall - delay) for x in samples]
                lost, dups = sequence_losses(samples)
                for node, mb in services.rss_mb().items():
                    rss_load[node] = max(rss_load.get(node, 0.0), mb)
                cpu = {n: round(100 * (cpu1[n] - cpu0[n]) / (end - start)) for n in cpu1 if n in cpu0}
                p99 = percentile(added, 0.99)
                sustained = (delivered >= SUSTAINED * offered and archived == published and p99 is not None
                             and p99 <= P99_LIMIT_MS)
                level = {"offered": offered, "clock_rate": round(rate, 3), "delivered": round(delivered, 1),
                         "ratio": round(delivered / offered, 3), "published_in_window": published,
                         "archived_in_window": archived, "lost_in_archive": published - archived, "light_time_wall_ms": round(1000 * delay, 2),
                         "p50_ms": _r(percentile(added, 0.5)), "p99_ms": _r(p99),
                         "max_ms": _r(max(added) if added else None), "latency_samples": len(added),
                         "lost": lost, "sustained": sustained, "cpu_pct": cpu,
                         # CPU of every service per archived message: less sensitive than rates to other load
                         "cpu_ms_per_msg": round(10 * sum(cpu.values()) / delivered, 3) if delivered else None}
                ramp.append(level)
                log(f"  offered {offered:>5}/s  delivered {delivered:7.1f}/s ({delivered / offered:4.0%})  "
                    f"added p50 {level['p50_ms']} p99 {level['p99_ms']} ms  "
                    f"{'ok' if sustained else 'NOT sustained'}  cpu% {' '.join(str(v) for v in cpu.values())}")
                services._check_alive()
                failures = 0 if sustained else failures + 1
                if failures >= 2:
                    break
        finally:
            observer.close()
        ok = [lvl for lvl in ramp if lvl["sustained"]]
        best = max(ok, key=lambda lvl: lvl["offered"]) if ok else None
        result["ramp"] = ramp
        result["max_sustained_msgs_per_s"] = best["offered"] if best else 0
        result["capacity_msgs_per_s"] = max(lvl["delivered"] for lvl in ramp)
        result["rss_load_mb"] = rss_load
        latency: dict[str, Any] = {}
        for key, lvl in [*((str(lvl["offered"]), lvl) for lvl in ramp if lvl["offered"] in latency_levels),
                         *((("max", best),) if best else ())]:
            latency[key] = {"msgs_per_s": lvl["offered"], "clock_rate": lvl["clock_rate"],
                            "light_time_wall_ms": lvl["light_time_wall_ms"], "p50_ms": lvl["p50_ms"],
                            "p99_ms": lvl["p99_ms"], "max_ms": lvl["max_ms"], "samples": lvl["latency_samples"],
                            "lost": lvl["lost"]}
        result["latency"] = latency
    finally:
        services.stop()
        watcher.close()
        clear_retained(url, [mission])
    return result


def archived_between(path: Path, t0: float, t1: float) -> tuple[int, int]:
    """(archived, published): TM rows in ground control's archive sampled at the source between wall times
    t0 and t1, and how many the sources published in that span according to their sequence counts.

    One query after the fact: polling the archive while it is written would hold SQLite's shared lock
    and stall ground control's commits.
    """
    for _ in range(20):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0) as db:
                rows = db.execute("SELECT COUNT(*), MAX(seq) - MIN(seq) + 1 FROM tm "
                                  "WHERE wall_time >= ? AND wall_time < ? GROUP BY node", (t0, t1)).fetchall()
                return sum(r[0] for r in rows), sum(r[1] for r in rows)
        except sqlite3.OperationalError:
            time.sleep(0.05)
    return 0, 0


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def fmt_rss(rss: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in rss.items())
