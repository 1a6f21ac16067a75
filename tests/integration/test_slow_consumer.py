"""Slow consumers: something that stops reading must not make any service's memory grow without bound.

* A handler that never returns: the bus's incoming queues stay within `max_incoming`, and every message
  beyond them is counted in `stats.incoming_overflow` (dispatched + queued + overflowed = sent).
* A broker that stops reading (SIGSTOP): the outbox stays within `max_outbox` (+ the in-flight window),
  every message beyond it is counted in `stats.outbox_overflow`, and the rest goes out once it reads again.
* A third-party subscriber that never reads (raw socket, `lgs/v1/{mission}/#` at QoS 1) during a rehearsal:
  the broker keeps its backlog; the services keep running, bounded, and the rehearsal passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.system import ScenarioProgress, ScenarioState
from lunar_gs.services.mission import SEEDS_DIR
from lunar_gs.services.runtime.broker import MosquittoProcess
from lunar_gs.services.runtime.bus import Bus, IncomingMessage

pytestmark = pytest.mark.integration

MB = 1024 * 1024
PAYLOAD = 4096


def rss() -> int:
    return psutil.Process().memory_info().rss


def publisher(port: int, topic: str, count: int, size: int, qos: int = 1) -> subprocess.Popen[bytes]:
    """Another process floods `topic` (so its own buffers are not counted in this process's memory)."""
    if shutil.which("mosquitto_pub"):
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos),
                "-m", "x" * size, "--repeat", str(count)]
    else:
        argv = [sys.executable, "-c", PAHO_PUBLISHER, str(port), topic, str(count), str(size), str(qos)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


PAHO_PUBLISHER = """
import sys, paho.mqtt.client as mqtt
port, topic, count, size, qos = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
client.max_inflight_messages_set(100)
client.connect("127.0.0.1", port)
client.loop_start()
infos = [client.publish(topic, b"x" * size, qos=qos) for _ in range(count)]
for info in infos:
    info.wait_for_publish(60)
client.disconnect()
client.loop_stop()
"""


async def test_a_handler_that_never_returns_keeps_incoming_bounded_and_counts_the_overflow(
    mosquitto_session: MosquittoProcess, mission: str
) -> None:
    max_incoming, count = 500, 20_000  # 80 MB offered to a consumer that takes one message and hangs
    topic = f"lgs/v1/{mission}/slow/in"
    entered = asyncio.Event()

    async def never_returns(message: IncomingMessage) -> None:
        entered.set()
        await asyncio.Event().wait()

    bus = Bus(mosquitto_session.url, f"slow-consumer-{mission}", max_incoming=max_incoming)
    bus.subscribe(topic, never_returns, qos=1)
    async with bus:
        await bus.wait_connected(10)
        before = rss()
        flood = publisher(mosquitto_session.port, topic, count, PAYLOAD)
        peak, largest_queue = before, 0
        deadline = time.monotonic() + 60

        def queued() -> tuple[int, int]:
            client = bus._client  # the bus queue and aiomqtt's queue in front of it
            return bus._incoming.qsize(), (client._queue.qsize() if client is not None else 0)

        def accounted() -> int:
            # + 1: the reader task holds one more, waiting for room in the bus queue
            return bus.stats.received + sum(queued()) + 1 + bus.stats.incoming_overflow

        while accounted() < count:
            assert time.monotonic() < deadline, (
                f"only {accounted()} of {count} messages accounted for: stats {bus.stats}, queues {queued()}")
            peak = max(peak, rss())
            largest_queue = max(largest_queue, *queued())
            await asyncio.sleep(0.05)
        assert flood.wait(30) == 0, flood.stderr.read() if flood.stderr else ""
        peak = max(peak, rss())
        assert entered.is_set() and bus.stats.received == 1, "the handler should hold the dispatcher"
        assert largest_queue <= max_incoming and max(queued()) <= max_incoming
        assert accounted() == count, f"{accounted()} accounted for, {count} sent: {bus.stats}, queues {queued()}"
        assert bus.stats.incoming_overflow >= count - 2 - 2 * max_incoming  # 1 handled, 1 in the reader's hand
        assert bus.connected, "an overflowing consumer must keep its connection"
        growth = peak - before
        assert growth < count * PAYLOAD / 4, (
            f"RSS grew {growth / MB:.1f} MB while {count * PAYLOAD / MB:.0f} MB were offered to a consumer "
            f"holding at most {2 * max_incoming} messages")


async def test_a_broker_that_stops_reading_keeps_the_outbox_bounded_and_counts_the_overflow(
    mosquitto: MosquittoProcess, mission: str
) -> None:
    max_outbox, count = 1000, 20_000
    assert mosquitto.pid is not None
    bus = Bus(mosquitto.url, f"slow-broker-{mission}", max_outbox=max_outbox)
    payload = b"y" * PAYLOAD
    async with bus:
        await bus.wait_connected(10)
        before = rss()
        os.kill(mosquitto.pid, signal.SIGSTOP)  # the broker stops reading; the TCP link stays up
        try:
            for _ in range(count):
                await bus.publish(f"lgs/v1/{mission}/slow/out", payload, qos=1)
                await asyncio.sleep(0)  # let the publisher task fill its in-flight window
            await asyncio.sleep(0.2)
            held = bus.outbox_size
            growth = rss() - before
            assert held <= max_outbox + 64, f"outbox holds {held} messages (bound {max_outbox} + 64 in flight)"
            assert bus.stats.outbox_overflow == count - held - bus.stats.published, bus.stats
            assert bus.stats.outbox_overflow >= count - max_outbox - 64
            assert growth < count * len(payload) / 4, (
                f"RSS grew {growth / MB:.1f} MB for {count * len(payload) / MB:.0f} MB published into a stalled link")
        finally:
            os.kill(mosquitto.pid, signal.SIGCONT)
        await bus.flush(30)  # what the outbox held goes out once the broker reads again
        assert bus.stats.published + bus.stats.outbox_overflow == count, bus.stats
        assert bus.connected


# -- a third-party subscriber that never reads, during a rehearsal ------------------------------------------

def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n // 128, n % 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def stalled_subscriber(port: int, topic_filter: str) -> socket.socket:
    """A raw MQTT 3.1.1 client: CONNECT (no keepalive), SUBSCRIBE at QoS 1, then never reads again. Its
    receive buffer is tiny, so the broker soon has to hold everything for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    body = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + _string(f"stalled-{time.monotonic_ns()}")
    sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
    assert sock.recv(4)[:1] == b"\x20", "no CONNACK"
    body = struct.pack("!H", 1) + _string(topic_filter) + bytes([1])
    sock.sendall(bytes([0x82]) + _remaining_length(len(body)) + body)
    assert sock.recv(5)[:1] == b"\x90", "no SUBACK"
    return sock


async def test_a_subscriber_that_stops_reading_leaves_the_services_running_and_bounded(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path
) -> None:
    url = mosquitto_session.url
    codec = JsonCodec()
    traffic = {"messages": 0, "bytes": 0}
    progress: list[ScenarioProgress] = []

    async def count(message: IncomingMessage) -> None:
        traffic["messages"] += 1
        traffic["bytes"] += len(message.payload)
        if message.topic.endswith("/sys/scenario"):
            try:
                decoded = codec.decode(message.payload)
            except Exception:  # noqa: BLE001
                return
            if isinstance(decoded, ScenarioProgress):
                progress.append(decoded)

    reader = Bus(url, f"reading-subscriber-{mission}", max_incoming=200_000)
    reader.subscribe(f"lgs/v1/{mission}/#", count, qos=1)
    stalled = stalled_subscriber(mosquitto_session.port, f"lgs/v1/{mission}/#")
    report_dir = tmp_path / "report"
    samples: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    try:
        async with reader:
            await reader.wait_connected(10)
            with open(tmp_path / "rehearsal.out", "wb") as out:
                runner = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "lunar_gs.services.cli", "rehearse", str(SEEDS_DIR / "nominal.yaml"), "--rate",
                    "1000", "--seed", "7", "--broker", url, "--mission", mission, "--report", str(report_dir),
                    stdout=out, stderr=asyncio.subprocess.STDOUT)
            try:
                while runner.returncode is None:  # sample each service's RSS while TM flows
                    latest = progress[-1] if progress else None
                    # from the second phase to the last: past start-up, before the report (and its plots)
                    flowing = (latest is not None and latest.state is ScenarioState.RUNNING
                               and 1 <= latest.phase_index < latest.phase_count - 1)
                    try:
                        if not flowing:
                            raise psutil.Error
                        children = psutil.Process(runner.pid).children()
                        for child in children:
                            cmdline = child.cmdline()
                            if "run" in cmdline:
                                names[child.pid] = cmdline[cmdline.index("run") + 1]
                                samples.setdefault(child.pid, []).append(child.memory_info().rss)
                    except psutil.Error:
                        pass
                    try:
                        await asyncio.wait_for(runner.wait(), 0.5)
                    except TimeoutError:
                        pass
            finally:
                if runner.returncode is None:
                    runner.terminate()
                    await runner.wait()
        stalled.setblocking(False)
        unread = len(stalled.recv(1 << 20, socket.MSG_PEEK))  # never read: still waiting in our buffer
    finally:
        stalled.close()
    output = (tmp_path / "rehearsal.out").read_text(errors="replace")
    report = json.loads((report_dir / "report.json").read_text()) if (report_dir / "report.json").exists() else {}
    assert runner.returncode == 0 and report.get("passed") is True, output[-3000:]
    assert "restarting" not in output, "a service died while a subscriber stalled"
    assert unread > 0 and traffic["bytes"] > 20 * unread, (
        f"the stalled subscriber was not stalled: {unread} bytes unread of {traffic['bytes']}")
    assert set(names.values()) == {"lander-drill", "lander-arm", "ascent-vehicle", "relay-satellite",
                                   "ground-control", "instructor"}, names
    growths = {}
    assert all(len(values) >= 10 for values in samples.values()), "too few RSS samples while TM flowed"
    for pid, values in samples.items():
        growths[names[pid]] = (max(values) - values[0]) / MB
    print(f"\nstalled subscriber: {traffic['messages']} messages, {traffic['bytes'] / MB:.1f} MB it never read; "
          f"service RSS growth after start-up (MB): { {k: round(v, 1) for k, v in growths.items()} }")
    for name, growth in growths.items():
        assert growth < max(16.0, traffic["bytes"] / MB / 2), (
            f"{name} grew {growth:.1f} MB while a subscriber stalled on {traffic['bytes'] / MB:.1f} MB")
