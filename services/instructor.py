"""The instructor station's fault service: one place every fault goes through, however it came in.

Requests arrive on `sys/fault/request` from a scenario, `lunar-gs fault ...` or any MQTT client. Each is
validated against the catalogue and against the faults already armed or active (compose or refuse, never
overwrite), answered on the truth topic (`accepted` with the fault's id, or `rejected` with the reason),
armed on its trigger, and, when the trigger fires, ordered onto the node that hosts its target. Nodes
report back what the fault did (applied, first symptom, cleared, refused).

Every step goes into the ground truth: `truth.jsonl` in the report folder (one `FaultRecord` per line)
and the truth topic, both apart from the operators' archive, so a debrief can put "what really happened"
beside "what the operators saw". Triggers are evaluated on the far side's own measurements (space-side
housekeeping and events, before the relay): the truth, not what reaches the ground.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.relay import SimRelayLink
from lunar_gs.protocols.codec import DecodeError
from lunar_gs.protocols.events import EVENT_STREAM, Event, RejectionCode
from lunar_gs.protocols.faults import (
    ActiveFault,
    ActiveFaults,
    FaultAction,
    FaultEffect,
    FaultKind,
    FaultLayer,
    FaultOrder,
    FaultOrderAction,
    FaultRecord,
    FaultReport,
    FaultRequest,
    FaultSpec,
    FaultVia,
    TruthEntry,
    composes,
)
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ScenarioProgress, ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import ArmHousekeeping, AscentHousekeeping, DrillHousekeeping
from lunar_gs.protocols.topics import Channel
from lunar_gs.services.ground_control.scenario import compare
from lunar_gs.services.mission import MissionProfile
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.clock import Wakeup
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.service import ServiceRuntime

FAR_SIDE_TM = (DrillHousekeeping, ArmHousekeeping, AscentHousekeeping)


class FaultState(StrEnum):
    ARMED = "armed"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass
class TrackedFault:
    """One fault from request to clearing, as the instructor service follows it."""

    fault_id: str
    spec: FaultSpec
    request_id: str
    via: FaultVia
    seed: int
    state: FaultState = FaultState.ARMED
    armed_at: float = 0.0
    due: float | None = None
    """When a time trigger fires (simulated Unix seconds); None for condition triggers."""
    injected_at: float | None = None
    effective_at: float | None = None
    symptom_at: float | None = None
    clears_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> Node:
        """The node whose process applies it: the relay for link faults, the target's node otherwise."""
        if self.spec.entry.layer is FaultLayer.LINK:
            return Node.RELAY_SATELLITE
        return self.spec.node


class Instructor:
    def __init__(self, runtime: ServiceRuntime, profile: MissionProfile, *, seed: int, truth_path: Path,
                 scenario_faults: list[FaultSpec] | None = None) -> None:
        self.runtime = runtime
        self.profile = profile
        self.seed = seed
        self.truth_path = truth_path
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        self.scenario_faults = list(scenario_faults or [])
        self.faults: dict[str, TrackedFault] = {}
        self.requests_seen: dict[str, str] = {}
        """request id -> fault id (or "" for a rejected one): a repeated request changes nothing."""
        self.latest_tm: dict[str, dict[str, Any]] = {}
        self.phase = ""
        self.state_file: StateFile | None = None
        self._counter = 0
        self._wake = Wakeup()
        self._watched: set[tuple[Node, Channel]] = set()
        relay = profile.devices.get("relay")
        self._relay: SimRelayLink | None = None
        if relay is not None and relay.backend == "sim":
            device = build_device("relay", "sim", relay.params, 0, profile.epoch)
            assert isinstance(device, SimRelayLink)
            self._relay = device
        topics = runtime.topics
        bus = runtime.bus
        bus.subscribe(topics.fault_request, self._on_request, qos=1)
        bus.subscribe(topics.fault_report, self._on_report, qos=1)
        bus.subscribe(topics.scenario, self._on_progress, qos=1)
        bus.subscribe(topics.all_status, self._on_status, qos=1)

    # -- persistence ----------------------------------------------------------------------------------
    def save_state(self) -> None:
        if self.state_file is not None:
            self.state_file.save({"runtime": self.runtime.snapshot(), "faults": self.faults,
                                  "requests": self.requests_seen, "counter": self._counter,
                                  "scenario_armed": not self.scenario_faults}, force=True)

    def resume(self, saved: dict[str, Any]) -> None:
        self.runtime.restore(saved["runtime"])
        self.faults, self.requests_seen = saved["faults"], saved["requests"]
        for fault in self.faults.values():
            if fault.state is FaultState.ARMED and fault.spec.trigger.when_tm is not None:
                self._watch(fault.spec.trigger.when_tm.node, Channel.TM)
            if fault.state is FaultState.ARMED and fault.spec.trigger.when_event is not None:
                self._watch(fault.spec.trigger.when_event.node, Channel.EV)
        self._counter = saved["counter"]
        if saved.get("scenario_armed"):
            self.scenario_faults = []

    # -- requests -------------------------------------------------------------------------------------
    async def _on_request(self, message: IncomingMessage) -> None:
        try:
            request = self.runtime.codec.decode(message.payload)
        except DecodeError as exc:
            await self.runtime.reject(message, exc.code, exc.reason, exc.request_id)
            await self._truth(TruthEntry.REJECTED, request_id=exc.request_id or "", detail=exc.reason)
            return
        if not isinstance(request, FaultRequest):
            reason = f"{request.schema_name!r} does not belong on the fault request topic"
            await self.runtime.reject(message, RejectionCode.WRONG_TOPIC, reason,
                                      getattr(request, "request_id", None))
            return
        await self.handle(request, message)

    async def handle(self, request: FaultRequest, message: IncomingMessage | None = None) -> str | None:
        """Act on one request; returns the fault id it created, or None."""
        if request.request_id in self.requests_seen:
            return self.requests_seen[request.request_id] or None  # at-least-once delivery: no repeat
        log = self.runtime.log.bind(request_id=request.request_id, via=str(request.via))
        problem = self._problem(request)
        if problem is not None:
            self.requests_seen[request.request_id] = ""
            log.warning("fault_request_rejected", reason=problem)
            if message is not None:
                await self.runtime.reject(message, RejectionCode.INVALID_ARGUMENTS, problem, request.request_id)
            await self._truth(TruthEntry.REJECTED, request_id=request.request_id, via=request.via,
                              detail=problem, spec=request.spec)
            return None
        if request.action is FaultAction.INJECT:
            assert request.spec is not None
            fault = self._accept(request.spec, request.request_id, request.via)
            self.requests_seen[request.request_id] = fault.fault_id
            log.info("fault_accepted", fault_id=fault.fault_id, kind=str(fault.spec.kind))
            await self._truth(TruthEntry.ACCEPTED, fault, detail=fault.spec.trigger.describe())
            await self._arm(fault)
            return fault.fault_id
        self.requests_seen[request.request_id] = request.fault_id or "*"
        found = self._find(request.fault_id or "")
        targets = (self._open_faults() if request.action is FaultAction.CLEAR_ALL
                   else [found] if found is not None else [])
        for target in targets:
            await self._clear(target, f"cleared on request {request.request_id} ({request.via})")
        await self._publish_active()
        return None

    def _problem(self, request: FaultRequest) -> str | None:
        """Why a request cannot be carried out (it then changes nothing), or None."""
        if request.action is FaultAction.CLEAR:
            fault = self._find(request.fault_id or "")
            if fault is None:
                return f"no armed or active fault {request.fault_id!r}"
            return None
        if request.action is FaultAction.CLEAR_ALL:
            return None
        spec = request.spec
        assert spec is not None
        for other in self._open_faults():
            if not composes(spec, other.spec):
                return (f"{spec.kind} on {spec.target} conflicts with {other.fault_id} ({other.spec.kind} on "
                        f"{other.spec.target}): they act on the same {other.spec.entry.aspect} and do not compose")
        if spec.label and any(f.spec.label == spec.label for f in self._open_faults()):
            return f"label {spec.label!r} is already used by an open fault"
        return None

    def _find(self, key: str) -> TrackedFault | None:
        for fault in self._open_faults():
            if key in (fault.fault_id, fault.spec.label):
                return fault
        return None

    def _open_faults(self) -> list[TrackedFault]:
        return [f for f in self.faults.values() if f.state is not FaultState.CLOSED]

    def _accept(self, spec: FaultSpec, request_id: str, via: FaultVia) -> TrackedFault:
        self._counter += 1
        fault_id = f"F{self._counter:02d}"
        seed = zlib.crc32(f"{self.seed}:{fault_id}".encode())
        fault = TrackedFault(fault_id, spec, request_id, via, seed, armed_at=self.runtime.sim_now())
        self.faults[fault_id] = fault
        return fault

    def _watch(self, node: Node, channel: Channel) -> None:
        """Follow a far-side node's housekeeping or events, from the first trigger that needs them on: the
        far side's traffic is the heaviest there is, and most rehearsals need none of it here."""
        if (node, channel) in self._watched:
            return
        self._watched.add((node, channel))
        if channel is Channel.TM:
            self.runtime.bus.subscribe(self.runtime.topics.side_filter(Side.SPACE, Channel.TM, node),
                                       self._on_space_tm, qos=0)
        else:
            self.runtime.bus.subscribe(self.runtime.topics.ev(Side.SPACE, node), self._on_space_event, qos=1)

    async def _arm(self, fault: TrackedFault) -> None:
        trigger, now = fault.spec.trigger, self.runtime.clock.now()
        if trigger.when_tm is not None:
            self._watch(trigger.when_tm.node, Channel.TM)
        if trigger.when_event is not None:
            self._watch(trigger.when_event.node, Channel.EV)
        if trigger.probability is not None:
            draw = random.Random(f"{self.seed}:{fault.fault_id}:draw").random()
            if draw >= trigger.probability:
                fault.state = FaultState.CLOSED
                await self._truth(TruthEntry.NOT_DRAWN, fault,
                                  detail=f"drew {draw:.4f} >= probability {trigger.probability}")
                return
        if trigger.at is not None:
            fault.due = self.runtime.clock.epoch + trigger.at
        elif trigger.after is not None:
            fault.due = now + trigger.after
        elif trigger.before_los is not None:
            los = self._relay.next_loss_of_signal(now) if self._relay is not None else None
            fault.due = None if los is None else los - trigger.before_los
            fault.extra["never"] = los is None
        elif trigger.when_tm is None and trigger.when_event is None and trigger.phase is None:
            fault.due = now
        await self._truth(TruthEntry.ARMED, fault, detail=self._armed_detail(fault))
        await self._publish_active()
        self._wake.set()

    def _armed_detail(self, fault: TrackedFault) -> str:
        if fault.extra.get("never"):
            return "no loss of signal ahead in the relay's schedule: it will not fire"
        if fault.due is not None:
            return f"fires at T+{fault.due - self.runtime.clock.epoch:.0f} s"
        return fault.spec.trigger.describe()

    # -- firing and clearing ----------------------------------------------------------------------------
    async def _fire(self, fault: TrackedFault, why: str) -> None:
        if fault.state is not FaultState.ARMED:
            return
        fault.state = FaultState.ACTIVE
        fault.injected_at = self.runtime.clock.now()
        if fault.spec.duration is not None:
            fault.clears_at = fault.injected_at + fault.spec.duration
        await self._truth(TruthEntry.INJECTED, fault, detail=why)
        await self._order(fault, FaultOrderAction.APPLY)
        await self._publish_active()
        self._wake.set()

    async def _clear(self, fault: TrackedFault, why: str) -> None:
        if fault.state is FaultState.ARMED:
            fault.state = FaultState.CLOSED
            await self._truth(TruthEntry.CLEARED, fault, detail=f"disarmed before it fired: {why}")
            return
        if fault.state is FaultState.ACTIVE:
            fault.extra["clear_reason"] = why
            await self._order(fault, FaultOrderAction.CLEAR)

    async def _order(self, fault: TrackedFault, action: FaultOrderAction) -> None:
        spec = fault.spec
        await self.runtime.publish(self.runtime.topics.fault_orders(fault.host), FaultOrder, qos=1,
                                   fault_id=fault.fault_id, action=action, kind=spec.kind,
                                   target=spec.target, params=dict(spec.params), seed=fault.seed)

    async def _close(self, fault: TrackedFault, when: float, detail: str) -> None:
        fault.state = FaultState.CLOSED
        await self._truth(TruthEntry.CLEARED, fault, sim_time=when, detail=detail)
        if fault.effective_at is not None and fault.symptom_at is None:
            await self._truth(TruthEntry.DUD, fault, sim_time=when,
                              detail="took effect but changed nothing observable before it was cleared")
        await self._publish_active()

    # -- what the nodes and the world say ---------------------------------------------------------------
    async def _on_report(self, message: IncomingMessage) -> None:
        report = await self.runtime.decode(message, FaultReport)
        if report is None:
            return
        fault = self.faults.get(report.fault_id)
        if fault is None:
            return
        if report.effect is FaultEffect.APPLIED and fault.effective_at is None:
            fault.effective_at = report.sim_time
            await self._truth(TruthEntry.EFFECTIVE, fault, sim_time=report.sim_time,
                              detail=f"{report.source}: {report.detail}")
        elif report.effect is FaultEffect.SYMPTOM and fault.symptom_at is None:
            fault.symptom_at = report.sim_time
            await self._truth(TruthEntry.SYMPTOM, fault, sim_time=report.sim_time, detail=report.detail)
        elif report.effect is FaultEffect.REFUSED and fault.state is not FaultState.CLOSED:
            fault.state = FaultState.CLOSED
            await self._truth(TruthEntry.REFUSED, fault, sim_time=report.sim_time, detail=report.detail)
            await self._publish_active()
        elif report.effect is FaultEffect.CLEARED and fault.state is FaultState.ACTIVE:
            why = report.detail if report.detail.startswith("recovered") else fault.extra.get(
                "clear_reason", report.detail)
            await self._close(fault, report.sim_time, why)
        self.save_state()

    async def _on_space_tm(self, message: IncomingMessage) -> None:
        tm = await self.runtime.decode(message, *FAR_SIDE_TM, reject=False)
        if tm is None:
            return
        fields = tm.model_dump()
        self.latest_tm[str(tm.source)] = fields
        for fault in self._armed():
            condition = fault.spec.trigger.when_tm
            if condition is not None and condition.node == tm.source and compare(
                    fields.get(condition.field), condition.op, condition.value):
                await self._fire(fault, f"{condition.node}.{condition.field} = {fields.get(condition.field)} "
                                        f"{condition.op} {condition.value}")

    async def _on_space_event(self, message: IncomingMessage) -> None:
        event = await self.runtime.decode(message, *EVENT_STREAM, reject=False)
        if not isinstance(event, Event):
            return
        for fault in self._armed():
            condition = fault.spec.trigger.when_event
            if condition is not None and condition.node == event.source and condition.event == event.event:
                await self._fire(fault, f"{event.source} reported {event.event}")

    async def _on_progress(self, message: IncomingMessage) -> None:
        if not message.payload:
            return
        progress = await self.runtime.decode(message, ScenarioProgress, reject=False)
        if progress is None or progress.phase == self.phase:
            return
        self.phase = progress.phase
        for fault in self._armed():
            if fault.spec.trigger.phase == progress.phase:
                await self._fire(fault, f"phase {progress.phase!r} started")

    async def _on_status(self, message: IncomingMessage) -> None:
        if not message.payload:
            return
        status = await self.runtime.decode(message, ServiceStatus, reject=False)
        if status is None or status.state is not ServiceState.OFFLINE:
            return
        for fault in self.faults.values():
            if (fault.spec.kind is FaultKind.SERVICE_CRASH and fault.host == status.source
                    and fault.state is FaultState.ACTIVE and fault.symptom_at is None):
                fault.symptom_at = self.runtime.clock.now()
                await self._truth(TruthEntry.SYMPTOM, fault, detail=f"{status.source} went offline (Last Will)")
                # a crash is over once it has happened; the supervisor brings the process back
                await self._close(fault, fault.symptom_at, "the process died; crash faults clear themselves")

    def _armed(self) -> list[TrackedFault]:
        return [f for f in self.faults.values() if f.state is FaultState.ARMED]

    # -- the loop -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        clock = self.runtime.clock
        await self._publish_active()  # an empty list says at once that the instructor station is up
        await clock.wait_ready()
        self.runtime.log.info("instructor_running", scenario_faults=len(self.scenario_faults))
        for index, spec in enumerate(self.scenario_faults):
            await self.handle(FaultRequest(source=Node.INSTRUCTOR, request_id=f"scenario-{index + 1}",
                                           spec=spec, via=FaultVia.SCENARIO))
        self.scenario_faults = []
        self.save_state()
        while True:
            now = clock.now()
            for fault in list(self.faults.values()):
                if fault.state is FaultState.ARMED and fault.due is not None and now >= fault.due:
                    await self._fire(fault, fault.spec.trigger.describe())
                elif (fault.state is FaultState.ACTIVE and fault.clears_at is not None and now >= fault.clears_at
                      and "clear_reason" not in fault.extra):
                    await self._clear(fault, f"its duration of {fault.spec.duration:.0f} s ran out")
            self.save_state()
            wake = [f.due for f in self._armed() if f.due is not None]
            wake += [f.clears_at for f in self._open_faults() if f.clears_at is not None
                     and "clear_reason" not in f.extra]
            horizon = now + 3600.0
            await clock.sleep_until(min([horizon, *wake]), self._wake)

    # -- the record -----------------------------------------------------------------------------------------
    async def _truth(self, entry: TruthEntry, fault: TrackedFault | None = None, *, sim_time: float | None = None,
                     request_id: str = "", via: FaultVia | None = None, detail: str = "",
                     spec: FaultSpec | None = None) -> None:
        when = sim_time if sim_time is not None else self.runtime.sim_now()
        epoch = self.runtime.clock.epoch if self.runtime.clock.ready else self.profile.epoch
        spec = fault.spec if fault is not None else spec
        record = await self.runtime.publish(
            self.runtime.topics.fault_truth, FaultRecord, qos=1, sim_time=when, entry=entry,
            fault_id=fault.fault_id if fault else "", request_id=fault.request_id if fault else request_id,
            via=fault.via if fault else (via or FaultVia.MQTT), kind=spec.kind if spec else None,
            target=spec.target if spec else "", params=dict(spec.params) if spec else {},
            label=spec.label if spec else "", mission_time=round(when - epoch, 3), detail=detail[:1000])
        with self.truth_path.open("ab") as handle:
            handle.write(self.runtime.codec.encode(record) + b"\n")

    async def _publish_active(self) -> None:
        faults = [ActiveFault(fault_id=f.fault_id, kind=f.spec.kind, target=f.spec.target,
                              params=dict(f.spec.params), label=f.spec.label,
                              state="active" if f.state is FaultState.ACTIVE else "armed",
                              trigger=f.spec.trigger.describe(),
                              since=f.effective_at if f.state is FaultState.ACTIVE else f.armed_at,
                              clears_at=f.clears_at)
                  for f in self._open_faults()]
        await self.runtime.publish(self.runtime.topics.fault_active, ActiveFaults, qos=1, retain=True,
                                   faults=faults)


