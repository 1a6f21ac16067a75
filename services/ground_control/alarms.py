"""The alarm book: what every console shows of ground control's alarms, and what operators did about them.

An alarm is raised and cleared by its condition (a limit, a lost service or link); what operators see is
latched: it stays in the list, unacknowledged, until someone acknowledges it with a comment, even after
its value came back. An alarm raised again after an acknowledgement is unacknowledged again. A shelved
alarm is out of the way until its shelf time (mission time) runs out. The book is plain data, saved with
ground control's state, so a restart keeps who acknowledged what.
"""

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lunar_gs.protocols.events import Alarm, AlarmState

COMMENT_MAX = 500
SHELVE_MAX_S = 86400.0


class AlarmStatus(StrEnum):
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    SHELVED = "shelved"
    CLEARED = "cleared"
    """Its condition is over and an operator has seen it: it leaves the list."""


class AlarmActionError(Exception):
    """An operator's action that cannot be done; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 409, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass
class OperatorNote:
    """Who did something to an alarm, when (mission and wall time), and what they said."""

    by: str
    comment: str
    sim_time: float
    wall_time: float


@dataclass
class AlarmEntry:
    name: str
    node: str
    parameter: str
    severity: str
    active: bool
    raised_at: float
    message: str = ""
    value: Any = None
    limit: float | None = None
    cleared_at: float | None = None
    raise_count: int = 1
    acknowledged: OperatorNote | None = None
    shelved: OperatorNote | None = None
    shelved_until: float | None = None
    removed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def status(self, now: float) -> AlarmStatus:
        if self.removed:
            return AlarmStatus.CLEARED
        if self.shelved_until is not None and now < self.shelved_until:
            return AlarmStatus.SHELVED
        if self.acknowledged is None:
            return AlarmStatus.UNACKNOWLEDGED
        return AlarmStatus.ACKNOWLEDGED if self.active else AlarmStatus.CLEARED

    def to_json(self, now: float) -> dict[str, Any]:
        data = asdict(self)
        del data["history"]
        data["state"] = self.status(now).value
        return data


def _comment(comment: object, *, required: bool) -> str:
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise AlarmActionError("comment must be text", 400, "comment")
    comment = comment.strip()
    if required and not comment:
        raise AlarmActionError("a comment is required", 400, "comment")
    if len(comment) > COMMENT_MAX:
        raise AlarmActionError(f"comment longer than {COMMENT_MAX} characters", 400, "comment")
    return comment


class AlarmBook:
    def __init__(self) -> None:
        self.entries: dict[str, AlarmEntry] = {}

    # -- the conditions ------------------------------------------------------------------------------------
    def apply(self, alarm: Alarm) -> AlarmEntry:
        """Take a raise or clear that ground control just published."""
        entry = self.entries.get(alarm.alarm)
        if alarm.state is AlarmState.RAISED:
            if entry is None or entry.removed:
                entry = AlarmEntry(alarm.alarm, alarm.node, alarm.parameter, str(alarm.severity), True,
                                   alarm.sim_time, alarm.message, alarm.value, alarm.limit,
                                   raise_count=entry.raise_count + 1 if entry else 1)
                self.entries[alarm.alarm] = entry
            else:
                if not entry.active:  # raised again after it cleared: someone must look again
                    entry.raise_count += 1
                    entry.raised_at, entry.cleared_at = alarm.sim_time, None
                    entry.acknowledged = None
                entry.active = True  # a raise of one already raised (a restart) changes only the reading
                entry.severity, entry.message = str(alarm.severity), alarm.message
                entry.value, entry.limit = alarm.value, alarm.limit
        else:
            if entry is None:  # a clear without a raise we saw (a restart between them): keep it visible
                entry = AlarmEntry(alarm.alarm, alarm.node, alarm.parameter, str(alarm.severity), False,
                                   alarm.sim_time, alarm.message, alarm.value, alarm.limit)
                self.entries[alarm.alarm] = entry
            entry.active, entry.cleared_at = False, alarm.sim_time
            entry.message, entry.value = alarm.message, alarm.value
        entry.history.append({"state": str(alarm.state), "sim_time": alarm.sim_time})
        return entry

    # -- what operators do ---------------------------------------------------------------------------------
    def _get(self, name: str) -> AlarmEntry:
        entry = self.entries.get(name)
        if entry is None or entry.removed:
            raise AlarmActionError(f"no alarm {name!r} in the list", 404)
        return entry

    def acknowledge(self, name: str, by: str, comment: object, sim_time: float, wall_time: float) -> AlarmEntry:
        entry = self._get(name)
        entry.acknowledged = OperatorNote(by, _comment(comment, required=True), sim_time, wall_time)
        entry.history.append({"state": "acknowledged", "sim_time": sim_time, "by": by})
        return entry

    def shelve(self, name: str, by: str, comment: object, duration_s: object, sim_time: float,
               wall_time: float) -> AlarmEntry:
        if isinstance(duration_s, bool) or not isinstance(duration_s, int | float) \
                or not 1.0 <= duration_s <= SHELVE_MAX_S:
            raise AlarmActionError(f"duration_s must be a number from 1 to {SHELVE_MAX_S:.0f} (mission seconds)",
                                   400, "duration_s")
        entry = self._get(name)
        entry.shelved = OperatorNote(by, _comment(comment, required=True), sim_time, wall_time)
        entry.shelved_until = sim_time + float(duration_s)
        entry.history.append({"state": "shelved", "sim_time": sim_time, "by": by, "until": entry.shelved_until})
        return entry

    def unshelve(self, name: str, by: str, sim_time: float) -> AlarmEntry:
        entry = self._get(name)
        if entry.shelved_until is None or sim_time >= entry.shelved_until:
            raise AlarmActionError(f"alarm {name!r} is not shelved")
        entry.shelved_until = None
        entry.history.append({"state": "unshelved", "sim_time": sim_time, "by": by})
        return entry

    def clear(self, name: str, by: str, comment: object, sim_time: float, wall_time: float) -> AlarmEntry:
        """Take an alarm whose condition is over off the list (acknowledging it, if nobody had)."""
        entry = self._get(name)
        if entry.active:
            raise AlarmActionError(f"alarm {name!r} is still active: acknowledge or shelve it")
        note = OperatorNote(by, _comment(comment, required=False), sim_time, wall_time)
        if entry.acknowledged is None:
            entry.acknowledged = note
        entry.removed, entry.shelved_until = True, None
        entry.history.append({"state": "removed", "sim_time": sim_time, "by": by})
        return entry

    # -- views ---------------------------------------------------------------------------------------------
    def listed(self, now: float) -> list[AlarmEntry]:
        """The alarms a console lists: everything not yet cleared, oldest raise first."""
        return sorted((e for e in self.entries.values() if e.status(now) is not AlarmStatus.CLEARED),
                      key=lambda e: e.raised_at)

    def shelves_due(self, now: float) -> list[AlarmEntry]:
        """Alarms whose shelf time ran out by `now` (each reported once)."""
        due = [e for e in self.entries.values() if e.shelved_until is not None and now >= e.shelved_until]
        for entry in due:
            entry.shelved_until = None
            entry.history.append({"state": "unshelved", "sim_time": now, "by": "shelf time"})
        return due

    def next_shelf_end(self) -> float | None:
        ends = [e.shelved_until for e in self.entries.values() if e.shelved_until is not None]
        return min(ends) if ends else None

    # -- persistence ---------------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries.values()]

    def restore(self, saved: list[dict[str, Any]]) -> None:
        for fields in saved:
            notes = {k: OperatorNote(**fields[k]) if fields.get(k) else None for k in ("acknowledged", "shelved")}
            entry = AlarmEntry(**{**fields, **notes})
            self.entries[entry.name] = entry
