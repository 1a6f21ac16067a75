"""What every service shares: bus, clock, codec, stamped publishing, rejections and liveness.

`ServiceRuntime` is entered once per process by the composition root (`services.cli`); services get it
as an argument and never build their own bus or clock.
"""

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from lunar_gs.protocols.codec import DecodeError, Message, excerpt, get_codec
from lunar_gs.protocols.delivery import RELIABLE_RECEIVERS, DeliveryReceipt
from lunar_gs.protocols.envelope import Envelope
from lunar_gs.protocols.events import Rejection, RejectionCode
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState, ServiceState, ServiceStatus
from lunar_gs.protocols.topics import Channel, Topics
from lunar_gs.services import __version__
from lunar_gs.services.runtime.bus import Bus, IncomingMessage, Will
from lunar_gs.services.runtime.clock import SimClock
from lunar_gs.services.runtime.delivery import DeliveryOutbox, DeliveryRecord

RECEIPT_PERIOD_S = 0.1
"""Wall seconds between receipts for a stream that keeps arriving (receipts are cumulative)."""
STATUS_PERIOD_S = 5.0
"""Wall seconds between refreshes of the retained status and its counters."""
REJECTIONS_LOGGED = 100
"""Rejections logged one by one before the log switches to one line per thousand."""

MessageT = TypeVar("MessageT", bound=Message)


class ServiceRuntime:
    """The shared plumbing of one service process."""

    def __init__(
        self,
        node: Node,
        *,
        broker_url: str,
        mission: str,
        codec: str = "json",
        backends: dict[str, str] | None = None,
        event_side: Side = Side.SPACE,
        event_topic: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.node = node
        self.topics = Topics(mission)
        self.codec = get_codec(codec)
        self.clock = SimClock()
        self.backends = dict(backends or {})
        self.links: dict[str, str] = {}
        """Link state of each device behind a link, set by its node; reported in the status."""
        self.event_side = event_side
        """The side this service's own events and rejections are published on."""
        self._event_topic = event_topic or self.topics.ev(event_side, node)
        self.log = structlog.get_logger().bind(mission=mission, node=str(node))
        self._seq: dict[str, int] = defaultdict(int)
        self.rejections = 0
        self.on_connect_hooks: list[Callable[[], Awaitable[None]]] = []
        self.on_disconnect_hooks: list[Callable[[], None]] = []
        self.delivery_out = DeliveryOutbox()
        self.delivery_in = DeliveryRecord()
        self._reliable_topics: dict[str, tuple[str, frozenset[Node]]] = {}
        for channel in (Channel.EV, Channel.ACK):
            receivers = RELIABLE_RECEIVERS.get((node, channel))
            if receivers:
                topic = self.topics.channel(event_side, node, channel)
                self._reliable_topics[topic] = (channel.value, receivers)
        self._tasks: list[asyncio.Task[None]] = []
        will = Will(
            topic=self.topics.status(node),
            payload=self.codec.encode(self._status(ServiceState.OFFLINE, with_counters=False)),
            qos=1,
            retain=True,
        )
        self.bus = Bus(
            broker_url,
            client_id or f"lgs-{mission}-{node}",
            will=will,
            on_connect=self._on_connect,
            on_handler_error=self._on_handler_error,
            on_disconnect=self._on_disconnect,
        )
        self.bus.subscribe(self.topics.clock, self._on_clock, qos=1)
        if self._reliable_topics:
            self.bus.subscribe(self.topics.rx(event_side, node), self._on_receipt, qos=1)

    async def __aenter__(self) -> "ServiceRuntime":
        await self.bus.__aenter__()
        self._tasks.append(asyncio.create_task(self._delivery_loop(), name=f"delivery-{self.node}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            await self.publish_status(ServiceState.OFFLINE)
        finally:
            await self.bus.__aexit__(*exc)  # a bounded flush: a broker that is away cannot hold us up

    # -- time -------------------------------------------------------------------------------------------
    def sim_now(self) -> float:
        return self.clock.now() if self.clock.ready else time.time()

    async def _on_clock(self, message: IncomingMessage) -> None:
        if not message.payload:
            return  # an empty retained payload only clears the clock: nothing to follow
        # every service follows the clock; its owner, ground control, is the one that rejects bad input
        state = await self.decode(message, ClockState, reject=self.node is Node.GROUND_CONTROL)
        if state is not None:
            self.clock.update(state)

    # -- publishing -------------------------------------------------------------------------------------
    def stamp(self, model: type[MessageT], topic: str, /, *, sim_time: float | None = None,
              **fields: Any) -> MessageT:
        """Build a message with its envelope filled: source, per-topic sequence count, both times.

        `sim_time` defaults to now; a sample of device state passes the time the state is for, since at
        a high rate a few wall milliseconds of publishing are whole simulated seconds.
        """
        seq = self._seq[topic]
        self._seq[topic] = seq + 1
        return model(source=self.node, seq=seq, sim_time=self.sim_now() if sim_time is None else sim_time,
                     wall_time=time.time(), **fields)

    async def publish(
        self, topic: str, model: type[MessageT], /, *, qos: int = 1, retain: bool = False, **fields: Any
    ) -> MessageT:
        message = self.stamp(model, topic, **fields)
        payload = self.codec.encode(message)
        reliable = self._reliable_topics.get(topic)
        if reliable is not None and qos > 0:
            channel, receivers = reliable
            self.delivery_out.track(channel, topic, receivers, message.seq, payload)
        await self.bus.publish(topic, payload, qos=qos, retain=retain)
        return message

    # -- end-to-end delivery ----------------------------------------------------------------------------
    def accept_delivery(self, message: Envelope, channel: Channel) -> bool:
        """For a receiver of a reliable stream: True the first time a message arrives, False for a repeat.
        Either way a receipt goes back to its source soon."""
        if self.node not in RELIABLE_RECEIVERS.get((message.source, channel), ()):
            return True
        return self.delivery_in.accept(message.source, channel.value, message.seq)

    async def _on_receipt(self, message: IncomingMessage) -> None:
        receipt = await self.decode(message, DeliveryReceipt)
        if receipt is None:
            return
        if receipt.stream_source != self.node:
            await self.reject(message, RejectionCode.WRONG_TOPIC, f"receipt for {receipt.stream_source}")
            return
        self.delivery_out.confirm(receipt.channel, receipt.source, receipt.upto)

    async def _delivery_loop(self) -> None:
        """Send receipts for what arrived, re-send what nobody confirmed, refresh the status counters."""
        next_status = time.monotonic() + STATUS_PERIOD_S
        while True:
            await asyncio.sleep(RECEIPT_PERIOD_S)
            if time.monotonic() >= next_status and self.bus.connected:
                next_status = time.monotonic() + STATUS_PERIOD_S
                await self.publish_status(ServiceState.ONLINE)
            for source, channel, upto in self.delivery_in.take_receipts():
                await self.publish(self.topics.rx(self.event_side, source), DeliveryReceipt, qos=1,
                                   stream_source=source, channel=channel, upto=upto)
            if self.bus.connected:
                for topic, payload in self.delivery_out.due():
                    await self.bus.publish(topic, payload, qos=1)

    def snapshot(self) -> dict[str, Any]:
        """What a restarted service needs to go on numbering and re-sending where it stopped."""
        return {"seq": dict(self._seq), "outbox": self.delivery_out.snapshot()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self._seq.update(snapshot.get("seq", {}))
        self.delivery_out.restore(snapshot.get("outbox", {}))

    @property
    def event_topic(self) -> str:
        return self._event_topic

    # -- liveness ---------------------------------------------------------------------------------------
    def _status(self, state: ServiceState, with_counters: bool = True) -> ServiceStatus:
        return ServiceStatus(
            source=self.node,
            sim_time=self.sim_now(),
            wall_time=time.time(),
            state=state,
            version=__version__,
            pid=os.getpid(),
            backends=self.backends,
            links=self.links,
            counters=self.counters() if with_counters else {},
        )

    def counters(self) -> dict[str, int]:
        """What an operator needs to see that nothing is silently lost: every queue's overflow counted."""
        return {**vars(self.bus.stats), "rejections": self.rejections,
                "resent": self.delivery_out.resent, "unconfirmed": self.delivery_out.unconfirmed,
                "given_up": self.delivery_out.given_up, "duplicates_dropped": self.delivery_in.duplicates}

    async def publish_status(self, state: ServiceState) -> None:
        payload = self.codec.encode(self._status(state))
        await self.bus.publish(self.topics.status(self.node), payload, qos=1, retain=True)

    async def publish_status_now(self) -> None:
        """Republish the retained status (a device's link changed); quietly skipped while disconnected."""
        if self.bus.connected:
            await self.publish_status(ServiceState.ONLINE)

    async def _on_connect(self) -> None:
        await self.publish_status(ServiceState.ONLINE)
        for hook in self.on_connect_hooks:
            await hook()

    def _on_disconnect(self) -> None:
        for hook in self.on_disconnect_hooks:
            hook()

    # -- decoding and rejection -------------------------------------------------------------------------
    async def decode(
        self, message: IncomingMessage, *expected: type[MessageT], reject: bool = True,
        source: Node | None = None,
    ) -> MessageT | None:
        """Decode a payload as one of `expected`; anything else is rejected (published) and None returned.

        `source`, when given, is who may publish on this topic: a message claiming another source is
        refused. `reject=False` is for listeners that overhear a topic whose owner already rejects bad
        input (one rejection per bad message, not one per listener).
        """
        try:
            decoded = self.codec.decode(message.payload)
        except DecodeError as exc:
            if reject:
                await self.reject(message, exc.code, exc.reason, exc.request_id)
            else:
                self.log.debug("overheard_undecodable", topic=message.topic, reason=exc.reason)
            return None
        if expected and not isinstance(decoded, expected):
            if not reject:
                return None
            names = ", ".join(t.model_fields["schema_name"].default for t in expected)
            await self.reject(
                message,
                RejectionCode.WRONG_TOPIC,
                f"{decoded.schema_name!r} does not belong on this topic (expected {names})",
                getattr(decoded, "request_id", None),
            )
            return None
        if source is not None and decoded.source != source:
            if reject:
                await self.reject(message, RejectionCode.WRONG_TOPIC,
                                  f"claims to come from {decoded.source} on a topic of {source}",
                                  getattr(decoded, "request_id", None))
            return None
        return decoded  # type: ignore[return-value]

    async def reject(
        self, message: IncomingMessage, code: RejectionCode, reason: str, request_id: str | None = None
    ) -> None:
        """Publish one structured rejection for a message that could not be used."""
        self.rejections += 1
        if self.rejections <= REJECTIONS_LOGGED or self.rejections % 1000 == 0:
            # under a flood, the log keeps a sample; the events and the counter keep every one
            self.log.warning("message_rejected", topic=message.topic, code=code.name, reason=reason,
                             request_id=request_id, rejections_so_far=self.rejections)
        await self.publish(
            self.event_topic,
            Rejection,
            qos=1,
            topic=message.topic[:512],
            code=code,
            reason=reason[:1000],
            payload_excerpt=excerpt(message.payload)[:300],
            request_id=request_id[:64] if request_id else None,
        )

    async def _on_handler_error(self, message: IncomingMessage, error: BaseException) -> None:
        self.log.error("handler_failed", topic=message.topic, error=repr(error))
        await self.reject(message, RejectionCode.HANDLER_ERROR, f"{type(error).__name__}: {error}")

