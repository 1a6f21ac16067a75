"""Ground control's command book: every telecommand sent, and where its verification stands.

Timeouts run in simulated time and allow for the round-trip light time through the relay.
"""

import asyncio
import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport


class CommandState(StrEnum):
    SENT = "sent"
    ACCEPTED = "accepted"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    EXPIRED = "expired"


FINAL_STATES = frozenset({CommandState.COMPLETED, CommandState.FAILED, CommandState.TIMED_OUT,
                          CommandState.EXPIRED})
_STATE_AFTER = {Stage.ACCEPTANCE: CommandState.ACCEPTED, Stage.START: CommandState.STARTED,
                Stage.COMPLETION: CommandState.COMPLETED}


@dataclass
class TrackedCommand:
    request_id: str
    node: str
    command: str
    args: dict[str, Any]
    sent_at: float
    deadline: float
    state: CommandState = CommandState.SENT
    final_at: float | None = None
    failure_code: FailureCode | None = None
    reason: str = ""
    progress: int = 0
    origin: str = "scenario"
    """Who sent it: "scenario", "operator" or "autopilot" (the debrief tells trainee actions apart)."""
    stages: dict[str, float] = field(default_factory=dict)
    failed_stage: str | None = None
    """The verification stage a failure happened at (acceptance, for one ground control refused itself)."""
    client_ref: str | None = None
    """The requester's own reference (a console, `lunar-gs cmd`), echoed in every update."""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        """What a console shows of it."""
        return {
            "request_id": self.request_id, "node": self.node, "command": self.command, "args": self.args,
            "origin": self.origin, "state": self.state.value, "sent_at": self.sent_at, "final_at": self.final_at,
            "progress": self.progress, "stages": dict(self.stages), "failed_stage": self.failed_stage,
            "failure_code": self.failure_code.name if self.failure_code else None, "reason": self.reason,
            "client_ref": self.client_ref,
        }


class CommandBook:
    def __init__(self, prefix: str = "gc") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)
        self.commands: dict[str, TrackedCommand] = {}

    def open(self, node: str, command: str, args: dict[str, Any], now: float, allowed_s: float,
             origin: str = "scenario", client_ref: str | None = None) -> TrackedCommand:
        request_id = f"{self._prefix}-{next(self._counter):05d}"
        tracked = TrackedCommand(request_id, node, command, dict(args), now, now + allowed_s, origin=origin,
                                 client_ref=client_ref)
        self.commands[request_id] = tracked
        return tracked

    def refuse(self, node: str, command: str, args: dict[str, Any], now: float, code: FailureCode, reason: str,
               origin: str, client_ref: str | None = None) -> TrackedCommand:
        """Book a command ground control will not send (unknown, or arguments out of the catalogue): it
        fails at acceptance, as the node itself would have failed it, without spending the uplink."""
        tracked = self.open(node, command, args, now, 0.0, origin, client_ref)
        tracked.stages[f"{Stage.ACCEPTANCE}_failed"] = now
        tracked.failed_stage = str(Stage.ACCEPTANCE)
        self._close(tracked, CommandState.FAILED, now, code, reason)
        return tracked

    def on_report(self, report: VerificationReport) -> TrackedCommand | None:
        """Apply a verification report; returns the command if its state changed."""
        tracked = self.commands.get(report.request_id)
        if tracked is None or tracked.final:
            return None
        tracked.stages[f"{report.stage}{'' if report.success else '_failed'}"] = report.sim_time
        if not report.success:
            tracked.failed_stage = str(report.stage)
            self._close(tracked, CommandState.FAILED, report.sim_time, report.failure_code, report.reason)
        elif report.stage is Stage.PROGRESS:
            tracked.progress = max(tracked.progress, report.progress_step)
        else:
            tracked.state = _STATE_AFTER[report.stage]
            if tracked.state is CommandState.COMPLETED:
                self._close(tracked, CommandState.COMPLETED, report.sim_time)
        return tracked

    def on_expired(self, request_id: str, now: float) -> TrackedCommand | None:
        tracked = self.commands.get(request_id)
        if tracked is None or tracked.final:
            return None
        self._close(tracked, CommandState.EXPIRED, now, FailureCode.EXPIRED, "relay dropped it after a gap")
        return tracked

    def time_out(self, now: float) -> list[TrackedCommand]:
        expired = [c for c in self.commands.values() if not c.final and now >= c.deadline]
        for tracked in expired:
            self._close(tracked, CommandState.TIMED_OUT, now, FailureCode.TIMEOUT,
                        f"no completion within {tracked.deadline - tracked.sent_at:.0f} s (simulated)")
        return expired

    def extend_deadlines(self, seconds: float) -> None:
        for tracked in self.commands.values():
            if not tracked.final:
                tracked.deadline += seconds

    def next_deadline(self) -> float | None:
        deadlines = [c.deadline for c in self.commands.values() if not c.final]
        return min(deadlines) if deadlines else None

    @property
    def pending(self) -> int:
        return sum(1 for c in self.commands.values() if not c.final)

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in FINAL_STATES}
        for tracked in self.commands.values():
            counts[tracked.state.value] = counts.get(tracked.state.value, 0) + 1
        return counts

    def snapshot(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in vars(c).items() if k != "done"} for c in self.commands.values()]

    def restore(self, saved: list[dict[str, Any]]) -> None:
        for fields in saved:
            tracked = TrackedCommand(**fields)
            if tracked.final:
                tracked.done.set()
            self.commands[tracked.request_id] = tracked

    @staticmethod
    def _close(tracked: TrackedCommand, state: CommandState, when: float,
               code: FailureCode | None = None, reason: str = "") -> None:
        tracked.state = state
        tracked.final_at = when
        tracked.failure_code = code
        tracked.reason = reason
        tracked.done.set()
