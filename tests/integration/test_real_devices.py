"""Real devices in the loop: one mission on the bench profile (`seeds/mission-bench.yaml`: drill and arm
over Modbus TCP, the sample container's seal controller over the framed serial line, each served by an
emulator process), real service processes and a real Mosquitto. The tests run in order on that mission:
what the status and housekeeping say, a third-party Modbus client, an emulator killed while drilling,
a service killed and resumed from its JSON snapshot, a service started with its device unreachable."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from lunar_gs.protocols.commands import Telecommand
from lunar_gs.protocols.events import Alarm, AlarmState, Event
from lunar_gs.protocols.faults import FaultRecord, FaultRequest, FaultSpec, TruthEntry
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import ArmHousekeeping, DrillHousekeeping
from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport
from lunar_gs.services.mission import SEEDS_DIR
from lunar_gs.services.runtime.broker import MosquittoProcess
from lunar_gs.testing.mission import LocalMission, MissionSpec
from tests.integration.kit import Heard, Listener

pytestmark = pytest.mark.integration
DOCS = Path(__file__).resolve().parents[2] / "docs" / "devices"
BENCH = SEEDS_DIR / "mission-bench.yaml"


@pytest.fixture(scope="module")
def bench(mosquitto_session: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMission]:
    spec = MissionSpec(rate=20.0, seed=5, mission_file=BENCH, keep_state=True)
    with LocalMission(mosquitto_session.url, spec, tmp_path_factory.mktemp("bench")) as mission:
        yield mission


@pytest.fixture
async def heard(bench: LocalMission) -> Any:
    async with Listener(bench.url, bench.mission) as listener:
        for node in (Node.LANDER_DRILL, Node.LANDER_ARM, Node.RELAY_SATELLITE, Node.GROUND_CONTROL):
            await listener.wait_for(lambda h, node=node: _online(h, node), timeout=30, what=f"{node} online")
        yield listener


def _online(h: Heard, node: Node) -> bool:
    return (h.topic == f"lgs/v1/{h.topic.split('/')[2]}/sys/{node}/status" and isinstance(h.message, ServiceStatus)
            and h.message.state is ServiceState.ONLINE)


def _ground(check: Callable[[Any], bool]) -> Callable[[Heard], bool]:
    return lambda h: "/space/" not in h.topic and h.message is not None and check(h.message)


async def _command(listener: Listener, mission: LocalMission, node: Node, name: str, **args: Any) -> str:
    request_id = f"rd-{uuid.uuid4().hex[:8]}"
    await listener.publish(f"lgs/v1/{mission.mission}/ground/{node}/tc", Telecommand(
        source=Node.GROUND_CONTROL, request_id=request_id, target=node, command=name, args=args))
    return request_id


async def _report(listener: Listener, request_id: str, stage: Stage, success: bool = True,
                  timeout: float = 30.0) -> VerificationReport:
    heard = await listener.wait_for(_ground(
        lambda m: isinstance(m, VerificationReport) and m.request_id == request_id and m.stage is stage
        and m.success is success), timeout=timeout, what=f"{stage} {'ok' if success else 'failed'} of {request_id}")
    assert isinstance(heard.message, VerificationReport)
    return heard.message


def _event(node: Node, name: str, since: float) -> Callable[[Heard], bool]:
    return lambda h: h.at >= since and "/space/" not in h.topic and isinstance(h.message, Event) \
        and h.message.source == node and h.message.event == name


def _status(listener: Listener, node: Node) -> ServiceStatus:
    statuses = [h.message for h in listener.history if isinstance(h.message, ServiceStatus)
                and h.message.source == node]
    assert statuses, f"no status of {node}"
    return statuses[-1]


async def test_status_and_housekeeping_say_each_device_backend_and_link(heard: Listener) -> None:
    drill = _status(heard, Node.LANDER_DRILL)
    assert drill.backends == {"drill": "modbus_tcp"}
    arm = _status(heard, Node.LANDER_ARM)
    assert arm.backends["arm"] == "modbus_tcp" and arm.backends["container"] == "serial_line"
    assert arm.backends["power"] == "sim"
    for status in (drill, arm):
        if any(v != "up" for v in status.links.values()):  # the first status may precede the first connect
            status = (await heard.wait_for(lambda h, s=status: isinstance(h.message, ServiceStatus)
                                           and h.message.source == s.source
                                           and set(h.message.links.values()) == {"up"}, timeout=20,
                                           what="links up")).message
    hk = (await heard.wait_for(_ground(lambda m: isinstance(m, ArmHousekeeping)), timeout=60,
                               what="arm housekeeping")).message
    assert {(link.name, link.backend, link.link_up) for link in hk.links} == {
        ("arm", "modbus_tcp", True), ("container", "serial_line", True)}


def _documented_snapshot() -> list[tuple[int, str, str]]:
    """(address, name, type) of the drill's snapshot block, read from the published register map."""
    text = (DOCS / "drill-modbus.md").read_text()
    block = text.split("## `snapshot`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `([\w.]+)` \| (\w+(?:\[\d+\])?) \|", block, re.MULTILINE)
    return [(int(a), n, t) for a, n, t in rows]


def _decode(registers: list[int], offset: int, kind: str) -> Any:
    """Decoding as a third party would, from the documented types (big word order)."""
    words = registers[offset:]
    if kind == "f64":
        return struct.unpack(">d", struct.pack(">4H", *words[:4]))[0]
    if kind == "u32":
        return words[0] << 16 | words[1]
    if kind in ("u16", "enum"):
        return words[0]
    if kind == "bool":
        return bool(words[0])
    size = int(kind[5:-1])  # text[n]
    raw = struct.pack(f">{(size + 1) // 2}H", *words[:(size + 1) // 2])
    return raw.rstrip(b"\0").decode()


async def test_a_third_party_modbus_client_reads_what_housekeeping_says(bench: LocalMission, heard: Listener
                                                                       ) -> None:
    rows = _documented_snapshot()
    assert {name for _, name, _ in rows} >= {"depth_m", "torque_nm", "mode", "bit_temperature_c", "material"}
    host, port = bench.emulators["drill"].url.removeprefix("tcp://").split(":")
    start = rows[0][0]
    count = rows[-1][0] - start + (16 if rows[-1][2].startswith("text") else 4)
    modes = re.search(r"`mode` \| enum \|  \| 1 \| (.+) \|", (DOCS / "drill-modbus.md").read_text())
    assert modes is not None
    mode_names = dict(re.findall(r"(\d+) (\w+)", modes.group(1)))
    async with AsyncModbusTcpClient(host, port=int(port), timeout=2) as client:
        assert client.connected
        # idle, the drill's values do not change: housekeeping after the read must show the same ones
        since = time.monotonic()
        response = await client.read_input_registers(start, count=min(count, 125), device_id=1)
        assert not response.isError(), response
    values = {name: _decode(response.registers, address - start, kind) for address, name, kind in rows
              if address - start < len(response.registers)}
    hk = (await heard.wait_for(lambda h: h.at > since and "/ground/" in h.topic
                               and isinstance(h.message, DrillHousekeeping), timeout=120,
                               what="drill housekeeping")).message
    assert mode_names[str(values["mode"])] == hk.mode
    for name in ("depth_m", "target_depth_m", "rpm", "core_mass_g", "material", "percussion"):
        assert values[name] == getattr(hk, name), name


async def test_an_emulator_killed_while_drilling_is_a_link_loss_and_the_mission_goes_on(
        bench: LocalMission, heard: Listener) -> None:
    drill = await _command(heard, bench, Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=1.0, rpm=120.0,
                           percussion=False)
    await _report(heard, drill, Stage.START)
    await heard.wait_for(_ground(lambda m: isinstance(m, DrillHousekeeping) and m.depth_m > 0.005), timeout=60,
                         what="the drill going down")
    since = time.monotonic()
    bench.kill_emulator("drill")
    lost = (await heard.wait_for(_event(Node.LANDER_DRILL, "link_lost", since), timeout=30,
                                 what="link_lost")).message
    assert lost.data["device"] == "drill" and lost.severity == "error"
    failed = await _report(heard, drill, Stage.COMPLETION, success=False)
    assert failed.failure_code is FailureCode.DEVICE_FAULT
    await heard.wait_for(_ground(lambda m: isinstance(m, Alarm) and m.alarm == "lander-drill.drill.link"
                                 and m.state is AlarmState.RAISED), timeout=30, what="the link alarm")
    refused = await _command(heard, bench, Node.LANDER_DRILL, "SET_PERCUSSION", enabled=True)
    report = await _report(heard, refused, Stage.START, success=False)
    assert report.failure_code is FailureCode.DEVICE_FAULT and "link" in (report.reason or "")
    down = (await heard.wait_for(lambda h: h.at > since and "/ground/" in h.topic
                                 and isinstance(h.message, DrillHousekeeping)
                                 and h.message.links and not h.message.links[0].link_up
                                 and h.message.links[0].reading_age_s > 0, timeout=60,
                                 what="housekeeping saying the link is down")).message
    assert down.links[0].name == "drill"
    assert _status(heard, Node.LANDER_DRILL).links == {"drill": "down"}
    assert bench.alive(Node.LANDER_DRILL)

    back = time.monotonic()
    bench.start_emulator("drill")
    await heard.wait_for(_event(Node.LANDER_DRILL, "link_restored", back), timeout=30, what="link_restored")
    await heard.wait_for(_event(Node.LANDER_DRILL, "device_restarted", back), timeout=30,
                         what="the power-cycled drill noticed")
    await heard.wait_for(_ground(lambda m: isinstance(m, Alarm) and m.alarm == "lander-drill.drill.link"
                                 and m.state is AlarmState.CLEARED), timeout=30, what="the link alarm cleared")
    checkout = await _command(heard, bench, Node.LANDER_DRILL, "CHECKOUT")
    await _report(heard, checkout, Stage.COMPLETION)


async def test_a_killed_service_resumes_from_its_json_snapshot(bench: LocalMission, heard: Listener) -> None:
    state = bench.workdir / "state" / "lander-drill.json"
    document = json.loads(state.read_text())
    assert document["schema"] == "lunar-gs.service-state" and document["version"] == 2
    saved = document["state"]["devices"]["drill"]
    assert saved["backend"] == "modbus_tcp" and saved["state"]["schema"] == "lunar-gs.remote-device"
    cursor = saved["state"]["event_cursor"]
    assert cursor > 0  # the checkout's event was delivered and saved
    last = (await heard.wait_for(_ground(lambda m: isinstance(m, DrillHousekeeping)), timeout=60,
                                 what="drill housekeeping")).message
    bench.kill(Node.LANDER_DRILL)
    since = time.monotonic()
    bench.start_node(Node.LANDER_DRILL)
    await heard.wait_for(lambda h: h.at > since and isinstance(h.message, ServiceStatus)
                         and h.message.source == Node.LANDER_DRILL and h.message.links == {"drill": "up"},
                         timeout=30, what="the drill service back with its link up")
    assert "state_resumed" in bench.log(Node.LANDER_DRILL)
    checkout = await _command(heard, bench, Node.LANDER_DRILL, "CHECKOUT")
    await _report(heard, checkout, Stage.COMPLETION)
    # the resumed host went on from the saved cursor: the old checkout's event was not taken again from
    # the device (a re-send of the saved, unconfirmed copy keeps its sequence count and is dropped)
    passed = {(h.message.seq, h.message.sim_time) for h in heard.history
              if h.at > since and "/space/" in h.topic and isinstance(h.message, Event)
              and h.message.event == "self_test_passed"}
    assert len({p for p in passed if p[1] > last.sim_time}) == 1, (last.sim_time, passed)


async def _fault(listener: Listener, mission: LocalMission, kind: str, target: str, **params: Any) -> str:
    """Inject through the instructor service; returns the fault id once the instructor took it."""
    request_id = f"rdf-{uuid.uuid4().hex[:8]}"
    await listener.publish(f"lgs/v1/{mission.mission}/sys/fault/request", FaultRequest(
        source=Node.INSTRUCTOR, request_id=request_id,
        spec=FaultSpec(kind=kind, target=target, params=params)))  # type: ignore[arg-type]
    answer = (await listener.wait_for(lambda h: isinstance(h.message, FaultRecord)
                                      and h.message.request_id == request_id
                                      and h.message.entry in (TruthEntry.ACCEPTED, TruthEntry.REJECTED),
                                      timeout=30, what=f"the instructor's answer to {kind}")).message
    assert answer.entry is TruthEntry.ACCEPTED, answer.detail
    return answer.fault_id


async def _truth(listener: Listener, fault_id: str, entry: TruthEntry, timeout: float = 60) -> FaultRecord:
    heard = await listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == fault_id
                                    and h.message.entry is entry, timeout=timeout, what=f"{fault_id} {entry}")
    assert isinstance(heard.message, FaultRecord)
    return heard.message


async def test_the_fault_catalogue_reaches_devices_behind_a_link(bench: LocalMission, heard: Listener) -> None:
    # a model fault, hosted by the emulator's model: the bit turns but goes no deeper
    drill = await _command(heard, bench, Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=1.0, rpm=120.0,
                           percussion=False)
    await _report(heard, drill, Stage.START)
    stuck = await _fault(heard, bench, "drill.feed_stuck", "lander-drill")
    await _truth(heard, stuck, TruthEntry.EFFECTIVE)
    await heard.wait_for(_ground(lambda m: isinstance(m, DrillHousekeeping) and m.mode == "drilling"
                                 and m.penetration_rate_mm_min == 0.0), timeout=60, what="the feed stuck")
    stop = await _command(heard, bench, Node.LANDER_DRILL, "STOP")
    await _report(heard, stop, Stage.COMPLETION)
    # the emulator's own fault: it answers nothing for two seconds, then comes back by itself
    since = time.monotonic()
    silent = await _fault(heard, bench, "device.unresponsive", "lander-arm.arm", seconds=2.0)
    await heard.wait_for(_event(Node.LANDER_ARM, "link_lost", since), timeout=30, what="the arm silent")
    await _truth(heard, silent, TruthEntry.EFFECTIVE)
    await heard.wait_for(_event(Node.LANDER_ARM, "link_restored", since), timeout=30, what="the arm back")
    cleared = await _truth(heard, silent, TruthEntry.CLEARED)
    assert "answers again" in cleared.detail


async def test_a_service_started_with_its_device_unreachable_says_so_and_recovers(
        bench: LocalMission, heard: Listener) -> None:
    bench.kill(Node.LANDER_ARM)
    bench.kill_emulator("container")
    since = time.monotonic()
    bench.start_node(Node.LANDER_ARM)
    # (a resumed service re-sends what was not confirmed: the arm's earlier link_lost may come again)
    lost = (await heard.wait_for(lambda h: _event(Node.LANDER_ARM, "link_lost", since)(h)
                                 and h.message.data.get("device") == "container", timeout=30,
                                 what="link_lost at start")).message
    assert lost.data == {"device": "container", "backend": "serial_line", "at_start": True}
    await heard.wait_for(lambda h: h.at > since and isinstance(h.message, ServiceStatus)
                         and h.message.source == Node.LANDER_ARM and h.message.state is ServiceState.ONLINE
                         and h.message.links == {"arm": "up", "container": "down"}, timeout=30,
                         what="the arm online, its container down")
    seal = await _command(heard, bench, Node.LANDER_ARM, "SEAL_CONTAINER")
    report = await _report(heard, seal, Stage.START, success=False)
    assert report.failure_code is FailureCode.DEVICE_FAULT
    back = time.monotonic()
    bench.start_emulator("container")
    await heard.wait_for(_event(Node.LANDER_ARM, "link_restored", back), timeout=30, what="the container back")
    await asyncio.sleep(0.5)
    assert bench.alive(Node.LANDER_ARM)
    checkout = await _command(heard, bench, Node.LANDER_ARM, "CHECKOUT")
    await _report(heard, checkout, Stage.COMPLETION, timeout=60)
