"""The bus against real brokers (private Mosquitto and the embedded amqtt broker in a child process)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lunar_gs.services.runtime.broker import MosquittoProcess, mosquitto_binary
from lunar_gs.services.runtime.bus import Bus, IncomingMessage, Will
from tests.conftest import BrokerLike

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []

    async def __call__(self, message: IncomingMessage) -> None:
        self.messages.append(message)

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    @property
    def topics(self) -> list[str]:
        return [m.topic for m in self.messages]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def test_bad_urls_are_refused_at_construction() -> None:
    for url in (
        "localhost:1883",
        "http://127.0.0.1:1883",
        "mqtt://",
        "mqtt://host:notaport",
        "mqtt://h:1/x",
        "",
    ):
        with pytest.raises(ValueError, match="bad broker URL"):
            Bus(url, "c")


async def test_round_trip(broker: BrokerLike, mission: str) -> None:
    received = Collector()
    sub = Bus(broker.url, f"{mission}-sub")
    sub.subscribe(f"lgs/v1/{mission}/#", received)
    async with sub, Bus(broker.url, f"{mission}-pub") as pub:
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        await pub.publish(f"lgs/v1/{mission}/a", b"zero", qos=0)
        await pub.publish(f"lgs/v1/{mission}/b", b"one", qos=1)
        await pub.flush(5)
        await wait_until(lambda: len(received.messages) == 2, what="two messages")
    assert received.payloads == [b"zero", b"one"]
    assert received.topics == [f"lgs/v1/{mission}/a", f"lgs/v1/{mission}/b"]
    assert all(isinstance(m.payload, bytes) and not m.retain for m in received.messages)
    assert pub.stats.published == 2
    assert sub.stats.received == 2


async def test_retained_message_reaches_a_late_subscriber(broker: BrokerLike, mission: str) -> None:
    topic = f"lgs/v1/{mission}/sys/svc/status"
    async with Bus(broker.url, f"{mission}-pub") as pub:
        await pub.wait_connected(5)
        await pub.publish(topic, b"online", qos=1, retain=True)
        await pub.flush(5)
    received = Collector()
    sub = Bus(broker.url, f"{mission}-sub")
    sub.subscribe(topic, received)
    async with sub:
        await wait_until(lambda: len(received.messages) == 1, what="the retained status")
    assert received.messages[0].payload == b"online"
    assert received.messages[0].retain


async def test_wildcards_dispatch_to_the_right_handlers(
    mosquitto_session: MosquittoProcess, mission: str
) -> None:
    root = f"lgs/v1/{mission}"
    everything, plus, exact = Collector(), Collector(), Collector()
    sub = Bus(mosquitto_session.url, f"{mission}-sub")
    sub.subscribe(f"{root}/#", everything)
    sub.subscribe(f"{root}/+/drill/ev", plus)
    async with sub, Bus(mosquitto_session.url, f"{mission}-pub") as pub:
        await sub.wait_connected(5)
        sub.subscribe(f"{root}/ground/relay/tc", exact)  # after connecting: subscribed at once
        await asyncio.sleep(0.2)
        await pub.wait_connected(5)
        topics = [
            f"{root}/space/drill/ev",
            f"{root}/ground/relay/tc",
            f"{root}/space/drill/tm/hk",
            f"{root}/ground/drill/ev",
        ]
        for topic in topics:
            await pub.publish(topic, topic.encode(), qos=1)
        await wait_until(lambda: len(everything.messages) == 4, what="four messages")
        await asyncio.sleep(0.1)
    assert everything.topics == topics
    assert plus.topics == [f"{root}/space/drill/ev", f"{root}/ground/drill/ev"]
    assert exact.topics == [f"{root}/ground/relay/tc"]


async def test_a_failing_handler_does_not_stop_the_bus(
    mosquitto_session: MosquittoProcess, mission: str
) -> None:
    topic = f"lgs/v1/{mission}/x"
    errors: list[tuple[IncomingMessage, BaseException]] = []
    calls: list[bytes] = []

    async def flaky(message: IncomingMessage) -> None:
        calls.append(message.payload)
        if message.payload == b"bad":
            raise RuntimeError("boom")

    async def on_error(message: IncomingMessage, exc: BaseException) -> None:
        errors.append((message, exc))
        raise RuntimeError("the error hook fails too")  # guarded as well

    other = Collector()
    sub = Bus(mosquitto_session.url, f"{mission}-sub", on_handler_error=on_error)
    sub.subscribe(topic, flaky)
    sub.subscribe(topic, other)
    async with sub, Bus(mosquitto_session.url, f"{mission}-pub") as pub:
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        for payload in (b"ok1", b"bad", b"ok2"):
            await pub.publish(topic, payload, qos=1)
        await wait_until(lambda: len(other.messages) == 3, what="three messages")
    assert calls == [b"ok1", b"bad", b"ok2"]
    assert other.payloads == [b"ok1", b"bad", b"ok2"]
    assert sub.stats.handler_errors == 1
    assert len(errors) == 1
    assert errors[0][0].payload == b"bad" and isinstance(errors[0][1], RuntimeError)


async def test_qos1_published_while_broker_is_down_arrives_in_order(
    mosquitto: MosquittoProcess, mission: str
) -> None:
    topic = f"lgs/v1/{mission}/space/drill/ev"
    received = Collector()
    connects: list[str] = []

    async def on_connect() -> None:
        connects.append("sub")

    # The subscriber reconnects fast; the publisher waits >= 1.5 s before its first retry, so the
    # subscription made before the outage is renewed before the held messages are sent.
    sub = Bus(
        mosquitto.url, f"{mission}-sub", reconnect_min_s=0.02, reconnect_max_s=0.1, on_connect=on_connect
    )
    sub.subscribe(topic, received)
    pub = Bus(mosquitto.url, f"{mission}-pub", reconnect_min_s=1.5, reconnect_max_s=2.0)
    async with sub, pub:
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        await pub.publish(topic, b"before", qos=1)
        await wait_until(lambda: received.payloads == [b"before"], what="the first message")

        mosquitto.kill()
        await wait_until(lambda: not pub.connected and not sub.connected, what="both buses to see the outage")
        count = 500
        for seq in range(count):
            await pub.publish(topic, str(seq).encode(), qos=1)
        assert pub.outbox_size == count
        mosquitto.restart()

        await sub.wait_connected(5)
        await pub.wait_connected(5)
        await pub.flush(10)
        await wait_until(lambda: len(received.messages) >= count + 1, timeout=10, what="the held messages")
    assert received.payloads == [b"before", *(str(seq).encode() for seq in range(count))]
    assert pub.stats.reconnects == 1 and sub.stats.reconnects == 1
    assert connects == ["sub", "sub"]  # on_connect after the first connect and after the reconnect
    assert pub.stats.published == count + 1


async def test_qos0_while_disconnected_is_dropped_and_counted(
    mosquitto: MosquittoProcess, mission: str
) -> None:
    async with Bus(mosquitto.url, f"{mission}-pub", reconnect_min_s=0.05, reconnect_max_s=0.1) as pub:
        await pub.wait_connected(5)
        mosquitto.kill()
        await wait_until(lambda: not pub.connected, what="the outage")
        for seq in range(10):
            await pub.publish(f"lgs/v1/{mission}/tm", str(seq).encode(), qos=0)
        assert pub.stats.dropped_while_disconnected == 10
        assert pub.outbox_size == 0
        mosquitto.restart()
        await pub.wait_connected(5)


CHILD_WITH_WILL = """
import asyncio, sys
from lunar_gs.services.runtime.bus import Bus, Will

async def main() -> None:
    url, topic = sys.argv[1], sys.argv[2]
    async with Bus(url, "child-" + topic.split("/")[2], will=Will(topic, b"offline")) as bus:
        await bus.wait_connected(10)
        await bus.publish(topic, b"online", qos=1, retain=True)
        await bus.flush(10)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_last_will_fires_when_a_client_is_killed(broker: BrokerLike, mission: str) -> None:
    topic = f"lgs/v1/{mission}/sys/child/status"
    received = Collector()
    sub = Bus(broker.url, f"{mission}-sub")
    sub.subscribe(topic, received)
    async with sub:
        await sub.wait_connected(5)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD_WITH_WILL,
            broker.url,
            topic,
            cwd=PROJECT_ROOT,
        )
        try:
            await wait_until(lambda: b"online" in received.payloads, timeout=10, what="the child online")
        finally:
            child.kill()  # SIGKILL: no DISCONNECT packet
            await child.wait()
        await wait_until(lambda: b"offline" in received.payloads, timeout=10, what="the Last Will")
    assert received.payloads == [b"online", b"offline"]


async def test_clean_exit_does_not_fire_the_will(mosquitto_session: MosquittoProcess, mission: str) -> None:
    topic = f"lgs/v1/{mission}/sys/svc/status"
    received = Collector()
    sub = Bus(mosquitto_session.url, f"{mission}-sub")
    sub.subscribe(topic, received)
    async with sub:
        await sub.wait_connected(5)
        async with Bus(mosquitto_session.url, f"{mission}-svc", will=Will(topic, b"offline")) as svc:
            await svc.wait_connected(5)
            await svc.publish(topic, b"online", qos=1, retain=True)
        await wait_until(lambda: b"online" in received.payloads, what="online")
        await asyncio.sleep(0.5)
    assert received.payloads == [b"online"]


async def test_outbox_is_bounded_and_overflow_counted(
    mosquitto_session: MosquittoProcess, mission: str
) -> None:
    topic = f"lgs/v1/{mission}/x"
    received = Collector()
    sub = Bus(mosquitto_session.url, f"{mission}-sub")
    sub.subscribe(topic, received)
    # Not entered yet: disconnected, so QoS 1 is held and QoS 0 dropped.
    pub = Bus(mosquitto_session.url, f"{mission}-pub", max_outbox=10)
    for seq in range(25):
        await pub.publish(topic, b"held-%d" % seq, qos=1)
    assert pub.outbox_size == 10
    assert pub.stats.outbox_overflow == 15
    async with sub:
        await sub.wait_connected(5)  # subscribed before the publisher connects and sends what it holds
        await pub.__aenter__()
        await pub.wait_connected(5)
        await pub.flush(5)
        await wait_until(lambda: len(received.messages) == 10, what="the ten held messages")
        # publish() does not yield to the loop, so these fill the outbox before the publisher runs:
        # when full, the oldest QoS 0 message goes first, then the new message.
        for seq in range(5):
            await pub.publish(topic, b"q0-%d" % seq, qos=0)
        for seq in range(10):
            await pub.publish(topic, b"q1-%d" % seq, qos=1)
        await pub.publish(topic, b"too-many", qos=1)
        assert pub.outbox_size == 10
        assert pub.stats.outbox_overflow == 15 + 5 + 1
        await pub.flush(5)
        await wait_until(lambda: len(received.messages) == 20, what="ten more messages")
        await asyncio.sleep(0.1)
        await pub.close()
    assert received.payloads == [b"held-%d" % s for s in range(10)] + [b"q1-%d" % s for s in range(10)]


async def test_reconnects_with_backoff_until_the_broker_appears(mission: str) -> None:
    """A bus entered before its broker exists keeps trying and connects once it is up."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    broker = MosquittoProcess()
    received = Collector()
    bus = Bus(broker.url, f"{mission}-late", reconnect_min_s=0.02, reconnect_max_s=0.1)
    bus.subscribe(f"lgs/v1/{mission}/#", received)
    async with bus:
        await asyncio.sleep(0.3)
        assert not bus.connected
        await bus.publish(f"lgs/v1/{mission}/x", b"held", qos=1)
        broker.start()
        try:
            await bus.wait_connected(5)
            await wait_until(lambda: received.payloads == [b"held"], what="the held message to loop back")
        finally:
            await bus.close()
            broker.stop()
    assert bus.stats.reconnects == 0  # the first successful connection is not a reconnect


async def test_unacknowledged_qos1_goes_back_to_the_outbox(mosquitto: MosquittoProcess, mission: str) -> None:
    """Messages in flight when the link drops are sent again after the reconnect, in order.

    The broker is frozen (SIGSTOP) so nothing published is processed or acknowledged, then killed: only
    the bus's requeue can deliver these messages.
    """
    topic = f"lgs/v1/{mission}/space/drill/ack"
    received = Collector()
    sub = Bus(mosquitto.url, f"{mission}-sub", reconnect_min_s=0.02, reconnect_max_s=0.1)
    sub.subscribe(topic, received)
    pub = Bus(mosquitto.url, f"{mission}-pub", reconnect_min_s=1.5, reconnect_max_s=2.0, max_inflight=16)
    async with sub, pub:
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        assert mosquitto.pid is not None
        os.kill(mosquitto.pid, signal.SIGSTOP)
        count = 100
        for seq in range(count):
            await pub.publish(topic, str(seq).encode(), qos=1)
        await asyncio.sleep(0.3)
        assert pub.connected and pub.stats.published == 0 and pub.outbox_size == count
        mosquitto.kill()
        await wait_until(lambda: not pub.connected, what="the publisher to see the outage")
        assert pub.outbox_size == count  # the 16 in flight are back in the outbox
        mosquitto.restart()
        await pub.wait_connected(5)
        await pub.flush(10)
        await wait_until(lambda: len(received.messages) >= count, timeout=10, what="the requeued messages")
    assert received.payloads == [str(seq).encode() for seq in range(count)]


async def test_incoming_overflow_is_counted(mosquitto_session: MosquittoProcess, mission: str) -> None:
    topic = f"lgs/v1/{mission}/tm"
    release = asyncio.Event()
    handled: list[bytes] = []

    async def slow(message: IncomingMessage) -> None:
        await release.wait()
        handled.append(message.payload)

    sub = Bus(mosquitto_session.url, f"{mission}-sub", max_incoming=5)
    sub.subscribe(topic, slow, qos=0)
    async with sub, Bus(mosquitto_session.url, f"{mission}-pub") as pub:
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        for seq in range(100):
            await pub.publish(topic, str(seq).encode(), qos=0)
        await pub.flush(5)
        # At most 12 are held: one in the handler, five in the bus queue, one in the reader's hand and five in
        # aiomqtt's queue; the rest are discarded and counted.
        await wait_until(
            lambda: sub.stats.incoming_overflow + sub.stats.received >= 100 - 11, what="overflow"
        )
        release.set()
        await wait_until(lambda: len(handled) + sub.stats.incoming_overflow == 100, what="the rest handled")
    assert sub.stats.incoming_overflow > 0
    assert len(handled) <= 12
