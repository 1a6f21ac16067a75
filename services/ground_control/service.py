"""Ground control: decodes and archives ground-side TM, checks limits and raises alarms, tracks every
command's verification with timeouts in simulated time, and owns the mission clock.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lunar_gs.protocols.commands import ArgValue, Telecommand
from lunar_gs.protocols.events import EVENT_STREAM, Alarm, AlarmState, Event, Rejection, RejectionCode, Severity
from lunar_gs.protocols.nodes import FAR_SIDE_NODES, Node, Side
from lunar_gs.protocols.system import ClockState, ScenarioProgress, ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import (
    ArmHousekeeping,
    AscentHousekeeping,
    DrillHousekeeping,
    RelayHousekeeping,
)
from lunar_gs.protocols.topics import Channel, TopicError
from lunar_gs.protocols.verification import VerificationReport
from lunar_gs.services.ground_control.archive import Archive
from lunar_gs.services.ground_control.commanding import CommandBook, TrackedCommand
from lunar_gs.services.ground_control.limits import LimitChecker
from lunar_gs.services.mission import MissionProfile
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.clock import ClockMaster, Wakeup
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.service import ServiceRuntime

HOUSEKEEPING = (DrillHousekeeping, ArmHousekeeping, AscentHousekeeping, RelayHousekeeping)
DEFAULT_ONE_WAY_DELAY_S = 1.34
"""Earth-Moon 1.28 s plus the relay leg, until the relay's housekeeping says otherwise (facts.md [53][54])."""


@dataclass
class _Unanswered:
    """A telecommand not yet answered by any report: re-sent (same bytes) until one comes back."""

    topic: str
    payload: bytes
    last_sent: float
    backoff_s: float = 2.0


@dataclass(frozen=True)
class SeenEvent:
    node: str
    event: Event


class Activity:
    """Something arrived: wakes every waiter (each has its own Wakeup, so none steals another's wake)."""

    def __init__(self) -> None:
        self._waiters: set[Wakeup] = set()

    def set(self) -> None:
        for wakeup in list(self._waiters):
            wakeup.set()

    @contextlib.contextmanager
    def waiter(self) -> Iterator[Wakeup]:
        wakeup = Wakeup()
        self._waiters.add(wakeup)
        try:
            yield wakeup
        finally:
            self._waiters.discard(wakeup)


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
        self.instructor_state: ServiceState | None = None
        self.service_counters: dict[str, dict[str, int]] = {}
        self.tm_received = 0
        self.tm_gaps: list[dict[str, Any]] = []
        self._last_tm: dict[str, tuple[int, float]] = {}
        self.one_way_delay_s = DEFAULT_ONE_WAY_DELAY_S
        self.outage_s = 0.0
        """Simulated seconds spent cut off from the broker: timeouts do not run while we cannot hear."""
        self._outage_since: float | None = None
        self._unanswered: dict[str, _Unanswered] = {}
        self.commands_resent = 0
        self.scenario_progress: ScenarioProgress | None = None
        self.scenario_position: Any = None
        """The scenario runner's position, saved with the rest so a restart carries on."""
        self.state_file: StateFile | None = None
        self._activity = Activity()
        self._wake = Wakeup()
        self._background: set[asyncio.Task[None]] = set()
        runtime.on_disconnect_hooks.append(self._on_broker_lost)
        runtime.on_connect_hooks.append(self._on_broker_back)
        bus = runtime.bus
        bus.subscribe(self.topics.side_filter(Side.GROUND, Channel.TM), self._on_tm, qos=0)
        bus.subscribe(self.topics.side_filter(Side.GROUND, Channel.EV), self._on_event, qos=1)
        bus.subscribe(self.topics.side_filter(Side.GROUND, Channel.ACK), self._on_ack, qos=1)
        bus.subscribe(self.topics.all_status, self._on_status, qos=1)

    # -- persistence ----------------------------------------------------------------------------------
    def save_state(self, *, force: bool = False) -> None:
        if self.state_file is None:
            return
        self.state_file.save({
            "runtime": self.runtime.snapshot(), "delivery_in": self.runtime.delivery_in,
            "book": self.book.snapshot(), "unanswered": self._unanswered, "latest": self.latest,
            "events": self.events, "alarms": self.alarms, "rejections": self.rejections,
            "service_states": self.service_states, "tm_gaps": self.tm_gaps, "last_tm": self._last_tm,
            "outage_s": self.outage_s, "commands_resent": self.commands_resent,
            "scenario_position": self.scenario_position, "scenario_progress": self.scenario_progress,
        }, force=force)

    def resume(self, saved: dict[str, Any]) -> None:
        """Take back what the previous run of ground control knew; the archive is already on disk."""
        self.runtime.restore(saved["runtime"])
        self.runtime.delivery_in = saved["delivery_in"]
        self.book.restore(saved["book"])
        self._unanswered = saved["unanswered"]
        self.latest, self.events, self.alarms = saved["latest"], saved["events"], saved["alarms"]
        self.rejections, self.service_states = saved["rejections"], saved["service_states"]
        self.tm_gaps, self._last_tm, self.outage_s = saved["tm_gaps"], saved["last_tm"], saved["outage_s"]
        self.commands_resent = saved["commands_resent"]
        self.scenario_position, self.scenario_progress = saved["scenario_position"], saved["scenario_progress"]
        self.runtime.log.info("state_resumed", commands=len(self.book.commands), events=len(self.events))

    # -- clock ----------------------------------------------------------------------------------------
    async def _publish_clock(self, state: ClockState) -> None:
        await self.runtime.bus.publish(self.topics.clock, self.runtime.codec.encode(state), qos=1, retain=True)

    async def start_clock(self, rate: float, settle_s: float = 0.5, at: float | None = None) -> None:
        """Start the mission clock at the epoch (or at `at`, a drill's initial conditions), unless a
        retained clock shows a run already going."""
        try:
            await self.runtime.clock.wait_ready(timeout=settle_s)
            self.runtime.log.info("clock_resumed", rate=self.runtime.clock.rate)
        except TimeoutError:
            await self.master.start(epoch=self.profile.epoch, rate=rate, at=at)
            self.runtime.log.info("clock_started", rate=rate, epoch=self.profile.mission.epoch.isoformat())

    # -- ingest -----------------------------------------------------------------------------------------
    async def _publisher_of(self, message: IncomingMessage) -> Node | None:
        """The node whose topic this is; a topic outside the tree is rejected."""
        try:
            return self.topics.parse(message.topic).node
        except TopicError as exc:
            await self.runtime.reject(message, RejectionCode.WRONG_TOPIC, str(exc))
            return None

    async def _on_tm(self, message: IncomingMessage) -> None:
        publisher = await self._publisher_of(message)
        if publisher is None:
            return
        tm = await self.runtime.decode(message, *HOUSEKEEPING, source=publisher)
        if tm is None:
            return
        node = str(tm.source)
        self._note_gap(node, tm.seq, tm.sim_time)
        fields = tm.model_dump()
        self.latest[node] = fields
        self.tm_received += 1
        self.archive.add_tm(node, "hk", tm, message.payload.decode())
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

    def _note_gap(self, node: str, seq: int, sim_time: float) -> None:
        """Housekeeping is QoS 0: a jump in its sequence count is a gap, kept with its span."""
        last = self._last_tm.get(node)
        self._last_tm[node] = (seq, sim_time)
        if last is not None and seq > last[0] + 1:
            gap = {"node": node, "missing": seq - last[0] - 1, "after_seq": last[0],
                   "from_sim": last[1], "to_sim": sim_time, "span_s": round(sim_time - last[1], 3)}
            self.tm_gaps.append(gap)
            self.archive.add_gap(gap)

    async def _on_event(self, message: IncomingMessage) -> None:
        publisher = await self._publisher_of(message)
        if publisher is None:
            return
        event = await self.runtime.decode(message, *EVENT_STREAM, source=publisher)
        if event is None or not self.runtime.accept_delivery(event, Channel.EV):
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
        publisher = await self._publisher_of(message)
        if publisher is None:
            return
        report = await self.runtime.decode(message, VerificationReport, source=publisher)
        if report is not None and self.runtime.accept_delivery(report, Channel.ACK):
            self._unanswered.pop(report.request_id, None)
            self._record(self.book.on_report(report))
            self._activity.set()

    async def _on_status(self, message: IncomingMessage) -> None:
        if not message.payload:
            return  # a cleared retained status
        try:
            service = Node(message.topic.split("/")[4])
        except ValueError:
            await self.runtime.reject(message, RejectionCode.WRONG_TOPIC, "status of an unknown service")
            return
        status = await self.runtime.decode(message, ServiceStatus, source=service)
        if status is None or status.source == Node.GROUND_CONTROL:
            return
        if status.source == Node.INSTRUCTOR:
            # the instructor station is not part of the mission: operators get no alarm for it
            self.instructor_state = status.state
            self._activity.set()
            return
        node = str(status.source)
        self.service_counters[node] = dict(status.counters)
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
        origin: str = "scenario",
    ) -> TrackedCommand:
        """Send a telecommand through the relay and start tracking it."""
        now = self.runtime.clock.now()
        allowed = timeout_s + 2 * self.one_way_delay_s + self.profile.timing.command_margin_s
        tracked = self.book.open(str(node), command, args or {}, now, allowed, origin)
        expires_at = now + expires_after_s if expires_after_s is not None else None
        topic = self.topics.tc(Side.GROUND, node)
        sent = await self.runtime.publish(
            topic,
            Telecommand,
            qos=1,
            request_id=tracked.request_id,
            target=node,
            command=command,
            args=args or {},
            expires_at=expires_at,
        )
        self._unanswered[tracked.request_id] = _Unanswered(topic, self.runtime.codec.encode(sent), time.monotonic())
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
                tracked.origin,
            )

    # -- waiting on the world ---------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Wait, in simulated time, until `predicate()` holds (re-checked on every arrival) or the deadline.
        Any number of waiters may wait at once (the scenario and a drill's response watchers)."""
        outage_before = self.outage_s
        with self._activity.waiter() as wakeup:
            while True:
                if predicate():
                    return True
                extended = deadline + self.outage_s - outage_before
                if self.runtime.clock.now() >= extended and self._outage_since is None:
                    return False
                await self.runtime.clock.sleep_until(extended, wakeup)

    async def _resend_unanswered(self) -> None:
        """A command that got no report at all may have been lost with a broker: send it again. The node
        ignores a repeat of a request id it has seen, so this is safe."""
        now = time.monotonic()
        for request_id, item in list(self._unanswered.items()):
            if self.book.commands[request_id].final:
                del self._unanswered[request_id]
            elif now - item.last_sent >= item.backoff_s and self.runtime.bus.connected:
                item.last_sent, item.backoff_s = now, min(item.backoff_s * 2, 30.0)
                self.commands_resent += 1
                self.runtime.log.info("command_resent", request_id=request_id)
                await self.runtime.bus.publish(item.topic, item.payload, qos=1)

    # -- the broker going away and coming back -------------------------------------------------------
    def _on_broker_lost(self) -> None:
        self._outage_since = self.runtime.sim_now()
        self.runtime.log.warning("broker_lost")
        # the hook is synchronous; the alarm is queued in the outbox and goes out on reconnection.
        # Keep a reference: the loop holds only weak ones to tasks.
        task = asyncio.get_running_loop().create_task(self.alarm(
            "broker.link", AlarmState.RAISED, severity=Severity.CRITICAL, node=str(Node.GROUND_CONTROL),
            message="ground control lost the broker: no telemetry, no commanding"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_broker_back(self) -> None:
        """Put back what a restarted broker forgot (retained clock and progress) and stop the clock on
        our timeouts for the time we could hear nothing."""
        if self.runtime.clock.ready:
            await self.master.republish()
        if self.scenario_progress is not None:
            await self.publish_progress(self.scenario_progress)
        if self._outage_since is None:
            return
        lost = max(0.0, self.runtime.sim_now() - self._outage_since)
        self._outage_since = None
        self.outage_s += lost
        self.book.extend_deadlines(lost)
        await self.alarm("broker.link", AlarmState.CLEARED, node=str(Node.GROUND_CONTROL),
                         message=f"broker back after {lost:.0f} s (simulated)")
        self._activity.set()
        self._wake.set()

    async def publish_progress(self, progress: ScenarioProgress) -> None:
        self.scenario_progress = progress
        await self.runtime.bus.publish(self.topics.scenario, self.runtime.codec.encode(progress), qos=1,
                                       retain=True)

    @property
    def idle(self) -> bool:
        """Nothing in flight that a warp would skip over."""
        return self.book.pending == 0

    def all_services_online(self) -> bool:
        return self.instructor_state is ServiceState.ONLINE and all(
            self.service_states.get(str(n)) is ServiceState.ONLINE for n in (*FAR_SIDE_NODES, Node.RELAY_SATELLITE))

    async def wait_until_services_online(self, timeout_s: float) -> None:
        """Before the clock exists, wait in wall time for every other service's retained `online`."""
        async def every_one() -> None:
            with self._activity.waiter() as wakeup:
                while not self.all_services_online():
                    wakeup.clear()
                    await wakeup.wait()
        await asyncio.wait_for(every_one(), timeout_s)

    # -- housekeeping of our own --------------------------------------------------------------------------
    async def run(self) -> None:
        """Time out overdue commands and keep the archive flushed."""
        clock = self.runtime.clock
        await clock.wait_ready()
        while True:
            if self._outage_since is None:
                for tracked in self.book.time_out(clock.now()):
                    self._unanswered.pop(tracked.request_id, None)
                    self._record(tracked)
                    self.runtime.log.warning("command_timed_out", request_id=tracked.request_id)
                    self._activity.set()
                await self._resend_unanswered()
            self.archive.flush()
            self.save_state()
            deadline = self.book.next_deadline()
            horizon = clock.now() + max(1.0, clock.rate * 0.25)  # flush about four times a wall second
            await clock.sleep_until(min(deadline, horizon) if deadline else horizon, self._wake)

