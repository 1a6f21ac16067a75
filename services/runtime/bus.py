"""The message bus: the only MQTT code in Lunar GS (aiomqtt, MQTT 3.1.1; MQTT 5 on request).

A `Bus` is an async context manager that owns one long-lived, self-healing MQTT connection:

* **Connection loop.** aiomqtt does not reconnect by itself, so `_run` wraps `async with aiomqtt.Client`
  in a loop: on `MqttError` it waits with exponential backoff (with jitter), reconnects, re-subscribes
  every filter and then runs `on_connect` (services re-publish their retained `online` status there).
  It never dies while the context is open.
* **Outbox.** `publish()` never touches the network: it appends to a bounded outbox drained by one
  publisher task per connection. QoS >= 1 messages are held while disconnected and sent after the
  reconnect in order; QoS 0 messages are dropped while disconnected (and counted). A QoS >= 1 message
  whose PUBACK was not received when the link dropped goes back to the head of the outbox, so delivery is
  at-least-once (duplicates are filtered by the application's sequence counts). Publishes are pipelined:
  up to `max_inflight` await their PUBACK concurrently. paho sends them over one TCP stream in the order
  `publish()` was called, so order (per topic and overall) is kept.
* **Incoming.** Every subscription feeds aiomqtt's single `client.messages` queue. A reader task per
  connection moves messages into the bus's own bounded queue; one long-lived dispatcher task calls every
  handler whose filter matches, in arrival order. Handlers are never cancelled by a reconnect, and a
  handler that raises is logged, counted and reported to `on_handler_error`; it never stops the bus.
* **MQTT 5, opt-in.** `Bus(..., mqtt5=True)` connects with MQTT 5 so that a subscription can ask for
  "retain as published" (a live retained publish then arrives with retain=1, as the recorder needs). It
  is a convenience only, never meaning: brokers that speak only 3.1.1 (the embedded amqtt) refuse it, which
  `broker_speaks_mqtt5` finds out beforehand.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Self
from urllib.parse import urlsplit

import aiomqtt
import structlog
from paho.mqtt.subscribeoptions import SubscribeOptions

from lunar_gs.services.runtime.logging import get_logger

DEFAULT_PORT: Final = 1883
MAX_PAYLOAD_BYTES: Final = 268_435_455  # the MQTT limit (remaining length)
CLOSE_FLUSH_TIMEOUT_S: Final = 2.0
_MAX_CACHED_TOPICS: Final = 4096  # distinct topics whose matching subscriptions are remembered

_bind_contextvars = structlog.contextvars.bind_contextvars
_reset_contextvars = structlog.contextvars.reset_contextvars


class _DropCountedWarnings(logging.Filter):
    """aiomqtt warns once per discarded incoming message and about many pending publishes; the bus
    counts the first (stats.incoming_overflow, rate-limited log) and pipelines on purpose (the second)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text.startswith("Message queue is full") or "pending publish calls" in text)


_AIOMQTT_LOGGER = logging.getLogger("mqtt.lunar_gs")
_AIOMQTT_LOGGER.addFilter(_DropCountedWarnings())


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Split `mqtt://host[:port]` into (host, port); the port defaults to 1883.

    Raises ValueError with the offending URL and the expected form.
    """
    expected = "expected mqtt://host[:port] (default port 1883)"
    if not isinstance(url, str) or not url:
        raise ValueError(f"bad broker URL {url!r}: {expected}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad broker URL {url!r}: {exc}; {expected}") from None
    if parts.scheme != "mqtt":
        raise ValueError(f"bad broker URL {url!r}: scheme must be 'mqtt', got {parts.scheme!r}; {expected}")
    if not parts.hostname:
        raise ValueError(f"bad broker URL {url!r}: no host; {expected}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"bad broker URL {url!r}: no path, query or credentials allowed; {expected}")
    if port == 0:
        raise ValueError(f"bad broker URL {url!r}: port 0; {expected}")
    return parts.hostname, port if port is not None else DEFAULT_PORT


@dataclass(frozen=True)
class IncomingMessage:
    """A message as handlers see it: the payload is always bytes."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


Handler = Callable[[IncomingMessage], Awaitable[None]]


@dataclass(frozen=True)
class Will:
    """The Last Will the broker publishes if this client vanishes without a clean DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass
class BusStats:
    """Counters of one bus since it was created."""

    published: int = 0  # messages the broker acknowledged (QoS >= 1) or that were written (QoS 0)
    received: int = 0  # messages dispatched to handlers
    dropped_while_disconnected: int = 0  # QoS 0 messages published, queued or in flight while disconnected
    outbox_overflow: int = 0  # messages dropped because the outbox was full (oldest QoS 0, else the new)
    incoming_overflow: int = 0  # messages aiomqtt discarded because the incoming queue was full
    reconnects: int = 0  # successful connections after the first
    handler_errors: int = 0  # handler calls that raised


@dataclass(frozen=True, slots=True)
class _Outgoing:
    seq: int  # publish order, used to put unacknowledged messages back in order
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class _Subscription:
    topic_filter: str
    wildcard: aiomqtt.Wildcard
    handler: Handler


SubscribeRequest = list[tuple[str, int]] | list[tuple[str, SubscribeOptions]]


class _Closing(Exception):
    """Raised inside the connection task group to end it when the bus closes."""


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode()
    return str(payload).encode()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")


class Bus:
    """An asyncio MQTT bus with reconnection, a bounded outbox and topic-filter dispatch.

    `subscribe()` may be called before or after entering; every filter is subscribed again on each
    (re)connect. Entering starts the background tasks and returns at once (use `wait_connected`);
    leaving flushes the outbox (about 2 s at most) and disconnects cleanly, so the Will does not fire.

    Extra keyword arguments beyond the core API: `max_inflight` (QoS >= 1 publishes awaiting their PUBACK
    concurrently), `keepalive` (seconds; detects half-open links), `clean_session` (False keeps the
    broker-side session and its queued QoS >= 1 messages across reconnects of the same `client_id`),
    `mqtt5` (connect with MQTT 5, needed by `subscribe(..., retain_as_published=True)`; with a clean
    session only), `tcp_nodelay` (turn Nagle's algorithm off: each small publish goes out at once instead
    of waiting, up to the peer's 40 ms delayed ACK, to share a segment; for timing-faithful replay).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        will: Will | None = None,
        max_outbox: int = 100_000,
        max_incoming: int = 10_000,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_handler_error: Callable[[IncomingMessage, BaseException], Awaitable[None]] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        max_inflight: int = 64,
        keepalive: int = 30,
        clean_session: bool = True,
        mqtt5: bool = False,
        tcp_nodelay: bool = False,
    ) -> None:
        self._host, self._port = parse_mqtt_url(url)
        if mqtt5 and not clean_session:
            raise ValueError("mqtt5 needs clean_session=True (a persistent MQTT 5 session is not supported)")
        if not client_id:
            raise ValueError("client_id must be a non-empty string")
        if max_outbox < 1 or max_incoming < 1 or max_inflight < 1:
            raise ValueError("max_outbox, max_incoming and max_inflight must be at least 1")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        if will is not None:
            _check_qos(will.qos)
        self.url = url
        self.client_id = client_id
        self.stats = BusStats()
        self._will = will
        self._max_outbox = max_outbox
        self._max_incoming = max_incoming
        self._max_inflight = max_inflight
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._keepalive = keepalive
        self._clean_session = clean_session
        self.mqtt5 = mqtt5
        self._tcp_nodelay = tcp_nodelay
        self._on_connect = on_connect
        self._on_handler_error = on_handler_error
        self._on_disconnect = on_disconnect
        self._log = get_logger(client_id=client_id, url=url)

        self._subscriptions: list[_Subscription] = []
        # topic -> the subscriptions whose filter matches it, in subscription order (a topic is matched
        # against every filter once, not once per message); cleared whenever a subscription is added
        self._matches: dict[str, tuple[_Subscription, ...]] = {}
        self._unstarted_sends = 0  # send tasks created but not yet started (see _publisher)
        self._filters: dict[str, int] = {}  # filter -> highest requested QoS
        self._retain_as_published: set[str] = set()  # filters subscribed with that MQTT 5 option
        self._outbox: deque[_Outgoing] = deque()
        self._outbox_qos0 = 0  # QoS 0 entries in the outbox, to skip the scan when there are none
        self._inflight: dict[int, _Outgoing] = {}
        self._seq = itertools.count()
        self._outbox_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._incoming: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(maxsize=max_incoming)
        self._client: aiomqtt.Client | None = None
        self._connections = 0  # successful connections so far
        self._run_task: asyncio.Task[None] | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()

    # ---- public API -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        return self._connected.is_set()

    def subscribe(
        self, topic_filter: str, handler: Handler, qos: int = 1, *, retain_as_published: bool = False
    ) -> None:
        """Call `handler` for every message matching `topic_filter` (MQTT wildcards `+` and `#`).

        `retain_as_published` (MQTT 5 only, see `mqtt5`): messages keep the retain flag their publisher
        set; otherwise, as in MQTT 3.1.1, only retained messages sent at subscription time have it.
        """
        _check_qos(qos)
        if retain_as_published and not self.mqtt5:
            raise ValueError("retain_as_published needs an MQTT 5 bus (Bus(..., mqtt5=True))")
        wildcard = aiomqtt.Wildcard(topic_filter)  # raises ValueError on a malformed filter
        self._subscriptions.append(_Subscription(topic_filter, wildcard, handler))
        self._matches = {}
        previous = self._filters.get(topic_filter)
        new_option = retain_as_published and topic_filter not in self._retain_as_published
        if retain_as_published:
            self._retain_as_published.add(topic_filter)
        if previous is not None and previous >= qos and not new_option:
            return
        qos = max(qos, previous or 0)
        self._filters[topic_filter] = qos
        client = self._client
        if client is not None:  # connected: subscribe now; otherwise the next connect does it
            self._spawn(self._subscribe_live(client, topic_filter, qos))

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Queue a message for publication; never waits for the network.

        QoS 0 while disconnected is dropped (counted in `stats.dropped_while_disconnected`). If the outbox
        is full, the oldest queued QoS 0 message is dropped, else this one (`stats.outbox_overflow`).
        """
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"cannot publish to {topic!r}: a topic must be non-empty and have no wildcard")
        _check_qos(qos)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload of {len(payload)} bytes exceeds the MQTT limit {MAX_PAYLOAD_BYTES}")
        if qos == 0 and not self._connected.is_set():
            self.stats.dropped_while_disconnected += 1
            return
        message = _Outgoing(next(self._seq), topic, bytes(payload), qos, retain)
        if len(self._outbox) >= self._max_outbox:
            self.stats.outbox_overflow += 1
            dropped_new = not self._drop_oldest_qos0()
            if self.stats.outbox_overflow == 1 or self.stats.outbox_overflow % 1000 == 0:
                self._log.warning(
                    "outbox_overflow",
                    max_outbox=self._max_outbox,
                    overflows=self.stats.outbox_overflow,
                    dropped="new message" if dropped_new else "oldest QoS 0 message",
                    topic=topic,
                )
            if dropped_new:
                return
        self._outbox.append(message)
        if qos == 0:
            self._outbox_qos0 += 1
        self._drained.clear()
        self._outbox_ready.set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected and subscribed; TimeoutError after `timeout` seconds."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the outbox is empty and every message in flight is acknowledged."""
        await asyncio.wait_for(self._drained.wait(), timeout)

    @property
    def outbox_size(self) -> int:
        """Messages queued or in flight."""
        return len(self._outbox) + len(self._inflight)

    async def __aenter__(self) -> Self:
        if self._run_task is not None:
            raise RuntimeError("this Bus is already running; it is not reentrant")
        self._closing.clear()
        self._dispatch_task = asyncio.create_task(self._dispatcher(), name=f"bus-dispatch-{self.client_id}")
        self._run_task = asyncio.create_task(self._run(), name=f"bus-connection-{self.client_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, flush_timeout: float = CLOSE_FLUSH_TIMEOUT_S) -> None:
        """Flush (bounded), disconnect cleanly and stop the background tasks. Idempotent."""
        run_task, dispatch_task = self._run_task, self._dispatch_task
        if run_task is None:
            return
        try:
            if self.outbox_size:
                try:
                    await self.flush(flush_timeout)
                except TimeoutError:
                    self._log.warning("bus_close_unflushed", pending=self.outbox_size)
            self._closing.set()
            try:
                await asyncio.wait_for(asyncio.shield(run_task), timeout=flush_timeout)
            except TimeoutError:
                self._log.warning("bus_close_forced")
        finally:
            for task in (run_task, dispatch_task, *self._side_tasks):
                if task is not None:
                    task.cancel()
            for task in (run_task, dispatch_task, *self._side_tasks):
                if task is not None:
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                    except Exception:  # noqa: BLE001 - report, keep closing
                        self._log.exception("bus_task_failed", task=task.get_name())
            self._run_task = self._dispatch_task = None
            self._log.info("bus_closed", **vars(self.stats))

    # ---- connection -------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._reconnect_min_s
        while not self._closing.is_set():
            connections_before = self._connections
            try:
                await self._connect_once()
            except Exception as exc:  # noqa: BLE001 - MqttError (or a group) is normal; anything else is a bug
                if self._connections != connections_before:
                    delay = self._reconnect_min_s  # the link was up: start the backoff again
                wait = min(self._reconnect_max_s, delay * random.uniform(1.0, 1.25))
                if self._is_mqtt_error(exc):
                    self._log.warning("bus_disconnected", reason=_describe(exc), retry_in_s=round(wait, 3))
                else:
                    self._log.error(
                        "bus_connection_error", reason=_describe(exc), retry_in_s=round(wait, 3), exc_info=exc
                    )
                delay = min(self._reconnect_max_s, delay * 2)
                try:
                    await asyncio.wait_for(self._closing.wait(), timeout=wait)
                except TimeoutError:
                    pass

    @staticmethod
    def _is_mqtt_error(exc: BaseException) -> bool:
        if isinstance(exc, BaseExceptionGroup):
            return all(Bus._is_mqtt_error(inner) for inner in exc.exceptions)
        return isinstance(exc, aiomqtt.MqttError)

    async def _connect_once(self) -> None:
        will = None
        if self._will is not None:
            will = aiomqtt.Will(self._will.topic, self._will.payload, self._will.qos, self._will.retain)
        client = aiomqtt.Client(
            self._host,
            self._port,
            identifier=self.client_id,
            will=will,
            # MQTT 5 has clean_start instead (aiomqtt's default, a clean start on the first connection:
            # with no session expiry the broker keeps nothing anyway)
            protocol=aiomqtt.ProtocolVersion.V5 if self.mqtt5 else None,
            clean_session=None if self.mqtt5 else self._clean_session,
            keepalive=self._keepalive,
            max_queued_incoming_messages=self._max_incoming,
            queue_type=_counting_queue(self._incoming_overflowed),
            logger=_AIOMQTT_LOGGER,
            max_inflight_messages=self._max_inflight,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)] if self._tcp_nodelay else None,
        )
        client.pending_calls_threshold = self._max_inflight + 16  # aiomqtt warns above this
        try:
            async with client:
                await self._subscribe_all(client)
                self._client = client
                self._connected.set()
                if self._connections:
                    self.stats.reconnects += 1
                self._connections += 1
                self._log.info(
                    "bus_connected",
                    filters=len(self._filters),
                    reconnects=self.stats.reconnects,
                    pending=self.outbox_size,
                )
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._reader(client))
                        group.create_task(self._publisher(client))
                        group.create_task(self._until_closing())
                        if self._on_connect is not None:
                            group.create_task(self._call_on_connect())
                except* _Closing:
                    pass
        finally:
            self._connection_lost()

    async def _subscribe_all(self, client: aiomqtt.Client) -> None:
        done: set[str] = set()
        while todo := [(f, q) for f, q in self._filters.items() if f not in done]:
            granted = await client.subscribe(self._subscribe_request(todo))
            self._check_granted(todo, granted)
            done.update(f for f, _ in todo)

    def _subscribe_request(self, filters: list[tuple[str, int]]) -> SubscribeRequest:
        """paho's list form: (filter, qos) in MQTT 3.1.1, (filter, SubscribeOptions) in MQTT 5."""
        if not self.mqtt5:
            return filters
        return [
            (f, SubscribeOptions(qos=q, retainAsPublished=f in self._retain_as_published)) for f, q in filters
        ]

    async def _subscribe_live(self, client: aiomqtt.Client, topic_filter: str, qos: int) -> None:
        try:
            granted = await client.subscribe(self._subscribe_request([(topic_filter, qos)]))
        except aiomqtt.MqttError as exc:  # the link dropped: the reconnect subscribes again
            self._log.warning("subscribe_deferred", topic_filter=topic_filter, reason=_describe(exc))
            return
        self._check_granted([(topic_filter, qos)], granted)

    def _check_granted(self, requested: list[tuple[str, int]], granted: object) -> None:
        """Log filters the broker refused (SUBACK return code 0x80)."""
        if not isinstance(granted, (list, tuple)):
            return
        for (topic_filter, _), granted_code in zip(requested, granted, strict=False):
            code = int(getattr(granted_code, "value", granted_code))
            if code >= 0x80:
                self._log.error("subscribe_refused", topic_filter=topic_filter, code=code)

    async def _until_closing(self) -> None:
        await self._closing.wait()
        raise _Closing

    async def _call_on_connect(self) -> None:
        assert self._on_connect is not None
        try:
            await self._on_connect()
        except Exception:  # noqa: BLE001 - a service's hook must not take the link down
            self._log.exception("on_connect_failed")

    def _connection_lost(self) -> None:
        """Back to disconnected: unacknowledged QoS >= 1 messages go back to the head, in order."""
        was_connected = self._connected.is_set()
        self._client = None
        self._connected.clear()
        pending = sorted(self._inflight.values(), key=lambda m: m.seq)
        self._inflight.clear()
        requeue = [m for m in pending if m.qos > 0]
        dropped = len(pending) - len(requeue) + self._outbox_qos0
        if self._outbox_qos0:
            self._outbox = deque(m for m in self._outbox if m.qos > 0)
            self._outbox_qos0 = 0
        self._outbox.extendleft(reversed(requeue))
        self.stats.dropped_while_disconnected += dropped
        if was_connected and (requeue or dropped):
            self._log.info("bus_requeued", requeued=len(requeue), dropped_qos0=dropped)
        self._update_drained()
        if was_connected and self._on_disconnect is not None:
            try:
                self._on_disconnect()
            except Exception:  # noqa: BLE001 - a service's hook must not break reconnection
                self._log.exception("on_disconnect_failed")

    # ---- outgoing ---------------------------------------------------------------------------------

    def _drop_oldest_qos0(self) -> bool:
        if not self._outbox_qos0:
            return False
        for index, message in enumerate(self._outbox):
            if message.qos == 0:
                del self._outbox[index]
                self._outbox_qos0 -= 1
                return True
        return False

    def _update_drained(self) -> None:
        if self._outbox or self._inflight:
            self._drained.clear()
        else:
            self._drained.set()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        window = asyncio.Semaphore(self._max_inflight)
        self._unstarted_sends = 0  # tasks of a previous connection were cancelled with its task group
        async with asyncio.TaskGroup() as sends:
            while True:
                await window.acquire()
                while not self._outbox:
                    self._outbox_ready.clear()
                    await self._outbox_ready.wait()
                message = self._outbox.popleft()
                if message.qos == 0:
                    self._outbox_qos0 -= 1
                self._inflight[message.seq] = message
                if message.qos == 0 and not self._unstarted_sends:
                    # A QoS 0 publish is written at once and awaits no PUBACK: send it inline rather than
                    # paying a task per message. Only when no send task is waiting to start, which would
                    # otherwise be written after this message: order is kept.
                    await self._send(client, message, window)
                    continue
                # Tasks start in creation order and paho writes at the start of publish(): order is kept.
                self._unstarted_sends += 1
                sends.create_task(self._send(client, message, window, started=False))

    async def _send(
        self, client: aiomqtt.Client, message: _Outgoing, window: asyncio.Semaphore, started: bool = True
    ) -> None:
        if not started:
            self._unstarted_sends -= 1
        try:
            await client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        except aiomqtt.MqttError:
            raise  # the link is broken: the message stays in flight and is requeued by _connection_lost
        except Exception as exc:  # noqa: BLE001 - the client refused this message: drop it, keep the link
            self._inflight.pop(message.seq, None)
            self._log.error("publish_rejected", topic=message.topic, reason=_describe(exc))
        else:
            self._inflight.pop(message.seq, None)
            self.stats.published += 1
        window.release()
        self._update_drained()

    # ---- incoming ---------------------------------------------------------------------------------

    async def _reader(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._incoming.put(message)
        raise aiomqtt.MqttError("message stream ended")

    async def _dispatcher(self) -> None:
        while True:
            message = await self._incoming.get()
            incoming = IncomingMessage(
                topic=message.topic.value,
                payload=_as_bytes(message.payload),
                qos=int(message.qos),
                retain=bool(message.retain),
            )
            self.stats.received += 1
            matched = self._matches.get(incoming.topic)
            if matched is None:
                matched = tuple(s for s in self._subscriptions if message.topic.matches(s.wildcard))
                if len(self._matches) >= _MAX_CACHED_TOPICS:
                    self._matches.clear()
                self._matches[incoming.topic] = matched
            for subscription in matched:
                await self._call_handler(subscription, incoming)

    async def _call_handler(self, subscription: _Subscription, message: IncomingMessage) -> None:
        # every log line written while handling a message names its topic (bind/reset: what
        # structlog's bound_contextvars does, without a generator-based context manager per message)
        try:
            tokens = _bind_contextvars(topic=message.topic)
            try:
                await subscription.handler(message)
            finally:
                _reset_contextvars(**tokens)
        except Exception as exc:  # noqa: BLE001 - the bus never dies from a handler
            self.stats.handler_errors += 1
            self._log.error(
                "handler_failed",
                topic=message.topic,
                topic_filter=subscription.topic_filter,
                handler=getattr(subscription.handler, "__qualname__", repr(subscription.handler)),
                exc_info=exc,
            )
            if self._on_handler_error is not None:
                try:
                    await self._on_handler_error(message, exc)
                except Exception:  # noqa: BLE001 - guarded like the handler itself
                    self._log.exception("on_handler_error_failed", topic=message.topic)

    def _incoming_overflowed(self) -> None:
        self.stats.incoming_overflow += 1
        if self.stats.incoming_overflow == 1 or self.stats.incoming_overflow % 1000 == 0:
            self._log.warning(
                "incoming_overflow", max_incoming=self._max_incoming, overflows=self.stats.incoming_overflow
            )

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


async def broker_speaks_mqtt5(url: str, timeout: float = 5.0) -> bool:
    """Whether the broker at `url` accepts an MQTT 5 connection (one short connection, nothing else).

    False when it refuses MQTT 5 but accepts 3.1.1 (e.g. the embedded amqtt); ConnectionError, naming the
    URL, when it accepts neither (not running, wrong port) or does not answer within `timeout` seconds.
    """
    host, port = parse_mqtt_url(url)

    async def refusal(protocol: aiomqtt.ProtocolVersion) -> BaseException | None:
        identifier = f"lgs-probe-{random.getrandbits(48):012x}"
        try:
            async with asyncio.timeout(timeout):
                async with aiomqtt.Client(host, port, identifier=identifier, protocol=protocol,
                                          timeout=timeout, logger=_AIOMQTT_LOGGER):
                    return None
        except (aiomqtt.MqttError, TimeoutError) as exc:
            return exc

    if await refusal(aiomqtt.ProtocolVersion.V5) is None:
        return True
    error = await refusal(aiomqtt.ProtocolVersion.V311)
    if error is None:
        return False
    raise ConnectionError(f"cannot connect to the broker at {url}: {_describe(error) or 'no answer'}")


def _counting_queue(on_full: Callable[[], None]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """An asyncio.Queue class for aiomqtt's incoming queue that reports each message it discards."""

    class CountingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            try:
                super().put_nowait(item)
            except asyncio.QueueFull:
                on_full()
                raise

    return CountingQueue
