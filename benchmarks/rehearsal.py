"""The nominal rehearsal at increasing rates: `python -m services.cli rehearse --rate R --broker URL`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import NOMINAL, ROOT


def run(url: str, workdir: Path, *, rates: list[int], timeout_s: float, log: Any) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for rate in rates:
        mission = f"bench-rh-{rate}-{int(time.time()) % 100000}"
        report = workdir / mission
        argv = [sys.executable, "-m", "lunar_gs.services.cli", "rehearse", str(NOMINAL), "--rate", str(rate),
                "--report", str(report), "--broker", url, "--mission", mission]
        started = time.monotonic()
        try:
            done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout_s)
            code: int | None = done.returncode
            tail = done.stdout.decode(errors="replace")[-1500:]
        except subprocess.TimeoutExpired:
            code, tail = None, f"timed out after {timeout_s:g} s"
        elapsed = time.monotonic() - started
        entry: dict[str, Any] = {"rate": rate, "exit_code": code, "passed": code == 0,
                                 "process_seconds": round(elapsed, 1)}
        report_json = report / "report.json"
        if report_json.exists():
            data = json.loads(report_json.read_text())
            wall, mission_s = float(data["wall_seconds"]), float(data["mission_seconds"])
            entry.update(wall_seconds=round(wall, 1), mission_seconds=round(mission_s),
                         mission_s_per_wall_s=round(mission_s / wall, 1) if wall else None,
                         passed=code == 0 and bool(data.get("passed")))
        else:
            entry["tail"] = tail
        runs.append(entry)
        log(f"  rate {rate}: {'PASSED' if entry['passed'] else 'FAILED'}; wall {entry.get('wall_seconds')} s, "
            f"{entry.get('mission_s_per_wall_s')} mission-s/wall-s")
        if not entry["passed"]:
            break
    passing = [r for r in runs if r["passed"]]
    best = max(passing, key=lambda r: r["rate"]) if passing else None
    return {"runs": runs, "max_passing_rate": best["rate"] if best else None,
            "wall_seconds": best.get("wall_seconds") if best else None,
            "mission_seconds": best.get("mission_seconds") if best else None,
            "mission_s_per_wall_s": best.get("mission_s_per_wall_s") if best else None}
