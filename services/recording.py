"""Record one mission's MQTT traffic to a file, and replay it: the record-and-replay part of the test kit.

A **Recorder** subscribes to everything of one mission (`lgs/v1/{mission}/#`) at QoS 2, so each message
keeps the QoS its publisher chose, and with MQTT 5 "retain as published" where the broker speaks MQTT 5,
so a live retained publish keeps its retain flag (over MQTT 3.1.1 only the retained messages the broker
sends at subscription time have it; the header says which). Retained messages already on the broker are
recorded first, with retain=True. Each message is written and flushed to the OS as it arrives, so a
recorder stopped any way at all (Ctrl-C, SIGTERM, SIGKILL) leaves a file that is whole up to its last
message.

A **Replayer** publishes a recording's messages through a `Bus`, each with its topic, bytes, QoS and
retain flag, in recorded order, each at `start + (t_i - t_0) / rate` against one monotonic start (never by
sleeping for the gaps, so scheduling errors do not add up), optionally a subset (`topics` filters) and
under another mission name. It publishes retained exactly the messages recorded as retained, so it never
clears or replaces retained state it did not record.

File format, version 1: UTF-8 JSON lines, append-only. The first line is the header::

    {"format": "lunar-gs-recording", "version": 1, "mission": "m1", "topic_filter": "lgs/v1/m1/#",
     "broker": "mqtt://127.0.0.1:1883", "started_wall": 1732650000.123, "retain_as_published": true,
     "recorder": "lunar-gs 0.1.0"}

then one line per message, in arrival order::

    {"t": 0.004512, "wall": 1732650000.128, "mission_time": 1717280596.0, "topic": "lgs/v1/m1/sys/clock",
     "qos": 1, "retain": true, "payload": "eyJzY2hlbWFfbmFtZSI6..."}

`t` is seconds since `started_wall` on the recorder's monotonic clock (the replay schedule: immune to wall
clock steps), `wall` the Unix time of receipt, `mission_time` the mission's simulated time at receipt
(from its retained clock; null until the clock is known), `payload` the exact bytes in standard base64.
Readers ignore keys they do not know. A last line without its newline is a write cut short: the reader
drops it with a warning. Any other line that does not decode is an error naming the file and line.

Order: a recording holds the order in which the recorder received messages, and the replayer publishes in
that order over one connection. MQTT guarantees order only within one QoS level, and that is what a
subscriber of the replay is sure to see again. Across levels: a QoS 2 message is passed on at its PUBREL,
by the broker and again by the receiving client (paho), so QoS 0/1 messages sent within a round trip or two
after it overtake it, when recorded and when replayed alike (Lunar GS itself publishes QoS 0 and 1 only);
QoS 0 and 1 keep their relative order while the subscriber keeps up (Mosquitto holds back QoS >= 1 messages
beyond 20 in flight per client, not QoS 0). The embedded amqtt broker (0.12) delivers every message at the
subscription's QoS rather than the lower of the two, so a recording made through it says QoS 2 throughout;
it speaks MQTT 3.1.1 only, too (no retain as published).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Self

from lunar_gs import __version__
from lunar_gs.protocols.codec import DecodeError, JsonCodec
from lunar_gs.protocols.system import ClockState
from lunar_gs.protocols.topics import ROOT, Topics, validate_mission
from lunar_gs.services.runtime.bus import MAX_PAYLOAD_BYTES, Bus, IncomingMessage, broker_speaks_mqtt5
from lunar_gs.services.runtime.clock import SimClock
from lunar_gs.services.runtime.logging import get_logger

FORMAT_NAME: Final = "lunar-gs-recording"
FORMAT_VERSION: Final = 1
RECORDER_MAX_INCOMING: Final = 100_000  # the recorder's queue: a burst is buffered, not dropped
REPLAY_MAX_PENDING: Final = 1024  # messages queued in the bus before the replayer waits for them to go
_ROOT_LEVELS: Final = ROOT.split("/")

_log = get_logger(component="recording")


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the file and, where it applies, the line."""


# ---- the file format ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingHeader:
    """The first line of a recording: what was recorded, from where, and how faithful its retain flags are."""

    mission: str
    topic_filter: str
    broker: str
    started_wall: float
    retain_as_published: bool
    """True: every retain flag is as published (MQTT 5). False (MQTT 3.1.1): only retained messages the
    broker sent at subscription time are marked retained; live retained publishes are not."""
    recorder: str = f"lunar-gs {__version__}"
    version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One message as it arrived at the recorder."""

    t: float
    """Seconds since the recording started (monotonic clock): what the replay schedule follows."""
    wall: float
    """Unix time of receipt."""
    mission_time: float | None
    """The mission's simulated time at receipt; None before its clock was known."""
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Recording:
    """A recording read back: its header and messages in recorded order."""

    path: Path
    header: RecordingHeader
    messages: list[RecordedMessage]
    truncated: bool = False
    """The last line was cut short (a recorder killed mid-write) and was left out."""


def encode_header(header: RecordingHeader) -> bytes:
    fields = {
        "format": FORMAT_NAME,
        "version": header.version,
        "mission": header.mission,
        "topic_filter": header.topic_filter,
        "broker": header.broker,
        "started_wall": header.started_wall,
        "retain_as_published": header.retain_as_published,
        "recorder": header.recorder,
    }
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def encode_message(message: RecordedMessage) -> bytes:
    fields = {
        "t": message.t,
        "wall": message.wall,
        "mission_time": message.mission_time,
        "topic": message.topic,
        "qos": message.qos,
        "retain": message.retain,
        "payload": base64.b64encode(message.payload).decode("ascii"),
    }
    return json.dumps(fields, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise ValueError(f"JSON beyond limits: {str(exc)[:100]}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _number(raw: dict[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = raw.get(key)
    if value is None and optional and key in raw:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number{' or null' if optional else ''}, got {value!r}")
    return float(value)


def _string(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} must be true or false, got {value!r}")
    return value


def decode_header(line: bytes) -> RecordingHeader:
    """The header line, or ValueError saying what is wrong with it."""
    raw = _object(line)
    if raw.get("format") != FORMAT_NAME:
        raise ValueError(f"not a Lunar GS recording (format {raw.get('format')!r}, expected {FORMAT_NAME!r})")
    version = raw.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(f"recording format version {version!r} is not supported (this reader reads "
                         f"version {FORMAT_VERSION}; a newer lunar-gs may read it)")
    started = _number(raw, "started_wall")
    assert started is not None
    return RecordingHeader(
        mission=_string(raw, "mission"),
        topic_filter=_string(raw, "topic_filter"),
        broker=_string(raw, "broker"),
        started_wall=started,
        retain_as_published=_flag(raw, "retain_as_published"),
        recorder=str(raw.get("recorder", "")),
        version=FORMAT_VERSION,
    )


def decode_message(line: bytes) -> RecordedMessage:
    """One message line, or ValueError saying what is wrong with it."""
    raw = _object(line)
    t, wall = _number(raw, "t"), _number(raw, "wall")
    assert t is not None and wall is not None
    topic = _string(raw, "topic")
    if not topic or "+" in topic or "#" in topic:
        raise ValueError(f"'topic' must be a topic name without wildcards, got {topic!r}")
    qos = raw.get("qos")
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise ValueError(f"'qos' must be 0, 1 or 2, got {qos!r}")
    try:
        payload = base64.b64decode(_string(raw, "payload"), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"'payload' is not base64: {exc}") from None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the MQTT limit")
    return RecordedMessage(t=t, wall=wall, mission_time=_number(raw, "mission_time", optional=True),
                           topic=topic, payload=payload, qos=qos, retain=_flag(raw, "retain"))


def read_recording(path: Path | str) -> Recording:
    """Read a whole recording, checking every line.

    A last line without its newline that does not decode was cut short by a recorder that was killed:
    it is left out with a warning (`Recording.truncated`). Anything else wrong raises RecordingError with
    `file:line: what`; a missing or unreadable file raises RecordingError too.
    """
    path = Path(path)
    messages: list[RecordedMessage] = []
    header: RecordingHeader | None = None
    truncated = False
    try:
        with path.open("rb") as source:
            for number, line in enumerate(source, start=1):
                complete = line.endswith(b"\n")
                try:
                    if header is None:
                        header = decode_header(line)
                    else:
                        messages.append(decode_message(line))
                except ValueError as exc:
                    if complete or header is None:
                        what = "header: " if header is None else ""
                        raise RecordingError(f"{path}:{number}: {what}{exc}") from None
                    truncated = True
                    _log.warning("recording_truncated", path=str(path), line=number, kept=len(messages))
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from None
    if header is None:
        raise RecordingError(f"{path}:1: empty file, not a Lunar GS recording")
    return Recording(path, header, messages, truncated)


# ---- topic filters and the replay schedule ------------------------------------------------------------


def validate_filter(topic_filter: str) -> str:
    """Return `topic_filter` if it is a valid MQTT filter, else raise ValueError saying why."""
    if not isinstance(topic_filter, str) or not topic_filter:
        raise ValueError("a topic filter must be a non-empty string")
    if "\0" in topic_filter:
        raise ValueError(f"topic filter {topic_filter!r} contains a NUL character")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"topic filter {topic_filter!r}: '#' must be a whole level, and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {topic_filter!r}: '+' must be a whole level")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches the MQTT filter `topic_filter` (`+` one level, `#` any remaining levels,
    including none: `a/#` matches `a`). Wildcards at the start never match a `$` topic."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels):
            return False
        if level != "+" and level != levels[index]:
            return False
    return len(wanted) == len(levels)


def rewrite_mission(topic: str, mission: str) -> str:
    """`topic` with its mission segment (`lgs/v1/{mission}/...`) replaced."""
    levels = topic.split("/", 3)
    if len(levels) < 3 or levels[:2] != _ROOT_LEVELS:
        raise ValueError(f"topic {topic!r} is not under {ROOT}/{{mission}}: cannot change its mission")
    levels[2] = mission
    return "/".join(levels)


def check_rate(rate: float) -> float:
    """A replay rate: a positive number; `math.inf` replays as fast as the bus takes messages."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ValueError(f"rate must be a positive number (inf: as fast as possible), got {rate!r}")
    return float(rate)


@dataclass(frozen=True, slots=True)
class ScheduledMessage:
    """A message of the replay: when (seconds after the replay's start) and what to publish."""

    at: float
    topic: str
    payload: bytes
    qos: int
    retain: bool


def plan_replay(
    messages: Iterable[RecordedMessage],
    *,
    rate: float = 1.0,
    topics: Sequence[str] = (),
    mission: str | None = None,
) -> list[ScheduledMessage]:
    """The replay schedule: the messages `topics` keeps (all if empty), in recorded order, at
    `(t_i - t_0) / rate` where t_0 is the first kept message's time, under `mission` if given.

    A filter keeps a message if it matches its topic as recorded or as it will be published (with the new
    mission), so both `lgs/v1/OLD/...` and `lgs/v1/NEW/...` filters work with `mission=NEW`.
    """
    rate = check_rate(rate)
    filters = [validate_filter(f) for f in topics]
    if mission is not None:
        validate_mission(mission)
    plan: list[ScheduledMessage] = []
    t0: float | None = None
    for message in messages:
        topic = message.topic if mission is None else rewrite_mission(message.topic, mission)
        if filters and not any(topic_matches(f, message.topic) or topic_matches(f, topic) for f in filters):
            continue
        if t0 is None:
            t0 = message.t
        at = (message.t - t0) / rate if math.isfinite(rate) else 0.0
        plan.append(ScheduledMessage(at, topic, message.payload, message.qos, message.retain))
    return plan


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of `values` by linear interpolation; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ---- recording ------------------------------------------------------------------------------------------


@dataclass
class RecordingSummary:
    """What a recorder has written so far."""

    path: Path
    mission: str
    retain_as_published: bool
    messages: int = 0
    retained: int = 0
    payload_bytes: int = 0
    topics: int = 0
    duration_s: float = 0.0
    """Seconds recorded: up to the last message while recording, up to the stop once stopped."""
    lost: int = 0
    """Messages the recorder's bus had to discard (its incoming queue overflowed)."""
    write_errors: int = 0
    first_mission_time: float | None = None
    last_mission_time: float | None = None


class Recorder:
    """Records everything of one mission to `path` (a new file) until the context is left.

    `mqtt5=None` asks the broker first (`broker_speaks_mqtt5`) and uses MQTT 5 where it can; True or False
    forces the choice. Entering raises ConnectionError if the broker cannot be reached then, FileExistsError
    if `path` exists. A recorder owns its bus: its subscription (QoS 2, retain as published) is its own.
    If the link drops, the bus reconnects and subscribes again, and the broker sends the retained messages
    again: they are recorded again (retained), as any subscriber would get them; what was published while
    the link was down is not in the recording. Reusable neither after leaving nor re-entrant.
    """

    def __init__(
        self,
        url: str,
        mission: str,
        path: Path | str,
        *,
        mqtt5: bool | None = None,
        client_id: str | None = None,
        max_incoming: int = RECORDER_MAX_INCOMING,
    ) -> None:
        self.url = url
        self.topics = Topics(validate_mission(mission))
        self.path = Path(path)
        self.topic_filter = f"{self.topics.prefix}/#"
        self._mqtt5 = mqtt5
        self._client_id = client_id or f"lgs-recorder-{mission}-{uuid.uuid4().hex[:8]}"
        self._max_incoming = max_incoming
        self._clock = SimClock()
        self._codec = JsonCodec()
        self._file: IO[bytes] | None = None
        self._bus: Bus | None = None
        self._start = 0.0
        self._topics_seen: set[str] = set()
        self._summary = RecordingSummary(self.path, mission, retain_as_published=bool(mqtt5))
        self._log = get_logger(component="recorder", mission=mission, path=str(self.path))

    @property
    def summary(self) -> RecordingSummary:
        if self._bus is not None:
            self._summary.lost = self._bus.stats.incoming_overflow
        return self._summary

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the recorder is subscribed (TimeoutError after `timeout` seconds)."""
        if self._bus is None:
            raise RuntimeError("enter the recorder first")
        await self._bus.wait_connected(timeout)

    async def __aenter__(self) -> Self:
        if self._file is not None or self._bus is not None:
            raise RuntimeError("this Recorder has already been entered; it is not reusable")
        mqtt5 = self._mqtt5 if self._mqtt5 is not None else await broker_speaks_mqtt5(self.url)
        self._summary.retain_as_published = mqtt5
        if not mqtt5:
            self._log.warning("recording_without_retain_as_published", broker=self.url,
                              detail="over MQTT 3.1.1 live retained publishes are recorded with retain=false")
        self._file = self.path.open("xb")
        started_wall = time.time()
        self._start = time.monotonic()
        header = RecordingHeader(mission=self.topics.mission, topic_filter=self.topic_filter, broker=self.url,
                                 started_wall=started_wall, retain_as_published=mqtt5)
        self._file.write(encode_header(header))
        self._file.flush()
        bus = Bus(self.url, self._client_id, mqtt5=mqtt5, max_incoming=self._max_incoming)
        bus.subscribe(self.topic_filter, self._on_message, qos=2, retain_as_published=mqtt5)
        self._bus = bus
        try:
            await bus.__aenter__()
        except BaseException:
            self._file.close()
            raise
        self._log.info("recording_started", topic_filter=self.topic_filter, mqtt5=mqtt5)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._bus is not None:
                await self._bus.close()
        finally:
            self._summary.duration_s = time.monotonic() - self._start
            if self._file is not None and not self._file.closed:
                self._file.flush()
                with contextlib.suppress(OSError):  # e.g. a pipe: the data was flushed to the OS anyway
                    os.fsync(self._file.fileno())
                self._file.close()
        self._log.info("recording_stopped", **{k: v for k, v in vars(self.summary).items() if k != "path"})

    async def _on_message(self, message: IncomingMessage) -> None:
        t = time.monotonic() - self._start
        wall = time.time()
        if message.topic == self.topics.clock and message.payload:
            self._follow_clock(message.payload)
        mission_time = self._clock.now() if self._clock.ready else None
        record = RecordedMessage(t=t, wall=wall, mission_time=mission_time, topic=message.topic,
                                 payload=message.payload, qos=message.qos, retain=message.retain)
        assert self._file is not None
        try:
            self._file.write(encode_message(record))
            self._file.flush()  # to the OS at once: a killed recorder leaves every message it received
        except (OSError, ValueError) as exc:  # disk full, file closed under us
            self._summary.write_errors += 1
            if self._summary.write_errors == 1 or self._summary.write_errors % 1000 == 0:
                self._log.error("recording_write_failed", errors=self._summary.write_errors, reason=str(exc))
            return
        summary = self._summary
        summary.messages += 1
        summary.retained += message.retain
        summary.payload_bytes += len(message.payload)
        summary.duration_s = t
        if message.topic not in self._topics_seen:
            self._topics_seen.add(message.topic)
            summary.topics = len(self._topics_seen)
        if mission_time is not None:
            if summary.first_mission_time is None:
                summary.first_mission_time = mission_time
            summary.last_mission_time = mission_time

    def _follow_clock(self, payload: bytes) -> None:
        try:
            state = self._codec.decode(payload)
        except DecodeError as exc:
            self._log.warning("clock_not_decoded", reason=str(exc))
            return
        if isinstance(state, ClockState):
            self._clock.update(state)


# ---- replay ---------------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What a replay did. Lateness is how long after its scheduled time each message was handed to the bus."""

    recorded: int = 0
    """Messages in the recording."""
    selected: int = 0
    """Messages the topic filters kept."""
    published: int = 0
    retained: int = 0
    by_qos: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0})
    dropped: int = 0
    """Messages the bus dropped during the replay (QoS 0 while disconnected, outbox overflow)."""
    rate: float = 1.0
    schedule_s: float = 0.0
    """The planned span, first to last message."""
    duration_s: float = 0.0
    """Wall time from the start until the bus had sent everything."""
    max_late_ms: float | None = None
    p99_late_ms: float | None = None
    topics: list[str] = field(default_factory=list)
    mission: str | None = None


class Replayer:
    """Publishes recordings through `bus` (entered by the caller; the replayer waits until it is connected).

    For timing that holds to the millisecond give it a `Bus(..., tcp_nodelay=True)`: with Nagle's algorithm
    on, a small publish can wait for the broker's delayed ACK (up to 40 ms on Linux) before it leaves.

    `rate` > 1 replays faster, < 1 slower, `math.inf` as fast as the bus takes messages; `topics` (MQTT
    filters) keeps a subset; `mission` publishes under another mission name. Bad arguments raise ValueError
    (TopicError for the mission) here, before anything is published.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        rate: float = 1.0,
        topics: Sequence[str] = (),
        mission: str | None = None,
        max_pending: int = REPLAY_MAX_PENDING,
    ) -> None:
        self._bus = bus
        self.rate = check_rate(rate)
        self.topics = [validate_filter(f) for f in topics]
        self.mission = validate_mission(mission) if mission is not None else None
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self.progress = ReplayReport()
        """The report of the replay under way (or the last one), updated as messages go."""

    async def replay(self, recording: Recording | Iterable[RecordedMessage]) -> ReplayReport:
        messages = recording.messages if isinstance(recording, Recording) else list(recording)
        plan = plan_replay(messages, rate=self.rate, topics=self.topics, mission=self.mission)
        report = self.progress = ReplayReport(
            recorded=len(messages), selected=len(plan), rate=self.rate,
            schedule_s=plan[-1].at if plan else 0.0, topics=list(self.topics), mission=self.mission)
        bus = self._bus
        await bus.wait_connected()
        stats = bus.stats
        dropped_before = stats.dropped_while_disconnected + stats.outbox_overflow
        loop = asyncio.get_running_loop()
        late: list[float] = []
        start = loop.time()
        try:
            for item in plan:
                due = start + item.at
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                late.append(loop.time() - due)
                await bus.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
                report.published += 1
                report.retained += item.retain
                report.by_qos[item.qos] += 1
                if bus.outbox_size >= self._max_pending:
                    await bus.flush()  # unthrottled: let the bus catch up rather than overflow its outbox
            await bus.flush()
        finally:
            report.duration_s = loop.time() - start
            report.dropped = stats.dropped_while_disconnected + stats.outbox_overflow - dropped_before
            if late:
                report.max_late_ms = max(late) * 1000.0
                p99 = percentile(late, 0.99)
                report.p99_late_ms = None if p99 is None else p99 * 1000.0
        _log.info("replay_done", **{k: v for k, v in vars(report).items() if k != "by_qos"})
        return report


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Recorder",
    "RecordedMessage",
    "Recording",
    "RecordingError",
    "RecordingHeader",
    "RecordingSummary",
    "Replayer",
    "ReplayReport",
    "ScheduledMessage",
    "check_rate",
    "decode_header",
    "decode_message",
    "encode_header",
    "encode_message",
    "percentile",
    "plan_replay",
    "read_recording",
    "rewrite_mission",
    "topic_matches",
    "validate_filter",
]
