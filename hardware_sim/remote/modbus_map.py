"""The Modbus TCP register map of a remotely driven device, as data: one table per kind, no I/O.

Why as data: the client's decoder, the emulator's encoder and the published documentation are all derived
from these tables (themselves derived from `description`), so the three cannot disagree. The blocks:

- input registers (FC04): identity, the measurement snapshot (one read, one consistent snapshot), the
  command result, the fault result and the event mailbox;
- holding registers (FC03 read-back, FC16 write): the command block (one write per command), the mailbox
  cursor and acknowledgement, the watchdog, and the emulator-only step and fault blocks.

Input and holding registers are separate Modbus tables; their blocks still sit at distinct addresses so
that an address alone names a register (in the documentation and on a device with one shared table).
Words of a 32- or 64-bit value are sent most significant first ("big", the default) or least significant
first ("little"); bytes within a register are always big-endian, as Modbus says. Text is not word
ordered: its UTF-8 bytes fill the registers in order, two per register, zero padded.

Run `python -m lunar_gs.hardware_sim.remote.modbus_map drill` to print the documentation of a map.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from lunar_gs.hardware_sim.remote.description import (
    DESCRIPTIONS,
    DeviceDescription,
    FieldSpec,
    Scalar,
    check_value,
)
from lunar_gs.hardware_sim.remote.link import (
    CONTRACT_VERSION,
    OUTCOME_CODES,
    CommandOutcome,
    DeviceIdentity,
    DeviceReading,
    WireEvent,
    json_object,
)

WordOrder = Literal["big", "little"]
Table = Literal["input", "holding"]

MAP_VERSION = 1
"""Bumped whenever an address or a layout below changes; a client refuses a device of another version."""
MAGIC = "LGS"
KIND_CODES = {"drill": 1, "arm": 2, "container": 3}
ORDER_PROBE = 0x0001_0002
"""A u32 in the identity block: read with the wrong word order it reads 0x00020001, so a client notices."""

MAX_READ_REGISTERS = 125
"""The most registers one FC03/FC04 request may read (Modbus application protocol, 6.3/6.4)."""
MAX_WRITE_REGISTERS = 123
"""The most registers one FC16 request may write (Modbus application protocol, 6.12)."""

REASON_BYTES = 160
"""A refusal's reason is cut (at a character boundary) to this many UTF-8 bytes."""
EVENT_PAYLOAD_BYTES = 1000
"""An event's JSON payload is at most this long; a longer message is shortened to fit."""
FAULT_PAYLOAD_BYTES = 512

# Block base addresses (protocol addresses, 0-based, as sent in the PDU).
IR_IDENTITY = 0
IR_SNAPSHOT = 100
IR_RESULT = 300
IR_FAULT_RESULT = 400
IR_EVENT = 500
HR_COMMAND = 2000
HR_MAILBOX = 2200
HR_WATCHDOG = 2300
HR_STEP = 2400
HR_FAULT = 2500


class DecodeError(ValueError):
    """Registers that do not decode as the map says (wrong length, out-of-range value, bad UTF-8 or JSON)."""


# -- single values ----------------------------------------------------------------------------------------
def words_of(spec: FieldSpec) -> int:
    """How many 16-bit registers a field of this type occupies."""
    match spec.type:
        case "f64":
            return 4
        case "u32":
            return 2
        case "u16" | "bool" | "enum":
            return 1
        case "text":
            return (spec.size + 1) // 2
    raise ValueError(f"{spec.name}: unknown field type {spec.type!r}")


def _order(words: list[int], word_order: WordOrder) -> list[int]:
    if word_order == "big":
        return words
    if word_order == "little":
        return words[::-1]
    raise ValueError(f"word order must be 'big' or 'little', got {word_order!r}")


def _words_from_bytes(raw: bytes) -> list[int]:
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def _bytes_from_words(words: Sequence[int]) -> bytes:
    try:
        return b"".join(int(w).to_bytes(2, "big") for w in words)
    except (OverflowError, ValueError) as exc:
        raise DecodeError(f"register value outside 0..65535 in {list(words)}") from exc


def fit_text(text: str, size: int) -> str:
    """`text` cut at a character boundary to at most `size` UTF-8 bytes, without NULs (the wire's padding)."""
    raw = text.replace("\x00", "").encode()
    if len(raw) <= size:
        return text.replace("\x00", "")
    return raw[:size].decode(errors="ignore")


def encode_value(spec: FieldSpec, value: Any, word_order: WordOrder = "big") -> list[int]:
    """`value` as the registers of `spec`; ValueError if it cannot be carried (type, range, length)."""
    match spec.type:
        case "f64":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{spec.name}: expected a number, got {value!r}")
            return _order(_words_from_bytes(struct.pack(">d", float(value))), word_order)
        case "u32" | "u16":
            limit = 0xFFFF_FFFF if spec.type == "u32" else 0xFFFF
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise ValueError(f"{spec.name}: expected an integer 0..{limit}, got {value!r}")
            if spec.type == "u16":
                return [value]
            return _order([value >> 16, value & 0xFFFF], word_order)
        case "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{spec.name}: expected true or false, got {value!r}")
            return [int(value)]
        case "enum":
            if value not in spec.enum:
                raise ValueError(f"{spec.name}: expected one of {list(spec.enum)}, got {value!r}")
            return [spec.enum.index(value)]
        case "text":
            if not isinstance(value, str):
                raise ValueError(f"{spec.name}: expected text, got {value!r}")
            if "\x00" in value:
                raise ValueError(f"{spec.name}: text may not contain NUL (the wire's padding)")
            raw = value.encode()
            if len(raw) > spec.size:
                raise ValueError(f"{spec.name}: longer than {spec.size} bytes")
            return _words_from_bytes(raw.ljust(2 * words_of(spec), b"\x00"))
    raise ValueError(f"{spec.name}: unknown field type {spec.type!r}")


def decode_value(spec: FieldSpec, registers: Sequence[int], word_order: WordOrder = "big") -> Scalar:
    """The value `registers` carry for `spec`; DecodeError if they cannot be that field's value."""
    words = list(registers)
    if len(words) != words_of(spec):
        raise DecodeError(f"{spec.name}: expected {words_of(spec)} registers, got {len(words)}")
    raw = _bytes_from_words(words if spec.type == "text" else _order(words, word_order))
    match spec.type:
        case "f64":
            return float(struct.unpack(">d", raw)[0])
        case "u32" | "u16":
            return int.from_bytes(raw, "big")
        case "bool":
            if words[0] not in (0, 1):
                raise DecodeError(f"{spec.name}: boolean register holds {words[0]}, expected 0 or 1")
            return words[0] == 1
        case "enum":
            if words[0] >= len(spec.enum):
                raise DecodeError(f"{spec.name}: enum index {words[0]} outside 0..{len(spec.enum) - 1}")
            return spec.enum[words[0]]
        case "text":
            text = raw.rstrip(b"\x00")
            if len(text) > spec.size:
                raise DecodeError(f"{spec.name}: longer than {spec.size} bytes")
            try:
                return text.decode()
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{spec.name}: not UTF-8: {exc}") from exc
    raise DecodeError(f"{spec.name}: unknown field type {spec.type!r}")


# -- blocks -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One field placed at its address."""

    spec: FieldSpec
    address: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def words(self) -> int:
        return words_of(self.spec)

    @property
    def end(self) -> int:
        """One past the field's last register."""
        return self.address + self.words


@dataclass(frozen=True)
class Block:
    """Contiguous fields read (input) or written (holding) together."""

    name: str
    table: Table
    address: int
    fields: tuple[Field, ...]
    doc: str = ""
    capacity: int = 0
    """Registers reserved for the block when more than its fields (the command block: the longest command)."""

    @property
    def size(self) -> int:
        return max(self.capacity, self.fields[-1].end - self.address if self.fields else 0)

    @property
    def end(self) -> int:
        return self.address + self.size

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"block {self.name} has no field {name!r}")

    def encode(self, values: Mapping[str, Any], word_order: WordOrder = "big") -> list[int]:
        """All registers of the block (zero beyond its fields); ValueError if a value cannot be carried."""
        out = [0] * self.size
        for f in self.fields:
            if f.name not in values:
                raise ValueError(f"block {self.name}: no value for {f.name}")
            offset = f.address - self.address
            out[offset:offset + f.words] = encode_value(f.spec, values[f.name], word_order)
        return out

    def decode(self, registers: Sequence[int], word_order: WordOrder = "big") -> dict[str, Scalar]:
        """The block's values from registers starting at its address (at least up to its last field)."""
        need = self.fields[-1].end - self.address
        if len(registers) < need:
            raise DecodeError(f"block {self.name}: expected {need} registers, got {len(registers)}")
        out: dict[str, Scalar] = {}
        for f in self.fields:
            offset = f.address - self.address
            out[f.name] = decode_value(f.spec, registers[offset:offset + f.words], word_order)
        return out


def _place(name: str, table: Table, address: int, specs: Iterable[FieldSpec], doc: str,
           capacity: int = 0) -> Block:
    placed = []
    at = address
    for spec in specs:
        placed.append(Field(spec, at))
        at += words_of(spec)
    return Block(name, table, address, tuple(placed), doc, capacity)


# -- the map of one kind ----------------------------------------------------------------------------------
_SEQ = FieldSpec("seq", "u32", doc="the host's command sequence number")
_OPCODE = FieldSpec("opcode", "u16", doc="which command (table below)")
_REASON = FieldSpec("reason", "text", doc="why a command was refused (empty when ok)", size=REASON_BYTES)
_OUTCOME = FieldSpec("outcome", "enum", doc="the command's outcome", enum=OUTCOME_CODES)
_PAYLOAD_LENGTH = FieldSpec("length", "u16", "bytes", "length of the JSON payload that follows")


@dataclass(frozen=True)
class ModbusMap:
    """The register map of one device kind, and the encoders/decoders both ends of the wire use."""

    kind: str
    description: DeviceDescription
    kind_code: int
    identity: Block
    snapshot: Block
    result: Block
    fault_result: Block
    event: Block
    command: Block
    """The command block's extent; `commands[name]` is its layout for one command."""
    commands: dict[str, Block]
    mailbox: Block
    watchdog: Block
    step: Block
    fault: Block

    def input_blocks(self) -> tuple[Block, ...]:
        return (self.identity, self.snapshot, self.result, self.fault_result, self.event)

    def holding_blocks(self) -> tuple[Block, ...]:
        return (self.command, self.mailbox, self.watchdog, self.step, self.fault)

    def blocks(self) -> tuple[Block, ...]:
        return self.input_blocks() + self.holding_blocks()

    def holding_block_at(self, address: int) -> Block | None:
        for block in self.holding_blocks():
            if block.address <= address < block.end:
                return block
        return None

    # identity
    def encode_identity(self, identity: DeviceIdentity, word_order: WordOrder = "big") -> list[int]:
        return self.identity.encode({
            "magic": MAGIC, "contract_version": identity.contract_version, "map_version": MAP_VERSION,
            "kind_code": KIND_CODES[identity.kind], "stepped": identity.stepped, "order_probe": ORDER_PROBE,
            "model": fit_text(identity.model, 32), "serial": fit_text(identity.serial, 32)}, word_order)

    def decode_identity(self, registers: Sequence[int], word_order: WordOrder = "big") -> DeviceIdentity:
        """The far end's identity; DecodeError unless it is this map's kind, contract and map version."""
        values = self.identity.decode(registers, word_order)
        if values["magic"] != MAGIC:
            raise DecodeError(f"not a Lunar GS device (magic {values['magic']!r}, expected {MAGIC!r})")
        if values["order_probe"] != ORDER_PROBE:
            raise DecodeError(f"word order mismatch: probe reads {values['order_probe']:#010x} with word "
                              f"order {word_order!r} (expected {ORDER_PROBE:#010x})")
        if values["map_version"] != MAP_VERSION:
            raise DecodeError(f"register map version {values['map_version']}, this host speaks {MAP_VERSION}")
        if values["contract_version"] != CONTRACT_VERSION:
            raise DecodeError(f"device contract version {values['contract_version']}, this host speaks "
                              f"{CONTRACT_VERSION}")
        if values["kind_code"] != self.kind_code:
            kinds = {code: kind for kind, code in KIND_CODES.items()}
            raise DecodeError(f"device is a {kinds.get(int(values['kind_code']), values['kind_code'])!r}, "
                              f"expected {self.kind!r}")
        return DeviceIdentity(self.kind, int(values["contract_version"]), bool(values["stepped"]),
                              model=str(values["model"]), serial=str(values["serial"]))

    # snapshot
    def encode_reading(self, reading: DeviceReading, word_order: WordOrder = "big") -> list[int]:
        values: dict[str, Any] = dict(reading.fields)
        values.update(sim_time=reading.sim_time, active=reading.active, event_head=reading.event_head,
                      fault_word=reading.fault_word)
        return self.snapshot.encode(values, word_order)

    def decode_reading(self, registers: Sequence[int], word_order: WordOrder = "big") -> DeviceReading:
        values = self.snapshot.decode(registers, word_order)
        head = ("sim_time", "active", "event_head", "fault_word")
        fields = {name: value for name, value in values.items() if name not in head}
        return DeviceReading(float(values["sim_time"]), bool(values["active"]), fields,
                             int(values["event_head"]), int(values["fault_word"]))

    # commands
    def encode_command(self, seq: int, name: str, args: Mapping[str, Any],
                       word_order: WordOrder = "big") -> list[int]:
        """The registers of one command write (header and its arguments only). KeyError: no such command
        (or a missing argument); ValueError: an argument the command cannot take."""
        spec = self.description.command(name)
        layout = self.commands[name]
        values: dict[str, Any] = {"seq": seq, "opcode": spec.opcode}
        for arg in spec.args:
            values[arg.name] = check_value(arg, args[arg.name])
        return layout.encode(values, word_order)

    def command_words(self, opcode: int) -> int | None:
        """Registers a write of `opcode` must cover (None: no such opcode; header only is then enough)."""
        for spec in self.description.commands:
            if spec.opcode == opcode:
                return self.commands[spec.name].size
        return None

    def decode_command(self, registers: Sequence[int],
                       word_order: WordOrder = "big") -> tuple[int, int, str | None, dict[str, Scalar]]:
        """(seq, opcode, command name or None for an unknown opcode, arguments) of a command write."""
        header = _place("command", "holding", 0, (_SEQ, _OPCODE), "")
        head = header.decode(registers, word_order)
        seq, opcode = int(head["seq"]), int(head["opcode"])
        try:
            spec = self.description.command_by_opcode(opcode)
        except KeyError:
            return seq, opcode, None, {}
        values = self.commands[spec.name].decode(registers, word_order)
        return seq, opcode, spec.name, {arg.name: values[arg.name] for arg in spec.args}

    # results
    def encode_outcome(self, outcome: CommandOutcome | None, word_order: WordOrder = "big") -> list[int]:
        """The command result block; None (nothing executed yet) reads as seq 0, ok, NaN."""
        if outcome is None:
            outcome = CommandOutcome(0)
        value = math.nan if outcome.value is None else outcome.value
        return self.result.encode({"seq": outcome.seq, "outcome": outcome.code, "value": value,
                                   "reason": fit_text(outcome.reason, REASON_BYTES)}, word_order)

    def decode_outcome(self, registers: Sequence[int], word_order: WordOrder = "big") -> CommandOutcome:
        values = self.result.decode(registers, word_order)
        value = float(values["value"])
        return CommandOutcome(int(values["seq"]), str(values["outcome"]), str(values["reason"]),
                              None if math.isnan(value) else value)

    def encode_fault_result(self, seq: int, outcome: CommandOutcome,
                            word_order: WordOrder = "big") -> list[int]:
        return self.fault_result.encode({"seq": seq, "outcome": outcome.code,
                                         "reason": fit_text(outcome.reason, REASON_BYTES)}, word_order)

    def decode_fault_result(self, registers: Sequence[int],
                            word_order: WordOrder = "big") -> tuple[int, CommandOutcome]:
        values = self.fault_result.decode(registers, word_order)
        return int(values["seq"]), CommandOutcome(0, str(values["outcome"]), str(values["reason"]))

    # event mailbox
    def encode_event(self, event: WireEvent | None, pending: int, word_order: WordOrder = "big") -> list[int]:
        """The mailbox block: `event` (None: nothing after the cursor) and how many wait after the cursor."""
        if event is None:
            return self.event.encode({"seq": 0, "time": 0.0, "length": 0, "pending": 0, "payload": ""},
                                     word_order)
        payload = event_payload(event)
        out = self.event.encode({"seq": event.seq, "time": event.time, "length": len(payload),
                                 "pending": min(pending, 0xFFFF), "payload": ""}, word_order)
        words = _words_from_bytes(payload.ljust((len(payload) + 1) // 2 * 2, b"\x00"))
        start = self.event_header_words
        out[start:start + len(words)] = words
        return out

    @property
    def event_header_words(self) -> int:
        return self.event.field("payload").address - self.event.address

    def decode_event_header(self, registers: Sequence[int],
                            word_order: WordOrder = "big") -> tuple[int, float, int, int]:
        """(seq, time, payload length in bytes, pending) of the mailbox; seq 0: empty."""
        header = Block("event", "input", self.event.address, self.event.fields[:-1])
        values = header.decode(registers[:self.event_header_words], word_order)
        length = int(values["length"])
        if length > EVENT_PAYLOAD_BYTES:
            raise DecodeError(f"event payload length {length} beyond {EVENT_PAYLOAD_BYTES} bytes")
        return int(values["seq"]), float(values["time"]), length, int(values["pending"])

    def decode_event(self, seq: int, time: float, length: int, payload_registers: Sequence[int]) -> WireEvent:
        """The event from its header values and at least ceil(length / 2) payload registers."""
        raw = _bytes_from_words(payload_registers[:(length + 1) // 2])[:length]
        if len(raw) != length:
            raise DecodeError(f"event {seq}: payload of {length} bytes, got {len(raw)}")
        body = _json_object(raw, f"event {seq}")
        try:
            name, severity, message = body["name"], body["severity"], body["message"]
            data, symptom_of = body.get("data", {}), body.get("symptom_of", "")
        except KeyError as exc:
            raise DecodeError(f"event {seq}: payload lacks {exc.args[0]!r}") from exc
        texts = (name, severity, message, symptom_of)
        if not all(isinstance(v, str) for v in texts) or not isinstance(data, dict):
            raise DecodeError(f"event {seq}: payload fields of the wrong type: {body!r}")
        return WireEvent(seq, time, name, severity, message, data, symptom_of)

    # emulator-only: step, fault, watchdog
    def encode_step(self, sim_time: float, seq: int, word_order: WordOrder = "big") -> list[int]:
        return self.step.encode({"sim_time": sim_time, "seq": seq}, word_order)

    def decode_step(self, registers: Sequence[int], word_order: WordOrder = "big") -> tuple[float, int]:
        values = self.step.decode(registers, word_order)
        return float(values["sim_time"]), int(values["seq"])

    def encode_kick(self, counter: int, timeout_s: float, word_order: WordOrder = "big") -> list[int]:
        return self.watchdog.encode({"kick": counter & 0xFFFF, "timeout_ms": max(0, round(timeout_s * 1000))},
                                    word_order)

    def decode_kick(self, registers: Sequence[int], word_order: WordOrder = "big") -> tuple[int, float]:
        values = self.watchdog.decode(registers, word_order)
        return int(values["kick"]), int(values["timeout_ms"]) / 1000.0

    def encode_fault_request(self, seq: int, request: Mapping[str, Any],
                             word_order: WordOrder = "big") -> list[int]:
        """Fault block registers (seq, length, payload) for `request` ({"op": "inject"|"clear", ...});
        ValueError if its JSON is longer than the block holds."""
        payload = json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()
        if len(payload) > FAULT_PAYLOAD_BYTES:
            raise ValueError(f"fault request of {len(payload)} bytes; the fault block holds "
                             f"{FAULT_PAYLOAD_BYTES}")
        head = self.fault.encode({"seq": seq, "length": len(payload), "payload": ""}, word_order)
        words = _words_from_bytes(payload.ljust((len(payload) + 1) // 2 * 2, b"\x00"))
        start = self.fault.field("payload").address - self.fault.address
        return head[:start] + words

    def decode_fault_request(self, registers: Sequence[int],
                             word_order: WordOrder = "big") -> tuple[int, dict[str, Any]]:
        start = self.fault.field("payload").address - self.fault.address
        header = Block("fault", "holding", self.fault.address, self.fault.fields[:-1])
        values = header.decode(registers[:start], word_order)
        length = int(values["length"])
        if length > FAULT_PAYLOAD_BYTES:
            raise DecodeError(f"fault payload length {length} beyond {FAULT_PAYLOAD_BYTES} bytes")
        raw = _bytes_from_words(registers[start:start + (length + 1) // 2])[:length]
        if len(raw) != length:
            raise DecodeError(f"fault payload of {length} bytes, got {len(raw)}")
        return int(values["seq"]), _json_object(raw, "fault request")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        return json_object(raw)
    except ValueError as exc:
        raise DecodeError(f"{what}: {exc}") from None


def event_payload(event: WireEvent) -> bytes:
    """The event's UTF-8 JSON in at most EVENT_PAYLOAD_BYTES (a long message shortened, then data dropped)."""
    message = event.message
    data: dict[str, Any] = dict(event.data)
    while True:
        body = {"name": event.name, "severity": event.severity, "message": message, "data": data,
                "symptom_of": event.symptom_of}
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        excess = len(raw) - EVENT_PAYLOAD_BYTES
        if excess <= 0:
            return raw
        if message:
            message = fit_text(message, max(0, len(message.encode()) - excess - 3)) + "..."
            if len(message) <= 3:
                message = ""
        elif data:
            data = {"truncated": True}
        else:
            raise ValueError(f"event {event.seq} ({event.name}) does not fit {EVENT_PAYLOAD_BYTES} bytes")


@cache
def build_map(kind: str) -> ModbusMap:
    """The register map of `kind` (a key of description.DESCRIPTIONS)."""
    if kind not in DESCRIPTIONS:
        raise ValueError(f"no register map for device {kind!r}; known: {sorted(DESCRIPTIONS)}")
    desc = DESCRIPTIONS[kind]
    identity = _place("identity", "input", IR_IDENTITY, (
        FieldSpec("magic", "text", doc=f"ASCII {MAGIC!r}, zero padded: a Lunar GS device", size=4),
        FieldSpec("contract_version", "u16", doc="device contract version (link.CONTRACT_VERSION)"),
        FieldSpec("map_version", "u16", doc="version of this register map"),
        FieldSpec("kind_code", "u16",
                  doc="device kind: " + ", ".join(f"{code} {name}" for name, code in KIND_CODES.items())),
        FieldSpec("stepped", "bool", doc="1: an emulator the host steps in simulated time; 0: wall clock"),
        FieldSpec("order_probe", "u32", doc=f"always {ORDER_PROBE:#010x}: checks the word order"),
        FieldSpec("model", "text", size=32),
        FieldSpec("serial", "text", size=32),
    ), "Who the far end is; a client refuses a device whose magic, versions, kind or probe differ.")
    snapshot = _place("snapshot", "input", IR_SNAPSHOT, (
        FieldSpec("sim_time", "f64", "s", "the device's own time when the snapshot was taken"),
        FieldSpec("active", "bool", doc="1 while the device is moving (a command in progress)"),
        FieldSpec("event_head", "u32", doc="sequence number of the newest event (0: none yet)"),
        FieldSpec("fault_word", "u16", doc="bit 0 watchdog expired, bit 1 a model fault is active"),
        *desc.state,
    ), "One consistent snapshot: read the whole block in ONE request (fields of two reads may differ).")
    result = _place("result", "input", IR_RESULT, (
        FieldSpec("seq", "u32", doc="sequence number of the last command executed (0: none yet)"),
        _OUTCOME,
        FieldSpec("value", "f64", doc="what the command returned (NaN: nothing)"),
        _REASON,
    ), "Outcome of the last command written; a repeated seq replays it instead of executing again.")
    fault_result = _place("fault_result", "input", IR_FAULT_RESULT, (
        FieldSpec("seq", "u32", doc="sequence number of the last fault request handled"),
        FieldSpec("outcome", "enum", doc="the request's outcome", enum=OUTCOME_CODES),
        FieldSpec("reason", "text", doc="why the request was refused", size=REASON_BYTES),
    ), "Emulator only: outcome of the last fault request.")
    event = _place("event", "input", IR_EVENT, (
        FieldSpec("seq", "u32", doc="the oldest unacknowledged event after the cursor (0: none)"),
        FieldSpec("time", "f64", "s", "when it happened (device time)"),
        _PAYLOAD_LENGTH,
        FieldSpec("pending", "u16", doc="events after the cursor, this one included"),
        FieldSpec("payload", "text", doc="UTF-8 JSON {name, severity, message, data, symptom_of}, "
                  "two bytes per register; read ceil(length / 2) registers, in chunks of at most 125",
                  size=EVENT_PAYLOAD_BYTES),
    ), "The event mailbox, seen through the cursor `events_after`.")
    commands = {spec.name: _place(f"command {spec.name}", "holding", HR_COMMAND, (_SEQ, _OPCODE, *spec.args),
                                  spec.doc) for spec in desc.commands}
    command = Block("command", "holding", HR_COMMAND, _place("command", "holding", HR_COMMAND,
                                                             (_SEQ, _OPCODE), "").fields,
                    "Write seq, opcode and the command's arguments in ONE FC16 request; then read `result`.",
                    capacity=max(block.size for block in commands.values()))
    mailbox = _place("mailbox", "holding", HR_MAILBOX, (
        FieldSpec("events_after", "u32", doc="cursor: the mailbox shows the oldest event after this seq"),
        FieldSpec("ack", "u32", doc="the host saved every event up to this seq: the device may forget them"),
    ), "The host's side of the event mailbox.")
    watchdog = _place("watchdog", "holding", HR_WATCHDOG, (
        FieldSpec("kick", "u16", doc="any value; every write to this block counts as a kick"),
        FieldSpec("timeout_ms", "u32", "ms",
                  "unheard this long (wall time), the device makes itself safe (0: off)"),
    ), "The host's watchdog.")
    step = _place("step", "holding", HR_STEP, (
        FieldSpec("sim_time", "f64", "s", "advance the model to this simulated time"),
        FieldSpec("seq", "u32",
                  doc="the host's step counter (echo only: stepping to a time reached is a no-op)"),
    ), "Emulator only: the write is answered once the model has been stepped.")
    fault = _place("fault", "holding", HR_FAULT, (
        FieldSpec("seq", "u32", doc="fault request number; a repeated seq replays the first result"),
        _PAYLOAD_LENGTH,
        FieldSpec("payload", "text", doc='UTF-8 JSON {"op": "inject", "fault_id", "kind", "item", "params", '
                  '"seed"} or {"op": "clear", "fault_id"}', size=FAULT_PAYLOAD_BYTES),
    ), "Emulator only: device-level faults. The write that starts at `seq` executes the request.")
    return ModbusMap(kind, desc, KIND_CODES[kind], identity, snapshot, result, fault_result, event, command,
                     commands, mailbox, watchdog, step, fault)


# -- documentation ----------------------------------------------------------------------------------------
_FC = {"input": "input registers, read with FC04", "holding": "holding registers, written with FC16, "
       "read back with FC03"}


def _type_name(spec: FieldSpec) -> str:
    return f"text[{spec.size}]" if spec.type == "text" else spec.type


def _description(spec: FieldSpec) -> str:
    text = spec.doc
    if spec.type == "enum":
        values = ", ".join(f"{i} {name}" for i, name in enumerate(spec.enum))
        text = f"{text}; {values}" if text else values
    return text.replace("|", "\\|")


def _table(fields: Iterable[Field]) -> list[str]:
    lines = ["| Address | Name | Type | Unit | Words | Description |", "|---:|---|---|---|---:|---|"]
    for f in fields:
        lines.append(f"| {f.address} | `{f.name}` | {_type_name(f.spec)} | {f.spec.unit} | {f.words} | "
                     f"{_description(f.spec)} |")
    return lines


def render_markdown(kind: str) -> str:
    """The documentation of `kind`'s register map (docs/devices/<kind>-modbus.md is exactly this)."""
    m = build_map(kind)
    title = kind.capitalize()
    out = [
        f"# {title}: Modbus TCP register map",
        "",
        (f"Generated from the device description (`hardware_sim/remote/description.py`) by "
         f"`hardware_sim/remote/modbus_map.py`, the same table the client and the emulator encode and decode "
         f"with; do not edit by hand. Regenerate with "
         f"`python -m lunar_gs.hardware_sim.remote.modbus_map {kind} > docs/devices/{kind}-modbus.md` "
         f"(a unit test fails while this file and the table disagree)."),
        "",
        f"Map version {MAP_VERSION}, device contract version {CONTRACT_VERSION}, kind code {m.kind_code}.",
        "",
        "## Conventions",
        "",
        ("- Addresses are protocol addresses (0-based, as sent in the request). Input and holding registers "
         "are separate tables; their blocks use distinct addresses so that an address names one register."),
        ("- Types: `u16`, `bool` (0 or 1) and `enum` (index into the listed values) take one register; "
         "`u32` two, `f64` (IEEE 754 double) four; `text[n]` carries at most n UTF-8 bytes, two per register "
         "in order (first byte in the high half), zero padded, in ceil(n / 2) registers."),
        ("- Word order of `u32` and `f64`: most significant word first (`big`, the default) or least "
         "significant first (`little`), as configured on both ends; bytes within a register are big-endian. "
         "Text is not word ordered. `identity.order_probe` reads 0x00010002 only with the right word order."),
        (f"- One request reads at most {MAX_READ_REGISTERS} registers and writes at most "
         f"{MAX_WRITE_REGISTERS}. Writes must cover whole fields; an address outside the blocks below is "
         "answered with exception 2."),
        "",
        "## Procedures",
        "",
        (f"- **Connect**: read `identity` ({m.identity.address}, {m.identity.size} registers) and check "
         "magic, versions, kind code and probe."),
        (f"- **Read**: one FC04 of the whole `snapshot` block ({m.snapshot.address}, {m.snapshot.size} "
         "registers)."),
        (f"- **Command**: one FC16 at {m.command.address} of seq, opcode and the command's arguments, then "
         f"read `result` ({m.result.address}, {m.result.size} registers) and check its seq. A retry writes "
         "the same seq: the device replays the first outcome and never executes twice. A malformed write "
         "(too short, an argument out of range) is answered with exception 3 and executes nothing."),
        (f"- **Events**: write the last seq seen to `events_after` "
         f"({m.mailbox.field('events_after').address}), read `event` ({m.event.address}; the header and "
         f"the first payload registers in one read of at most {MAX_READ_REGISTERS}), repeat with its seq "
         f"while `pending` > 1. Write `ack` ({m.mailbox.field('ack').address}) only once the events are "
         "saved."),
        (f"- **Watchdog**: write `watchdog` ({m.watchdog.address}, {m.watchdog.size} registers) at least "
         "once per timeout."),
        (f"- **Step** (emulator only): write `step` ({m.step.address}, {m.step.size} registers); the answer "
         "comes once the model has reached that time."),
        ("- **Faults** (emulator only): write the payload registers beyond the first write's reach first, "
         f"then one write starting at `fault.seq` ({m.fault.address}) that executes the request; read "
         f"`fault_result` ({m.fault_result.address}). `emulator.stop_answering` silences the device: its own "
         "write is answered, later requests are not, for `params.seconds`."),
        "",
    ]
    for block in m.blocks():
        out += [f"## `{block.name}`: {_FC[block.table]}, {block.address}..{block.end - 1}", "", block.doc, ""]
        if block is m.command:
            out += _table(block.fields)
            out += ["", f"The block spans {block.size} registers: the longest command below.", ""]
            for spec in m.description.commands:
                layout = m.commands[spec.name]
                what = f": {spec.doc}" if spec.doc else ""
                returns = f" Returns `{spec.returns.name}` ({spec.returns.unit}) in `result.value`." \
                    if spec.returns else ""
                out += [f"### opcode {spec.opcode} `{spec.name}`{what}", ""]
                if spec.args:
                    out += _table(layout.fields[2:])
                    out += ["", f"Write {layout.size} registers.{returns}", ""]
                else:
                    out += [f"No arguments: write {layout.size} registers.{returns}", ""]
            continue
        out += _table(block.fields)
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in DESCRIPTIONS:
        kinds = "|".join(DESCRIPTIONS)
        sys.stderr.write(f"usage: python -m lunar_gs.hardware_sim.remote.modbus_map {{{kinds}}}\n")
        raise SystemExit(2)
    sys.stdout.write(render_markdown(sys.argv[1]))
