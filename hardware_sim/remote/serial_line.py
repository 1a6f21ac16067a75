"""The framed serial line: the host's `SerialLineLink` and the emulator's `SerialLineServer`.

Frames, payloads and the duplicate rule are in `framing`. The same bytes run over a UART (pyserial's
asyncio transport), a pseudo-terminal pair (a serial line on one machine, for rehearsals and tests) or TCP
(a serial-to-Ethernet bridge, or an emulator in another process). The link does one request at a time:
a microcontroller serves one, and a single outstanding seq keeps matching trivial.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import tty
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import serial_asyncio_fast
import structlog

from lunar_gs.hardware_sim.remote.description import DESCRIPTIONS, Scalar
from lunar_gs.hardware_sim.remote.emulated import EmulatedDevice
from lunar_gs.hardware_sim.remote.framing import (
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameType,
    PayloadError,
    dump_payload,
    encode,
    encode_frame,
)
from lunar_gs.hardware_sim.remote.link import (
    CONTRACT_VERSION,
    OUTCOME_CODES,
    CommandOutcome,
    DeviceIdentity,
    DeviceReading,
    LinkError,
    WireEvent,
)

log = structlog.get_logger(__name__)

DEFAULT_BAUD = 115200
READ_CHUNK = 4096
MAX_EVENT_PAGES = 64
"""EVENTS requests one `events()` call makes at most (a 256-event mailbox needs far fewer)."""
PTY_OUT_LIMIT = 64 * 1024
"""Unread bytes the pty server keeps for a host that stopped reading; later replies are dropped."""


@dataclass(frozen=True)
class Endpoint:
    """Where a line goes: `tcp` (host, port) or `serial` (path, baud), or `pty` (server side only)."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    baud: int = DEFAULT_BAUD

    def __str__(self) -> str:
        if self.scheme == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return "pty" if self.scheme == "pty" else f"serial://{self.path}?baud={self.baud}"


def parse_endpoint(url: str, *, server: bool = False) -> Endpoint:
    """`tcp://HOST:PORT`, `serial:///dev/ttyX?baud=N`, a device path, and for a server also `pty` or a
    bare `HOST:PORT` (the emulator settings' form). ValueError for anything else."""
    if server and url == "pty":
        return Endpoint("pty")
    if url.startswith("/"):
        return Endpoint("serial", path=url)
    if server and "://" not in url and ":" in url:
        url = "tcp://" + url
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {url!r}") from exc
        if not parts.hostname or port is None:
            raise ValueError(f"expected tcp://HOST:PORT, got {url!r}")
        return Endpoint("tcp", host=parts.hostname, port=port)
    if parts.scheme == "serial":
        if not parts.path.startswith("/"):
            raise ValueError(f"expected serial:///dev/NAME[?baud=N], got {url!r}")
        baud = parse_qs(parts.query).get("baud", [str(DEFAULT_BAUD)])[0]
        if not baud.isdigit() or int(baud) <= 0:
            raise ValueError(f"bad baud rate {baud!r} in {url!r}")
        return Endpoint("serial", path=parts.path, baud=int(baud))
    forms = "tcp://HOST:PORT, serial:///dev/NAME?baud=N, a device path" + (", pty" if server else "")
    raise ValueError(f"unsupported serial-line address {url!r}; expected {forms}")


async def _open_stream(endpoint: Endpoint,
                       timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if endpoint.scheme == "tcp":
        opening = asyncio.open_connection(endpoint.host, endpoint.port)
    else:
        opening = serial_asyncio_fast.open_serial_connection(url=endpoint.path, baudrate=endpoint.baud)
    return await asyncio.wait_for(opening, timeout_s)


class SerialLineLink:
    """The host's half: one request at a time, matched to its answer by seq, retried with the same seq."""

    def __init__(self, kind: str, url: str, *, timeout_s: float = 1.0, retries: int = 1) -> None:
        if kind not in DESCRIPTIONS:
            raise ValueError(f"no device kind {kind!r}; known: {sorted(DESCRIPTIONS)}")
        if timeout_s <= 0 or retries < 0:
            raise ValueError("timeout_s must be positive and retries not negative")
        self.kind = kind
        self.url = url
        self.endpoint = parse_endpoint(url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.identity: DeviceIdentity | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder()
        self._inbox: deque[Frame] = deque()
        self._lock = asyncio.Lock()
        # a random start, kept across reconnects: a restarted host is unlikely to repeat the device's
        # previous request (which the device would take for a retry)
        self._seq = random.randrange(1, 0x10000)
        self.requests_sent = 0
        self.retries_sent = 0
        self.failures = 0
        """Requests that raised LinkError (timeouts, closed lines, ERROR replies, undecodable answers)."""
        self.stale_frames = 0
        """Valid frames that answered no outstanding request (late answers to a timed-out attempt)."""

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def dropped(self) -> Counter[str]:
        """Frames dropped by reason: the decoder's reasons plus `stale`."""
        out = Counter(self._decoder.dropped)
        if self.stale_frames:
            out["stale"] = self.stale_frames
        return out

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    # -- DeviceLink -----------------------------------------------------------------------------------
    async def connect(self) -> DeviceIdentity:
        """Open the line once, IDENTIFY, check kind and contract; LinkError on any failure."""
        await self.close()
        try:
            self._reader, self._writer = await _open_stream(self.endpoint, self.timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:  # serial.SerialException is an OSError
            self.failures += 1
            raise LinkError(f"cannot open {self.kind} line {self.url}: {exc or type(exc).__name__}") from exc
        self._decoder.reset()
        self._inbox.clear()
        try:
            body = await self._request(FrameType.IDENTIFY)
            identity = DeviceIdentity(kind=_str(body, "kind"),
                                      contract_version=_int(body, "contract_version"),
                                      stepped=_bool(body, "stepped"), model=_str(body, "model", ""),
                                      serial=_str(body, "serial", ""))
        except PayloadError as exc:
            await self.close()
            raise LinkError(f"undecodable IDENTIFY answer from {self.url}: {exc}") from exc
        except LinkError:
            await self.close()
            raise
        if identity.kind != self.kind or identity.contract_version != CONTRACT_VERSION:
            await self.close()
            raise LinkError(f"{self.url} is a {identity.kind} speaking contract {identity.contract_version}; "
                            f"expected a {self.kind} speaking contract {CONTRACT_VERSION}")
        self.identity = identity
        log.info("serial line connected", kind=self.kind, url=self.url, model=identity.model)
        return identity

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.timeout_s)
        except (OSError, TimeoutError):
            pass

    async def step(self, sim_time: float) -> None:
        await self._request(FrameType.STEP, {"t": float(sim_time)})

    async def read(self) -> DeviceReading:
        body = await self._request(FrameType.READ)
        return self._decoded("READ", lambda: DeviceReading(
            sim_time=_float(body, "sim_time"), active=_bool(body, "active"), fields=_fields(body),
            event_head=_int(body, "event_head"), fault_word=_int(body, "fault_word")))

    async def events(self, after_seq: int) -> list[WireEvent]:
        out: list[WireEvent] = []
        cursor = after_seq
        for _ in range(MAX_EVENT_PAGES):
            body = await self._request(FrameType.EVENTS, {"after": int(cursor)})
            page = self._decoded("EVENTS", lambda: [_event(item) for item in _list(body, "events")])
            out.extend(page)
            if not page or not body.get("more"):
                break
            cursor = page[-1].seq
        return out

    async def ack(self, upto_seq: int) -> None:
        await self._request(FrameType.ACK, {"upto": int(upto_seq)})

    async def command(self, seq: int, name: str, args: Mapping[str, Scalar]) -> CommandOutcome:
        body = await self._request(FrameType.COMMAND, {"seq": int(seq), "name": name, "args": dict(args)})
        return self._outcome("COMMAND", body)

    async def kick(self, timeout_s: float) -> None:
        await self._request(FrameType.KICK, {"timeout_s": float(timeout_s)})

    async def inject(self, fault: Mapping[str, Any]) -> CommandOutcome:
        body = await self._request(FrameType.FAULT, {"op": "inject", "fault": dict(fault)})
        return self._outcome("FAULT", body)

    async def clear(self, fault_id: str) -> CommandOutcome:
        body = await self._request(FrameType.FAULT, {"op": "clear", "fault_id": fault_id})
        return self._outcome("FAULT", body)

    # -- inside ---------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1
        return self._seq

    async def _request(self, type_: FrameType, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        async with self._lock:
            try:
                return await self._exchange(type_, body)
            except LinkError:
                self.failures += 1
                raise

    async def _exchange(self, type_: FrameType, body: Mapping[str, Any] | None) -> dict[str, Any]:
        if self._writer is None:
            raise LinkError(f"{self.kind} line {self.url} is not connected")
        seq = self._next_seq()
        try:
            data = encode(type_, seq, body)
        except PayloadError as exc:
            raise LinkError(f"cannot send {type_.name} to {self.url}: {exc}") from exc
        self.requests_sent += 1
        attempts = 1 + self.retries
        for attempt in range(attempts):
            if attempt:
                self.retries_sent += 1
                log.info("serial line retry", kind=self.kind, url=self.url, request=type_.name, seq=seq)
            await self._send(data)
            try:
                frame = await asyncio.wait_for(self._answer(type_, seq), self.timeout_s)
            except TimeoutError:
                continue
            break
        else:
            raise LinkError(f"no answer from the {self.kind} at {self.url} to {type_.name} seq {seq} "
                            f"({attempts} attempt(s) of {self.timeout_s:g} s)")
        try:
            reply = frame.body()
        except PayloadError as exc:
            raise LinkError(f"undecodable {type_.name} answer from {self.url}: {exc}") from exc
        if frame.type == FrameType.ERROR:
            raise LinkError(f"the {self.kind} at {self.url} could not serve {type_.name}: "
                            f"{reply.get('error', reply)}")
        return reply

    async def _send(self, data: bytes) -> None:
        writer = self._writer
        if writer is None:
            raise LinkError(f"{self.kind} line {self.url} is not connected")
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.timeout_s)
        except (OSError, TimeoutError) as exc:
            await self._lost(exc)

    async def _answer(self, type_: FrameType, seq: int) -> Frame:
        wanted = (type_.reply(), FrameType.ERROR)
        while True:
            while self._inbox:
                frame = self._inbox.popleft()
                if frame.seq == seq and frame.type in wanted:
                    return frame
                self.stale_frames += 1
                log.debug("stale frame discarded", url=self.url, type=frame.name, seq=frame.seq, waiting=seq)
            reader = self._reader
            if reader is None:
                raise LinkError(f"{self.kind} line {self.url} is not connected")
            try:
                data = await reader.read(READ_CHUNK)
            except OSError as exc:
                await self._lost(exc)
            if not data:
                await self._lost(None)
            self._inbox.extend(self._decoder.feed(data))

    async def _lost(self, exc: BaseException | None) -> NoReturn:
        """The line went away under a request: drop it (connect() opens it again) and raise."""
        await self.close()
        why = f": {exc}" if exc else ""
        raise LinkError(f"{self.kind} line {self.url} closed{why}") from exc

    def _decoded(self, what: str, build: Any) -> Any:
        try:
            return build()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.failures += 1
            raise LinkError(f"undecodable {what} answer from {self.url}: {exc!r}") from exc

    def _outcome(self, what: str, body: dict[str, Any]) -> CommandOutcome:
        outcome = self._decoded(what, lambda: CommandOutcome(
            seq=_int(body, "seq"), code=_str(body, "code"), reason=_str(body, "reason", ""),
            value=None if body.get("value") is None else _float(body, "value")))
        if outcome.code not in OUTCOME_CODES:
            self.failures += 1
            raise LinkError(f"{what} answer from {self.url} has an unknown code {outcome.code!r}")
        return outcome


# -- payload field checks (shared by both halves) -----------------------------------------------------
_MISSING: Any = object()


def _get(body: Mapping[str, Any], key: str, default: Any) -> Any:
    if key in body:
        return body[key]
    if default is _MISSING:
        raise PayloadError(f"missing {key!r}")
    return default


def _int(body: Mapping[str, Any], key: str, default: Any = _MISSING) -> int:
    value = _get(body, key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{key!r} is not an integer: {value!r}")
    return value


def _float(body: Mapping[str, Any], key: str, default: Any = _MISSING) -> float:
    value = _get(body, key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{key!r} is not a number: {value!r}")
    return float(value)


def _bool(body: Mapping[str, Any], key: str, default: Any = _MISSING) -> bool:
    value = _get(body, key, default)
    if not isinstance(value, bool):
        raise PayloadError(f"{key!r} is not true or false: {value!r}")
    return value


def _str(body: Mapping[str, Any], key: str, default: Any = _MISSING) -> str:
    value = _get(body, key, default)
    if not isinstance(value, str):
        raise PayloadError(f"{key!r} is not a string: {value!r}")
    return value


def _dict(body: Mapping[str, Any], key: str, default: Any = _MISSING) -> dict[str, Any]:
    value = _get(body, key, default)
    if not isinstance(value, dict):
        raise PayloadError(f"{key!r} is not an object: {value!r}")
    return value


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = _get(body, key, _MISSING)
    if not isinstance(value, list):
        raise PayloadError(f"{key!r} is not a list: {value!r}")
    return value


def _fields(body: Mapping[str, Any]) -> dict[str, Scalar]:
    values = _dict(body, "fields")
    for name, value in values.items():
        if not isinstance(value, str | int | float | bool):
            raise PayloadError(f"field {name!r} is not a scalar: {value!r}")
    return values


def _event(item: Any) -> WireEvent:
    if not isinstance(item, dict):
        raise PayloadError(f"an event is not an object: {item!r}")
    return WireEvent(seq=_int(item, "seq"), time=_float(item, "time"), name=_str(item, "name"),
                     severity=_str(item, "severity"), message=_str(item, "message", ""),
                     data=_dict(item, "data", {}), symptom_of=_str(item, "symptom_of", ""))


def events_page(events: list[WireEvent], limit: int = MAX_PAYLOAD) -> dict[str, Any]:
    """As many events, oldest first, as fit in one payload; `more` says whether any were left out."""
    envelope = len(b'{"events":[],"more":false}')
    items: list[dict[str, Any]] = []
    size = envelope
    for event in events:
        item = asdict(event)
        length = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        if size + length > limit:
            if not items:  # one event larger than a frame: send it cut short rather than never
                item.update(message=event.message[:256], data={"truncated": True})
                items.append(item)
            return {"events": items, "more": True}
        items.append(item)
        size += length
    return {"events": items, "more": False}


# -- the emulator's half --------------------------------------------------------------------------------
@dataclass(eq=False)
class _Line:
    """One peer's state: a partial chunk and the previous request with its answer (the duplicate rule)."""

    name: str
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    last_request: Frame | None = None
    last_reply: bytes = b""


class SerialLineServer:
    """Answers framed requests from an EmulatedDevice on TCP, a serial device or a fresh pty pair.

    Never crashes on input: bad frames are dropped and counted, valid frames it cannot serve get ERROR.
    Each TCP connection is its own line; a serial device or the pty is one line for the server's life."""

    def __init__(self, emulated: EmulatedDevice, *, listen: str) -> None:
        self.emulated = emulated
        self.listen = listen
        self.endpoint = parse_endpoint(listen, server=True)
        self.port: int | None = None
        """The bound TCP port (after start)."""
        self.device_path: str | None = None
        """The pty's slave (after start): what the host opens."""
        self.duplicates_replayed = 0
        self.requests_answered = 0
        self.requests_ignored = 0
        """Requests read while the emulated device was not answering (STOP_ANSWERING)."""
        self.replies_dropped = 0
        """Replies the pty could not hold for a host that stopped reading."""
        self.rejected: Counter[str] = Counter()
        """Valid frames not served: `not_a_request` (silently), `unknown_type`, `bad_payload`, `error`."""
        self._lines: set[_Line] = set()
        self._closed_dropped: Counter[str] = Counter()
        self._closed_ok = 0
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._pty: tuple[int, int] | None = None
        self._pty_line: _Line | None = None
        self._pty_out = bytearray()
        self._started = False

    # -- counters -------------------------------------------------------------------------------------
    @property
    def dropped(self) -> Counter[str]:
        """Bad frames by reason (framing.DROP_REASONS), over every line so far."""
        out = Counter(self._closed_dropped)
        for line in self._lines:
            out.update(line.decoder.dropped)
        return out

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def frames_ok(self) -> int:
        return self._closed_ok + sum(line.decoder.frames_ok for line in self._lines)

    # -- life -----------------------------------------------------------------------------------------
    async def __aenter__(self) -> SerialLineServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """For a CLI: serve until cancelled."""
        if not self._started:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        if self._started:
            return
        ep = self.endpoint
        if ep.scheme == "tcp":
            self._tcp = await asyncio.start_server(self._on_tcp, ep.host, ep.port)
            self.port = self._tcp.sockets[0].getsockname()[1]
        elif ep.scheme == "pty":
            self._open_pty()
        else:
            reader, writer = await serial_asyncio_fast.open_serial_connection(url=ep.path, baudrate=ep.baud)
            self._writer = writer
            self._spawn(self._pump(reader, writer, self._new_line(ep.path)))
        self._started = True
        log.info("serial line server listening", kind=self.emulated.description.kind, listen=self.listen,
                 port=self.port, device_path=self.device_path)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._close_pty()

    # -- serving --------------------------------------------------------------------------------------
    def _handle(self, line: _Line, data: bytes) -> list[bytes]:
        """Bytes from a peer -> the replies to send back, in order."""
        replies = []
        for frame in line.decoder.feed(data):
            reply = self._answer(line, frame)
            if reply:
                replies.append(reply)
        return replies

    def _answer(self, line: _Line, frame: Frame) -> bytes:
        if frame.type & 0x80:
            self.rejected["not_a_request"] += 1  # a reply (an echo?) never gets one: no loops
            return b""
        if not self.emulated.answering():
            self.requests_ignored += 1
            return b""
        if frame == line.last_request:
            self.duplicates_replayed += 1
            log.debug("duplicate request replayed", line=line.name, type=frame.name, seq=frame.seq)
            return line.last_reply
        try:
            reply = self._serve(frame)
        except Exception as exc:  # never crash on input: an emulator bug is the host's ERROR, not ours
            log.exception("serial line request failed", line=line.name, type=frame.name, seq=frame.seq)
            self.rejected["error"] += 1
            reply = encode(FrameType.ERROR, frame.seq, {"error": f"{type(exc).__name__}: {exc}"[:512]})
        line.last_request, line.last_reply = frame, reply
        self.requests_answered += 1
        return reply

    def _serve(self, frame: Frame) -> bytes:
        try:
            type_ = FrameType(frame.type)
        except ValueError:
            self.rejected["unknown_type"] += 1
            return encode(FrameType.ERROR, frame.seq, {"error": f"unknown frame type 0x{frame.type:02X}"})
        try:
            body = self._execute(type_, frame.body())
        except PayloadError as exc:
            self.rejected["bad_payload"] += 1
            return encode(FrameType.ERROR, frame.seq, {"error": f"{type_.name}: {exc}"[:512]})
        return encode_frame(Frame(type_.reply(), frame.seq, dump_payload(body)))

    def _execute(self, type_: FrameType, body: dict[str, Any]) -> dict[str, Any]:
        em = self.emulated
        match type_:
            case FrameType.IDENTIFY:
                return asdict(em.identify())
            case FrameType.STEP:
                em.step(_float(body, "t"))
                return {"sim_time": float(getattr(em.model, "time", 0.0))}
            case FrameType.READ:
                reading = em.read()
                return {"sim_time": reading.sim_time, "active": reading.active, "fields": reading.fields,
                        "event_head": reading.event_head, "fault_word": reading.fault_word}
            case FrameType.EVENTS:
                return events_page(em.events(_int(body, "after")))
            case FrameType.ACK:
                em.ack(_int(body, "upto"))
                return {}
            case FrameType.COMMAND:
                return asdict(em.command(_int(body, "seq"), _str(body, "name"), _dict(body, "args", {})))
            case FrameType.KICK:
                em.kick(_float(body, "timeout_s"))
                return {}
            case FrameType.FAULT:
                op = _str(body, "op")
                if op == "inject":
                    return asdict(em.inject(_dict(body, "fault")))
                if op == "clear":
                    return asdict(em.clear(_str(body, "fault_id")))
                raise PayloadError(f"unknown op {op!r}; expected inject or clear")
        raise PayloadError(f"{type_.name} is not a request")

    # -- streams (TCP, a serial device) ---------------------------------------------------------------
    def _new_line(self, name: str) -> _Line:
        line = _Line(name)
        self._lines.add(line)
        return line

    def _retire(self, line: _Line) -> None:
        self._lines.discard(line)
        self._closed_dropped.update(line.decoder.dropped)
        self._closed_ok += line.decoder.frames_ok

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await self._pump(reader, writer, self._new_line(f"tcp {peer}"))
        except asyncio.CancelledError:
            pass  # stop() ends the connection; asyncio's stream callback would report a cancelled task
        finally:
            writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: _Line) -> None:
        try:
            while data := await reader.read(READ_CHUNK):
                replies = self._handle(line, data)
                if replies:
                    writer.write(b"".join(replies))
                    await writer.drain()
        except OSError as exc:
            log.info("serial line peer lost", line=line.name, error=str(exc))
        finally:
            self._retire(line)

    # -- the pseudo-terminal --------------------------------------------------------------------------
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        # raw: no echo (the server would read its own replies), no flow control eating 0x11/0x13, 8 bits;
        # the server keeps the slave open so that the master never sees EIO while no host has it open
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty = (master, slave)
        self.device_path = os.ttyname(slave)
        self._pty_line = self._new_line(self.device_path)
        asyncio.get_running_loop().add_reader(master, self._pty_readable)

    def _close_pty(self) -> None:
        if self._pty is None:
            return
        master, slave = self._pty
        loop = asyncio.get_running_loop()
        loop.remove_reader(master)
        loop.remove_writer(master)
        for fd in (master, slave):
            os.close(fd)
        self._pty = None
        self._pty_out.clear()
        if self._pty_line is not None:
            self._retire(self._pty_line)
            self._pty_line = None

    def _pty_readable(self) -> None:
        assert self._pty is not None and self._pty_line is not None
        try:
            data = os.read(self._pty[0], READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.warning("pty read failed", error=str(exc))
            return
        for reply in self._handle(self._pty_line, data):
            self._pty_write(reply)

    def _pty_write(self, data: bytes) -> None:
        if self._pty_out:
            if len(self._pty_out) + len(data) > PTY_OUT_LIMIT:
                self.replies_dropped += 1
                return
            self._pty_out += data
            return
        self._pty_out += data
        self._pty_flush()

    def _pty_flush(self) -> None:
        assert self._pty is not None
        master = self._pty[0]
        try:
            sent = os.write(master, self._pty_out)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            log.warning("pty write failed", error=str(exc))
            sent = len(self._pty_out)
        del self._pty_out[:sent]
        loop = asyncio.get_running_loop()
        if self._pty_out:
            loop.add_writer(master, self._pty_flush)
        else:
            loop.remove_writer(master)
