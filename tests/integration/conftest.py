"""Options of the integration tests.

`--fuzz-messages N` sets how many bad messages the hostile-input test sends while a rehearsal runs
(default 10,000, the CI run). A longer run, e.g. `--fuzz-messages 100000`, slows the rehearsal down so
that the fuzz still fits inside it. Pass the option together with a path under tests/integration (this
conftest is read when that directory is named on the command line):

    .venv/bin/python -m pytest tests/integration/test_hostile_input.py --fuzz-messages 100000
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.faults import FaultRecord
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.system import ClockState, ServiceState, ServiceStatus
from lunar_gs.protocols.topics import Topics
from lunar_gs.services.runtime.broker import MosquittoProcess
from tests.integration.kit import Listener, ServiceProcess

DEFAULT_FUZZ_MESSAGES = 10_000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-messages",
        action="store",
        type=int,
        default=DEFAULT_FUZZ_MESSAGES,
        help=f"bad messages the hostile-input test sends during a rehearsal (default {DEFAULT_FUZZ_MESSAGES})",
    )


@pytest.fixture
def fuzz_messages(request: pytest.FixtureRequest) -> int:
    """How many bad messages to send (`--fuzz-messages`), at least 100."""
    try:
        value = int(request.config.getoption("--fuzz-messages"))
    except ValueError:  # the option is not registered (conftest not read early): the CI default
        value = DEFAULT_FUZZ_MESSAGES
    return max(value, 100)


@pytest.fixture
async def listener(mosquitto_session: MosquittoProcess, mission: str) -> AsyncIterator[Listener]:
    """A listener on this test's mission; it stops the service processes the test started beside it."""
    async with Listener(mosquitto_session.url, mission) as heard:
        try:
            yield heard
        finally:
            for process in heard.started:
                process.stop()


# -- one running mission shared by the fault tests ------------------------------------------------------

RUNNING_RATE = "100"
RUNNING_NODES = (Node.INSTRUCTOR, Node.RELAY_SATELLITE, Node.LANDER_DRILL, Node.LANDER_ARM,
                 Node.ASCENT_VEHICLE, Node.GROUND_CONTROL)


@dataclass
class RunningMission:
    url: str
    mission: str
    report: Path
    processes: dict[Node, ServiceProcess]

    @property
    def topics(self) -> Topics:
        return Topics(self.mission)

    def truth(self) -> list[FaultRecord]:
        """The ground-truth log as the instructor service wrote it."""
        path = self.report / "truth.jsonl"
        if not path.exists():
            return []
        records = [JsonCodec().decode(line) for line in path.read_bytes().splitlines() if line.strip()]
        return [r for r in records if isinstance(r, FaultRecord)]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lunar_gs.services.cli", *args, "--mission", self.mission,
                               "--broker", self.url], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def running(mosquitto_session: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningMission]:
    """Six service processes of one mission (no scenario, rate 100), shared by a module's fault tests and
    stopped at its end, so they load no later test."""
    mission = "tf" + uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("faults")
    report = folder / "report"
    processes = {n: ServiceProcess(n, mosquitto_session.url, mission, folder, "--rate", RUNNING_RATE,
                                   "--seed", "3", "--report", str(report)).start() for n in RUNNING_NODES}
    try:
        yield RunningMission(mosquitto_session.url, mission, report, processes)
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture
async def listener_on_running(running: RunningMission) -> AsyncIterator[Listener]:
    """A listener on the shared mission, once every service is online and the clock runs."""
    async with Listener(running.url, running.mission) as heard:
        topics = running.topics
        for node in RUNNING_NODES:
            await heard.wait_for(lambda h, node=node: h.topic == topics.status(node)
                                 and isinstance(h.message, ServiceStatus)
                                 and h.message.state is ServiceState.ONLINE, timeout=30, what=f"{node} online")
        await heard.wait_for(lambda h: isinstance(h.message, ClockState), what="the clock")
        yield heard
