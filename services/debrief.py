"""The instructor's debrief: the ground truth of each fault set against what the operators saw and did.

Reads a rehearsal's report folder (`report.json`, the operators' `archive.sqlite` and the instructor's
`truth.jsonl`) and answers, per fault: when it went in, when it took effect, when the node first showed
it, when ground control could first see it, what the trainees sent first, whether the fault was
recovered, and which commands made it worse. `write_debrief` adds `timeline.png` (the operators' view
above the ground truth on one mission-time axis) and `debrief.md`, and puts `faults` and `objectives`
into `report.json`.

All times are mission seconds (after the epoch), each with a `T+HH:MM:SS` rendering beside it
(`<name>_met`). The rules, so an instructor can argue with them:

- **Ground symptom** (`first_symptom_at_ground`): the earliest thing operators could see, at or after
  the fault took effect and no later than `SYMPTOM_GRACE_S` after it cleared (no limit for the
  catalogue's `permanent` kinds, whose damage stays):
  an alarm *raised* about the target's node (the alarm's `node`: limit alarms `node.parameter`,
  `service.NODE` when a service goes offline), or an alarm whose name the catalogue's `reveals` lists
  (or, for a sensor fault, the target parameter itself); an event of severity warning or above from the
  target's node, or any event the catalogue's `reveals` lists (`node:event`); a command to the target's
  node that ended failed, timed out or expired (at its final time). Link faults also show as alarms from
  `relay-satellite`, as telemetry gaps of the nodes whose traffic the link carries (seen when the packet
  after the gap arrives), and as rejections from those nodes or the relay. `sys:status` in `reveals`
  means the `service.NODE` alarm; `tm:silence` (a hung service) and a loss of signal also show as
  telemetry silence: no housekeeping from the node for `max(SILENCE_FACTOR x its usual interval,
  SILENCE_MIN_S)`, seen at the end of that span.
- **First response** (`first_command_after`): the first command whose origin is not `scenario`
  (`operator` or `autopilot`; an archive without the `origin` column counts as all `scenario`) sent at
  or after the ground symptom or, when nothing was seen, after the fault took effect; and no later than
  the fault's clearing, or the clearing of the last symptom alarm raised while it was active if that is
  later (so a response to a still-standing alarm counts).
- **Recovered** (`recovered_at`): the time of the truth's `cleared` record whose detail starts with
  "recovered" (the physics ended the fault: a retract freed the bit); otherwise, when there was a first
  response and the alarms counted as symptoms (raised from the ground symptom to the end of the symptom
  window) all cleared, the last of them no earlier than that response, the time it cleared; otherwise
  None. (A protection tripping clears alarms too; without a response that is no recovery.)
- **Worse commands**: commands of any origin sent while the fault was active (from effect to clearing or
  the run's end) that the catalogue lists in `worsens` for its kind, or that ended `failed` within
  `FAILED_SOON_S` of being sent.
- **Dud**: the truth has a `dud` record, or the fault took effect and neither the node (no `symptom`
  record) nor ground control (no ground symptom) ever showed it. A dud has no durations.
- Durations: detect = ground symptom - effect; respond = first response - ground symptom (None when
  nothing was seen); recover = recovered - effect.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lunar_gs.protocols.codec import DecodeError, JsonCodec
from lunar_gs.protocols.faults import CATALOGUE, FaultKind, FaultLayer, FaultRecord, TruthEntry
from lunar_gs.protocols.nodes import FAR_SIDE_NODES, Node
from lunar_gs.services.ground_control.scenario import format_mission_elapsed

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_EPOCH = 1717280596.0
"""The mission profile's epoch (touchdown), used when neither the report nor the truth gives one."""
SYMPTOM_GRACE_S = 60.0
"""Symptoms reaching ground up to this long after a fault cleared still count (relay delay, limits)."""
FAILED_SOON_S = 60.0
"""A command that failed within this long of being sent, while a fault was active, counts as worse."""
SILENCE_FACTOR = 5.0
SILENCE_MIN_S = 10.0

ARCHIVE_FILE = "archive.sqlite"
TRUTH_FILE = "truth.jsonl"
REPORT_FILE = "report.json"
TIMELINE_FILE = "timeline.png"
DEBRIEF_FILE = "debrief.md"
BOOKMARKS_FILE = "bookmarks.jsonl"

_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
_COMMAND_FAILED = ("failed", "timed_out", "expired")


class DebriefError(Exception):
    """A report folder that cannot be debriefed (missing, no report.json, broken JSON)."""


def met(seconds: float | None) -> str | None:
    """Mission seconds as `T+HH:MM:SS` (`T-...` before the epoch)."""
    if seconds is None:
        return None
    if seconds < 0:
        return f"T-{format_mission_elapsed(-seconds)}"
    return f"T+{format_mission_elapsed(seconds)}"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the operators' view: the archive ------------------------------------------------------------------

@dataclass
class AlarmSpan:
    name: str
    node: str
    severity: str
    raised: float
    cleared: float | None
    message: str


@dataclass
class SeenEvent:
    node: str
    kind: str  # event | rejection
    name: str
    severity: str
    time: float
    message: str


@dataclass
class SentCommand:
    request_id: str
    node: str
    command: str
    sent: float
    state: str
    final: float | None
    failure_code: str | None
    reason: str | None
    origin: str


@dataclass
class TmGap:
    node: str
    missing: int
    from_time: float
    to_time: float


@dataclass
class OperatorsView:
    alarms: list[AlarmSpan] = field(default_factory=list)
    events: list[SeenEvent] = field(default_factory=list)
    commands: list[SentCommand] = field(default_factory=list)
    gaps: list[TmGap] = field(default_factory=list)
    tm_times: dict[str, list[float]] = field(default_factory=dict)
    """Mission times of each node's housekeeping (only loaded for nodes a silence check needs)."""
    start: float | None = None
    end: float | None = None


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def read_archive(path: Path, epoch: float, warnings: list[str],
                 tm_nodes: Iterable[str] = ()) -> OperatorsView:
    """What ground control archived, in mission seconds. `tm_nodes`: nodes whose TM times to load."""
    view = OperatorsView()
    if not path.is_file():
        warnings.append(f"{path}: missing; the operators' view is empty")
        return view
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        warnings.append(f"{path}: cannot open ({exc}); the operators' view is empty")
        return view
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        times: list[float] = []
        if "events" in tables:
            open_alarms: dict[str, AlarmSpan] = {}
            for node, kind, name, severity, sim_time, body in db.execute(
                    "SELECT node, kind, name, severity, sim_time, body FROM events ORDER BY sim_time, id"):
                t = sim_time - epoch
                times.append(t)
                try:
                    data = json.loads(body)
                except (TypeError, ValueError):
                    data = {}
                if not isinstance(data, dict):
                    data = {}
                if kind == "alarm":
                    state = data.get("state")
                    if state == "raised":
                        if name not in open_alarms:
                            span = AlarmSpan(name, node or str(data.get("node", "")), severity, t, None,
                                             str(data.get("message", "")))
                            open_alarms[name] = span
                            view.alarms.append(span)
                    elif state == "cleared":
                        closed = open_alarms.pop(name, None)
                        if closed is not None:
                            closed.cleared = t
                else:
                    message = data.get("message") or data.get("reason") or ""
                    view.events.append(SeenEvent(node, kind, name, severity, t, str(message)))
        if "commands" in tables:
            has_origin = "origin" in _columns(db, "commands")
            origin = "COALESCE(origin, 'scenario')" if has_origin else "'scenario'"
            for row in db.execute(
                    f"SELECT request_id, node, command, sent_sim, state, final_sim, failure_code, reason, "
                    f"{origin} FROM commands ORDER BY sent_sim"):
                rid, node, command, sent, state, final, code, reason, who = row
                view.commands.append(SentCommand(
                    rid, node, command, sent - epoch, state, None if final is None else final - epoch,
                    code, reason, who or "scenario"))
                times.append(sent - epoch)
                if final is not None:
                    times.append(final - epoch)
        if "tm_gaps" in tables:
            for node, missing, from_sim, to_sim in db.execute(
                    "SELECT node, missing, from_sim, to_sim FROM tm_gaps ORDER BY to_sim"):
                view.gaps.append(TmGap(node, missing, from_sim - epoch, to_sim - epoch))
        if "tm" in tables:
            first, last = db.execute("SELECT MIN(sim_time), MAX(sim_time) FROM tm").fetchone()
            if first is not None:
                times += [first - epoch, last - epoch]
            for node in tm_nodes:
                view.tm_times[node] = [row[0] - epoch for row in db.execute(
                    "SELECT sim_time FROM tm WHERE node = ? ORDER BY sim_time", (node,))]
        if times:
            view.start, view.end = min(times), max(times)
    except sqlite3.Error as exc:
        warnings.append(f"{path}: unreadable ({exc}); the operators' view may be incomplete")
    finally:
        db.close()
    return view


# -- the ground truth ----------------------------------------------------------------------------------

def read_truth(path: Path, warnings: list[str]) -> list[FaultRecord]:
    """The truth log's records; a line that does not decode is reported (file and line) and skipped."""
    if not path.is_file():
        return []
    codec = JsonCodec()
    records = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                message = codec.decode(line.strip())
            except DecodeError as exc:
                warnings.append(f"{path} line {number}: skipped, {exc.reason}")
                continue
            except ValueError as exc:  # anything else the model refuses
                warnings.append(f"{path} line {number}: skipped, {exc}")
                continue
            if not isinstance(message, FaultRecord):
                warnings.append(f"{path} line {number}: skipped, a {message.schema_name} message, "
                                f"not a fault.truth record")
                continue
            records.append(message)
    return records


def _epoch(report: dict[str, Any], truth: list[FaultRecord]) -> float:
    epoch = report.get("epoch")
    if isinstance(epoch, int | float) and not isinstance(epoch, bool):
        return float(epoch)
    for record in truth:
        if record.sim_time:
            return record.sim_time - record.mission_time
    return DEFAULT_EPOCH


# -- per fault ---------------------------------------------------------------------------------------------

@dataclass
class _Symptom:
    time: float
    kind: str
    name: str


def _reveal_sets(kind: FaultKind | None, target: str) -> tuple[set[str], set[str], set[str]]:
    """(alarm names, `node:event` names, special reveals) for a kind on a target."""
    alarms: set[str] = set()
    events: set[str] = set()
    special: set[str] = set()
    if kind is None:
        return alarms, events, special
    entry = CATALOGUE[kind]
    node = target.partition(".")[0]
    if entry.layer is FaultLayer.SENSOR:
        alarms.add(target)
    for reveal in entry.reveals:
        if reveal in ("ground-control:tm_sequence", "sys:status", "tm:silence", "relay-satellite:rejection"):
            special.add(reveal)
        elif ":" in reveal:
            events.add(reveal)
        else:
            alarms.add(reveal)
    if "sys:status" in special:
        alarms.add(f"service.{node}")
    return alarms, events, special


def _link_nodes(target: str) -> set[str]:
    """The nodes whose traffic a link fault on `target` carries."""
    node = target.partition(".")[0]
    if node == Node.RELAY_SATELLITE:
        return {str(n) for n in (*FAR_SIDE_NODES, Node.RELAY_SATELLITE)}
    return {node}


def _silence(times: list[float], start: float, end: float) -> float | None:
    """When ground could tell that a node's housekeeping had stopped, between start and end."""
    before = [t for t in times if t < start][-21:]
    intervals = [b - a for a, b in zip(before, before[1:]) if b > a]
    usual = statistics.median(intervals) if intervals else 1.0
    threshold = max(SILENCE_FACTOR * usual, SILENCE_MIN_S)
    previous = before[-1] if before else start
    for t in [t for t in times if start <= t <= end] + [end]:
        if t - previous > threshold:
            return max(previous + threshold, start)
        previous = t
    return None


def _ground_symptom(view: OperatorsView, kind: FaultKind | None, target: str, start: float, end: float
                    ) -> tuple[_Symptom | None, list[AlarmSpan]]:
    """The first symptom visible at ground control in [start, end], and the alarms counted as symptoms."""
    node = target.partition(".")[0]
    alarm_names, event_names, special = _reveal_sets(kind, target)
    layer = CATALOGUE[kind].layer if kind is not None else None
    link = layer is FaultLayer.LINK
    carried = _link_nodes(target) if link else set()
    candidates: list[_Symptom] = []
    symptom_alarms = []
    for alarm in view.alarms:
        about = alarm.node == node or alarm.name in alarm_names or (
            link and (alarm.node == Node.RELAY_SATELLITE or alarm.node in carried))
        if about and start <= alarm.raised <= end:
            symptom_alarms.append(alarm)
            candidates.append(_Symptom(alarm.raised, "alarm", alarm.name))
    for event in view.events:
        if not start <= event.time <= end:
            continue
        qualified = f"{event.node}:{event.name}"
        if event.kind == "event":
            if qualified in event_names or (
                    event.node == node and _SEVERITY_RANK.get(event.severity, 0) >= 1):
                candidates.append(_Symptom(event.time, "event", qualified))
        elif event.kind == "rejection":
            if (link and (event.node in carried or event.node == Node.RELAY_SATELLITE)) or (
                    "relay-satellite:rejection" in special and event.node == Node.RELAY_SATELLITE):
                candidates.append(_Symptom(event.time, "rejection", qualified))
    for command in view.commands:
        affected = command.node == node or (link and command.node in carried)
        if affected and command.state in _COMMAND_FAILED and command.final is not None and (
                start <= command.final <= end):
            candidates.append(_Symptom(command.final, "command", f"{command.node} {command.command} "
                                                                 f"{command.state}"))
    if link or "ground-control:tm_sequence" in special:
        gap_nodes = carried or {node}
        for gap in view.gaps:
            if gap.node in gap_nodes and start < gap.to_time <= end:
                name = f"{gap.node} TM gap ({gap.missing} missing)"
                candidates.append(_Symptom(gap.to_time, "tm_gap", name))
    if "tm:silence" in special or kind is FaultKind.LINK_LOS:
        silent_nodes = (carried or {node}) if kind is FaultKind.LINK_LOS else {node}
        if kind is FaultKind.LINK_LOS and target.endswith(".up"):
            silent_nodes = set()  # an uplink loss stops commands, not telemetry
        for silent in sorted(silent_nodes):
            times = view.tm_times.get(silent)
            if times:
                at = _silence(times, start, end)
                if at is not None:
                    candidates.append(_Symptom(at, "tm_silence", f"{silent} TM silent"))
    first = min(candidates, key=lambda s: s.time) if candidates else None
    return first, symptom_alarms


def _truth_time(record: FaultRecord, epoch: float) -> float:
    return record.sim_time - epoch if record.sim_time else record.mission_time


def _command_entry(command: SentCommand, why: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "request_id": command.request_id, "node": command.node, "command": command.command,
        "origin": command.origin, "sent_at": _r(command.sent), "sent_at_met": met(command.sent),
        "state": command.state,
    }
    if why is not None:
        entry["why"] = why
    return entry


def _fault_entry(fault_id: str, records: list[FaultRecord], view: OperatorsView, epoch: float,
                 run_end: float) -> dict[str, Any]:
    described = next((r for r in records if r.kind is not None), records[0])
    kind = described.kind
    target = described.target
    entry_of = CATALOGUE[kind] if kind is not None else None

    def first(entry: TruthEntry, predicate: Any = None) -> FaultRecord | None:
        return next((r for r in records if r.entry is entry and (predicate is None or predicate(r))), None)

    def at(record: FaultRecord | None) -> float | None:
        return None if record is None else _truth_time(record, epoch)

    injected_at = at(first(TruthEntry.INJECTED))
    effective_at = at(first(TruthEntry.EFFECTIVE))
    truth_symptom_at = at(first(TruthEntry.SYMPTOM))
    cleared_at = at(first(TruthEntry.CLEARED))
    physics = first(TruthEntry.CLEARED, lambda r: r.detail.lower().startswith("recovered"))
    dud_record = first(TruthEntry.DUD)

    if first(TruthEntry.NOT_DRAWN):
        outcome = "not drawn"
    elif first(TruthEntry.REFUSED):
        outcome = "refused"
    elif first(TruthEntry.REJECTED):
        outcome = "rejected"
    elif effective_at is None:
        outcome = "never took effect"
    else:
        outcome = "effective"

    symptom: _Symptom | None = None
    symptom_alarms: list[AlarmSpan] = []
    window_end = run_end
    if effective_at is not None and dud_record is None:
        if cleared_at is not None and not (entry_of is not None and entry_of.permanent):
            window_end = cleared_at + SYMPTOM_GRACE_S
        symptom, symptom_alarms = _ground_symptom(view, kind, target, effective_at, window_end)
    never_showed = truth_symptom_at is None and symptom is None
    dud = dud_record is not None or (effective_at is not None and never_showed)
    if dud:
        outcome = "dud"
        symptom, symptom_alarms = None, []
    elif outcome == "effective":
        outcome = "seen" if symptom is not None else "not seen"
    ground_at = symptom.time if symptom is not None else None

    # first response
    first_command = None
    reference = ground_at if ground_at is not None else effective_at
    if reference is not None:
        response_end = cleared_at if cleared_at is not None else run_end
        for alarm in symptom_alarms:
            response_end = max(response_end, alarm.cleared if alarm.cleared is not None else run_end)
        first_command = next((c for c in view.commands
                              if c.origin != "scenario" and reference <= c.sent <= response_end), None)

    # recovery
    recovered_at: float | None = None
    recovered_by = None
    if physics is not None:
        recovered_at, recovered_by = _truth_time(physics, epoch), "physics"
    elif ground_at is not None and first_command is not None:
        later = [a for a in symptom_alarms if a.raised >= ground_at]
        if later and all(a.cleared is not None for a in later):
            last_cleared = max(a.cleared for a in later if a.cleared is not None)
            if last_cleared >= first_command.sent:  # a protection tripping clears alarms too: not a recovery
                recovered_at, recovered_by = last_cleared, "alarms cleared"

    # worse commands
    worse = []
    if effective_at is not None:
        active_end = cleared_at if cleared_at is not None else run_end
        worsens = set(entry_of.worsens) if entry_of is not None else set()
        for command in view.commands:
            if not effective_at <= command.sent <= active_end:
                continue
            if f"{command.node} {command.command}" in worsens:
                worse.append(_command_entry(command, f"the catalogue lists it as worsening {kind}"))
            elif command.state == "failed" and command.final is not None and (
                    command.final - command.sent <= FAILED_SOON_S):
                worse.append(_command_entry(
                    command, f"failed {command.final - command.sent:.0f} s after it was sent"
                             + (f" ({command.failure_code})" if command.failure_code else "")))

    def duration(a: float | None, b: float | None) -> float | None:
        return None if dud or a is None or b is None else _r(b - a)

    result: dict[str, Any] = {
        "fault_id": fault_id,
        "label": described.label,
        "kind": str(kind) if kind is not None else None,
        "target": target,
        "via": str(described.via),
        "params": dict(described.params),
        "outcome": outcome,
    }
    for name, value in (("injected_at", injected_at), ("effective_at", effective_at),
                        ("truth_symptom_at", truth_symptom_at), ("first_symptom_at_ground", ground_at)):
        result[name], result[f"{name}_met"] = _r(value), met(value)
    result["symptom_kind"] = symptom.kind if symptom is not None else None
    result["symptom_name"] = symptom.name if symptom is not None else None
    result["first_command_after"] = _command_entry(first_command) if first_command is not None else None
    result["recovered_at"], result["recovered_at_met"] = _r(recovered_at), met(recovered_at)
    result["recovered_by"] = recovered_by
    result["cleared_at"], result["cleared_at_met"] = _r(cleared_at), met(cleared_at)
    result["dud"] = dud
    result["time_to_detect_s"] = duration(effective_at, ground_at)
    result["time_to_respond_s"] = duration(ground_at, first_command.sent if first_command else None)
    result["time_to_recover_s"] = duration(effective_at, recovered_at)
    result["worse_commands"] = worse
    return result


# -- the debrief -------------------------------------------------------------------------------------------

def read_bookmarks(path: Path, epoch: float, warnings: list[str]) -> list[dict[str, Any]]:
    """The instructor's bookmarks (from the console), in mission-time order: the debrief's agenda."""
    if not path.is_file():
        return []
    agenda = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            mark = json.loads(line)
            agenda.append({"sim_time": float(mark["sim_time"]), "met": met(float(mark["sim_time"]) - epoch),
                           "note": str(mark["note"]), "by": str(mark.get("by", ""))})
        except (ValueError, KeyError, TypeError):
            warnings.append(f"{path}:{number}: not a bookmark, skipped")
    return sorted(agenda, key=lambda m: m["sim_time"])


def read_report(report_dir: Path) -> dict[str, Any]:
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        raise DebriefError(f"no such folder: {report_dir}")
    path = report_dir / REPORT_FILE
    if not path.is_file():
        raise DebriefError(f"{path} is missing: not a rehearsal report folder?")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DebriefError(f"{path}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DebriefError(
            f"{path}: broken JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(report, dict):
        raise DebriefError(f"{path}: expected a JSON object, got {type(report).__name__}")
    return report


def _phases(report: dict[str, Any]) -> list[dict[str, Any]]:
    phases = report.get("phases")
    return [p for p in phases if isinstance(p, dict)] if isinstance(phases, list) else []


def _objectives(report: dict[str, Any]) -> list[dict[str, Any]]:
    objectives = report.get("objectives")
    if not isinstance(objectives, list):
        return []
    return [{"name": str(o.get("name", "")), "passed": bool(o.get("passed")),
             "detail": str(o.get("detail", ""))}
            for o in objectives if isinstance(o, dict)]


def _build(report_dir: Path) -> tuple[dict[str, Any], dict[str, Any], OperatorsView, float, float, float]:
    report_dir = Path(report_dir)
    report = read_report(report_dir)
    warnings: list[str] = []
    truth = read_truth(report_dir / TRUTH_FILE, warnings)
    epoch = _epoch(report, truth)
    silent_nodes: set[str] = set()
    for record in truth:
        if record.kind is FaultKind.SERVICE_HANG:
            silent_nodes.add(record.target.partition(".")[0])
        elif record.kind is FaultKind.LINK_LOS:
            silent_nodes |= _link_nodes(record.target)
    view = read_archive(report_dir / ARCHIVE_FILE, epoch, warnings, silent_nodes)

    times = [t for t in (view.start, view.end) if t is not None]
    times += [_truth_time(r, epoch) for r in truth]
    for phase in _phases(report):
        times += [t for t in (phase.get("start"), phase.get("end")) if isinstance(t, int | float)]
    run_start = min(times) if times else 0.0
    run_end = max(times) if times else 0.0

    by_fault: dict[str, list[FaultRecord]] = {}
    for record in truth:
        if record.fault_id:
            by_fault.setdefault(record.fault_id, []).append(record)
    faults = [_fault_entry(fid, records, view, epoch, run_end) for fid, records in by_fault.items()]
    debrief = {"faults": faults, "objectives": _objectives(report), "timeline": None, "warnings": warnings,
               "epoch": epoch, "agenda": read_bookmarks(report_dir / BOOKMARKS_FILE, epoch, warnings)}
    return debrief, report, view, epoch, run_start, run_end


def build_debrief(report_dir: Path) -> dict[str, Any]:
    """The debrief of a report folder: {"faults", "objectives", "timeline", "warnings", "epoch"}.

    `timeline` names the picture if one is already in the folder (write_debrief draws it). Raises
    DebriefError when the folder or its report.json is missing or broken.
    """
    debrief = _build(report_dir)[0]
    if (Path(report_dir) / TIMELINE_FILE).is_file():
        debrief["timeline"] = TIMELINE_FILE
    return debrief


# -- the picture -------------------------------------------------------------------------------------------

_STATE_COLOURS = {"completed": "tab:green", "failed": "tab:red", "timed_out": "tab:purple",
                  "expired": "tab:gray"}
_ORIGIN_MARKERS = {"scenario": "o", "operator": "^", "autopilot": "s"}
_SEVERITY_COLOURS = {"warning": "tab:orange", "error": "tab:red", "critical": "darkred", "info": "tab:gray"}
_PHASE_COLOURS = {"PASS": "tab:green", "FAIL": "tab:red"}


def draw_timeline(debrief: dict[str, Any], report: dict[str, Any], view: OperatorsView,
                  run_start: float, run_end: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    def h(seconds: float) -> float:
        return seconds / 3600.0

    alarm_names = list(dict.fromkeys(a.name for a in view.alarms))
    top_rows = ["warning+ events", "commands", *alarm_names]
    faults = debrief["faults"]
    bottom_rows = max(len(faults), 1)
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(14, 3.0 + 0.32 * (len(top_rows) + bottom_rows) + 1.5),
        gridspec_kw={"height_ratios": [len(top_rows) + 2, bottom_rows + 1.5]})
    span = max(run_end - run_start, 60.0)
    left, right = h(run_start - 0.03 * span), h(run_end + 0.03 * span)

    # operators' view
    band_text = blended_transform_factory(top.transData, top.transAxes)
    for phase in _phases(report):
        start, end = phase.get("start"), phase.get("end")
        if not isinstance(start, int | float):
            continue
        end = end if isinstance(end, int | float) else run_end
        status = str(phase.get("status", ""))
        colour = _PHASE_COLOURS.get(status, "lightgray")
        for ax in (top, bottom):
            ax.axvspan(h(start), h(end), color=colour, alpha=0.10, lw=0)
        top.axvline(h(start), color=colour, lw=0.6, alpha=0.6)
        top.text(h(start), 1.01, f"{phase.get('name', '')} ({status})", transform=band_text, rotation=30,
                 fontsize=7, va="bottom", ha="left", color=colour if colour != "lightgray" else "dimgray")
    rows = {name: i for i, name in enumerate(top_rows)}
    for alarm in view.alarms:
        y = rows[alarm.name]
        end = alarm.cleared if alarm.cleared is not None else run_end
        colour = _SEVERITY_COLOURS.get(alarm.severity, "tab:orange")
        top.plot([h(alarm.raised), h(end)], [y, y], color=colour, lw=6, solid_capstyle="butt", alpha=0.8)
        top.plot([h(alarm.raised)], [y], "|", color=colour, markersize=12)
    for command in view.commands:
        top.plot([h(command.sent)], [rows["commands"]], _ORIGIN_MARKERS.get(command.origin, "o"),
                 color=_STATE_COLOURS.get(command.state, "tab:blue"), markersize=6, markeredgecolor="black",
                 markeredgewidth=0.4)
    for event in view.events:
        if _SEVERITY_RANK.get(event.severity, 0) >= 1:
            top.plot([h(event.time)], [rows["warning+ events"]], "|",
                     color=_SEVERITY_COLOURS.get(event.severity, "tab:orange"), markersize=12, mew=2)
    top.set_yticks(range(len(top_rows)), top_rows, fontsize=8)
    top.set_ylim(-0.8, len(top_rows) - 0.2)
    top.invert_yaxis()
    top.grid(axis="x", alpha=0.3)
    top.set_title("operators' view", loc="left", fontsize=10, fontweight="bold", pad=40)
    legend = [Line2D([], [], marker=m, ls="", color="gray", label=f"{o} command")
              for o, m in _ORIGIN_MARKERS.items()]
    legend += [Line2D([], [], marker="o", ls="", color=c, label=s) for s, c in _STATE_COLOURS.items()]
    legend += [Line2D([], [], lw=6, color=_SEVERITY_COLOURS["warning"], label="alarm raised→cleared"),
               Line2D([], [], marker="|", ls="", mew=2, markersize=10, color="tab:orange",
                      label="event ≥ warning")]
    top.legend(handles=legend, fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)

    # ground truth
    marks = [("injected_at", "v", "black", "injected"), ("truth_symptom_at", "X", "tab:red", "truth symptom"),
             ("first_symptom_at_ground", "o", "tab:orange", "ground symptom"),
             ("recovered_at", "*", "tab:green", "recovered")]
    for y, fault in enumerate(faults):
        start, end = fault["effective_at"], fault["cleared_at"]
        if start is not None:
            colour = "lightgray" if fault["dud"] else "tab:red"
            bottom.plot([h(start), h(end if end is not None else run_end)], [y, y], color=colour, lw=9,
                        alpha=0.45, solid_capstyle="butt")
        for key, marker, colour, _ in marks:
            if fault.get(key) is not None:
                bottom.plot([h(fault[key])], [y], marker, color=colour, markersize=9, markeredgecolor="black",
                            markeredgewidth=0.5)
        response = fault.get("first_command_after")
        if response is not None:
            bottom.plot([h(response["sent_at"])], [y], "^", color="tab:blue", markersize=9,
                        markeredgecolor="black", markeredgewidth=0.5)
        for worse in fault["worse_commands"]:
            bottom.plot([h(worse["sent_at"])], [y], "x", color="black", markersize=8, mew=2)
        # the figures beside the bar, since markers of a short fault crowd on an hours axis
        if fault["dud"]:
            note = "dud: never showed"
        elif fault["effective_at"] is None:
            note = fault["outcome"]
        else:
            note = (f"detect {_seconds(fault['time_to_detect_s'])}"
                    f" · respond {_seconds(fault['time_to_respond_s'])}"
                    f" · recover {_seconds(fault['time_to_recover_s'])}")
            if fault["worse_commands"]:
                note += f" · {len(fault['worse_commands'])} worse"
        marked = (fault["injected_at"], fault["effective_at"], fault["cleared_at"], fault["recovered_at"],
                  response["sent_at"] if response else None)
        times = [t for t in marked if t is not None]
        if times:  # above the bar, running right from its start (left from its end near the run's end)
            late = min(times) > run_start + 0.65 * span
            bottom.text(h(max(times) if late else min(times)), y - 0.3, note, fontsize=7.5, va="bottom",
                        ha="right" if late else "left", color="black")
    labels = [f"{f['label'] or f['fault_id']}: {f['kind']} → {f['target']}" + (" (dud)" if f["dud"] else "")
              for f in faults]
    if faults:
        bottom.set_yticks(range(len(faults)), labels, fontsize=8)
    else:
        bottom.set_yticks([])
        bottom.text(0.5, 0.5, "no faults in the ground truth", transform=bottom.transAxes, ha="center",
                    va="center", fontsize=10, color="dimgray")
    bottom.set_ylim(-0.8, bottom_rows - 0.2)
    bottom.invert_yaxis()
    bottom.grid(axis="x", alpha=0.3)
    bottom.set_title("ground truth", loc="left", fontsize=10, fontweight="bold")
    legend = [Line2D([], [], lw=9, color="tab:red", alpha=0.45, label="active (effect→clearing)")]
    legend += [Line2D([], [], marker=m, ls="", color=c, markeredgecolor="black", label=lab)
               for _, m, c, lab in marks]
    legend += [Line2D([], [], marker="^", ls="", color="tab:blue", markeredgecolor="black",
                      label="first response"),
               Line2D([], [], marker="x", ls="", color="black", mew=2, label="worse command")]
    bottom.legend(handles=legend, fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    bottom.set_xlim(left, right)
    bottom.set_xlabel("mission time (h after the epoch)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the words ---------------------------------------------------------------------------------------------

def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} s"


def render_markdown(debrief: dict[str, Any], report: dict[str, Any]) -> str:
    title = report.get("scenario", "rehearsal")
    lines = [f"# Debrief: {title}", ""]
    agenda = debrief.get("agenda", [])
    if agenda:
        lines += [f"## Agenda ({len(agenda)} bookmarks)", ""]
        lines += [f"{n}. {m['met']} {m['note']} ({m['by']})" for n, m in enumerate(agenda, 1)] + [""]
    faults = debrief["faults"]
    lines += [f"## Faults ({len(faults)})", ""]
    if faults:
        lines += ["| fault | kind → target | via | injected | effective | node's symptom | ground symptom "
                  "| first response | recovered | cleared | detect | respond | recover | dud |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for f in faults:
            seen = f"{f['first_symptom_at_ground_met']} ({f['symptom_kind']} {f['symptom_name']})" \
                if f["first_symptom_at_ground"] is not None else "—"
            response = f["first_command_after"]
            answer = (f"{response['sent_at_met']} {response['node']} {response['command']} "
                      f"({response['origin']}, {response['state']})") if response else "—"
            recovered = (f"{f['recovered_at_met']} ({f['recovered_by']})"
                         if f["recovered_at"] is not None else "—")
            lines.append(
                f"| {f['label'] or f['fault_id']} | {f['kind']} → {f['target']} | {f['via']} "
                f"| {f['injected_at_met'] or '—'} | {f['effective_at_met'] or '—'} "
                f"| {f['truth_symptom_at_met'] or '—'} "
                f"| {seen} | {answer} | {recovered} | {f['cleared_at_met'] or '—'} "
                f"| {_seconds(f['time_to_detect_s'])} | {_seconds(f['time_to_respond_s'])} "
                f"| {_seconds(f['time_to_recover_s'])} | {'yes' if f['dud'] else 'no'} |")
        lines += ["", "### Commands that made things worse", ""]
        worse = [(f, w) for f in faults for w in f["worse_commands"]]
        lines += [f"- {w['sent_at_met']} {w['node']} {w['command']} ({w['origin']}, {w['state']}) during "
                  f"{f['label'] or f['fault_id']}: {w['why']}" for f, w in worse] or ["none"]
    else:
        lines.append("No faults in the ground truth.")
    objectives = debrief["objectives"]
    lines += ["", f"## Objectives ({sum(o['passed'] for o in objectives)}/{len(objectives)} met)", ""]
    lines += [f"- {'met' if o['passed'] else '**missed**'}: {o['name']}"
              + (f" ({o['detail']})" if o["detail"] else "")
              for o in objectives] or ["none recorded"]
    if debrief["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in debrief["warnings"]]
    if debrief.get("timeline"):
        lines += ["", "## Timeline", "", f"![timeline]({debrief['timeline']})"]
    return "\n".join(lines) + "\n"


def write_debrief(report_dir: Path) -> dict[str, Any]:
    """Build the debrief, draw timeline.png, write debrief.md and put `faults` and `objectives` into
    report.json. Returns the debrief."""
    report_dir = Path(report_dir)
    debrief, report, view, _, run_start, run_end = _build(report_dir)
    draw_timeline(debrief, report, view, run_start, run_end, report_dir / TIMELINE_FILE)
    debrief["timeline"] = TIMELINE_FILE
    (report_dir / DEBRIEF_FILE).write_text(render_markdown(debrief, report), encoding="utf-8")
    report["faults"] = debrief["faults"]
    report["objectives"] = debrief["objectives"]
    (report_dir / REPORT_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return debrief


def debrief_command(report_dir: Path, console: Console) -> int:
    """`lunar-gs debrief REPORT_DIR`: write the debrief and print its faults and objectives. 0, or 2
    with the reason when the folder cannot be debriefed."""
    from rich.table import Table
    from rich.text import Text

    try:
        debrief = write_debrief(Path(report_dir))
    except DebriefError as exc:
        console.print(f"debrief: {exc}", style="red", markup=False, highlight=False)
        return 2
    table = Table(title=f"Faults ({len(debrief['faults'])})")
    for column in ("fault", "kind", "target", "injected", "detect", "respond", "recover", "dud", "worse"):
        table.add_column(column)
    for f in debrief["faults"]:
        cells = (f["label"] or f["fault_id"], f["kind"] or "", f["target"], f["injected_at_met"] or "—",
                 _seconds(f["time_to_detect_s"]), _seconds(f["time_to_respond_s"]),
                 _seconds(f["time_to_recover_s"]), "yes" if f["dud"] else "no",
                 ", ".join(f"{w['node']} {w['command']}" for w in f["worse_commands"]) or "—")
        table.add_row(*(Text(str(c)) for c in cells))
    console.print(table)
    objectives = Table(title="Objectives")
    objectives.add_column("objective")
    objectives.add_column("result")
    objectives.add_column("detail")
    for o in debrief["objectives"]:
        result = Text("met", style="green") if o["passed"] else Text("missed", style="red")
        objectives.add_row(Text(o["name"]), result, Text(o["detail"]))
    if debrief["objectives"]:
        console.print(objectives)
    else:
        console.print("no objectives recorded", style="dim")
    for warning in debrief["warnings"]:
        console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    folder = Path(report_dir)
    console.print(f"wrote {folder / DEBRIEF_FILE} and {folder / TIMELINE_FILE}; report.json updated",
                  markup=False, highlight=False)
    return 0
