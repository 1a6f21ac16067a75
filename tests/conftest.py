"""Shared fixtures: private brokers (synchronous child processes, so no event loop is involved) and a
unique mission name per test. Tests never use a broker that happens to be running.

`make test` runs the suite on two pytest-xdist workers (`-n 2`). Each test module is one unit of work,
so a module's shared mission starts once, on one worker; the modules that run whole accelerated
rehearsals (timing at rate 1000 is what a loaded machine disturbs) form one unit of their own, first in
line, so no two of them ever run at once, while the lighter modules fill the other core.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from lunar_gs.services.runtime.broker import EmbeddedBrokerProcess, MosquittoProcess, mosquitto_binary


SEQUENTIAL_REHEARSALS = frozenset({"test_drills.py", "test_rehearsal.py", "test_hostile_input.py",
                                   "test_kit_in_a_fresh_project.py", "test_fault_catalogue.py"})
"""The modules whose accelerated runs failed with another module running beside them (the broker-kill and
killed-services rehearsals of test_failures.py did not: they share the other core with the rest)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The rehearsal modules first (a stable sort: each module keeps its order): the longest unit of work
    starts at once instead of after the others."""
    items.sort(key=lambda item: item.path.name not in SEQUENTIAL_REHEARSALS)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: without xdist the suite runs in one process
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole modules to a worker, and the rehearsal modules as one (pytest 9.2 renamed what xdist's own
    `loadgroup` marks, so the grouping is done here, on node ids, which every version keeps)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "rehearsals" if Path(module).name in SEQUENTIAL_REHEARSALS else module

    return ModuleScheduling(config, log)


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
