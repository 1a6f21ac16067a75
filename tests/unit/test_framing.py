"""The serial line's frames: round trips, resynchronisation after damage, bounded memory, and the bench
documentation kept equal to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.remote.framing import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameType,
    PayloadError,
    crc16,
    dump_payload,
    encode,
    encode_frame,
    frame_bytes,
    load_payload,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "devices" / "container-serial.md"

frames = st.builds(Frame, st.sampled_from(list(FrameType)), st.integers(0, 0xFFFF),
                   st.binary(max_size=600))


def decode_all(data: bytes, decoder: FrameDecoder | None = None) -> list[Frame]:
    return (decoder or FrameDecoder()).feed(data)


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1


@given(frames)
def test_round_trip(frame: Frame) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(frame)) == [frame]
    assert decoder.frames_ok == 1 and not decoder.dropped and decoder.pending == 0


@given(st.lists(frames, max_size=8), st.data())
def test_any_chunking_gives_the_same_frames(sent: list[Frame], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(f) for f in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = FrameDecoder()
    got: list[Frame] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == sent
    assert not decoder.dropped


@settings(max_examples=300)
@given(frames, st.data())
def test_a_flipped_bit_is_dropped_and_counted(frame: Frame, data: st.DataObject) -> None:
    line = bytearray(encode_frame(frame))
    bit = data.draw(st.integers(0, len(line) * 8 - 1))
    line[bit // 8] ^= 1 << (bit % 8)
    decoder = FrameDecoder()
    got = decoder.feed(bytes(line)) + decoder.feed(b"\x00")  # a flipped final delimiter ends here
    assert got == []
    assert decoder.frames_dropped >= 1
    assert set(decoder.dropped) <= {"bad_crc", "bad_cobs", "truncated", "bad_length", "oversize"}


def test_flips_in_the_body_are_bad_crc_or_bad_cobs() -> None:
    frame = Frame(FrameType.COMMAND, 7, dump_payload({"seq": 1, "name": "seal", "args": {}}))
    line = encode_frame(frame)
    for index in range(1, len(line) - 1):
        for bit in range(8):
            damaged = bytearray(line)
            damaged[index] ^= 1 << bit
            decoder = FrameDecoder()
            assert decoder.feed(bytes(damaged)) == []
            assert decoder.frames_dropped >= 1, (index, bit)


def test_truncated_frames_are_counted() -> None:
    raw = frame_bytes(Frame(FrameType.READ_REPLY, 3, b'{"a":1}'))
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00" + cobs.encode(raw[:5]) + b"\x00") == []  # shorter than the header
    assert decoder.feed(b"\x00" + cobs.encode(raw[:-3]) + b"\x00") == []  # shorter than its length
    assert decoder.dropped == {"truncated": 2}
    assert decoder.feed(b"\x00" + cobs.encode(raw + b"xx") + b"\x00") == []
    assert decoder.dropped["bad_length"] == 1


def test_wrong_version_and_declared_oversize() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(Frame(FrameType.READ, 1), version=2)) == []
    assert decoder.dropped == {"wrong_version": 1}
    raw = bytearray(frame_bytes(Frame(FrameType.READ, 1)))
    raw[4:6] = (MAX_PAYLOAD + 1).to_bytes(2, "big")
    assert decoder.feed(b"\x00" + cobs.encode(bytes(raw)) + b"\x00") == []
    assert decoder.dropped["oversize"] == 1


@given(st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"")), frames)
def test_garbage_between_frames_loses_no_following_frame(garbage: bytes, frame: Frame) -> None:
    first = Frame(FrameType.IDENTIFY, 1)
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(first) + garbage + encode_frame(frame)) == [first, frame]
    assert decoder.frames_dropped == (1 if garbage else 0)


def test_a_runaway_stream_stays_bounded_and_the_line_recovers() -> None:
    decoder = FrameDecoder()
    for _ in range(100):
        assert decoder.feed(b"\x55" * 1000) == []
        assert decoder.pending <= MAX_ENCODED
    assert decoder.dropped == {"oversize": 1}  # one runaway, counted once, skipped to its end
    frame = Frame(FrameType.KICK, 9, b'{"timeout_s":5.0}')
    assert decoder.feed(encode_frame(frame)) == [frame]
    assert decoder.feed(b"\x01" * (MAX_ENCODED + 10) + encode_frame(frame)) == [frame]  # one feed
    assert decoder.dropped == {"oversize": 2}


def test_the_largest_payload_fits_and_a_larger_one_is_refused() -> None:
    frame = Frame(FrameType.EVENTS_REPLY, 1, b"\xff" * MAX_PAYLOAD)
    assert len(encode_frame(frame)) - 2 <= MAX_ENCODED
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]
    with pytest.raises(PayloadError):
        encode_frame(Frame(FrameType.EVENTS_REPLY, 1, b"x" * (MAX_PAYLOAD + 1)))
    with pytest.raises(PayloadError):
        dump_payload({"x": "y" * MAX_PAYLOAD})


def test_payloads_are_compact_json_objects() -> None:
    assert dump_payload({"a": 1, "b": "é"}) == '{"a":1,"b":"é"}'.encode()
    assert dump_payload({}) == b"" and load_payload(b"") == {}
    for bad in (b"[1]", b"{", b"\xff"):
        with pytest.raises(PayloadError):
            load_payload(bad)
    with pytest.raises(PayloadError):
        dump_payload({"a": object()})


def test_reply_types() -> None:
    assert FrameType.COMMAND.reply() is FrameType.COMMAND_REPLY
    assert all(t.reply().name == f"{t.name}_REPLY" for t in FrameType if t.is_request)
    with pytest.raises(ValueError):
        FrameType.ERROR.reply()


# -- the bench documentation ----------------------------------------------------------------------------
def test_the_documented_type_table_is_the_code() -> None:
    rows = re.findall(r"^\| (0x[0-9A-F]{2}) \| (\w+)\s*\| (request|response)\s*\|", DOC.read_text(), re.M)
    documented = {(int(code, 16), name, kind) for code, name, kind in rows}
    assert documented == {(t.value, t.name, "request" if t.is_request else "response") for t in FrameType}


@pytest.mark.parametrize("frame", [
    Frame(FrameType.IDENTIFY, 1),
    Frame(FrameType.COMMAND, 0x0102, dump_payload({"seq": 1, "name": "receive", "args": {"mass_g": 150.0}})),
    Frame(FrameType.COMMAND_REPLY, 0x0102,
          dump_payload({"seq": 1, "code": "ok", "reason": "", "value": 150.0})),
])
def test_the_documented_examples_are_what_the_code_sends(frame: Frame) -> None:
    text = DOC.read_text()
    assert frame_bytes(frame).hex(" ") in text
    assert encode(frame.type, frame.seq, load_payload(frame.payload)).hex(" ") in text
    assert frame.payload.decode() in text or not frame.payload
