"""The relay satellite: the only path between the far side (`space` topics) and Earth (`ground` topics).

A bent pipe with store-and-forward: each valid message is re-published unchanged on the other side after
the one-way light time; while the far side is out of view, messages wait in bounded on-board storage and
go out, in order, when the next window opens. A telecommand that waited past its `expires_at` is dropped
and reported with a `command_expired` event, so ground control can close it.
"""

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hardware_sim.hal import RelayLink
from protocols.codec import Message
from protocols.commands import Telecommand
from protocols.delivery import DeliveryReceipt
from protocols.events import Alarm, Event, Rejection, RejectionCode, Severity
from protocols.nodes import FAR_SIDE_NODES, Node, Side
from protocols.telemetry import ArmHousekeeping, AscentHousekeeping, DrillHousekeeping, RelayHousekeeping
from protocols.topics import Channel, TopicError
from protocols.verification import VerificationReport
from services.mission import Timing
from services.runtime.bus import IncomingMessage
from services.runtime.clock import Wakeup
from services.runtime.persistence import StateFile
from services.runtime.service import ServiceRuntime

_EXPECTED: dict[Channel, tuple[type[Message], ...]] = {
    Channel.TM: (DrillHousekeeping, ArmHousekeeping, AscentHousekeeping),
    Channel.EV: (Event, Rejection, Alarm),
    Channel.ACK: (VerificationReport,),
    Channel.TC: (Telecommand,),
    Channel.RX: (DeliveryReceipt,),
}


@dataclass(order=True)
class _InTransit:
    due: float
    order: int
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    qos: int = field(compare=False)
    side: Side = field(compare=False, default=Side.GROUND)
    command: Telecommand | None = field(compare=False, default=None)


class RelaySatellite:
    def __init__(self, runtime: ServiceRuntime, link: RelayLink, timing: Timing) -> None:
        self.runtime = runtime
        self.link = link
        self.timing = timing
        topics = runtime.topics
        self._order = itertools.count()
        self._in_transit: list[_InTransit] = []
        self._stored: deque[_InTransit] = deque()
        self._last_due = 0.0
        self._wake = Wakeup()
        self.state_file: StateFile | None = None
        self.forwarded = {Side.GROUND: 0, Side.SPACE: 0}
        self.expired = 0
        self.dropped = 0
        for channel in (Channel.TM, Channel.EV, Channel.ACK):
            runtime.bus.subscribe(topics.side_filter(Side.SPACE, channel), self._on_message, qos=1)
        for channel in (Channel.TC, Channel.RX):
            runtime.bus.subscribe(topics.side_filter(Side.GROUND, channel), self._on_message, qos=1)

    async def _on_message(self, message: IncomingMessage) -> None:
        try:
            where = self.runtime.topics.parse(message.topic)
        except TopicError as exc:
            await self.runtime.reject(message, RejectionCode.WRONG_TOPIC, str(exc))
            return
        if where.node == self.runtime.node and where.channel is Channel.RX:
            return  # receipts for the relay's own events: the runtime takes them
        if where.node not in FAR_SIDE_NODES:
            await self.runtime.reject(
                message, RejectionCode.WRONG_TOPIC, f"{where.node} is not a far-side node: nothing to relay"
            )
            return
        sender = Node.GROUND_CONTROL if where.side is Side.GROUND else where.node
        decoded = await self.runtime.decode(message, *_EXPECTED[where.channel], source=sender)
        if decoded is None:
            return
        other = Side.GROUND if where.side is Side.SPACE else Side.SPACE
        target = self.runtime.topics.channel(other, where.node, where.channel, where.packet or "hk")
        item = _InTransit(
            due=0.0,
            order=next(self._order),
            topic=target,
            payload=message.payload,
            qos=message.qos,
            side=other,
            command=decoded if isinstance(decoded, Telecommand) else None,
        )
        if not self.runtime.clock.ready:  # no time yet, so no light time: keep it until there is
            self._stored.append(item)
            return
        now = self.runtime.clock.now()
        self.link.advance(now)
        if self.link.far_side_visible(now) and not self._stored:
            self._schedule(item, now)
        elif len(self._stored) < self.link.storage_capacity:
            self._stored.append(item)
        else:
            self.dropped += 1
            await self._event("storage_overflow", Severity.ERROR, f"on-board storage full; dropped {target}")
        self._wake.set()

    def _schedule(self, item: _InTransit, now: float) -> None:
        # keep arrival order even when the delay shrinks between two messages
        item.due = max(now + self.link.one_way_delay_s(now), self._last_due)
        self._last_due = item.due
        heapq.heappush(self._in_transit, item)

    def save_state(self, *, force: bool = False) -> None:
        if self.state_file is not None:
            self.state_file.save({"devices": {"relay": self.link}, "runtime": self.runtime.snapshot(),
                                  "in_transit": list(self._in_transit), "stored": list(self._stored),
                                  "counters": (self.forwarded, self.expired, self.dropped)}, force=force)

    def resume(self, saved: dict[str, Any]) -> None:
        """Take back the messages on board when the previous run stopped (the link was restored by the caller)."""
        self.runtime.restore(saved["runtime"])
        self._in_transit = list(saved["in_transit"])
        heapq.heapify(self._in_transit)
        self._stored = deque(saved["stored"])
        self.forwarded, self.expired, self.dropped = saved["counters"]
        self._order = itertools.count(max((i.order for i in [*self._in_transit, *self._stored]), default=0) + 1)

    async def run(self) -> None:
        clock = self.runtime.clock
        await clock.wait_ready()
        next_hk = clock.now()
        while True:
            now = clock.now()
            self.link.advance(now)
            if self._stored and self.link.far_side_visible(now):
                while self._stored:
                    self._schedule(self._stored.popleft(), now)
            while self._in_transit and self._in_transit[0].due <= now:
                await self._deliver(heapq.heappop(self._in_transit), now)
            if now >= next_hk:
                await self._publish_housekeeping(now)
                next_hk = now + self.timing.idle_hk_period_s
            wake_at = [next_hk]
            if self._in_transit:
                wake_at.append(self._in_transit[0].due)
            if self._stored:
                window = self.link.next_window_start(now)
                if window is not None:
                    wake_at.append(window)
            self.save_state()
            await clock.sleep_until(min(wake_at), self._wake)

    async def _deliver(self, item: _InTransit, now: float) -> None:
        command = item.command
        if command is not None and command.expires_at is not None and now > command.expires_at:
            self.expired += 1
            await self._event(
                "command_expired",
                Severity.WARNING,
                f"{command.command} for {command.target} waited past its expiry",
                request_id=command.request_id,
                command=command.command,
                target=str(command.target),
            )
            return
        await self.runtime.bus.publish(item.topic, item.payload, qos=item.qos)
        self.forwarded[item.side] += 1

    async def _event(self, name: str, severity: Severity, message: str, **data: str) -> None:
        await self.runtime.publish(
            self.runtime.event_topic, Event, qos=1, event=name, severity=severity, message=message, data=data
        )

    async def _publish_housekeeping(self, now: float) -> None:
        capacity = max(self.link.storage_capacity, 1)
        await self.runtime.publish(
            self.runtime.topics.tm(Side.GROUND, self.runtime.node, "hk"),
            RelayHousekeeping,
            qos=0,
            far_side_visible=self.link.far_side_visible(now),
            one_way_delay_s=self.link.one_way_delay_s(now),
            stored_messages=len(self._stored),
            forwarded_to_ground=self.forwarded[Side.GROUND],
            forwarded_to_space=self.forwarded[Side.SPACE],
            expired_commands=self.expired,
            dropped_messages=self.dropped,
            storage_used=min(100.0, 100.0 * len(self._stored) / capacity),
        )
