"""The baseline of every speed figure: a bare aiomqtt publish -> subscribe loop on the same broker.

Publisher and subscriber are two aiomqtt clients in this process, QoS 0, with a payload the size of a
real drill housekeeping packet. Throughput keeps at most WINDOW messages between publish and receipt
(a closed loop: the broker never has to queue an unbounded backlog). Latency is taken at fixed rates.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiomqtt

from benchmarks.harness import percentile
from lunar_gs.services.runtime.bus import parse_mqtt_url

WINDOW = 500


def _payload(seq: int, size: int) -> bytes:
    body = {"schema_name": "tm.lander-drill.hk", "seq": seq, "wall_time": time.time(), "pad": ""}
    raw = json.dumps(body)
    body["pad"] = "x" * max(0, size - len(raw))
    return json.dumps(body).encode()


async def _measure(url: str, duration_s: float, paced_rates: list[int], paced_s: float, size: int) -> dict[str, Any]:
    host, port = parse_mqtt_url(url)
    topic = f"bench/baseline/{uuid.uuid4().hex[:8]}"
    received = 0
    latencies: list[float] = []
    record = False
    arrived = asyncio.Event()
    async with aiomqtt.Client(host, port, identifier=f"bench-sub-{uuid.uuid4().hex[:6]}") as sub, \
            aiomqtt.Client(host, port, identifier=f"bench-pub-{uuid.uuid4().hex[:6]}",
                           max_inflight_messages=1000) as pub:
        await sub.subscribe(topic, qos=0)

        async def reader() -> None:
            nonlocal received
            async for message in sub.messages:
                received += 1
                if record:
                    latencies.append(time.time() - json.loads(message.payload)["wall_time"])
                arrived.set()

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.3)
        # closed-loop throughput
        sent = 0
        start = time.monotonic()
        end = start + duration_s
        while time.monotonic() < end:
            while sent - received >= WINDOW:
                arrived.clear()
                await arrived.wait()
            await pub.publish(topic, _payload(sent, size), qos=0)
            sent += 1
        first_received = received
        elapsed = time.monotonic() - start
        throughput = first_received / elapsed
        await asyncio.sleep(0.5)
        # paced latency
        paced: dict[str, Any] = {}
        for rate in paced_rates:
            latencies.clear()
            record = True
            period = 1.0 / rate
            t0 = time.monotonic()
            n = int(rate * paced_s)
            for i in range(n):
                delay = t0 + i * period - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await pub.publish(topic, _payload(i, size), qos=0)
            await asyncio.sleep(0.3)
            record = False
            ms = [1000 * x for x in latencies]
            paced[str(rate)] = {"p50_ms": _r(percentile(ms, 0.5)), "p99_ms": _r(percentile(ms, 0.99)),
                                "received": len(ms), "sent": n}
        task.cancel()
    return {"msgs_per_s": round(throughput, 1), "sent": sent, "received": first_received, "window": WINDOW,
            "payload_bytes": size, "latency": paced}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(url: str, *, duration_s: float, paced_rates: list[int], paced_s: float, size: int = 420) -> dict[str, Any]:
    return asyncio.run(_measure(url, duration_s, paced_rates, paced_s, size))
