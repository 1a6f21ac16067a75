"""Many missions on one broker: n nominal rehearsals at rate 100 side by side, each trial bounded in time.

Each mission is five service processes with its own `--mission` name; ground control runs the nominal
scenario. One ground-side subscriber on `lgs/v1/+/ground/...` measures, over a fixed window, TM latency
beyond the configured light time and loss from the sequence counts of every stream (TM QoS 0; events
and verification reports QoS 1). A level passes with p99 <= 100 ms and nothing lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    NOMINAL,
    Observer,
    ServiceSet,
    clear_retained,
    light_time_s,
    percentile,
    sequence_losses,
    wait_for,
    write_profile,
)

RATE = 100.0
P99_LIMIT_MS = 100.0


def run(url: str, workdir: Path, *, levels: list[int], window_s: float, log: Any) -> dict[str, Any]:
    profile = write_profile(workdir / "sbs-profile.yaml")
    trials: list[dict[str, Any]] = []
    best = 0
    for n in levels:
        trial = _trial(url, workdir, profile, n, window_s)
        trials.append(trial)
        log(f"  {n} mission(s): p50 {trial['p50_ms']} ms, p99 {trial['p99_ms']} ms, lost {trial['lost']}, "
            f"{trial['tm_per_s']} TM/s -> {'pass' if trial['passed'] else 'FAIL'}")
        if not trial["passed"]:
            break
        best = n
    return {"rate": RATE, "p99_limit_ms": P99_LIMIT_MS, "window_s": window_s, "trials": trials,
            "missions_side_by_side": best}


def _trial(url: str, workdir: Path, profile: Path, n: int, window_s: float) -> dict[str, Any]:
    tag = int(time.time()) % 100000
    missions = [f"bench-sbs{n}-{i}-{tag}" for i in range(n)]
    observer = Observer(url, [("lgs/v1/+/ground/+/tm/+", 0), ("lgs/v1/+/ground/+/ev", 1),
                              ("lgs/v1/+/ground/+/ack", 1), ("lgs/v1/+/sys/#", 1)], name=f"sbs{n}")
    sets = [ServiceSet(url, m, profile, RATE, workdir, scenario=NOMINAL) for m in missions]
    started = time.monotonic()
    try:
        for s in sets:
            s.start([node for node in s.nodes])
        wait_for(lambda: all(m in observer.clocks for m in missions), 60 + 10 * n, f"{n} clocks")
        startup = time.monotonic() - started
        time.sleep(2.0)
        observer.take()
        t0 = time.monotonic()
        time.sleep(window_s)
        elapsed = time.monotonic() - t0
        samples = observer.take()
        rss = [s.rss_mb() for s in sets]
        crashed = [f"{s.mission}/{node}" for s in sets for node, p in s.processes.items()
                   if p.poll() not in (None, 0)]
    finally:
        for s in sets:
            s.stop()
        observer.close()
        clear_retained(url, missions)
    delay = light_time_s() / RATE
    tm = [s for s in samples if "/tm/" in s.topic and s.source != "relay-satellite"]
    added = [1000.0 * (s.recv - s.wall - delay) for s in tm]
    lost, dups = sequence_losses(samples)
    p99 = percentile(added, 0.99)
    passed = bool(tm) and p99 is not None and p99 <= P99_LIMIT_MS and lost == 0 and not crashed
    return {"missions": n, "startup_s": round(startup, 1), "window_s": round(elapsed, 1),
            "tm_per_s": round(len([s for s in samples if "/tm/" in s.topic]) / elapsed, 1),
            "relayed_tm": len(tm), "other_messages": len(samples) - len([s for s in samples if "/tm/" in s.topic]),
            "p50_ms": _r(percentile(added, 0.5)), "p99_ms": _r(p99), "max_ms": _r(max(added) if added else None),
            "lost": lost, "duplicates": dups, "crashed": crashed,
            "rss_mb_per_mission": round(sum(sum(r.values()) for r in rss) / max(len(rss), 1), 1),
            "passed": passed}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
