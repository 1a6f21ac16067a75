"""Shared fixtures: private brokers (synchronous child processes, so no event loop is involved) and a
unique mission name per test. Tests never use a broker that happens to be running."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Protocol

import pytest

from lunar_gs.services.runtime.broker import EmbeddedBrokerProcess, MosquittoProcess, mosquitto_binary


class BrokerLike(Protocol):
    url: str


def _private_mosquitto() -> Iterator[MosquittoProcess]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (needed on PATH or at /usr/sbin/mosquitto)")
    process = MosquittoProcess().start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def mosquitto() -> Iterator[MosquittoProcess]:
    """A private Mosquitto on a free loopback port; tests may kill() and restart() it."""
    yield from _private_mosquitto()


@pytest.fixture(scope="session")
def mosquitto_session() -> Iterator[MosquittoProcess]:
    """One private Mosquitto for the session, for tests that do not kill the broker."""
    yield from _private_mosquitto()


@pytest.fixture
def embedded_broker() -> Iterator[EmbeddedBrokerProcess]:
    """The embedded amqtt broker in a child process on a free loopback port."""
    process = EmbeddedBrokerProcess().start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["mosquitto", "embedded"])
def broker(request: pytest.FixtureRequest) -> BrokerLike:
    """Each broker kind in turn (an object with `.url`)."""
    if request.param == "mosquitto":
        process: BrokerLike = request.getfixturevalue("mosquitto_session")
    else:
        process = request.getfixturevalue("embedded_broker")
    return process


@pytest.fixture
def mission() -> str:
    """A mission name unique to this test, so tests sharing a broker never see each other's messages."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def lunar_broker(mosquitto_session: MosquittoProcess) -> MosquittoProcess:
    """The test kit's plugin fixture, pointed at the session's private Mosquitto (one broker, not two)."""
    return mosquitto_session
