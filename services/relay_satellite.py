"""The relay satellite: the only path between the far side (`space` topics) and Earth (`ground` topics).

A bent pipe with store-and-forward: each valid message is re-published unchanged on the other side after
the one-way light time; while the far side is out of view, messages wait in bounded on-board storage and
go out, in order, when the next window opens. A telecommand that waited past its `expires_at` is dropped
and reported with a `command_expired` event, so ground control can close it.

Injected link faults (`hardware_sim.link_faults`) decide each message's fate as it is scheduled: an
injected loss of signal keeps it stored exactly as a visibility gap does; loss, duplication, latency,
reordering and a bandwidth cap change what arrives and when; a corrupted frame that fails its CRC-16 at
the receiving end is counted (`corrupted_frames`) and reported as a MALFORMED rejection from the relay.
"""

import heapq
import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from lunar_gs.hardware_sim.faults import FaultNotApplicable, ModelFault, Symptom
from lunar_gs.hardware_sim.hal import RelayLink
from lunar_gs.hardware_sim.link_faults import Copy, LinkFaults
from lunar_gs.protocols.codec import Message, excerpt
from lunar_gs.protocols.commands import Telecommand
from lunar_gs.protocols.delivery import DeliveryReceipt
from lunar_gs.protocols.events import Alarm, Event, Rejection, RejectionCode, Severity
from lunar_gs.protocols.nodes import FAR_SIDE_NODES, Node, Side
from lunar_gs.protocols.telemetry import ArmHousekeeping, AscentHousekeeping, DrillHousekeeping, RelayHousekeeping
from lunar_gs.protocols.topics import Channel, TopicError
from lunar_gs.protocols.verification import VerificationReport
from lunar_gs.services.mission import Timing
from lunar_gs.services.node_faults import NodeFaults
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.clock import Wakeup
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.service import ServiceRuntime

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
    node: Node | None = field(compare=False, default=None)
    """The far-side node whose traffic this is (what a link fault targets)."""
    origin: str = field(compare=False, default="")
    """The topic it came in on."""
    crc_error: tuple[int, int] | None = field(compare=False, default=None)
    """(CRC sent, CRC received): a corrupted frame that the receiving end catches and discards at `due`."""
    waits: tuple[tuple[str, float, float], ...] = field(compare=False, default=())
    """Bandwidth channels it queued in on board: (fault id, entered, fully sent)."""

    @property
    def direction(self) -> str:
        return "down" if self.side is Side.GROUND else "up"

    @property
    def stream(self) -> tuple[Side, Node | None]:
        return self.side, self.node


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
        self.corrupted = 0
        self.link_faults = LinkFaults()
        self._stored_streams: Counter[tuple[Side, Node | None]] = Counter()
        """How many stored messages each (side, node) stream has: a newer one waits behind them."""
        self._rescan = True
        """Something may let stored messages go (an injected loss of signal cleared, a gap ended)."""
        self._inbox: deque[IncomingMessage] = deque()
        """What arrived while the relay was hung, taken in once it answers again."""
        self.faults = NodeFaults(runtime, [link], sample=self._sample, link=self)
        for channel in (Channel.TM, Channel.EV, Channel.ACK):
            runtime.bus.subscribe(topics.side_filter(Side.SPACE, channel), self._on_message, qos=1)
        for channel in (Channel.TC, Channel.RX):
            runtime.bus.subscribe(topics.side_filter(Side.GROUND, channel), self._on_message, qos=1)

    async def _on_message(self, message: IncomingMessage) -> None:
        if self.faults.hung:  # a hung relay takes nothing in: it waits (in the broker, as it were)
            self._inbox.append(message)
            self._wake.set()
            return
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
            node=where.node,
            origin=message.topic,
        )
        if not self.runtime.clock.ready:  # no time yet, so no light time: keep it until there is
            self._store(item)
            return
        now = self.runtime.clock.now()
        self.link.advance(now)
        # in view, and nothing of its stream stored ahead of it: on its way (unless out of signal)
        if self.link.far_side_visible(now) and not self._stored_streams[item.stream] \
                and self._schedule(item, now):
            pass
        elif len(self._stored) < self.link.storage_capacity:
            self._store(item)
        else:
            self.dropped += 1
            await self._event("storage_overflow", Severity.ERROR, f"on-board storage full; dropped {target}")
        self._wake.set()

    def _store(self, item: _InTransit) -> None:
        self._stored.append(item)
        self._stored_streams[item.stream] += 1

    def _schedule(self, item: _InTransit, now: float) -> bool:
        """Put `item` on its way, as the link faults have it; False: out of signal, keep it stored."""
        # keep arrival order even when the delay shrinks between two messages; a message that a fault
        # delays or holds back moves on its own and does not hold up the ones behind it
        nominal = max(now + self.link.one_way_delay_s(now), self._last_due)
        fate = self.link_faults.decide(item.direction, item.node, item.payload, now, nominal)
        if fate.held:
            return False
        self._last_due = nominal
        for index, copy in enumerate(fate.copies):
            heapq.heappush(self._in_transit, self._copy(item, copy, fresh=index > 0))
        return True

    def _copy(self, item: _InTransit, copy: Copy, *, fresh: bool) -> _InTransit:
        return _InTransit(due=copy.due, order=next(self._order) if fresh else item.order, topic=item.topic,
                         payload=copy.payload, qos=item.qos, side=item.side, command=item.command,
                         node=item.node, origin=item.origin, crc_error=copy.crc_error, waits=copy.waits)

    def _release_stored(self, now: float) -> None:
        """Schedule the stored messages that may go now, in order; the others stay stored."""
        if not self._stored:
            return
        if not self.link_faults.any_los():
            while self._stored:
                self._schedule(self._stored.popleft(), now)
            self._stored_streams.clear()
            return
        if not self._rescan:
            return
        self._rescan = False
        keep: deque[_InTransit] = deque()
        blocked: set[tuple[Side, Node | None]] = set()
        for item in self._stored:
            if item.stream in blocked or not self._schedule(item, now):
                blocked.add(item.stream)
                keep.append(item)
            else:
                self._stored_streams[item.stream] -= 1
        self._stored = keep
        self._stored_streams = +self._stored_streams

    # -- link faults (services.node_faults.LinkFaultHost) ------------------------------------------
    def apply_link_fault(self, fault: ModelFault, direction: str, node: Node | None) -> None:
        if node is not None and node not in FAR_SIDE_NODES:
            raise FaultNotApplicable(f"{node} sends nothing across the relay")
        self.link_faults.add(fault, direction, node)
        self._wake.set()

    def clear_link_fault(self, fault_id: str) -> bool:
        kind = self.link_faults.kind_of(fault_id)
        if not self.link_faults.remove(fault_id):
            return False
        if kind == "link.bandwidth" and self.runtime.clock.ready:
            self._retime_after_cap(fault_id, self.runtime.clock.now())
        self._rescan = True
        self._wake.set()
        return True

    def drain_link_symptoms(self) -> list[Symptom]:
        return self.link_faults.drain_symptoms()

    def _retime_after_cap(self, fault_id: str, now: float) -> None:
        """A bandwidth cap is gone: what still queued behind it on board goes out now."""
        changed = False
        for item in self._in_transit:
            for wait_id, entered, sent in item.waits:
                if wait_id == fault_id and sent > now:
                    item.due -= sent - max(entered, now)
                    changed = True
        if changed:
            heapq.heapify(self._in_transit)

    def _far_side_visible(self, now: float) -> bool:
        """What the relay reports: a scheduled gap, or an injected loss of signal on every node's link."""
        return self.link.far_side_visible(now) and not self.link_faults.relay_out_of_signal()

    def save_state(self, *, force: bool = False) -> None:
        if self.state_file is not None:
            self.state_file.save({"devices": {"relay": self.link}, "runtime": self.runtime.snapshot(),
                                  "in_transit": list(self._in_transit), "stored": list(self._stored),
                                  "counters": (self.forwarded, self.expired, self.dropped),
                                  "corrupted_frames": self.corrupted, "link_faults": self.link_faults,
                                  "faults": self.faults.snapshot(), "inbox": list(self._inbox)},
                                 force=force)

    def resume(self, saved: dict[str, Any]) -> None:
        """Take back the messages on board when the previous run stopped (the link was restored by the caller)."""
        self.runtime.restore(saved["runtime"])
        self._in_transit = list(saved["in_transit"])
        heapq.heapify(self._in_transit)
        self._stored = deque(saved["stored"])
        self._stored_streams = Counter(item.stream for item in self._stored)
        self._rescan = True
        self.forwarded, self.expired, self.dropped = saved["counters"]
        # state files written before link faults existed have none of these
        self.corrupted = saved.get("corrupted_frames", 0)
        self.link_faults = saved.get("link_faults") or LinkFaults()
        if "faults" in saved:
            self.faults.restore(saved["faults"])
        self._inbox = deque(saved.get("inbox", ()))
        self._order = itertools.count(max((i.order for i in [*self._in_transit, *self._stored]), default=0) + 1)

    async def run(self) -> None:
        clock = self.runtime.clock
        await clock.wait_ready()
        next_hk = clock.now()
        while True:
            now = clock.now()
            self.link.advance(now)
            await self.faults.collect()
            if self.faults.hung:  # forwards nothing, reports nothing; what arrives waits
                await self.faults.note_silence(now)
                self.save_state()
                await clock.sleep_until(now + 1.0, self._wake)  # the hang clears without waking us
                continue
            while self._inbox and not self.faults.hung:
                await self._on_message(self._inbox.popleft())
            if self.link.far_side_visible(now):
                self._release_stored(now)
            else:
                self._rescan = True  # when the window opens, look again at what is stored
            while self._in_transit and self._in_transit[0].due <= now:
                await self._deliver(heapq.heappop(self._in_transit), now)
            await self.faults.collect()
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
        if item.crc_error is not None:
            await self._reject_corrupted(item)
            return
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

    async def _reject_corrupted(self, item: _InTransit) -> None:
        """The receiving end's frame check caught a corrupted frame: count it, discard it, say so."""
        assert item.crc_error is not None
        sent, received = item.crc_error
        self.corrupted += 1
        self.runtime.rejections += 1
        reason = (f"CRC-16 mismatch on the {item.direction} link (sent 0x{sent:04X}, received "
                  f"0x{received:04X}): corrupted frame for {item.topic} discarded")
        if self.corrupted <= 100 or self.corrupted % 1000 == 0:
            self.runtime.log.warning("corrupted_frame", topic=item.origin, reason=reason,
                                     corrupted_so_far=self.corrupted)
        await self.runtime.publish(self.runtime.event_topic, Rejection, qos=1, topic=item.origin[:512],
                                   code=RejectionCode.MALFORMED, reason=reason[:1000],
                                   payload_excerpt=excerpt(item.payload)[:300])

    async def _event(self, name: str, severity: Severity, message: str, **data: str) -> None:
        await self.runtime.publish(
            self.runtime.event_topic, Event, qos=1, event=name, severity=severity, message=message, data=data
        )

    def _sample(self) -> dict[str, Any]:
        """The housekeeping fields as the relay measures them now (before any sensor fault)."""
        now = self.runtime.sim_now()
        stored = len(self._stored) + self.link_faults.on_board(now)
        capacity = max(self.link.storage_capacity, 1)
        return {
            "far_side_visible": self._far_side_visible(now),
            "one_way_delay_s": self.link.one_way_delay_s(now) + self.link_faults.extra_delay_s("down"),
            "stored_messages": stored,
            "forwarded_to_ground": self.forwarded[Side.GROUND],
            "forwarded_to_space": self.forwarded[Side.SPACE],
            "expired_commands": self.expired,
            "dropped_messages": self.dropped,
            "storage_used": min(100.0, 100.0 * stored / capacity),
            "corrupted_frames": self.corrupted,
            # the schedule as the relay knows it; an injected loss of signal has no known end
            "next_los": self.link.next_loss_of_signal(now) if self.link.far_side_visible(now) else None,
            "next_aos": self.link.next_window_start(now),
        }

    async def _publish_housekeeping(self, now: float) -> None:
        fields = self._sample()
        if not fields["far_side_visible"]:
            self.link_faults.note_relay_los(now)
        missing = await self.faults.perturb_housekeeping(fields, now)
        await self.runtime.publish(
            self.runtime.topics.tm(Side.GROUND, self.runtime.node, "hk"),
            RelayHousekeeping,
            qos=0,
            sim_time=now,
            missing=tuple(missing),
            **fields,
        )
