"""The rehearsal report: per-phase results, commands, alarms, rejections, key figures and plots.

Written as `report.json` (for tools), `report.md` (for people, with PNG plots beside it).
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lunar_gs.protocols.nodes import Node
from lunar_gs.services.ground_control.scenario import format_mission_elapsed
from lunar_gs.services.ground_control.scenario_runner import ScenarioResult
from lunar_gs.services.ground_control.service import GroundControl


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _event(gc: GroundControl, node: Node, name: str) -> Any:
    for seen in gc.events:
        if seen.node == node and seen.event.event == name:
            return seen.event
    return None


def key_figures(gc: GroundControl) -> dict[str, Any]:
    epoch = gc.runtime.clock.epoch
    depths = [row[1] for row in gc.archive.series(Node.LANDER_DRILL, "depth_m") if row[1] is not None]
    masses = [row[1] for row in gc.archive.series(Node.ASCENT_VEHICLE, "sample_mass_g") if row[1]]
    container = [row[1] for row in gc.archive.series(Node.LANDER_ARM, "container_mass_g") if row[1]]
    cutoff = _event(gc, Node.ASCENT_VEHICLE, "engine_cutoff")
    docked = _event(gc, Node.ASCENT_VEHICLE, "docked")
    return {
        "drill_depth_m": round(max(depths), 3) if depths else None,
        "sample_mass_g": round(max(masses or container), 1) if (masses or container) else None,
        "orbit_perilune_km": round(float(cutoff.data["perilune_km"]), 1) if cutoff else None,
        "orbit_apolune_km": round(float(cutoff.data["apolune_km"]), 1) if cutoff else None,
        "docking_mission_time": f"T+{format_mission_elapsed(docked.sim_time - epoch)}" if docked else None,
        "docking_utc": _utc(docked.sim_time) if docked else None,
    }


def build_report(gc: GroundControl, result: ScenarioResult, run: dict[str, Any]) -> dict[str, Any]:
    epoch = gc.runtime.clock.epoch
    return {
        **run,
        "scenario": result.name,
        "wall_seconds": round(result.wall_seconds, 2),
        "mission_seconds": round(result.mission_end - result.mission_start, 1),
        "passed": result.passed,
        "phases": [
            {
                "name": phase.name,
                "status": phase.status.value,
                "start": phase.start,
                "end": phase.end,
                "start_met": f"T+{format_mission_elapsed(phase.start)}" if phase.start is not None else None,
                "end_met": f"T+{format_mission_elapsed(phase.end)}" if phase.end is not None else None,
                "steps": [
                    {"step": s.label, "ok": s.ok, "detail": s.detail, "start": s.start, "end": s.end}
                    for s in phase.steps
                ],
            }
            for phase in result.phases
        ],
        "commands": gc.book.counts(),
        "command_log": [
            {"request_id": c.request_id, "node": c.node, "command": c.command, "state": c.state.value,
             "sent_met": round(c.sent_at - epoch, 1), "reason": c.reason, "origin": c.origin}
            for c in gc.book.commands.values()
        ],
        "alarms": [
            {"alarm": a.alarm, "state": a.state.value, "severity": a.severity.value, "node": a.node,
             "value": a.value, "message": a.message,
             "mission_time": f"T+{format_mission_elapsed(a.sim_time - epoch)}"}
            for a in gc.alarms
        ],
        "rejections": len(gc.rejections),
        "rejection_samples": [
            {"source": str(r.source), "topic": r.topic, "code": r.code.name, "reason": r.reason}
            for r in gc.rejections[:20]
        ],
        "tm_packets_archived": gc.archive.count_tm(),
        "tm_gaps": gc.tm_gaps,
        "service_counters": {**gc.service_counters, str(Node.GROUND_CONTROL): gc.runtime.counters()},
        "broker_outage_mission_seconds": round(gc.outage_s, 1),
        "delivery": {
            "duplicates_dropped": gc.runtime.delivery_in.duplicates,
            "known_missing": sum(gc.runtime.delivery_in.holes().values()),
            "streams": gc.runtime.delivery_in.summary(),
            "commands_resent": gc.commands_resent,
        },
        "figures": key_figures(gc),
        "objectives": [{"name": o.name, "passed": o.passed, "detail": o.detail} for o in result.objectives],
        "responses": [
            {"name": r.name, "symptom": r.symptom, "symptom_at": r.symptom_at, "deadline": r.deadline,
             "responded_at": r.responded_at, "request_id": r.request_id, "in_time": r.in_time,
             "contingency_injected": r.contingency}
            for r in result.responses
        ],
    }


def plot_telemetry(gc: GroundControl, directory: Path) -> list[str]:
    """Drill depth/torque and ascent altitude/velocity as PNGs; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epoch = gc.runtime.clock.epoch
    written = []
    drill = [r for r in gc.archive.series(Node.LANDER_DRILL, "depth_m", "torque_nm", "mode")
             if r[3] in ("drilling", "tripped")]
    if drill:
        fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
        hours = [(r[0] - epoch) / 3600 for r in drill]
        top.plot(hours, [r[1] for r in drill], ".", markersize=2)
        top.set_ylabel("depth (m)")
        top.invert_yaxis()
        bottom.plot(hours, [r[2] for r in drill], ".", markersize=2, color="tab:red")
        bottom.set_ylabel("torque (N·m)")
        bottom.set_xlabel("mission time (h after touchdown)")
        fig.suptitle("Drilling")
        fig.tight_layout()
        fig.savefig(directory / "drill.png", dpi=100)
        plt.close(fig)
        written.append("drill.png")
    liftoff = _event(gc, Node.ASCENT_VEHICLE, "liftoff")
    if liftoff is not None:
        ascent = gc.archive.series(Node.ASCENT_VEHICLE, "altitude_km", "velocity_mps",
                                   since=liftoff.sim_time - 10, until=liftoff.sim_time + 900)
        if ascent:
            fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
            seconds = [r[0] - liftoff.sim_time for r in ascent]
            top.plot(seconds, [r[1] for r in ascent])
            top.set_ylabel("altitude above mean radius (km)")
            bottom.plot(seconds, [r[2] for r in ascent], color="tab:green")
            bottom.set_ylabel("inertial velocity (m/s)")
            bottom.set_xlabel("seconds after liftoff")
            fig.suptitle("Powered ascent")
            fig.tight_layout()
            fig.savefig(directory / "ascent.png", dpi=100)
            plt.close(fig)
            written.append("ascent.png")
    return written


def render_markdown(report: dict[str, Any], plots: list[str]) -> str:
    lines = [
        f"# Rehearsal report: {report['scenario']}",
        "",
        (
            f"**{'PASSED' if report['passed'] else 'FAILED'}** in {report['wall_seconds']} s of wall time for "
            f"{report['mission_seconds'] / 3600:.1f} h of mission time (rate {report.get('rate')}, "
            f"seed {report.get('seed')}, broker {report.get('broker')})."
        ),
        "",
        "## Phases",
        "",
        "| phase | status | start | end |",
        "|---|---|---|---|",
    ]
    for phase in report["phases"]:
        lines.append(f"| {phase['name']} | {phase['status']} | {phase['start_met'] or ''} | {phase['end_met'] or ''} |")
    lines += ["", "## Key figures", ""]
    lines += [f"- {key}: {value}" for key, value in report["figures"].items()]
    lines += ["", "## Commands", ""]
    lines += [f"- {state}: {count}" for state, count in report["commands"].items()]
    lines += ["", f"## Alarms ({len(report['alarms'])})", ""]
    lines += [f"- {a['mission_time']} {a['alarm']} {a['state']}: {a['message']}" for a in report["alarms"]] or ["none"]
    lines += ["", f"## Rejections: {report['rejections']}", ""]
    for plot in plots:
        lines += [f"![{plot}]({plot})", ""]
    return "\n".join(lines) + "\n"


def write_report(gc: GroundControl, result: ScenarioResult, run: dict[str, Any], directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    report = build_report(gc, result, run)
    plots = plot_telemetry(gc, directory)
    (directory / "report.json").write_text(json.dumps(report, indent=2))
    (directory / "report.md").write_text(render_markdown(report, plots))
    return report
