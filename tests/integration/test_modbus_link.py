"""Modbus TCP end to end: a real emulator server on a loopback port, the real link, a third-party client
and a hostile socket. Wall time: about four seconds (the mute test waits out its silence)."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.remote.emulated import EmulatedDevice, build_emulated
from lunar_gs.hardware_sim.remote.link import FAULT_WORD_MODEL_FAULT, FAULT_WORD_WATCHDOG, LinkError
from lunar_gs.hardware_sim.remote.modbus import ModbusEmulatorServer, ModbusLink

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 0.25
RETRIES = 1
START = {"target_depth_m": 0.05, "rpm": 120.0, "percussion": False}


def emulate(kind: str, seed: int = 3) -> EmulatedDevice:
    return build_emulated(kind, build_device(kind, "sim", {}, seed, 0.0), serial=f"{kind}-0001")


def link_to(server: ModbusEmulatorServer, kind: str = "drill", **kwargs: Any) -> ModbusLink:
    kwargs.setdefault("timeout_s", TIMEOUT_S)
    kwargs.setdefault("retries", RETRIES)
    return ModbusLink(kind, "127.0.0.1", server.port, **kwargs)


@pytest.fixture
async def drill() -> AsyncIterator[tuple[EmulatedDevice, ModbusEmulatorServer, ModbusLink]]:
    emulated = emulate("drill")
    async with ModbusEmulatorServer(emulated) as server:
        link = link_to(server)
        await link.connect()
        yield emulated, server, link
        await link.close()


async def test_connect_reads_the_identity_and_works_again_after_close(drill: Any) -> None:
    emulated, _server, link = drill
    assert link.identity == emulated.identify()
    assert link.identity.stepped and link.identity.serial == "drill-0001"
    await link.close()
    with pytest.raises(LinkError, match="not connected"):
        await link.read()
    assert await link.connect() == emulated.identify()
    assert (await link.read()).fields == emulated.read().fields


async def test_checkout_then_drill_to_depth(drill: Any) -> None:
    emulated, _server, link = drill
    assert (await link.command(1, "self_test", {})).ok
    events = await link.events(0)
    assert [e.name for e in events] == ["self_test_passed"]
    await link.ack(events[-1].seq)
    assert await link.events(0) == []  # acknowledged: forgotten by the device
    last = events[-1].seq

    assert (await link.command(2, "start", START)).ok
    reading = await link.read()
    assert reading.active and reading.fields["mode"] == "drilling" and reading.fields["rpm"] == 120.0
    seen: list = []
    t = 0.0
    while not any(e.name == "target_depth_reached" for e in seen):
        t += 10.0
        assert t <= 600.0, f"no target_depth_reached by {t} s: {seen}"
        await link.step(t)
        new = await link.events(last)
        if new:
            last = new[-1].seq
            await link.ack(last)  # after "saving" them
        seen += new
    reading = await link.read()
    assert reading.sim_time == t and not reading.active and reading.event_head == last
    assert reading.fields["mode"] == "idle" and reading.fields["depth_m"] == pytest.approx(0.05)
    assert reading.fields == emulated.read().fields
    done = next(e for e in seen if e.name == "target_depth_reached")
    assert done.severity == "info" and done.data == {"depth_m": 0.05} and 60.0 < done.time <= t


async def test_refusals_come_back_with_their_code(drill: Any) -> None:
    emulated, _server, link = drill
    retract = await link.command(1, "retract", {"distance_m": 0.1})
    assert retract.code == "wrong_mode" and "retract distance" in retract.reason
    assert (await link.command(2, "start", START)).ok
    busy = await link.command(3, "start", START)
    assert busy.code == "busy" and "already drilling" in busy.reason
    assert (await link.command(4, "stow_core", {})).code == "busy"
    assert (await link.command(5, "stop", {})).ok
    assert (await link.command(6, "stow_core", {})).ok
    twice = await link.command(7, "stow_core", {})
    assert twice.code == "wrong_mode" and "stowing" in twice.reason
    requests = link.requests  # what cannot be encoded is refused without a request, as the device would
    assert (await link.command(8, "fly", {})).code == "unknown_command"
    assert (await link.command(9, "start", {**START, "rpm": "fast"})).code == "invalid_arguments"
    assert (await link.command(10, "retract", {})).code == "invalid_arguments"
    assert link.requests == requests
    assert emulated.commands_executed == 3


async def test_the_same_seq_executes_once(drill: Any) -> None:
    emulated, _server, link = drill
    first = await link.command(41, "self_test", {})
    again = await link.command(41, "self_test", {})
    assert first == again and first.ok
    assert emulated.commands_executed == 1 and emulated.duplicates_replayed == 1
    assert [e.name for e in await link.events(0)] == ["self_test_passed"]


async def test_a_lost_reply_is_retried_with_the_same_seq_and_not_executed_twice() -> None:
    emulated = emulate("drill")
    server = ModbusEmulatorServer(emulated)
    answer = server._trace_packet
    lost: list[bytes] = []

    def lossy(sending: bool, packet: bytes) -> bytes:
        # drop the first reply to a write of the command block (FC16 at 2000): the command did execute
        if sending and not lost and packet[7:10] == bytes([0x10, 0x07, 0xD0]):
            lost.append(packet)
            answer(sending, packet)
            return b""
        return answer(sending, packet)

    server._trace_packet = lossy  # type: ignore[method-assign]
    async with server:
        link = link_to(server)
        await link.connect()
        outcome = await link.command(7, "start", START)
        await link.close()
    assert lost and outcome.ok and outcome.seq == 7
    assert emulated.commands_executed == 1 and emulated.duplicates_replayed == 1


def documented_snapshot(kind: str) -> list[tuple[int, str, str, int, str]]:
    """(address, name, type, words, description) of the snapshot, as docs/devices/<kind>-modbus.md says."""
    text = (ROOT / "docs" / "devices" / f"{kind}-modbus.md").read_text(encoding="utf-8")
    section = text.split("## `snapshot`")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| ([a-z0-9]+(?:\[\d+\])?) \| [^|]* \| (\d+) \| (.*) \|$",
                      section, re.MULTILINE)
    return [(int(a), name, typ, int(words), desc) for a, name, typ, words, desc in rows]


def decode_independently(typ: str, regs: list[int], desc: str) -> Any:
    raw = struct.pack(f">{len(regs)}H", *regs)  # big word order, big-endian registers
    if typ == "f64":
        return struct.unpack(">d", raw)[0]
    if typ == "u32":
        return struct.unpack(">I", raw)[0]
    if typ == "u16":
        return regs[0]
    if typ == "bool":
        return {0: False, 1: True}[regs[0]]
    if typ == "enum":
        return dict(re.findall(r"(\d+) ([a-z_]+)", desc))[str(regs[0])]
    assert typ.startswith("text[")
    return raw.rstrip(b"\x00").decode("utf-8")


async def test_a_third_party_client_reads_the_documented_snapshot(drill: Any) -> None:
    emulated, server, link = drill
    assert (await link.command(1, "start", START)).ok
    await link.step(40.0)
    rows = documented_snapshot("drill")
    first, last = rows[0], rows[-1]
    count = last[0] + last[3] - first[0]
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, reconnect_delay=0)
    assert await client.connect()
    try:
        response = await client.read_input_registers(first[0], count=count, device_id=1)
    finally:
        client.close()
    assert not response.isError()
    regs = list(response.registers)
    got = {name: decode_independently(typ, regs[address - first[0]:address - first[0] + words], desc)
           for address, name, typ, words, desc in rows}
    truth = emulated.read()
    assert got.pop("sim_time") == truth.sim_time == 40.0
    assert got.pop("active") is truth.active is True
    assert got.pop("event_head") == truth.event_head
    assert got.pop("fault_word") == truth.fault_word
    assert got == truth.fields
    assert got["mode"] == "drilling" and got["material"] == "regolith" and got["depth_m"] > 0.0


async def test_a_muted_device_times_out_executes_nothing_and_recovers(drill: Any) -> None:
    emulated, server, link = drill
    muted = await link.inject({"kind": "emulator.stop_answering", "params": {"seconds": 1.5}})
    assert muted.ok  # the device answers the request that mutes it
    started = time.monotonic()
    with pytest.raises(LinkError, match="no answer within"):
        await link.read()
    assert time.monotonic() - started < (RETRIES + 1) * TIMEOUT_S + 0.5
    with pytest.raises(LinkError):
        await link.command(3, "self_test", {})
    assert emulated.commands_executed == 0 and server.dropped_muted >= 2 * (RETRIES + 1)
    while not emulated.answering():
        await asyncio.sleep(0.05)
    assert (await link.read()).fields["mode"] == "idle"
    assert (await link.command(3, "self_test", {})).ok
    assert emulated.commands_executed == 1 and link.failures >= 2 and link.timeouts >= 2


async def test_nothing_listening_is_a_link_error_from_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = ModbusLink("drill", "127.0.0.1", port, timeout_s=0.5, retries=0)
    started = time.monotonic()
    with pytest.raises(LinkError, match="cannot connect"):
        await link.connect()
    assert time.monotonic() - started < 1.0
    with pytest.raises(LinkError, match="not connected"):
        await link.read()


async def test_the_wrong_word_order_or_kind_is_refused_at_connect() -> None:
    async with ModbusEmulatorServer(emulate("drill"), word_order="little") as server:
        with pytest.raises(LinkError, match="word order mismatch"):
            await link_to(server).connect()
        with pytest.raises(LinkError, match="expected 'arm'"):
            await link_to(server, "arm", word_order="little").connect()
        assert (await link_to(server, word_order="little").connect()).kind == "drill"


async def test_arm_over_little_endian_words() -> None:
    emulated = emulate("arm")
    async with ModbusEmulatorServer(emulated, word_order="little") as server:
        link = link_to(server, "arm", word_order="little")
        await link.connect()
        assert (await link.read()).fields == emulated.read().fields
        assert (await link.command(1, "switch_encoder", {"joint": "elbow", "unit": "redundant"})).ok
        reading = await link.read()
        assert reading.fields["elbow.encoder"] == "redundant" and reading.fields == emulated.read().fields
        assert (await link.command(2, "reset_joint", {"joint": "nose"})).code == "invalid_arguments"
        await link.close()


async def test_watchdog_and_model_faults(drill: Any) -> None:
    _emulated, server, link = drill
    await link.kick(0.15)
    await asyncio.sleep(0.25)
    assert (await link.read()).fault_word & FAULT_WORD_WATCHDOG
    assert "watchdog_expired" in [e.name for e in await link.events(0)]
    await link.kick(0.0)
    assert not (await link.read()).fault_word & FAULT_WORD_WATCHDOG

    long_id = "stall-" + "x" * 100  # with the note, more than one write: the fault block is written in chunks
    fault = {"fault_id": long_id, "kind": "drill.stall",
             "params": {"torque_rise_nm_per_s": 2.0, "rpm_loss_percent": 30.0, "note": "y" * 200}}
    assert len(link.map.encode_fault_request(1, {"op": "inject", **fault})) > 123
    assert (await link.inject(fault)).ok
    assert (await link.read()).fault_word & FAULT_WORD_MODEL_FAULT
    refused = await link.inject({"fault_id": "f2", "kind": "arm.jam"})
    assert refused.code == "invalid_arguments"
    assert (await link.clear(long_id)).ok
    again = await link.clear(long_id)
    assert again.code == "invalid_arguments" and again.reason == f"fault {long_id!r} is not active"
    assert not (await link.read()).fault_word & FAULT_WORD_MODEL_FAULT
    relinked = link_to(server)  # a new link continues the fault numbering: its request is not replayed
    await relinked.connect()
    assert (await relinked.inject({**fault, "fault_id": "f3"})).ok
    assert (await relinked.clear("f3")).ok
    await relinked.close()


def mbap(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def fc16(address: int, regs: list[int]) -> bytes:
    return struct.pack(f">BHHB{len(regs)}H", 0x10, address, len(regs), 2 * len(regs), *regs)


async def test_garbage_on_the_socket_neither_crashes_the_server_nor_executes_anything(drill: Any) -> None:
    emulated, server, link = drill
    start_regs = link.map.encode_command(1, "start", START)
    bad_bool = start_regs[:-1] + [7]  # percussion = 7
    rejected_before = server.rejected
    malformed = [
        mbap(1, fc16(2000, start_regs[:2])),  # a seq without an opcode
        mbap(2, fc16(2000, start_regs[:3])),  # start without its arguments
        mbap(3, fc16(2000, bad_bool)),  # an argument out of range
        mbap(4, fc16(2003, start_regs[3:])),  # arguments without their header
        mbap(5, struct.pack(">BHHB", 0x10, 2000, 12, 24) + b"\x00" * 10),  # byte count and data disagree
        mbap(6, fc16(2201, [1])),  # splits the u32 cursor
        mbap(7, fc16(2500, [0, 9, 5] + [0x7B7B, 0x7B00])),  # fault payload that is not JSON
        mbap(8, fc16(2400, [0x7FF8, 0, 0, 0, 0, 1])),  # step to NaN
        mbap(9, bytes([0x63]) + b"junk"),  # no such function code
        mbap(10, bytes([0x05]) + struct.pack(">HH", 0, 0xFF00)),  # coils: not served
        mbap(11, bytes([0x04]) + struct.pack(">HH", 1500, 4)),  # an address outside every block
        mbap(12, bytes([0x04]) + struct.pack(">HH", 100, 200)),  # more than 125 registers
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for frame in malformed:
            writer.write(frame)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(260), 1.0)
            assert reply[:2] == frame[:2] and reply[7] & 0x80, f"{frame.hex()} answered {reply.hex()}"
        writer.write(mbap(13, fc16(2000, start_regs), unit=9))  # another unit: nobody answers
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(260), 0.2)
    finally:
        writer.close()
    rng = random.Random(11)
    for size in (1, 7, 300, 2000):
        _, noise = await asyncio.open_connection("127.0.0.1", server.port)
        noise.write(bytes(rng.getrandbits(8) for _ in range(size)))
        await noise.drain()
        noise.close()
    await asyncio.sleep(0.05)
    assert server.rejected >= rejected_before + len(malformed)
    assert emulated.commands_executed == 0 and emulated.duplicates_replayed == 0
    reading = await link.read()
    assert reading.sim_time == 0.0 and reading.fields["mode"] == "idle"
    assert (await link.command(1, "self_test", {})).ok  # seq 1 was never taken by the garbage
