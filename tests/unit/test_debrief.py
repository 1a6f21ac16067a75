"""The debrief sets the ground truth of each fault against what the operators saw and did, from real
report folders (an Archive-written SQLite, a truth.jsonl of FaultRecords, a report.json)."""

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.events import Alarm, AlarmState, Event, Severity
from lunar_gs.protocols.faults import FaultKind, FaultRecord, FaultVia, TruthEntry
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.debrief import build_debrief, debrief_command, write_debrief
from lunar_gs.services.ground_control.archive import Archive

EPOCH = 1717280596.0


def T(h: int, m: int, s: int) -> float:  # noqa: N802 - reads like the mission clock
    return h * 3600 + m * 60 + s


def alarm(name: str, state: AlarmState, node: str, t: float) -> Alarm:
    return Alarm(source=Node.GROUND_CONTROL, sim_time=EPOCH + t, alarm=name, state=state, node=node,
                 parameter=name.partition(".")[2], value=42.0, message=f"{name} {state}")


def event(node: Node, name: str, t: float, severity: Severity = Severity.WARNING) -> Event:
    return Event(source=node, sim_time=EPOCH + t, event=name, severity=severity, message=name)


def record(entry: TruthEntry, t: float, fault_id: str = "f-1", kind: FaultKind = FaultKind.DRILL_STALL,
           target: str = "lander-drill", label: str = "stall", detail: str = "") -> FaultRecord:
    return FaultRecord(source=Node.INSTRUCTOR, sim_time=EPOCH + t, mission_time=t, entry=entry,
                       fault_id=fault_id, request_id=f"req-{fault_id}", via=FaultVia.SCENARIO, kind=kind,
                       target=target, params={"torque_rise_nm_per_s": 2.0} if kind is FaultKind.DRILL_STALL
                       else {}, label=label, detail=detail)


def write_truth(folder: Path, records: list[FaultRecord],
                extra_lines: dict[int, bytes] | None = None) -> None:
    codec = JsonCodec()
    lines = [codec.encode(r) for r in records]
    for index, line in sorted((extra_lines or {}).items()):
        lines.insert(index, line)
    (folder / "truth.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def write_archive(folder: Path, alarms: list[Alarm], events: list[Event],
                  commands: list[dict[str, Any]], with_origin: bool = True) -> None:
    archive = Archive(folder / "archive.sqlite")
    for a in alarms:
        archive.add_event(a.node, "alarm", a.alarm, a.severity, a)
    for e in events:
        archive.add_event(str(e.source), "event", e.event, e.severity, e)
    for c in commands:
        archive.record_command(c["request_id"], c["node"], c["command"], {}, EPOCH + c["sent"], c["state"],
                               EPOCH + c["final"] if c.get("final") is not None else None,
                               c.get("failure_code"), c.get("reason"))
    archive.close()
    if with_origin:
        db = sqlite3.connect(folder / "archive.sqlite")
        if "origin" not in {row[1] for row in db.execute("PRAGMA table_info(commands)")}:
            db.execute("ALTER TABLE commands ADD COLUMN origin TEXT")
        for c in commands:
            db.execute("UPDATE commands SET origin = ? WHERE request_id = ?",
                       (c.get("origin"), c["request_id"]))
        db.commit()
        db.close()


def write_report(folder: Path, **extra: Any) -> None:
    report = {
        "scenario": "drill-stall drill",
        "passed": False,
        "phases": [
            {"name": "checkout", "status": "PASS", "start": T(0, 50, 0), "end": T(1, 5, 0)},
            {"name": "drilling", "status": "FAIL", "start": T(1, 5, 0), "end": T(1, 20, 0)},
        ],
        "commands": {"completed": 2},
        "alarms": [],
        "figures": {"drill_depth_m": 0.4},
        **extra,
    }
    (folder / "report.json").write_text(json.dumps(report, indent=2))


STALL_TRUTH = [
    record(TruthEntry.ACCEPTED, T(1, 9, 0)),
    record(TruthEntry.INJECTED, T(1, 9, 58)),
    record(TruthEntry.EFFECTIVE, T(1, 10, 0)),
    record(TruthEntry.SYMPTOM, T(1, 10, 20), detail="torque rising"),
    record(TruthEntry.CLEARED, T(1, 12, 0), detail="recovered: the retract freed the bit"),
]
STALL_ALARMS = [
    alarm("lander-drill.torque_nm", AlarmState.RAISED, "lander-drill", T(1, 10, 30)),
    alarm("lander-drill.torque_nm", AlarmState.CLEARED, "lander-drill", T(1, 15, 0)),
]
STALL_EVENTS = [event(Node.LANDER_DRILL, "over_torque", T(1, 10, 40))]
DRILL = {"request_id": "c-drill", "node": "lander-drill", "command": "DRILL_TO_DEPTH", "sent": T(1, 5, 0),
         "state": "completed", "final": T(1, 9, 0), "origin": "scenario"}
RETRACT = {"request_id": "c-retract", "node": "lander-drill", "command": "RETRACT", "sent": T(1, 11, 10),
           "state": "completed", "final": T(1, 11, 50), "origin": "autopilot"}


def stall_folder(tmp_path: Path, commands: list[dict[str, Any]] | None = None, **report: Any) -> Path:
    write_truth(tmp_path, STALL_TRUTH)
    write_archive(tmp_path, STALL_ALARMS, STALL_EVENTS, [DRILL, RETRACT] if commands is None else commands)
    write_report(tmp_path, epoch=EPOCH, **report)
    return tmp_path


def test_the_drill_stall_story_gives_every_figure(tmp_path: Path) -> None:
    debrief = build_debrief(stall_folder(tmp_path))
    assert debrief["warnings"] == []
    [fault] = debrief["faults"]
    assert fault["fault_id"] == "f-1" and fault["label"] == "stall"
    assert fault["kind"] == "drill.stall" and fault["target"] == "lander-drill" and fault["via"] == "scenario"
    assert fault["params"] == {"torque_rise_nm_per_s": 2.0}
    assert (fault["injected_at"], fault["injected_at_met"]) == (T(1, 9, 58), "T+01:09:58")
    assert (fault["effective_at"], fault["effective_at_met"]) == (T(1, 10, 0), "T+01:10:00")
    assert (fault["truth_symptom_at"], fault["truth_symptom_at_met"]) == (T(1, 10, 20), "T+01:10:20")
    assert (fault["first_symptom_at_ground"], fault["first_symptom_at_ground_met"]) == (
        T(1, 10, 30), "T+01:10:30")
    assert (fault["symptom_kind"], fault["symptom_name"]) == ("alarm", "lander-drill.torque_nm")
    assert fault["first_command_after"] == {
        "request_id": "c-retract", "node": "lander-drill", "command": "RETRACT", "origin": "autopilot",
        "sent_at": T(1, 11, 10), "sent_at_met": "T+01:11:10", "state": "completed"}
    assert (fault["recovered_at"], fault["recovered_at_met"], fault["recovered_by"]) == (
        T(1, 12, 0), "T+01:12:00", "physics")
    assert (fault["cleared_at"], fault["cleared_at_met"]) == (T(1, 12, 0), "T+01:12:00")
    assert fault["dud"] is False
    assert fault["time_to_detect_s"] == 30.0
    assert fault["time_to_respond_s"] == 40.0
    assert fault["time_to_recover_s"] == 120.0
    assert fault["worse_commands"] == []  # the scenario's DRILL_TO_DEPTH was sent before the stall


def test_the_ground_symptom_can_be_an_event_the_catalogue_lists(tmp_path: Path) -> None:
    write_truth(tmp_path, STALL_TRUTH)
    write_archive(tmp_path, [], STALL_EVENTS, [RETRACT])
    write_report(tmp_path, epoch=EPOCH)
    [fault] = build_debrief(tmp_path)["faults"]
    assert (fault["symptom_kind"], fault["symptom_name"]) == ("event", "lander-drill:over_torque")
    assert fault["time_to_detect_s"] == 40.0 and fault["time_to_respond_s"] == 30.0


def test_without_a_recovered_record_recovery_is_when_the_symptom_alarms_cleared(tmp_path: Path) -> None:
    truth = [*STALL_TRUTH[:4], record(TruthEntry.CLEARED, T(1, 14, 0), detail="cleared by the instructor")]
    write_truth(tmp_path, truth)
    write_archive(tmp_path, STALL_ALARMS, STALL_EVENTS, [RETRACT])
    write_report(tmp_path, epoch=EPOCH)
    [fault] = build_debrief(tmp_path)["faults"]
    assert (fault["recovered_at"], fault["recovered_by"]) == (T(1, 15, 0), "alarms cleared")
    assert fault["time_to_recover_s"] == 300.0


def test_a_dud_is_a_dud_with_no_durations(tmp_path: Path) -> None:
    feed = {"fault_id": "f-2", "kind": FaultKind.DRILL_FEED_STUCK, "label": "feed"}
    truth = [
        record(TruthEntry.INJECTED, T(2, 0, 0), **feed),
        record(TruthEntry.EFFECTIVE, T(2, 0, 1), **feed),
        record(TruthEntry.CLEARED, T(2, 5, 0), detail="duration elapsed", **feed),
    ]
    write_truth(tmp_path, truth)
    write_archive(tmp_path, [], [], [])
    write_report(tmp_path, epoch=EPOCH)
    [fault] = build_debrief(tmp_path)["faults"]
    assert fault["dud"] is True and fault["outcome"] == "dud"
    assert fault["truth_symptom_at"] is None and fault["first_symptom_at_ground"] is None
    assert fault["time_to_detect_s"] is None
    assert fault["time_to_respond_s"] is None
    assert fault["time_to_recover_s"] is None
    assert fault["worse_commands"] == []


def test_a_truth_dud_record_makes_a_dud(tmp_path: Path) -> None:
    truth = [*STALL_TRUTH[:3], record(TruthEntry.DUD, T(1, 30, 0))]
    write_truth(tmp_path, truth)
    write_archive(tmp_path, [], [], [])
    write_report(tmp_path, epoch=EPOCH)
    [fault] = build_debrief(tmp_path)["faults"]
    assert fault["dud"] is True and fault["time_to_detect_s"] is None


def test_a_worsening_command_sent_during_the_stall_is_listed(tmp_path: Path) -> None:
    again = {"request_id": "c-again", "node": "lander-drill", "command": "DRILL_TO_DEPTH",
             "sent": T(1, 10, 50), "state": "completed", "final": T(1, 11, 0), "origin": "operator"}
    failed = {"request_id": "c-perc", "node": "lander-drill", "command": "SET_PERCUSSION",
              "sent": T(1, 11, 20), "state": "failed", "final": T(1, 11, 25), "origin": "operator",
              "failure_code": "PROTECTION_TRIPPED"}
    late = {"request_id": "c-late", "node": "lander-drill", "command": "DRILL_TO_DEPTH",
            "sent": T(1, 13, 0), "state": "completed", "final": T(1, 14, 0), "origin": "operator"}
    debrief = build_debrief(stall_folder(tmp_path, [DRILL, again, RETRACT, failed, late]))
    [fault] = debrief["faults"]
    worse = {w["request_id"]: w for w in fault["worse_commands"]}
    assert set(worse) == {"c-again", "c-perc"}  # not the one before the stall, nor after it was freed
    assert worse["c-again"]["command"] == "DRILL_TO_DEPTH" and worse["c-again"]["sent_at_met"] == "T+01:10:50"
    assert "worsening drill.stall" in worse["c-again"]["why"]
    assert "failed 5 s after" in worse["c-perc"]["why"]
    # the operator's DRILL_TO_DEPTH was still the first response
    assert fault["first_command_after"]["request_id"] == "c-again" and fault["time_to_respond_s"] == 20.0


def test_a_corrupt_truth_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write_truth(tmp_path, STALL_TRUTH, extra_lines={1: b'{"schema_name": "fault.truth", "entry": "exploded"',
                                                    3: b"not json at all"})
    write_archive(tmp_path, STALL_ALARMS, STALL_EVENTS, [RETRACT])
    write_report(tmp_path, epoch=EPOCH)
    debrief = build_debrief(tmp_path)
    assert len(debrief["warnings"]) == 2
    first, second = debrief["warnings"]
    assert "truth.jsonl line 2" in first and "truth.jsonl line 4" in second
    [fault] = debrief["faults"]
    assert fault["time_to_detect_s"] == 30.0  # the good lines still tell the story


def test_an_old_archive_without_origin_counts_every_command_as_the_scenario(tmp_path: Path) -> None:
    write_truth(tmp_path, STALL_TRUTH)
    write_archive(tmp_path, STALL_ALARMS, STALL_EVENTS, [RETRACT], with_origin=False)
    write_report(tmp_path)  # and no epoch: taken from the truth
    debrief = build_debrief(tmp_path)
    assert debrief["epoch"] == EPOCH
    [fault] = debrief["faults"]
    assert fault["first_command_after"] is None and fault["time_to_respond_s"] is None
    assert fault["time_to_detect_s"] == 30.0


def test_write_debrief_writes_the_picture_the_words_and_the_report(tmp_path: Path) -> None:
    objectives = [{"name": "stall recovered within 5 min", "passed": True, "detail": "120 s"},
                  {"name": "sample depth reached", "passed": False, "detail": "0.4 m of 1.0 m"}]
    debrief = write_debrief(stall_folder(tmp_path, objectives=objectives))
    assert debrief["timeline"] == "timeline.png"
    assert (tmp_path / "timeline.png").stat().st_size > 5000
    words = (tmp_path / "debrief.md").read_text()
    assert "| stall | drill.stall → lander-drill |" in words and "| 30 s | 40 s | 120 s | no |" in words
    assert "**missed**: sample depth reached" in words and "![timeline](timeline.png)" in words
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["faults"][0]["time_to_recover_s"] == 120.0
    assert report["objectives"] == objectives
    assert report["scenario"] == "drill-stall drill"  # the rest of the report is kept


def test_a_rehearsal_without_faults_still_gets_the_operators_timeline(tmp_path: Path) -> None:
    write_archive(tmp_path, STALL_ALARMS, STALL_EVENTS, [DRILL, RETRACT])
    write_report(tmp_path, epoch=EPOCH)
    debrief = write_debrief(tmp_path)
    assert debrief["faults"] == [] and debrief["warnings"] == []
    assert (tmp_path / "timeline.png").stat().st_size > 5000
    assert json.loads((tmp_path / "report.json").read_text())["faults"] == []
    assert "No faults in the ground truth." in (tmp_path / "debrief.md").read_text()


def _run(folder: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = debrief_command(folder, Console(file=out, width=200, color_system=None))
    return code, out.getvalue()


def test_debrief_command_prints_the_faults(tmp_path: Path) -> None:
    code, text = _run(stall_folder(tmp_path))
    assert code == 0
    assert "drill.stall" in text and "30 s" in text and "40 s" in text and "120 s" in text


@pytest.mark.parametrize("case", ["empty", "missing", "broken"])
def test_debrief_command_says_what_is_wrong(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "run"
    if case != "missing":
        folder.mkdir()
    if case == "broken":
        (folder / "report.json").write_text('{"phases": [')
    code, text = _run(folder)
    assert code == 2
    text = " ".join(text.split())
    expected = {"empty": "report.json is missing", "missing": "no such folder", "broken": "broken JSON"}[case]
    assert expected in text and "run" in text
    if case != "missing":
        assert "report.json" in text
