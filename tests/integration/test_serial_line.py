"""The framed serial line end to end: SerialLineLink against SerialLineServer over a real pseudo-terminal
pair (the host opens the slave through pyserial, as it would a USB adapter) and over TCP, plus raw bytes
written straight onto the line to check that damage is counted and nothing executes twice."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator

import pytest
from cobs import cobs

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.remote.emulated import STOP_ANSWERING, EmulatedDevice, build_emulated
from lunar_gs.hardware_sim.remote.framing import (
    Frame,
    FrameDecoder,
    FrameType,
    dump_payload,
    encode,
    encode_frame,
    frame_bytes,
)
from lunar_gs.hardware_sim.remote.link import CONTRACT_VERSION, LinkError, WireEvent
from lunar_gs.hardware_sim.remote.serial_line import SerialLineLink, SerialLineServer, events_page

pytestmark = pytest.mark.timeout(30)

NO_PTY = not hasattr(os, "openpty")
LINES = [pytest.param("pty", marks=pytest.mark.skipif(NO_PTY, reason="os.openpty is not available here")),
         "tcp"]


@pytest.fixture
def emulated() -> EmulatedDevice:
    return build_emulated("container", build_device("container", "sim", {}, 7, 0.0))


@pytest.fixture(params=LINES)
async def server(request: pytest.FixtureRequest, emulated: EmulatedDevice) -> AsyncIterator[SerialLineServer]:
    listen = "pty" if request.param == "pty" else "tcp://127.0.0.1:0"
    async with SerialLineServer(emulated, listen=listen) as running:
        yield running


def url_of(server: SerialLineServer) -> str:
    return server.device_path or f"tcp://127.0.0.1:{server.port}"


def mass(emulated: EmulatedDevice) -> float:
    return float(emulated.model.state().mass_g)  # type: ignore[attr-defined]


class RawLine:
    """The line without the link: bytes written as they are (os.write on the pty's slave, or a raw TCP
    socket), replies decoded as they come."""

    def __init__(self, server: SerialLineServer) -> None:
        self.server = server
        self.decoder = FrameDecoder()
        self.fd: int | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawLine:
        if self.server.device_path:
            self.fd = os.open(self.server.device_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        else:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def send(self, data: bytes) -> None:
        if self.fd is not None:
            view = memoryview(data)
            while view:  # a pty takes a few KiB at a time
                try:
                    view = view[os.write(self.fd, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.005)
        else:
            assert self.writer is not None
            self.writer.write(data)
            await self.writer.drain()

    async def _chunk(self) -> bytes:
        if self.reader is not None:
            return await self.reader.read(4096)
        while True:
            try:
                return os.read(self.fd, 4096)  # type: ignore[arg-type]
            except BlockingIOError:
                await asyncio.sleep(0.005)

    async def replies(self, n: int, quiet_s: float = 0.15) -> list[Frame]:
        """Exactly n frames, and nothing more within quiet_s after them."""
        frames: list[Frame] = []
        async with asyncio.timeout(3.0):
            while len(frames) < n:
                frames += self.decoder.feed(await self._chunk())
        try:
            async with asyncio.timeout(quiet_s):
                while True:
                    frames += self.decoder.feed(await self._chunk())
        except TimeoutError:
            pass
        assert len(frames) == n, frames
        return frames


def command(seq: int, cmd_seq: int, name: str, **args: object) -> Frame:
    return Frame(FrameType.COMMAND, seq, dump_payload({"seq": cmd_seq, "name": name, "args": args}))


# -- the contract over the line ---------------------------------------------------------------------------
async def test_identify_receive_seal_and_events(server: SerialLineServer, emulated: EmulatedDevice) -> None:
    link = SerialLineLink("container", url_of(server), timeout_s=2.0)
    identity = await link.connect()
    assert identity.kind == "container" and identity.contract_version == CONTRACT_VERSION and identity.stepped

    received = await link.command(1, "receive", {"mass_g": 150.0})
    assert received.ok and received.value == 150.0
    reading = await link.read()
    assert reading.fields["mass_g"] == 150.0 and reading.fields["sealed"] is False and not reading.active
    assert (await link.command(2, "seal", {})).ok
    assert (await link.command(3, "seal", {})).code == "busy"
    await link.kick(0.0)

    events: list[WireEvent] = []
    t = 0.0
    while not any(e.name == "container_sealed" for e in events):
        t += 20.0
        assert t <= 400.0, "the seal never closed"
        await link.step(t)
        events += await link.events(events[-1].seq if events else 0)
    assert 300.0 <= t < 320.0
    sealed = next(e for e in events if e.name == "container_sealed")
    assert sealed.time == 300.0 and sealed.data == {"mass_g": 150.0}
    reading = await link.read()
    assert reading.fields["sealed"] is True and reading.fields["seal_pressure_kpa"] == 150.0
    assert reading.event_head == events[-1].seq
    await link.ack(reading.event_head)
    assert await link.events(0) == []

    again = await link.command(4, "seal", {})
    late = await link.command(5, "receive", {"mass_g": 10.0})
    assert (again.code, late.code) == ("wrong_mode", "wrong_mode") and late.reason == "container is sealed"
    assert (await link.command(6, "launch", {})).code == "unknown_command"
    assert emulated.commands_executed == 2 and mass(emulated) == 150.0
    assert server.frames_dropped == 0 and link.frames_dropped == 0 and link.retries_sent == 0

    await link.close()
    assert not link.connected
    with pytest.raises(LinkError, match="not connected"):
        await link.read()
    assert (await link.connect()).kind == "container"  # connect works again after close
    assert (await link.read()).fields["mass_g"] == 150.0
    await link.close()


async def test_damaged_and_duplicated_frames_execute_nothing_twice(server: SerialLineServer,
                                                                   emulated: EmulatedDevice) -> None:
    receive = command(21, 1, "receive", mass_g=150.0)
    flipped = bytearray(encode_frame(command(20, 9, "receive", mass_g=500.0)))
    flipped[12] ^= 0x04
    truncated = b"\x00" + cobs.encode(frame_bytes(command(22, 9, "receive", mass_g=500.0))[:-5]) + b"\x00"
    async with RawLine(server) as line:
        await line.send(b"\x13\x11\xff garbage \x7e" * 40 + b"\x00")
        await line.send(bytes(flipped) + truncated)
        await line.send(encode_frame(command(23, 9, "receive", mass_g=500.0), version=2))
        await line.send(b"\x00" + b"\x01" * 6000)  # a runaway without a delimiter
        await line.send(encode_frame(receive) + encode_frame(receive))  # the same request twice
        first, second = await line.replies(2)
        await line.send(encode_frame(receive))  # and once more, later
        (third,) = await line.replies(1)
        # a new frame seq carrying the same command seq: the device's own once-only rule answers
        await line.send(encode_frame(command(24, 1, "receive", mass_g=150.0)))
        (fourth,) = await line.replies(1)
        # valid frames it will not serve: an unknown type and a bad payload get ERROR, a reply nothing
        await line.send(encode_frame(Frame(0x09, 25)) + encode_frame(Frame(FrameType.COMMAND, 26, b"[1]"))
                        + encode_frame(Frame(FrameType.READ_REPLY, 27)))
        unknown, bad = await line.replies(2)

    assert first == second == third and first.type == FrameType.COMMAND_REPLY and first.seq == 21
    assert first.body() == {"seq": 1, "code": "ok", "reason": "", "value": 150.0}
    assert (fourth.seq, fourth.body()) == (24, first.body())
    assert server.duplicates_replayed == 2 and emulated.duplicates_replayed == 1
    assert emulated.commands_executed == 1 and mass(emulated) == 150.0
    dropped = server.dropped
    assert dropped["bad_crc"] + dropped["bad_cobs"] >= 1
    assert dropped["truncated"] == 1 and dropped["wrong_version"] == 1 and dropped["oversize"] == 1
    assert (unknown.type, unknown.seq, bad.type, bad.seq) == (FrameType.ERROR, 25, FrameType.ERROR, 26)
    assert "unknown frame type" in unknown.body()["error"]
    assert server.rejected == {"unknown_type": 1, "bad_payload": 1, "not_a_request": 1}

    link = SerialLineLink("container", url_of(server), timeout_s=2.0)  # the line still serves a host
    await link.connect()
    assert (await link.read()).fields["mass_g"] == 150.0
    await link.close()


class LossyHop:
    """A TCP hop between link and device that loses (or, with `delay_s`, holds back) the device's first
    COMMAND reply."""

    def __init__(self, device_port: int, delay_s: float | None = None) -> None:
        self.device_port = device_port
        self.delay_s = delay_s
        self.held: list[Frame] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LossyHop:
        self._server = await asyncio.start_server(self._hop, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _hop(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        device_r, device_w = await asyncio.open_connection("127.0.0.1", self.device_port)
        loop = asyncio.get_running_loop()

        async def upstream() -> None:
            while data := await client_r.read(4096):
                device_w.write(data)

        async def downstream() -> None:
            decoder = FrameDecoder()
            while data := await device_r.read(4096):
                for frame in decoder.feed(data):
                    if frame.type == FrameType.COMMAND_REPLY and not self.held:
                        self.held.append(frame)
                        if self.delay_s is not None:
                            loop.call_later(self.delay_s, client_w.write, encode_frame(frame))
                        continue
                    client_w.write(encode_frame(frame))

        try:
            await asyncio.gather(upstream(), downstream())
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            device_w.close()
            client_w.close()


async def test_a_lost_reply_is_retried_with_the_same_seq_and_replayed(emulated: EmulatedDevice) -> None:
    """The link re-sends the same bytes and the device answers from its memory of the request instead of
    pouring the sample in twice."""
    async with SerialLineServer(emulated, listen="tcp://127.0.0.1:0") as device, LossyHop(device.port) as hop:
        link = SerialLineLink("container", f"tcp://127.0.0.1:{hop.port}", timeout_s=0.3, retries=1)
        await link.connect()
        retries = link.retries_sent
        outcome = await link.command(1, "receive", {"mass_g": 150.0})
        assert outcome.ok and outcome.value == 150.0
        assert hop.held and hop.held[0].body() == {"seq": 1, "code": "ok", "reason": "", "value": 150.0}
        assert link.retries_sent == retries + 1 and link.failures == 0
        assert device.duplicates_replayed == 1 and emulated.commands_executed == 1 and mass(emulated) == 150.0
        await link.close()


async def test_a_late_reply_is_discarded_as_stale(emulated: EmulatedDevice) -> None:
    async with SerialLineServer(emulated, listen="tcp://127.0.0.1:0") as device, \
            LossyHop(device.port, delay_s=0.4) as hop:
        link = SerialLineLink("container", f"tcp://127.0.0.1:{hop.port}", timeout_s=0.3, retries=1)
        await link.connect()
        stale = link.stale_frames
        assert (await link.command(1, "receive", {"mass_g": 150.0})).value == 150.0  # the replayed reply
        await asyncio.sleep(0.2)  # the held-back first reply arrives now, for no outstanding request
        reading = await link.read()
        assert reading.fields["mass_g"] == 150.0
        assert link.stale_frames == stale + 1 and link.dropped["stale"] == link.stale_frames
        assert emulated.commands_executed == 1
        await link.close()


async def test_an_emulator_failure_is_an_error_reply_not_a_crash(server: SerialLineServer,
                                                                 emulated: EmulatedDevice,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    link = SerialLineLink("container", url_of(server), timeout_s=2.0)
    await link.connect()
    with monkeypatch.context() as patch:
        patch.setattr(emulated, "read", lambda: 1 / 0)
        with pytest.raises(LinkError, match="could not serve READ: ZeroDivisionError"):
            await link.read()
    assert server.rejected == {"error": 1}
    assert (await link.read()).fields["mass_g"] == 0.0
    await link.close()


async def test_a_mute_device_fails_the_link_and_it_recovers(server: SerialLineServer,
                                                            emulated: EmulatedDevice) -> None:
    link = SerialLineLink("container", url_of(server), timeout_s=0.2, retries=1)
    await link.connect()
    retries, failures = link.retries_sent, link.failures
    muted_at = time.monotonic()
    assert (await link.inject({"kind": STOP_ANSWERING, "params": {"seconds": 1}})).ok
    with pytest.raises(LinkError, match="no answer"):
        await link.read()
    with pytest.raises(LinkError, match="no answer"):
        await link.command(1, "receive", {"mass_g": 5.0})
    assert server.requests_ignored == 4
    assert (link.retries_sent - retries, link.failures - failures) == (2, 2)
    assert emulated.commands_executed == 0
    await asyncio.sleep(max(0.0, muted_at + 1.05 - time.monotonic()))
    assert (await link.read()).fields["mass_g"] == 0.0  # same connection, no reconnect needed
    assert (await link.command(2, "receive", {"mass_g": 5.0})).value == 5.0
    await link.close()


async def test_the_mailbox_pages_through_a_long_backlog(server: SerialLineServer,
                                                        emulated: EmulatedDevice) -> None:
    for i in range(120):  # more than one payload holds
        emulated._post(float(i), "note", "info", f"backlog entry {i} " + "x" * 80, {"i": i})
    page = events_page(emulated.events(0))
    assert page["more"] and 0 < len(page["events"]) < 120
    assert len(dump_payload(page)) <= 4096
    link = SerialLineLink("container", url_of(server), timeout_s=2.0)
    await link.connect()
    events = await link.events(0)
    assert [e.seq for e in events] == list(range(1, 121)) and events[-1].data == {"i": 119}
    await link.close()


# -- failures are LinkError ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:{free_port}", "/dev/lunar-gs-no-such-tty",
                                 "serial:///dev/lunar-gs-no-such-tty?baud=9600"])
async def test_connecting_to_nothing_raises_link_error(url: str) -> None:
    # the port is chosen when the test runs: every xdist worker must collect the same test ids
    link = SerialLineLink("container", url.format(free_port=free_port()), timeout_s=0.5)
    with pytest.raises(LinkError, match="cannot open"):
        await link.connect()
    assert not link.connected and link.failures == 1


async def test_a_device_of_another_kind_or_gone_raises_link_error(server: SerialLineServer) -> None:
    with pytest.raises(LinkError, match="expected a drill"):
        await SerialLineLink("drill", url_of(server), timeout_s=0.5).connect()
    link = SerialLineLink("container", url_of(server), timeout_s=0.3, retries=0)
    await link.connect()
    await server.stop()
    with pytest.raises(LinkError):
        await link.read()
    await link.close()


def test_bad_addresses_are_configuration_errors() -> None:
    for url in ("udp://127.0.0.1:5", "tcp://127.0.0.1", "serial:///dev/ttyUSB0?baud=fast", "pty"):
        with pytest.raises(ValueError):
            SerialLineLink("container", url)
    with pytest.raises(ValueError):
        SerialLineLink("toaster", "tcp://127.0.0.1:5")


async def test_nothing_unjsonable_reaches_the_line(server: SerialLineServer) -> None:
    link = SerialLineLink("container", url_of(server), timeout_s=2.0)
    await link.connect()
    with pytest.raises(LinkError, match="cannot send"):
        await link.command(1, "receive", {"mass_g": object()})  # type: ignore[dict-item]
    with pytest.raises(LinkError, match="cannot send"):
        await link.inject({"kind": "container.seal_leak", "params": {"note": "x" * 5000}})
    assert (await link.read()).fields["mass_g"] == 0.0
    await link.close()
    assert encode(FrameType.READ, 1) == encode_frame(Frame(FrameType.READ, 1))
