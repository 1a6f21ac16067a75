"""Modbus register map: exact round trips in both word orders, a layout that fits Modbus limits without
overlaps, and documentation that cannot go stale."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.remote.description import DESCRIPTIONS, FieldSpec
from lunar_gs.hardware_sim.remote.link import (
    CONTRACT_VERSION,
    CommandOutcome,
    DeviceIdentity,
    DeviceReading,
    WireEvent,
)
from lunar_gs.hardware_sim.remote.modbus_map import (
    EVENT_PAYLOAD_BYTES,
    FAULT_PAYLOAD_BYTES,
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    DecodeError,
    build_map,
    decode_value,
    encode_value,
    event_payload,
    fit_text,
    render_markdown,
    words_of,
)

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ("big", "little")
KINDS = ("drill", "arm")
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def value_of(spec: FieldSpec) -> st.SearchStrategy[Any]:
    match spec.type:
        case "f64":
            return st.floats(allow_nan=False)
        case "u16":
            return st.integers(0, 0xFFFF)
        case "u32":
            return st.integers(0, 0xFFFF_FFFF)
        case "bool":
            return st.booleans()
        case "enum":
            return st.sampled_from(spec.enum)
        case "text":
            return st.text(_CHARS, max_size=spec.size).map(lambda s: fit_text(s, spec.size))
    raise AssertionError(spec.type)


def values_of(specs: tuple[FieldSpec, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({spec.name: value_of(spec) for spec in specs})


def readings(kind: str) -> st.SearchStrategy[DeviceReading]:
    return st.builds(DeviceReading, sim_time=st.floats(allow_nan=False), active=st.booleans(),
                     fields=values_of(DESCRIPTIONS[kind].state), event_head=st.integers(0, 0xFFFF_FFFF),
                     fault_word=st.integers(0, 0xFFFF))


# -- round trips ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ORDERS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_state_snapshot_round_trips_exactly(kind: str, order: str, data: st.DataObject) -> None:
    m = build_map(kind)
    reading = data.draw(readings(kind))
    regs = m.encode_reading(reading, order)
    assert len(regs) == m.snapshot.size and all(0 <= r <= 0xFFFF for r in regs)
    assert m.decode_reading(regs, order) == reading


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", ORDERS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_command_args_round_trip_exactly(kind: str, order: str, data: st.DataObject) -> None:
    m = build_map(kind)
    spec = data.draw(st.sampled_from(m.description.commands))
    seq = data.draw(st.integers(0, 0xFFFF_FFFF))
    args = data.draw(values_of(spec.args))
    regs = m.encode_command(seq, spec.name, args, order)
    assert len(regs) == m.command_words(spec.opcode) <= MAX_WRITE_REGISTERS
    assert m.decode_command(regs, order) == (seq, spec.opcode, spec.name, args)


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_f64_round_trips_bit_for_bit(order: str, value: float) -> None:
    spec = FieldSpec("x", "f64")
    back = decode_value(spec, encode_value(spec, value, order), order)
    assert struct.pack(">d", back) == struct.pack(">d", value)


def test_word_order_swaps_words_not_bytes_and_leaves_text_alone() -> None:
    f64, u32, text = FieldSpec("x", "f64"), FieldSpec("n", "u32"), FieldSpec("t", "text", size=4)
    assert encode_value(u32, 0x1234_5678, "big") == [0x1234, 0x5678]
    assert encode_value(u32, 0x1234_5678, "little") == [0x5678, 0x1234]
    big = encode_value(f64, 1.5, "big")
    assert big == [0x3FF8, 0, 0, 0] and encode_value(f64, 1.5, "little") == big[::-1]
    assert encode_value(text, "LGS", "big") == encode_value(text, "LGS", "little") == [0x4C47, 0x5300]


@pytest.mark.parametrize("order", ORDERS)
@settings(max_examples=100, deadline=None)
@given(outcome=st.builds(CommandOutcome, seq=st.integers(0, 0xFFFF_FFFF),
                         code=st.sampled_from(("ok", "wrong_mode", "busy", "invalid_arguments")),
                         reason=st.text(_CHARS, max_size=40),
                         value=st.none() | st.floats(allow_nan=False)))
def test_command_result_round_trips(order: str, outcome: CommandOutcome) -> None:
    m = build_map("drill")
    back = m.decode_outcome(m.encode_outcome(outcome, order), order)
    assert back == outcome


_DATA_VALUES = (st.integers(-10**6, 10**6) | st.booleans() | st.text(_CHARS, max_size=20)
                | st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=100, deadline=None)
@given(event=st.builds(WireEvent, seq=st.integers(1, 0xFFFF_FFFF), time=st.floats(allow_nan=False),
                       name=st.text(_CHARS, min_size=1, max_size=30),
                       severity=st.sampled_from(("info", "error")),
                       message=st.text(_CHARS, max_size=400),
                       data=st.dictionaries(st.text(_CHARS, max_size=10), _DATA_VALUES, max_size=4),
                       symptom_of=st.text(_CHARS, max_size=20)),
       pending=st.integers(1, 300), order=st.sampled_from(ORDERS))
def test_event_mailbox_round_trips(event: WireEvent, pending: int, order: str) -> None:
    m = build_map("arm")
    regs = m.encode_event(event, pending, order)
    seq, at, length, shown = m.decode_event_header(regs, order)
    assert (seq, at, shown) == (event.seq, event.time, pending)
    assert m.decode_event(seq, at, length, regs[m.event_header_words:]) == event


def test_a_long_event_message_is_shortened_to_fit_the_mailbox() -> None:
    event = WireEvent(7, 1.0, "power_lost", "error", "é" * 2000, {"depth_m": 0.5})
    payload = event_payload(event)
    assert len(payload) <= EVENT_PAYLOAD_BYTES
    m = build_map("drill")
    regs = m.encode_event(event, 1, "big")
    seq, at, length, _ = m.decode_event_header(regs, "big")
    back = m.decode_event(seq, at, length, regs[m.event_header_words:])
    assert back.message.endswith("...") and back.message.startswith("é") and back.data == {"depth_m": 0.5}


def test_an_empty_mailbox_reads_seq_zero() -> None:
    m = build_map("drill")
    assert m.decode_event_header(m.encode_event(None, 0), "big") == (0, 0.0, 0, 0)


@pytest.mark.parametrize("order", ORDERS)
def test_fault_request_round_trips_and_refuses_what_does_not_fit(order: str) -> None:
    m = build_map("drill")
    request = {"op": "inject", "fault_id": "f-1", "kind": "drill.stall", "item": None,
               "params": {"torque_rise_nm_per_s": 1.5, "note": "ü" * 100}, "seed": 3}
    regs = m.encode_fault_request(42, request, order)
    assert len(regs) > MAX_WRITE_REGISTERS  # needs the chunked write
    assert m.decode_fault_request(regs, order) == (42, request)
    with pytest.raises(ValueError, match="fault block holds"):
        m.encode_fault_request(1, {"op": "inject", "kind": "x" * FAULT_PAYLOAD_BYTES}, order)


@pytest.mark.parametrize("order", ORDERS)
def test_identity_round_trips_and_refuses_another_device(order: str) -> None:
    drill, arm = build_map("drill"), build_map("arm")
    identity = DeviceIdentity("drill", CONTRACT_VERSION, True, model="lunar-gs emulated drill", serial="D-1")
    regs = drill.encode_identity(identity, order)
    assert drill.decode_identity(regs, order) == identity
    with pytest.raises(DecodeError, match="expected 'arm'"):
        arm.decode_identity(regs, order)
    other = "little" if order == "big" else "big"
    with pytest.raises(DecodeError, match="word order mismatch"):
        drill.decode_identity(regs, other)
    with pytest.raises(DecodeError, match="not a Lunar GS device"):
        drill.decode_identity([0] * drill.identity.size, order)
    older = DeviceIdentity("drill", CONTRACT_VERSION - 1, True)
    with pytest.raises(DecodeError, match="contract version"):
        drill.decode_identity(drill.encode_identity(older, order), order)


@pytest.mark.parametrize(("spec", "regs"), [
    (FieldSpec("b", "bool"), [2]),
    (FieldSpec("e", "enum", enum=("a", "b")), [2]),
    (FieldSpec("t", "text", size=4), [0xFFFE, 0]),
    (FieldSpec("x", "f64"), [0, 0, 0]),
])
def test_registers_that_are_not_the_field_raise_decode_error(spec: FieldSpec, regs: list[int]) -> None:
    with pytest.raises(DecodeError):
        decode_value(spec, regs)


@pytest.mark.parametrize(("spec", "value"), [
    (FieldSpec("n", "u16"), 70000), (FieldSpec("n", "u32"), -1), (FieldSpec("b", "bool"), 1),
    (FieldSpec("e", "enum", enum=("a",)), "b"), (FieldSpec("t", "text", size=3), "abcd"),
    (FieldSpec("t", "text", size=8), "a\x00b"), (FieldSpec("x", "f64"), "1.0"),
])
def test_values_a_field_cannot_carry_are_refused(spec: FieldSpec, value: Any) -> None:
    with pytest.raises(ValueError):
        encode_value(spec, value)


def test_fit_text_cuts_at_a_character_boundary() -> None:
    assert fit_text("aé" * 10, 4) == "aéa"
    assert len(fit_text("€" * 50, 160).encode()) <= 160


# -- layout ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(DESCRIPTIONS))
def test_every_block_fits_one_request(kind: str) -> None:
    m = build_map(kind)
    assert m.snapshot.size <= MAX_READ_REGISTERS
    for block in (m.identity, m.result, m.fault_result):
        assert block.size <= MAX_READ_REGISTERS, block.name
    assert m.event_header_words < MAX_READ_REGISTERS
    for block in (m.command, m.mailbox, m.watchdog, m.step):
        assert block.size <= MAX_WRITE_REGISTERS, block.name
    for layout in m.commands.values():
        assert layout.size <= m.command.size <= MAX_WRITE_REGISTERS


@pytest.mark.parametrize("kind", sorted(DESCRIPTIONS))
def test_no_two_fields_overlap(kind: str) -> None:
    m = build_map(kind)
    taken: dict[int, str] = {}  # one address space for both tables: an address names one register
    for block in m.blocks():
        fields = list(block.fields)
        assert fields[0].address == block.address
        for before, after in itertools.pairwise(fields):
            assert before.end == after.address, f"{block.name}: {before.name} / {after.name} not contiguous"
        assert fields[-1].end <= block.end
        for address in range(block.address, block.end):
            assert address not in taken, f"{block.name} overlaps {taken[address]} at {address}"
            taken[address] = block.name
    for name, layout in m.commands.items():  # alternatives of the command block: inside it, contiguous
        assert layout.address == m.command.address and layout.end <= m.command.end, name
        assert sum(f.words for f in layout.fields) == layout.size
    assert sum(words_of(s) for s in m.description.state) + 8 == m.snapshot.size


def test_opcodes_and_kind_codes_are_unique() -> None:
    for desc in DESCRIPTIONS.values():
        opcodes = [c.opcode for c in desc.commands]
        assert len(set(opcodes)) == len(opcodes)
    assert len({build_map(kind).kind_code for kind in DESCRIPTIONS}) == len(DESCRIPTIONS)


# -- documentation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_docs_are_the_generated_map(kind: str) -> None:
    path = ROOT / "docs" / "devices" / f"{kind}-modbus.md"
    assert path.read_text(encoding="utf-8") == render_markdown(kind), (
        f"{path} is stale: regenerate with "
        f"python -m lunar_gs.hardware_sim.remote.modbus_map {kind} > {path.relative_to(ROOT)}")


def test_docs_list_every_field_at_its_address() -> None:
    m = build_map("drill")
    text = render_markdown("drill")
    for block in m.blocks():
        for f in block.fields:
            assert f"| {f.address} | `{f.name}` |" in text
