"""Ground control: decodes and archives ground-side TM, checks limits and raises alarms, tracks every
command's verification with timeouts in simulated time, and owns the mission clock.

It is also the one door for people: commands by hand (`submit`, from `lunar-gs cmd` over MQTT or from a
console), operators' actions on alarms (`alarm_action`), each audited; and it feeds what it learns to the
consoles (`feed`). The instructor's ground truth is not its business: the console server holds that apart.
"""

import asyncio
import contextlib
import time
from datetime import UTC, datetime
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from lunar_gs.protocols.commands import (
    ArgValue,
    CommandRequest,
    CommandUpdate,
    Telecommand,
    catalogue_refusal,
    is_hazardous,
)
from lunar_gs.protocols.events import EVENT_STREAM, Alarm, AlarmState, Event, Rejection, RejectionCode, Severity
from lunar_gs.protocols.nodes import FAR_SIDE_NODES, Node, Side
from lunar_gs.protocols.system import ClockState, ScenarioProgress, ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import (
    ArmHousekeeping,
    AscentHousekeeping,
    DrillHousekeeping,
    RelayHousekeeping,
    flatten_housekeeping,
)
from lunar_gs.protocols.topics import Channel, TopicError
from lunar_gs.protocols.verification import VerificationReport
from lunar_gs.services.ground_control.alarms import AlarmActionError, AlarmBook, AlarmEntry
from lunar_gs.services.ground_control.archive import Archive
from lunar_gs.services.ground_control.audit import AuditLog
from lunar_gs.services.ground_control.commanding import CommandBook, TrackedCommand
from lunar_gs.services.ground_control.feed import ConsoleFeed
from lunar_gs.services.ground_control.limits import LimitChecker
from lunar_gs.services.mission import MissionProfile
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.clock import ClockMaster, Wakeup
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.service import ServiceRuntime

HOUSEKEEPING = (DrillHousekeeping, ArmHousekeeping, AscentHousekeeping, RelayHousekeeping)
DEFAULT_ONE_WAY_DELAY_S = 1.34
"""Earth-Moon 1.28 s plus the relay leg, until the relay's housekeeping says otherwise (facts.md [53][54])."""
OPERATOR_COMMAND_TIMEOUT_S = 4 * 3600.0
"""How long a command by hand may run when its sender names no timeout: the longest operation, drilling
to 2 m, takes about 3 h of mission time (facts.md [12])."""


class CommandRefused(Exception):
    """A command by hand that ground control will not even book; `status` is the HTTP status saying why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def utc_text(sim_time: float) -> str:
    return datetime.fromtimestamp(sim_time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
    def __init__(self, runtime: ServiceRuntime, profile: MissionProfile, archive: Archive, *,
                 feed: ConsoleFeed | None = None, audit: AuditLog | None = None) -> None:
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
        self.alarm_book = AlarmBook()
        self.feed = feed if feed is not None else ConsoleFeed()
        self.audit = audit if audit is not None else AuditLog()
        self.received_at: dict[str, float] = {}
        """Mission time each node's newest packet reached the ground (its stamp is spacecraft time)."""
        self.last_far_side_packet: dict[str, Any] | None = None
        self.link: dict[str, Any] = {"state": "unknown", "far_side_visible": None, "next_los": None,
                                     "next_aos": None, "one_way_delay_s": DEFAULT_ONE_WAY_DELAY_S,
                                     "stored_messages": 0, "as_of": None}
        self._by_client_ref: dict[str, str] = {}
        self._updates: asyncio.Queue[TrackedCommand] = asyncio.Queue()
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
        bus.subscribe(self.topics.command_request, self._on_command_request, qos=1)

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
            "alarm_book": self.alarm_book.snapshot(), "by_client_ref": self._by_client_ref,
            "limits_active": sorted(self.limits.active),
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
        self.alarm_book.restore(saved.get("alarm_book", []))
        self.limits.active = set(saved.get("limits_active", ()))  # no second raise of what is raised
        self._by_client_ref = saved.get("by_client_ref", {})
        self.runtime.log.info("state_resumed", commands=len(self.book.commands), events=len(self.events))

    # -- clock ----------------------------------------------------------------------------------------
    async def _publish_clock(self, state: ClockState) -> None:
        await self.runtime.bus.publish(self.topics.clock, self.runtime.codec.encode(state), qos=1, retain=True)
        self.feed.publish({"kind": "clock", **self.clock_view()})

    def clock_view(self) -> dict[str, Any]:
        """The clock as a console shows it, with the newest far-side packet's spacecraft time against the
        time it reached the ground (the light time, and any wait in the relay's store)."""
        clock = self.runtime.clock
        state = clock.state
        if state is None:
            return {"ready": False, "one_way_delay_s": self.one_way_delay_s}
        now = clock.now()
        return {"ready": True, "epoch": state.epoch, "sim_time": now, "utc": utc_text(now),
                "met_s": now - state.epoch, "rate": state.rate, "paused": state.paused, "wall_time": time.time(),
                "one_way_delay_s": self.one_way_delay_s, "last_packet": self.last_far_side_packet}

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
        received = self.runtime.sim_now()
        self.received_at[node] = received
        if tm.source in FAR_SIDE_NODES:
            self.last_far_side_packet = {"node": node, "spacecraft_time": tm.sim_time,
                                         "ground_receive_time": received,
                                         "delay_s": round(received - tm.sim_time, 3)}
        if isinstance(tm, RelayHousekeeping):
            self.one_way_delay_s = tm.one_way_delay_s
            self._note_link(tm)
        if self.feed.active:
            self.feed.publish({"kind": "tm", "node": node, "seq": tm.seq, "sim_time": tm.sim_time,
                               "received_sim": received, "received_wall": time.time(),
                               "values": flatten_housekeeping(fields)})
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

    def _note_link(self, tm: RelayHousekeeping) -> None:
        link = {"state": "in_view" if tm.far_side_visible else "los", "far_side_visible": tm.far_side_visible,
                "next_los": tm.next_los, "next_aos": tm.next_aos, "one_way_delay_s": tm.one_way_delay_s,
                "stored_messages": tm.stored_messages, "as_of": tm.sim_time}
        changed = any(link[k] != self.link.get(k) for k in ("state", "next_los", "next_aos"))
        self.link = link
        if changed:
            self.feed.publish({"kind": "link", **link})

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
            self.feed.publish({"kind": "event", "node": node, "sim_time": event.sim_time, "event": "rejection",
                               "severity": "warning", "message": f"{event.code.name}: {event.reason}",
                               "data": {"topic": event.topic}})
        elif isinstance(event, Event):
            self.events.append(SeenEvent(node, event))
            self.archive.add_event(node, "event", event.event, event.severity, event)
            self.feed.publish({"kind": "event", "node": node, "sim_time": event.sim_time, "event": event.event,
                               "severity": str(event.severity), "message": event.message, "data": event.data})
            if event.event == "command_expired" and isinstance(rid := event.data.get("request_id"), str):
                self._record(self.book.on_expired(rid, event.sim_time))
            elif event.event in ("link_lost", "link_restored"):
                await self._device_link_alarm(node, event)
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

    async def _device_link_alarm(self, node: str, event: Event) -> None:
        """A device behind a link (Modbus, serial line) lost or got back: an alarm an operator must see."""
        name = f"{node}.{event.data.get('device', 'device')}.link"
        if event.event == "link_lost":
            await self.alarm(name, AlarmState.RAISED, severity=Severity.ERROR, node=node, message=event.message)
        else:
            await self.alarm(name, AlarmState.CLEARED, node=node, message=event.message)

    async def alarm(self, name: str, state: AlarmState, **fields: Any) -> None:
        alarm = await self.runtime.publish(
            self.runtime.event_topic, Alarm, qos=1, alarm=name, state=state, **fields
        )
        self.alarms.append(alarm)
        self.archive.add_event(str(fields.get("node", "")), "alarm", name, alarm.severity, alarm)
        self._show_alarm(self.alarm_book.apply(alarm))
        self.runtime.log.warning("alarm", alarm=name, state=str(state), detail=alarm.message)

    def _show_alarm(self, entry: AlarmEntry) -> None:
        self.feed.publish({"kind": "alarm", **entry.to_json(self.runtime.sim_now())})

    def alarm_action(self, action: str, name: str, *, role: str, by: str, comment: object = None,
                     duration_s: object = None) -> AlarmEntry:
        """An operator acknowledges, shelves, unshelves or clears an alarm: shared by every console,
        audited, saved with the rest. Raises AlarmActionError (with its HTTP status) when it cannot be."""
        now, wall = self.runtime.sim_now(), time.time()
        book = self.alarm_book
        try:
            match action:
                case "acknowledge":
                    entry = book.acknowledge(name, by, comment, now, wall)
                case "shelve":
                    entry = book.shelve(name, by, comment, duration_s, now, wall)
                case "unshelve":
                    entry = book.unshelve(name, by, now)
                case "clear":
                    entry = book.clear(name, by, comment, now, wall)
                case _:
                    raise AlarmActionError(f"unknown alarm action {action!r}", 404)
        except AlarmActionError as exc:
            self.audit.record(role, f"alarm.{action}", now, result="refused", by=by, alarm=name, reason=str(exc))
            raise
        self.audit.record(role, f"alarm.{action}", now, by=by, alarm=name, comment=comment,
                          duration_s=duration_s)
        self.runtime.log.info("alarm_action", alarm=name, action=action, by=by, role=role)
        self._show_alarm(entry)
        self.save_state(force=True)
        return entry

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
        client_ref: str | None = None,
    ) -> TrackedCommand:
        """Send a telecommand through the relay and start tracking it."""
        now = self.runtime.clock.now()
        allowed = timeout_s + 2 * self.one_way_delay_s + self.profile.timing.command_margin_s
        tracked = self.book.open(str(node), command, args or {}, now, allowed, origin, client_ref)
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
            self.feed.publish({"kind": "command", **tracked.to_json()})
            self._updates.put_nowait(tracked)

    async def submit(self, node: Node | str, command: str, args: dict[str, Any], *, role: str, by: str,
                     via: str, confirm: bool = False, client_ref: str | None = None,
                     timeout_s: float | None = None) -> TrackedCommand:
        """A command by hand: checked against the catalogue before anything is sent; one that fails the
        check is booked as failed at acceptance (so it shows and is archived like any failure), never sent.
        A repeat of a `client_ref` returns the command it already started. Raises CommandRefused for a
        command not even booked: an unknown node, no clock yet, a hazardous command not confirmed."""
        if client_ref is not None and client_ref in self._by_client_ref:
            return self.book.commands[self._by_client_ref[client_ref]]
        try:
            target = Node(node)
        except ValueError:
            raise CommandRefused(f"unknown node {node!r}", 404) from None
        if not self.runtime.clock.ready:
            raise CommandRefused("the mission clock has not started yet", 503)
        now = self.runtime.clock.now()
        if is_hazardous(target, command) and not confirm:
            self.audit.record(role, "command", now, result="refused", by=by, via=via, node=str(target),
                              command=command, args=args, reason="hazardous, not confirmed")
            raise CommandRefused(f"{command} on {target} is hazardous: it must be confirmed", 409)
        refusal = catalogue_refusal(target, command, args)
        if refusal is not None:
            tracked = self.book.refuse(str(target), command, args, now, *refusal, "operator", client_ref)
            self._record(tracked)
        else:
            tracked = await self.send(target, command, args, origin="operator", client_ref=client_ref,
                                      timeout_s=timeout_s if timeout_s is not None else OPERATOR_COMMAND_TIMEOUT_S)
        if client_ref is not None:
            self._by_client_ref[client_ref] = tracked.request_id
        self.audit.record(role, "command", now, result=tracked.state.value, by=by, via=via,
                          request_id=tracked.request_id, node=str(target), command=command, args=args,
                          reason=tracked.reason or None)
        return tracked

    async def _on_command_request(self, message: IncomingMessage) -> None:
        request = await self.runtime.decode(message, CommandRequest)
        if request is None:
            return
        repeat = request.client_ref in self._by_client_ref  # QoS 1 may deliver a request twice
        with structlog.contextvars.bound_contextvars(request_id=request.client_ref):
            try:
                tracked = await self.submit(request.target, request.command, dict(request.args), role="operator",
                                            by=request.operator or "cli", via="mqtt", confirm=request.confirm,
                                            client_ref=request.client_ref, timeout_s=request.timeout_s)
            except CommandRefused as exc:
                await self.runtime.publish(
                    self.topics.command_update, CommandUpdate, qos=1, request_id=request.client_ref,
                    client_ref=request.client_ref, target=request.target, command=request.command,
                    args=dict(request.args), origin="operator", state="refused", final=True, reason=str(exc))
                return
            if repeat:
                self._updates.put_nowait(tracked)  # say again where it stands; nothing is sent twice

    async def _publish_command_updates(self) -> None:
        """Every change of a tracked command goes out on one topic, in order (`lunar-gs cmd` follows it)."""
        while True:
            tracked = await self._updates.get()
            stage = max(tracked.stages.items(), key=lambda kv: kv[1])[0] if tracked.stages else ""
            await self.runtime.publish(
                self.topics.command_update, CommandUpdate, qos=1, request_id=tracked.request_id,
                client_ref=tracked.client_ref, target=Node(tracked.node), command=tracked.command,
                args=tracked.args, origin=tracked.origin, state=tracked.state.value,
                stage=stage.removesuffix("_failed"), progress=tracked.progress, final=tracked.final,
                failed_stage=tracked.failed_stage,
                failure_code=tracked.failure_code.name if tracked.failure_code else None,
                reason=tracked.reason)

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
        """Time out overdue commands, end shelf times, keep the archive flushed; publish command updates."""
        updates = asyncio.get_running_loop().create_task(self._publish_command_updates())
        try:
            await self._housekeeping()
        finally:
            updates.cancel()

    async def _housekeeping(self) -> None:
        clock = self.runtime.clock
        await clock.wait_ready()
        while True:
            for entry in self.alarm_book.shelves_due(clock.now()):
                self._show_alarm(entry)
            if self._outage_since is None:
                for tracked in self.book.time_out(clock.now()):
                    self._unanswered.pop(tracked.request_id, None)
                    self._record(tracked)
                    self.runtime.log.warning("command_timed_out", request_id=tracked.request_id)
                    self._activity.set()
                await self._resend_unanswered()
            self.archive.flush()
            self.save_state()
            deadlines = [d for d in (self.book.next_deadline(), self.alarm_book.next_shelf_end()) if d is not None]
            horizon = clock.now() + max(1.0, clock.rate * 0.25)  # flush about four times a wall second
            await clock.sleep_until(min([*deadlines, horizon]), self._wake)

