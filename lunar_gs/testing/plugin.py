"""The pytest plugin of Lunar GS (registered through the `pytest11` entry point when lunar-gs is installed).

Fixtures:
- `lunar_broker`: a private broker on a free loopback port for the test session (Mosquitto when installed,
  else the embedded amqtt broker); each parallel worker process gets its own. `--lunar-broker URL` uses a
  broker you started instead.
- `lunar_mission`: the mission's services as processes on that broker, chosen per test with the marker
  `@pytest.mark.lunar_mission(scenario="drill-stall", rate=200, seed=3, faults=[...], backends={...},
  nodes=[...])` (every argument optional; see `MissionSpec`). Stopped after the test; on failure, the tail
  of each service's log is added to the report.
- `lunar_tm`: a `MissionClient` on that mission, once its clock runs and every service is online, with the
  marker's faults injected when the mission has no scenario to carry them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import pytest_asyncio

from lunar_gs.services.runtime.broker import EmbeddedBrokerProcess, MosquittoProcess, mosquitto_binary
from lunar_gs.testing.client import MissionClient
from lunar_gs.testing.mission import LocalMission, MissionSpec

LOG_TAIL_LINES = 40


class _Broker(Protocol):
    url: str


class _External:
    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "external"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lunar-gs", "Lunar GS test kit")
    group.addoption("--lunar-broker", default=None, metavar="URL",
                    help="use this MQTT broker (mqtt://host:port) instead of starting a private one")
    group.addoption("--lunar-embedded-broker", action="store_true",
                    help="start the embedded amqtt broker even where Mosquitto is installed")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lunar_mission(scenario=None, rate=100, seed=1, faults=(), backends={}, nodes=ALL, mission_file=None, "
        "autopilot=False): the mission the lunar_mission and lunar_tm fixtures start for this test")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"_lunar_report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def lunar_broker(request: pytest.FixtureRequest) -> Iterator[_Broker]:
    """A private MQTT broker for this test session (or worker), on a free loopback port."""
    url = request.config.getoption("--lunar-broker")
    if url:
        yield _External(url)
        return
    embedded = request.config.getoption("--lunar-embedded-broker") or mosquitto_binary() is None
    process = (EmbeddedBrokerProcess() if embedded else MosquittoProcess()).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def lunar_mission(request: pytest.FixtureRequest, lunar_broker: _Broker, tmp_path: Path
                  ) -> Iterator[LocalMission]:
    """The mission the test's `lunar_mission` marker asks for, running; stopped after the test."""
    marker = request.node.get_closest_marker("lunar_mission")
    spec = MissionSpec.from_marker(marker.kwargs if marker else {})
    mission = LocalMission(lunar_broker.url, spec, tmp_path / "lunar-mission")
    with mission:
        yield mission
        call = getattr(request.node, "_lunar_report_call", None)
        if call is not None and call.failed:
            for node in mission.nodes:
                tail = "\n".join(mission.log(node).splitlines()[-LOG_TAIL_LINES:])
                request.node.add_report_section("call", f"lunar-gs {node} log (last lines)", tail)


@pytest_asyncio.fixture
async def lunar_tm(lunar_mission: LocalMission) -> AsyncIterator[MissionClient]:
    """A client on the running mission: clock known, every service online, the marker's faults in."""
    async with MissionClient(lunar_mission.url, lunar_mission.mission) as client:
        await client.ready(lunar_mission.nodes, timeout_s=60)
        for fault in lunar_mission.faults_to_inject:
            await client.inject(fault)
        yield client
