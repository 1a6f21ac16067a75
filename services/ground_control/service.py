"""Ground control: decodes and archives ground-side TM, checks limits and raises alarms, tracks every
command's verification with timeouts in simulated time, and owns the mission clock.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols.commands import ArgValue, Telecommand
from protocols.events import Alarm, AlarmState, Event, Rejection, Severity
from protocols.nodes import FAR_SIDE_NODES, Node, Side
from protocols.system import ClockState, ServiceState, ServiceStatus
from protocols.telemetry import (
    ArmHousekeeping,
    AscentHousekeeping,
    DrillHousekeeping,
    RelayHousekeeping,
)
from protocols.topics import Channel, TopicError
from protocols.verification import VerificationReport
from services.ground_control.archive import Archive
from services.ground_control.commanding import CommandBook, TrackedCommand
from services.ground_control.limits import LimitChecker
from services.mission import MissionProfile
from services.runtime.bus import IncomingMessage
from services.runtime.clock import ClockMaster, sleep_until_woken
from services.runtime.service import ServiceRuntime

HOUSEKEEPING = (DrillHousekeeping, ArmHousekeeping, AscentHousekeeping, RelayHousekeeping)
DEFAULT_ONE_WAY_DELAY_S = 1.34
"""Earth-Moon 1.28 s plus the relay leg, until the relay's housekeeping says otherwise (facts.md [53][54])."""


@dataclass(frozen=True)
class SeenEvent:
    node: str
    event: Event


class GroundControl:
    def __init__(self, runtime: ServiceRuntime, profile: MissionProfile, archive: Archive) -> None:
        self.runtime = runtime
        self.profile = profile
        self.archive = archive
        self.topics = runtime.topics
        self.book = CommandBook(prefix=f"gc-{uuid.uuid4().hex[:6]}")
        self.limits = LimitChecker(list(profile.limits))
        self.master = ClockMaster(runtime.clock, self._publish_clock)
        self.latest: dict[str, dict[str, Any]] = {}
        self.events: list[SeenEvent] = []
        self.alarms: list[Alarm] = []
        self.rejections: list[Rejection] = []
        self.service_states: dict[str, ServiceState] = {}
        self.tm_received = 0
        self.one_way_delay_s = DEFAULT_ONE_WAY_DELAY_S
        self._activity = asyncio.Event()
        self._wake = asyncio.Event()
        bus = runtime.bus
        bus.subscribe(self.topics.side_filter(Side.GROUND, Channel.TM), self._on_tm, qos=0)
        bus.subscribe(self.topics.side_filter(Side.GROUND, Channel.EV), self._on_event, qos=1)
        bus.subscribe(self.topics.side_filter(Side.GROUND, Channel.ACK), self._on_ack, qos=1)
        bus.subscribe(self.topics.all_status, self._on_status, qos=1)

    # -- clock ----------------------------------------------------------------------------------------
    async def _publish_clock(self, state: ClockState) -> None:
        await self.runtime.bus.publish(self.topics.clock, self.runtime.codec.encode(state), qos=1, retain=True)

    async def start_clock(self, rate: float, settle_s: float = 0.5) -> None:
        """Start the mission clock at the epoch, unless a retained clock shows a run already going."""
        try:
            await self.runtime.clock.wait_ready(timeout=settle_s)
            self.runtime.log.info("clock_resumed", rate=self.runtime.clock.rate)
        except TimeoutError:
            await self.master.start(epoch=self.profile.epoch, rate=rate)
            self.runtime.log.info("clock_started", rate=rate, epoch=self.profile.mission.epoch.isoformat())

    # -- ingest -----------------------------------------------------------------------------------------
    def _node_of(self, message: IncomingMessage) -> str | None:
        try:
            return str(self.topics.parse(message.topic).node)
        except TopicError:
            return None

    async def _on_tm(self, message: IncomingMessage) -> None:
        tm = await self.runtime.decode(message, *HOUSEKEEPING)
        if tm is None:
            return
        node = str(tm.source)
        fields = tm.model_dump()
        self.latest[node] = fields
        self.tm_received += 1
        self.archive.add_tm(node, "hk", tm)
        if isinstance(tm, RelayHousekeeping):
            self.one_way_delay_s = tm.one_way_delay_s
        for transition in self.limits.check(node, fields):
            await self.alarm(
                transition.alarm,
                transition.state,
                severity=transition.limit.severity,
                node=node,
                parameter=transition.limit.parameter,
                value=transition.value,
                limit=transition.bound,
                message=transition.message,
            )
        self._activity.set()

    async def _on_event(self, message: IncomingMessage) -> None:
        event = await self.runtime.decode(message, Event, Rejection, Alarm)
        if event is None:
            return
        node = str(event.source)
        if isinstance(event, Rejection):
            self.rejections.append(event)
            self.archive.add_event(node, "rejection", event.code.name, "warning", event)
        elif isinstance(event, Event):
            self.events.append(SeenEvent(node, event))
            self.archive.add_event(node, "event", event.event, event.severity, event)
            if event.event == "command_expired" and isinstance(rid := event.data.get("request_id"), str):
                self._record(self.book.on_expired(rid, event.sim_time))
        self._activity.set()

    async def _on_ack(self, message: IncomingMessage) -> None:
        report = await self.runtime.decode(message, VerificationReport)
        if report is not None:
            self._record(self.book.on_report(report))
            self._activity.set()

    async def _on_status(self, message: IncomingMessage) -> None:
        if not message.payload:
            return  # a cleared retained status
        status = await self.runtime.decode(message, ServiceStatus)
        if status is None or status.source == Node.GROUND_CONTROL:
            return
        node = str(status.source)
        previous = self.service_states.get(node)
        self.service_states[node] = status.state
        if status.state is ServiceState.OFFLINE and previous is not ServiceState.OFFLINE:
            await self.alarm(f"service.{node}", AlarmState.RAISED, severity=Severity.ERROR, node=node,
                             message=f"{node} went offline")
        elif status.state is ServiceState.ONLINE and previous is ServiceState.OFFLINE:
            await self.alarm(f"service.{node}", AlarmState.CLEARED, node=node, message=f"{node} back online")
        self._activity.set()

    async def alarm(self, name: str, state: AlarmState, **fields: Any) -> None:
        alarm = await self.runtime.publish(
            self.runtime.event_topic, Alarm, qos=1, alarm=name, state=state, **fields
        )
        self.alarms.append(alarm)
        self.archive.add_event(str(fields.get("node", "")), "alarm", name, alarm.severity, alarm)
        self.runtime.log.warning("alarm", alarm=name, state=str(state), detail=alarm.message)

    # -- commanding ------------------------------------------------------------------------------------
    async def send(
        self,
        node: Node,
        command: str,
        args: dict[str, ArgValue] | None = None,
        *,
        timeout_s: float = 600.0,
        expires_after_s: float | None = None,
    ) -> TrackedCommand:
        """Send a telecommand through the relay and start tracking it."""
        now = self.runtime.clock.now()
        allowed = timeout_s + 2 * self.one_way_delay_s + self.profile.timing.command_margin_s
        tracked = self.book.open(str(node), command, args or {}, now, allowed)
        expires_at = now + expires_after_s if expires_after_s is not None else None
        await self.runtime.publish(
            self.topics.tc(Side.GROUND, node),
            Telecommand,
            qos=1,
            request_id=tracked.request_id,
            target=node,
            command=command,
            args=args or {},
            expires_at=expires_at,
        )
        self._record(tracked)
        self.runtime.log.info("command_sent", request_id=tracked.request_id, target=str(node), command=command)
        self._wake.set()
        return tracked

    def _record(self, tracked: TrackedCommand | None) -> None:
        if tracked is not None:
            self.archive.record_command(
                tracked.request_id, tracked.node, tracked.command, tracked.args, tracked.sent_at,
                tracked.state.value, tracked.final_at,
                tracked.failure_code.name if tracked.failure_code else None, tracked.reason or None,
            )

    # -- waiting on the world ---------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Wait, in simulated time, until `predicate()` holds (re-checked on every arrival) or the deadline."""
        while True:
            if predicate():
                return True
            if self.runtime.clock.now() >= deadline:
                return False
            await sleep_until_woken(self.runtime.clock, deadline, self._activity)

    @property
    def idle(self) -> bool:
        """Nothing in flight that a warp would skip over."""
        return self.book.pending == 0

    def all_services_online(self) -> bool:
        return all(self.service_states.get(str(n)) is ServiceState.ONLINE
                   for n in (*FAR_SIDE_NODES, Node.RELAY_SATELLITE))

    async def wait_until_services_online(self, timeout_s: float) -> None:
        """Before the clock exists, wait in wall time for every other service's retained `online`."""
        async def every_one() -> None:
            while not self.all_services_online():
                self._activity.clear()
                await self._activity.wait()
        await asyncio.wait_for(every_one(), timeout_s)

    # -- housekeeping of our own --------------------------------------------------------------------------
    async def run(self) -> None:
        """Time out overdue commands and keep the archive flushed."""
        clock = self.runtime.clock
        await clock.wait_ready()
        while True:
            for tracked in self.book.time_out(clock.now()):
                self._record(tracked)
                self.runtime.log.warning("command_timed_out", request_id=tracked.request_id)
                self._activity.set()
            self.archive.flush()
            deadline = self.book.next_deadline()
            horizon = clock.now() + max(1.0, clock.rate * 0.25)  # flush about four times a wall second
            await sleep_until_woken(clock, min(deadline, horizon) if deadline else horizon, self._wake)

