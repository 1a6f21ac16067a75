"""Finding and starting brokers: private Mosquitto, embedded amqtt, external URLs."""

from __future__ import annotations

import asyncio
import socket

import psutil
import pytest

from lunar_gs.services.runtime import broker as broker_module
from lunar_gs.services.runtime.broker import (
    EmbeddedBrokerProcess,
    MosquittoProcess,
    free_port,
    start_broker,
    wait_for_port,
)
from lunar_gs.services.runtime.bus import Bus, IncomingMessage, parse_mqtt_url

pytestmark = pytest.mark.integration


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def loop_back(url: str, topic: str) -> bytes:
    """Publish one QoS 1 message to ourselves and return what came back."""
    got: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def handler(message: IncomingMessage) -> None:
        await got.put(message)

    bus = Bus(url, f"probe-{topic.replace('/', '-')}")
    bus.subscribe(topic, handler)
    async with bus:
        await bus.wait_connected(5)
        await bus.publish(topic, b"ping", qos=1)
        message = await asyncio.wait_for(got.get(), 5)
    return message.payload


def listening_addresses(pid: int, port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


async def test_default_choice_is_a_private_mosquitto(mission: str) -> None:
    if broker_module.mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    handle = await start_broker(None)
    try:
        assert handle.kind == "mosquitto"
        host, port = parse_mqtt_url(handle.url)
        assert host == "127.0.0.1" and port != 1883
        assert await loop_back(handle.url, f"lgs/v1/{mission}/probe") == b"ping"
    finally:
        await handle.stop()
    assert not port_open(port)


async def test_default_choice_falls_back_to_embedded(monkeypatch: pytest.MonkeyPatch, mission: str) -> None:
    monkeypatch.setattr(broker_module, "mosquitto_binary", lambda: None)
    handle = await start_broker(None)
    try:
        assert handle.kind == "embedded"
    finally:
        await handle.stop()


async def test_embedded_broker_binds_loopback_only(mission: str) -> None:
    handle = await start_broker("embedded")
    try:
        assert handle.kind == "embedded"
        host, port = parse_mqtt_url(handle.url)
        assert host == "127.0.0.1"
        assert listening_addresses(psutil.Process().pid, port) == {"127.0.0.1"}
        assert await loop_back(handle.url, f"lgs/v1/{mission}/probe") == b"ping"
    finally:
        await handle.stop()
    assert not port_open(port)


async def test_external_url_is_used_as_is(mosquitto_session: MosquittoProcess) -> None:
    handle = await start_broker(mosquitto_session.url)
    assert (handle.url, handle.kind) == (mosquitto_session.url, "external")
    await handle.stop()  # a no-op: we did not start it
    assert port_open(mosquitto_session.port)


async def test_unreachable_url_gives_a_clear_error() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"broker {url} is not reachable"):
        await start_broker(url, connect_timeout=0.3)


async def test_malformed_url_gives_a_clear_error() -> None:
    with pytest.raises(ValueError, match="bad broker URL 'tcp://x'"):
        await start_broker("tcp://x")


def test_wait_for_port_times_out_with_a_clear_message() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.2)


def test_mosquitto_restart_keeps_the_port() -> None:
    if broker_module.mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    with MosquittoProcess() as process:
        port = process.port
        assert process.url == f"mqtt://127.0.0.1:{port}"
        assert port_open(port)
        assert process.running and process.pid is not None
        assert listening_addresses(process.pid, port) == {"127.0.0.1"}
        process.kill()
        assert not port_open(port)
        process.restart()
        assert process.port == port and port_open(port)
        process.restart()  # also from a running broker
        assert port_open(port)
    assert not port_open(port)


def test_embedded_broker_process_kill_and_restart(mission: str) -> None:
    with EmbeddedBrokerProcess() as process:
        port = process.port
        assert process.pid is not None
        assert listening_addresses(process.pid, port) == {"127.0.0.1"}
        process.kill()
        assert not port_open(port)
        process.restart()
        assert port_open(port)
        assert asyncio.run(loop_back(process.url, f"lgs/v1/{mission}/probe")) == b"ping"
    assert not port_open(port)
