"""Replay throughput beside the bare client's publish rate: the same messages, the same broker, one run.

Two sets of messages shaped like recorded traffic (payloads the size of a drill HK packet, nothing
retained): `qos0` (housekeeping only) and `mixed` (an event or acknowledgement at QoS 1 every tenth message,
the rest QoS 0 housekeeping). Each set is published three ways, each timed from its first publish until a
subscriber (paho, threaded; never the bottleneck) has received every message:

* `aiomqtt`: a plain loop awaiting `client.publish()` for each message: the baseline of every speed figure
  (a QoS 1 publish awaits its PUBACK, a round trip, as a plain loop does);
* `bus`: a plain loop of our `Bus.publish()` (QoS 1 pipelined), flushed at the end;
* `replay`: `Replayer` at rate inf (unthrottled), the recording file read beforehand (its read rate is
  reported apart).

All three with Nagle's algorithm off (TCP_NODELAY), as `lunar-gs replay` runs: with it on, a plain loop
that awaits a QoS 1 publish right after QoS 0 ones waits for the broker's delayed ACK, about 40 ms a time;
`nagle_aiomqtt_mixed` measures that (on fewer messages, it is slow). Each way runs `repeats` times,
alternating, and keeps its best (least disturbed) run. The headline is `replay / aiomqtt` on the mixed set.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt

from benchmarks.harness import Observer
from lunar_gs.services.recording import (
    RecordedMessage,
    Recording,
    RecordingHeader,
    Replayer,
    encode_header,
    encode_message,
    read_recording,
)
from lunar_gs.services.runtime.bus import Bus, parse_mqtt_url

SETS = {"qos0": 0, "mixed": 10}  # one QoS 1 message (event, ack) in N, the rest QoS 0 housekeeping
WAYS = ("aiomqtt", "bus", "replay")
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def _messages(mission: str, count: int, size: int, qos1_every: int) -> list[RecordedMessage]:
    prefix = f"lgs/v1/{mission}"
    out = []
    for seq in range(count):
        qos = 1 if qos1_every and seq % qos1_every == 0 else 0
        topic = f"{prefix}/ground/lander-drill/{'ev' if qos else 'tm/hk'}"
        body = {"schema_name": "ev" if qos else "tm.lander-drill.hk", "seq": seq, "wall_time": time.time(),
                "pad": ""}
        body["pad"] = "x" * max(0, size - len(json.dumps(body)))
        out.append(RecordedMessage(t=seq * 0.01, wall=1e9 + seq * 0.01, mission_time=None, topic=topic,
                                   payload=json.dumps(body).encode(), qos=qos, retain=False))
    return out


async def _aiomqtt_loop(url: str, messages: list[RecordedMessage], nodelay: bool = True) -> None:
    host, port = parse_mqtt_url(url)
    async with aiomqtt.Client(host, port, identifier=f"bench-aiomqtt-{uuid.uuid4().hex[:6]}",
                              max_inflight_messages=1000,
                              socket_options=NODELAY if nodelay else None) as client:
        for m in messages:
            await client.publish(m.topic, m.payload, qos=m.qos)


async def _bus_loop(url: str, messages: list[RecordedMessage]) -> None:
    async with Bus(url, f"bench-bus-{uuid.uuid4().hex[:6]}", tcp_nodelay=True) as bus:
        await bus.wait_connected(10)
        for m in messages:
            await bus.publish(m.topic, m.payload, qos=m.qos)
            if bus.outbox_size >= 1024:  # what any loop must do so as not to overflow the outbox
                await bus.flush()
        await bus.flush()


async def _replay(url: str, recording: Recording) -> dict[str, Any]:
    async with Bus(url, f"bench-replay-{uuid.uuid4().hex[:6]}", tcp_nodelay=True) as bus:
        await bus.wait_connected(10)
        report = await Replayer(bus, rate=float("inf")).replay(recording)
    return {"published": report.published, "dropped": report.dropped}


def _timed(url: str, mission: str, count: int, publish: Callable[[], Awaitable[Any]], timeout: float
           ) -> float:
    """Seconds from the start of `publish` until the subscriber has every message."""
    observer = Observer(url, [(f"lgs/v1/{mission}/#", 1)], name="replay-bench", record=False)
    try:
        async def run() -> float:
            start = time.monotonic()
            await publish()
            deadline = start + timeout
            while observer.received < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{observer.received} of {count} messages arrived in {timeout:g} s")
                await asyncio.sleep(0.002)
            return time.monotonic() - start

        return asyncio.run(run())
    finally:
        observer.close()


def _compare(url: str, folder: Path, name: str, qos1_every: int, messages: int, size: int, repeats: int,
             timeout_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    mission = f"bench-replay-{name}-{uuid.uuid4().hex[:6]}"
    batch = _messages(mission, messages, size, qos1_every)
    path = folder / f"{name}.lgsrec"
    header = RecordingHeader(mission=mission, topic_filter=f"lgs/v1/{mission}/#", broker=url,
                             started_wall=1e9, retain_as_published=True)
    path.write_bytes(encode_header(header) + b"".join(encode_message(m) for m in batch))
    read_start = time.monotonic()
    recording = read_recording(path)  # timed apart: the replay figure is publishing only
    read_s = time.monotonic() - read_start
    ways: dict[str, Callable[[], Awaitable[Any]]] = {
        "aiomqtt": lambda: _aiomqtt_loop(url, batch),
        "bus": lambda: _bus_loop(url, batch),
        "replay": lambda: _replay(url, recording),
    }
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for attempt in range(repeats):
        for way in WAYS:
            elapsed = _timed(url, mission, messages, ways[way], timeout_s)
            seconds[way].append(elapsed)
            log(f"  {name:5s} {way:8s} run {attempt + 1}: {messages / elapsed:,.0f} msgs/s")
    rates = {way: round(messages / min(seconds[way]), 1) for way in WAYS}
    return {
        "qos1_share": round(1 / qos1_every, 3) if qos1_every else 0.0,
        "msgs_per_s": rates,
        "all_runs_msgs_per_s": {way: [round(messages / s, 1) for s in seconds[way]] for way in WAYS},
        "replay_vs_aiomqtt": round(rates["replay"] / rates["aiomqtt"], 3),
        "replay_vs_bus": round(rates["replay"] / rates["bus"], 3),
        "file_bytes": path.stat().st_size,
        "file_read_msgs_per_s": round(messages / read_s, 1),
    }


def run(url: str, *, messages: int = 20_000, size: int = 420, repeats: int = 2, nagle_messages: int = 500,
        timeout_s: float = 120.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lgs-bench-replay-") as folder:
        sets = {name: _compare(url, Path(folder), name, every, messages, size, repeats, timeout_s, log)
                for name, every in SETS.items()}
    mission = f"bench-replay-nagle-{uuid.uuid4().hex[:6]}"
    batch = _messages(mission, nagle_messages, size, SETS["mixed"])
    nagle = _timed(url, mission, nagle_messages, lambda: _aiomqtt_loop(url, batch, nodelay=False), timeout_s)
    log(f"  mixed aiomqtt with Nagle on ({nagle_messages} msgs): {nagle_messages / nagle:,.0f} msgs/s")
    return {
        "messages": messages,
        "payload_bytes": size,
        "repeats": repeats,
        "sets": sets,
        "replay_vs_aiomqtt": sets["mixed"]["replay_vs_aiomqtt"],
        "nagle_aiomqtt_mixed_msgs_per_s": round(nagle_messages / nagle, 1),
        "nagle_messages": nagle_messages,
    }
