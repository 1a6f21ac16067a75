"""The framed serial line's frames: layout, types, payloads, checksum and delimiting (pure, no I/O).

Why this shape: a sample container's seal controller is a microcontroller on a UART, where bytes get lost,
flipped or duplicated and a line has no message boundaries of its own. COBS gives unambiguous boundaries
(0x00 never occurs inside an encoded frame, so a receiver resynchronises at the next 0x00 after any
damage), the CRC catches damaged frames, and the sequence number lets a retried request be answered
again without being executed again. The payloads are compact UTF-8 JSON: small enough for the device's
few fields, readable on a logic analyser, and built from the same `description` tables as every other
wire. docs/devices/container-serial.md is this docstring for the bench (a unit test keeps them equal).

Frame, before COBS (all integers big-endian)::

    offset  size  field
    0       1     version   PROTOCOL_VERSION (1)
    1       1     type      FrameType
    2       2     seq       u16: a response carries its request's seq
    4       2     length    u16: payload bytes, at most MAX_PAYLOAD (4096)
    6       n     payload   compact UTF-8 JSON object (an empty payload means {})
    6+n     2     crc       CRC-16/CCITT-FALSE (CCSDS: poly 0x1021, init 0xFFFF) over bytes 0 .. 6+n-1

On the line: 0x00, COBS(frame), 0x00. The leading delimiter ends whatever noise preceded the frame so
that the frame itself survives; empty chunks between delimiters are ignored.

A receiver drops (and counts, by reason) a chunk that is not a frame: `bad_cobs` (not valid COBS),
`truncated` (shorter than header and CRC, or than its declared length), `bad_length` (longer than its
declared length), `oversize` (declares more than MAX_PAYLOAD, or runs past MAX_ENCODED bytes without a
delimiter: the rest up to the next 0x00 is skipped, so a runaway stream cannot grow memory),
`bad_crc`, `wrong_version`. The checks run in that order.

Types and payloads. A request type has bit 7 clear; its response is the same type with bit 7 set (so a
host can tell a late answer to another request from its own), or ERROR::

    0x01 IDENTIFY  {}
    0x81           {"kind": str, "contract_version": int, "stepped": bool, "model": str, "serial": str}
    0x02 STEP      {"t": float}                      advance to simulated time t (emulator-only)
    0x82           {"sim_time": float}
    0x03 READ      {}
    0x83           {"sim_time": float, "active": bool, "fields": {name: value}, "event_head": int,
                    "fault_word": int}               fields as the description's state table; enum
                                                     fields by name, text as UTF-8 strings
    0x04 EVENTS    {"after": int}
    0x84           {"events": [{"seq": int, "time": float, "name": str, "severity": str, "message": str,
                    "data": {..}, "symptom_of": str}], "more": bool}
                                                     oldest first; `more`: the rest did not fit in one
                                                     payload, ask again after the last seq received
    0x05 ACK       {"upto": int}                     the host saved every event up to this seq
    0x85           {}
    0x06 COMMAND   {"seq": int, "name": str, "args": {name: value}}
                                                     `seq` is the command's own sequence number: the
                                                     device executes a command seq once
    0x86           {"seq": int, "code": str, "reason": str, "value": float | null}
                                                     code one of link.OUTCOME_CODES
    0x07 KICK      {"timeout_s": float}              the host's watchdog (0: off)
    0x87           {}
    0x08 FAULT     {"op": "inject", "fault": {"kind": str, "fault_id": str, "params": {..}, ...}}
                   or {"op": "clear", "fault_id": str}   emulator-only
    0x88           as 0x86
    0xFF ERROR     {"error": str}                    the request was a valid frame the device cannot
                                                     serve (unknown type, bad payload)

Duplicates: a request identical to the previous one on the line (same type, seq and payload) is a
retry: the device re-sends its previous response byte for byte and executes nothing. A host therefore
never reuses a seq for a different request; it counts 1..65535 and wraps.
"""

from __future__ import annotations

import binascii
import json
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import structlog
from cobs import cobs

from lunar_gs.hardware_sim.remote.link import json_object

log = structlog.get_logger(__name__)

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">BBHH")
CRC = struct.Struct(">H")
MAX_PAYLOAD = 4096
MAX_FRAME = HEADER.size + MAX_PAYLOAD + CRC.size
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1
"""COBS adds at most one byte per 254, plus one: no valid frame is longer on the line."""
DELIMITER = b"\x00"
RESPONSE_BIT = 0x80
DROP_REASONS = ("bad_cobs", "truncated", "bad_length", "oversize", "bad_crc", "wrong_version")


class FrameType(IntEnum):
    IDENTIFY = 0x01
    STEP = 0x02
    READ = 0x03
    EVENTS = 0x04
    ACK = 0x05
    COMMAND = 0x06
    KICK = 0x07
    FAULT = 0x08
    IDENTIFY_REPLY = 0x81
    STEP_REPLY = 0x82
    READ_REPLY = 0x83
    EVENTS_REPLY = 0x84
    ACK_REPLY = 0x85
    COMMAND_REPLY = 0x86
    KICK_REPLY = 0x87
    FAULT_REPLY = 0x88
    ERROR = 0xFF

    @property
    def is_request(self) -> bool:
        return not self & RESPONSE_BIT

    def reply(self) -> FrameType:
        """The response type of a request type."""
        if not self.is_request:
            raise ValueError(f"{self.name} is not a request")
        return FrameType(self | RESPONSE_BIT)


REQUESTS = tuple(t for t in FrameType if t.is_request)


class PayloadError(ValueError):
    """A payload that is not a JSON object, or one too large for a frame."""


@dataclass(frozen=True)
class Frame:
    type: int
    """A FrameType when known; a decoder passes unknown types on (the server answers them with ERROR)."""
    seq: int
    payload: bytes = b""

    def body(self) -> dict[str, Any]:
        return load_payload(self.payload)

    @property
    def name(self) -> str:
        try:
            return FrameType(self.type).name
        except ValueError:
            return f"0x{self.type:02X}"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, the CCSDS frame check: poly 0x1021, init 0xFFFF, no reflection, no xor-out."""
    return binascii.crc_hqx(data, 0xFFFF)


def dump_payload(body: Mapping[str, Any] | None) -> bytes:
    """Compact UTF-8 JSON; PayloadError if a value is not JSON or the result exceeds MAX_PAYLOAD."""
    if not body:
        return b""
    try:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from exc
    if len(data) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD}")
    return data


def load_payload(data: bytes) -> dict[str, Any]:
    if not data:
        return {}
    try:
        return json_object(data)
    except ValueError as exc:
        raise PayloadError(str(exc)) from None


def frame_bytes(frame: Frame, *, version: int = PROTOCOL_VERSION) -> bytes:
    """Header, payload and CRC: the frame before COBS (what the CRC covers, plus the CRC)."""
    if not 0 <= frame.type <= 0xFF or not 0 <= frame.seq <= 0xFFFF or not 0 <= version <= 0xFF:
        raise ValueError(f"type, seq or version out of range: {frame}")
    if len(frame.payload) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(version, frame.type, frame.seq, len(frame.payload)) + frame.payload
    return head + CRC.pack(crc16(head))


def encode_frame(frame: Frame, *, version: int = PROTOCOL_VERSION) -> bytes:
    """The frame as sent on the line: 0x00, COBS(frame), 0x00."""
    return DELIMITER + cobs.encode(frame_bytes(frame, version=version)) + DELIMITER


def encode(type_: int, seq: int, body: Mapping[str, Any] | None = None) -> bytes:
    """A frame on the line from a type, a seq and a JSON body."""
    return encode_frame(Frame(type_, seq, dump_payload(body)))


class FrameDecoder:
    """Splits a byte stream on 0x00 and returns the valid frames; drops and counts everything else.

    Memory is bounded: at most MAX_ENCODED bytes wait for a delimiter."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.max_encoded = HEADER.size + max_payload + CRC.size
        self.max_encoded += self.max_encoded // 254 + 1
        self.dropped: Counter[str] = Counter()
        self.frames_ok = 0
        self._buf = bytearray()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes waiting for their delimiter."""
        return len(self._buf)

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    def reset(self) -> None:
        """Forget a partial chunk (a new peer on the line); the counters stay."""
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        view = bytes(data)
        start = 0
        while (end := view.find(0, start)) >= 0:
            part = view[start:end]
            start = end + 1
            if self._skipping:  # the end of a runaway chunk, counted when it overran
                self._skipping = False
                continue
            chunk = bytes(self._buf) + part if self._buf else part
            self._buf.clear()
            if not chunk:
                continue
            if len(chunk) > self.max_encoded:
                self._drop("oversize", len(chunk))
                continue
            frame = self._decode(chunk)
            if frame is not None:
                out.append(frame)
        if not self._skipping and start < len(view):
            self._buf += view[start:]
            if len(self._buf) > self.max_encoded:
                self._drop("oversize", len(self._buf))
                self._buf.clear()
                self._skipping = True
        return out

    def _drop(self, reason: str, size: int) -> None:
        self.dropped[reason] += 1
        log.debug("frame dropped", reason=reason, size=size)

    def _decode(self, chunk: bytes) -> Frame | None:
        try:
            raw = cobs.decode(chunk)
        except cobs.DecodeError:
            self._drop("bad_cobs", len(chunk))
            return None
        if len(raw) < HEADER.size + CRC.size:
            self._drop("truncated", len(raw))
            return None
        version, type_, seq, length = HEADER.unpack_from(raw)
        if length > self.max_payload:
            self._drop("oversize", len(raw))
            return None
        expected = HEADER.size + length + CRC.size
        if len(raw) != expected:
            self._drop("truncated" if len(raw) < expected else "bad_length", len(raw))
            return None
        (crc,) = CRC.unpack_from(raw, expected - CRC.size)
        if crc != crc16(raw[:-CRC.size]):
            self._drop("bad_crc", len(raw))
            return None
        if version != PROTOCOL_VERSION:
            self._drop("wrong_version", len(raw))
            return None
        self.frames_ok += 1
        return Frame(type_, seq, raw[HEADER.size:HEADER.size + length])
