"""Profile the TM hot path: each service process under cProfile at a fixed offered TM rate.

Writes one .prof per service and a text summary (top functions by own time, and by cumulative time for
the project's own code), and returns the figures for results.json.
"""

from __future__ import annotations

import io
import pstats
import time
from pathlib import Path
from typing import Any

from benchmarks import pipeline
from benchmarks.harness import Observer, ServiceSet, archive_max_id, clear_retained, set_clock_rate, write_profile

OWN_CODE = ("services/", "protocols/", "hardware_sim/")


def run(url: str, workdir: Path, out_dir: Path, *, offered: int, seconds: float, top: int, log: Any) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    mission = f"bench-prof-{int(time.time()) % 100000}"
    profile = write_profile(workdir / "prof-profile.yaml", hk_period_s=pipeline.HK_PERIOD_S,
                            idle_hk_period_s=pipeline.HK_PERIOD_S)
    services = ServiceSet(url, mission, profile, 0.001, workdir, profile_dir=out_dir)
    watcher = Observer(url, [(f"lgs/v1/{mission}/sys/#", 1)], name="prof-watch", record=False)
    try:
        services.start_all(watcher)
        set_clock_rate(url, mission, watcher.clocks[mission], pipeline.rate_for(offered))
        time.sleep(1.0)
        rows0, t0 = archive_max_id(services.archive), time.monotonic()
        time.sleep(seconds)
        delivered = (archive_max_id(services.archive) - rows0) / (time.monotonic() - t0)
    finally:
        services.stop(timeout=15)
        watcher.close()
        clear_retained(url, [mission])
    log(f"  profiled at offered {offered}/s: delivered {delivered:.0f}/s (under cProfile)")
    summary: dict[str, Any] = {"offered": offered, "delivered_under_profile": round(delivered, 1), "services": {}}
    text = io.StringIO()
    for node in services.processes:
        path = out_dir / f"{mission}-{node}.prof"
        if not path.exists():
            continue
        stats = pstats.Stats(str(path))
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = []
        for (file, line, func), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
            rows.append((tt, ct, nc, f"{_short(file)}:{line}({func})"))
        own = sorted(rows, reverse=True)[:top]
        cum = sorted((r for r in rows if any(p in r[3] for p in OWN_CODE)), key=lambda r: r[1], reverse=True)[:top]
        summary["services"][node] = {
            "total_s": round(total, 2),
            "top_own_time": [{"func": f, "tottime_s": round(tt, 3), "pct": round(100 * tt / total, 1), "calls": nc}
                             for tt, ct, nc, f in own],
            "top_cumulative_own_code": [{"func": f, "cumtime_s": round(ct, 3), "pct": round(100 * ct / total, 1),
                                         "calls": nc} for tt, ct, nc, f in cum],
        }
        text.write(f"== {node}: {total:.2f} s profiled\n-- own time\n")
        for tt, ct, nc, f in own:
            text.write(f"{tt:8.3f} {100 * tt / total:5.1f}% {nc:>9} {f}\n")
        text.write("-- cumulative, project code\n")
        for tt, ct, nc, f in cum:
            text.write(f"{ct:8.3f} {100 * ct / total:5.1f}% {nc:>9} {f}\n")
        text.write("\n")
    (out_dir / "summary.txt").write_text(text.getvalue())
    summary["summary_file"] = str(out_dir / "summary.txt")
    return summary


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file
