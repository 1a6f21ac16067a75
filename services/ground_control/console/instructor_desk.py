"""The instructor's desk in the console server: faults in and out through the instructor service, the
ground truth as it happens, the clock, and bookmarks for the debrief.

It lives in ground control's process only so that one server serves both consoles; ground control itself
never reads what the desk holds (its alarms, limits and scenario see only what the spacecraft tells them),
and the operator's side of the server never passes it on.
"""

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lunar_gs.protocols.codec import DecodeError
from lunar_gs.protocols.commands import describe_validation_error
from lunar_gs.protocols.faults import (
    ARM_JOINTS,
    CATALOGUE,
    LINK_DIRECTIONS,
    LINKED_DEVICES,
    THERMAL_COMPONENTS,
    ActiveFaults,
    FaultAction,
    FaultKind,
    FaultRecord,
    FaultRequest,
    FaultSpec,
    FaultVia,
    TargetItem,
    TruthEntry,
    target_form,
)
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.ground_control.console.dictionary import HOUSEKEEPING_OF, parameters_of
from lunar_gs.services.ground_control.service import GroundControl
from lunar_gs.services.mission import MissionProfile
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.clock import Wakeup

TRUTH_MEMORY = 2000
ANSWER_TIMEOUT_S = 10.0
"""Wall seconds to wait for the instructor service to accept or reject a request."""
TRIGGER_KINDS = ("at", "after", "when_tm", "when_event", "phase", "before_los")
RATE_MIN, RATE_MAX = 0.01, 10_000.0


class DeskError(Exception):
    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _targets(kind: FaultKind, profile: MissionProfile) -> list[str]:
    """Every target a kind accepts, for a console's picker."""
    entry = CATALOGUE[kind]
    out: list[str] = []
    for node in entry.nodes:
        match entry.item:
            case TargetItem.NONE:
                out.append(str(node))
            case TargetItem.JOINT:
                out.extend(f"{node}.{j}" for j in ARM_JOINTS)
            case TargetItem.DIRECTION:
                out.extend(f"{node}.{d}" for d in LINK_DIRECTIONS)
            case TargetItem.COMPONENT:
                out.extend(f"{node}.{c}" for c in THERMAL_COMPONENTS.get(node, ()))
            case TargetItem.DEVICE:
                out.extend(f"{node}.{d}" for d in LINKED_DEVICES.get(node, ()))
            case TargetItem.PARAMETER:
                model = HOUSEKEEPING_OF.get(node)
                if model is not None:
                    out.extend(p["key"] for p in parameters_of(node, model, profile) if p["type"] == "number")
            case _:
                out.append(str(node))
    return out


def fault_catalogue(profile: MissionProfile) -> dict[str, Any]:
    kinds = []
    for kind, entry in CATALOGUE.items():
        schema = entry.params.model_json_schema()
        params = [{"name": name, "type": "number" if p.get("type") in ("number", "integer") else p.get("type"),
                   "minimum": p.get("minimum", p.get("exclusiveMinimum")),
                   "maximum": p.get("maximum", p.get("exclusiveMaximum")),
                   "default": p.get("default"), "choices": p.get("enum"),
                   "required": name in schema.get("required", ())}
                  for name, p in schema.get("properties", {}).items()]
        kinds.append({"kind": str(kind), "layer": str(entry.layer), "summary": entry.summary,
                      "target_form": target_form(kind), "targets": _targets(kind, profile), "params": params,
                      "recovers": list(entry.recovers), "worsens": list(entry.worsens)})
    return {"kinds": kinds, "trigger_kinds": list(TRIGGER_KINDS)}


class InstructorDesk:
    def __init__(self, gc: GroundControl, bookmarks_path: Path | None) -> None:
        self.gc = gc
        self.runtime = gc.runtime
        self.truth: deque[dict[str, Any]] = deque(maxlen=TRUTH_MEMORY)
        self.active: dict[str, Any] = {"faults": []}
        self.bookmarks: list[dict[str, Any]] = []
        self._bookmark_ids = itertools.count(1)
        self._bookmarks_path = bookmarks_path
        if bookmarks_path is not None and bookmarks_path.exists():
            for line in bookmarks_path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    self.bookmarks.append(json.loads(line))
            self._bookmark_ids = itertools.count(len(self.bookmarks) + 1)
        self._answers: dict[str, asyncio.Future[FaultRecord]] = {}
        self._run_until: asyncio.Task[None] | None = None
        self._catalogue: dict[str, Any] | None = None
        topics = self.runtime.topics
        self.runtime.bus.subscribe(topics.fault_truth, self._on_truth, qos=1)
        self.runtime.bus.subscribe(topics.fault_active, self._on_active, qos=1)

    def _decode(self, message: IncomingMessage) -> Any:
        try:
            return self.runtime.codec.decode(message.payload)
        except DecodeError:
            return None  # the instructor service is the owner of these topics: it rejects bad input

    async def _on_truth(self, message: IncomingMessage) -> None:
        record = self._decode(message)
        if not isinstance(record, FaultRecord):
            return
        item = record.model_dump(mode="json")
        self.truth.append(item)
        self.gc.feed.publish({"kind": "truth", "record": item})  # a record has a `kind` of its own
        answer = self._answers.get(record.request_id)
        if answer is not None and not answer.done() and record.entry in (TruthEntry.ACCEPTED, TruthEntry.REJECTED):
            answer.set_result(record)

    async def _on_active(self, message: IncomingMessage) -> None:
        active = self._decode(message)
        if isinstance(active, ActiveFaults):
            self.active = active.model_dump(mode="json")
            self.gc.feed.publish({"kind": "faults", "active": self.active})

    @property
    def catalogue(self) -> dict[str, Any]:
        if self._catalogue is None:
            self._catalogue = fault_catalogue(self.gc.profile)
        return self._catalogue

    # -- faults ------------------------------------------------------------------------------------------
    async def _request(self, action: FaultAction, *, spec: FaultSpec | None = None,
                       fault_id: str | None = None) -> str:
        request_id = f"console-{uuid.uuid4().hex[:10]}"
        request = FaultRequest(source=Node.GROUND_CONTROL, request_id=request_id, action=action, spec=spec,
                               fault_id=fault_id, via=FaultVia.CONSOLE, sim_time=self.runtime.sim_now(),
                               wall_time=time.time())
        await self.runtime.bus.publish(self.runtime.topics.fault_request, self.runtime.codec.encode(request), qos=1)
        return request_id

    async def inject(self, body: Any, by: str) -> FaultRecord:
        if not isinstance(body, dict):
            raise DeskError("the body must be a JSON object (a fault spec)")
        try:
            spec = FaultSpec.model_validate(body)
        except ValidationError as exc:
            reason = describe_validation_error(exc).replace("Value error, ", "")
            self.gc.audit.record("instructor", "fault.inject", self.runtime.sim_now(), result="invalid", by=by,
                                 spec=body, reason=reason)
            raise DeskError(reason[:1000], 400) from None
        loop = asyncio.get_running_loop()
        request_id = await self._request(FaultAction.INJECT, spec=spec)
        answer = self._answers[request_id] = loop.create_future()
        try:
            record = await asyncio.wait_for(answer, ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise DeskError("the instructor service did not answer (is it running?)", 504) from None
        finally:
            self._answers.pop(request_id, None)
        self.gc.audit.record("instructor", "fault.inject", self.runtime.sim_now(), result=str(record.entry),
                             by=by, fault_id=record.fault_id, kind=str(spec.kind), target=spec.target,
                             reason=record.detail if record.entry is TruthEntry.REJECTED else None)
        return record

    async def clear(self, fault_id: str, by: str) -> None:
        await self._request(FaultAction.CLEAR, fault_id=fault_id)
        self.gc.audit.record("instructor", "fault.clear", self.runtime.sim_now(), by=by, fault_id=fault_id)

    # -- the clock -----------------------------------------------------------------------------------------
    async def clock(self, body: Any, by: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            raise DeskError("the body must be {\"action\": pause | resume | rate | run_until, ...}", 400, "action")
        if not self.runtime.clock.ready:
            raise DeskError("the mission clock has not started yet", 503)
        action, master = body["action"], self.gc.master
        now = self.runtime.clock.now()
        match action:
            case "pause":
                self._cancel_run_until()
                await master.pause()
            case "resume":
                self._cancel_run_until()
                await master.resume()
            case "rate":
                rate = body.get("rate")
                if isinstance(rate, bool) or not isinstance(rate, int | float) or not RATE_MIN <= rate <= RATE_MAX:
                    raise DeskError(f"rate must be a number from {RATE_MIN} to {RATE_MAX:.0f}", 400, "rate")
                await master.set_rate(float(rate))
            case "run_until":
                until = body.get("until")
                if isinstance(until, bool) or not isinstance(until, int | float) or until <= now:
                    raise DeskError("until must be a mission time (Unix seconds) later than now", 400, "until")
                self._cancel_run_until()
                if self.runtime.clock.state is not None and self.runtime.clock.state.paused:
                    await master.resume()
                self._run_until = asyncio.get_running_loop().create_task(self._pause_at(float(until)))
            case _:
                raise DeskError(f"unknown clock action {action!r}", 400, "action")
        self.gc.audit.record("instructor", f"clock.{action}", now, by=by,
                             **{k: v for k, v in body.items() if k != "action"})
        return self.gc.clock_view()

    def _cancel_run_until(self) -> None:
        if self._run_until is not None:
            self._run_until.cancel()
            self._run_until = None

    async def _pause_at(self, until: float) -> None:
        await self.runtime.clock.sleep_until(until, Wakeup())
        await self.gc.master.pause()
        self._run_until = None

    # -- bookmarks -----------------------------------------------------------------------------------------
    def bookmark(self, body: Any, by: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("note"), str) or not body["note"].strip():
            raise DeskError("a bookmark needs a note", 400, "note")
        note = body["note"].strip()
        if len(note) > 500:
            raise DeskError("note longer than 500 characters", 400, "note")
        at = body.get("sim_time")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float)):
            raise DeskError("sim_time must be a mission time (Unix seconds)", 400, "sim_time")
        sim_time = float(at) if at is not None else self.runtime.sim_now()
        mark = {"id": next(self._bookmark_ids), "sim_time": sim_time, "wall_time": time.time(), "note": note,
                "by": by}
        self.bookmarks.append(mark)
        if self._bookmarks_path is not None:
            with self._bookmarks_path.open("a") as out:
                out.write(json.dumps(mark) + "\n")
        self.gc.audit.record("instructor", "bookmark", sim_time, by=by, note=note)
        return mark
