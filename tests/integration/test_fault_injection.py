"""Fault injection through the instructor service, over a real private Mosquitto, with every service a
real process: the three ways in (CLI, MQTT, scenario) land in one ground-truth log; bad requests are
rejected with a reason and change nothing; faults show at ground control and go away when cleared.

One mission (six processes, no scenario, rate 100: the `running` fixture of conftest.py) is shared
with the catalogue tests; each test uses its own faults and clears them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.events import Alarm, AlarmState, Rejection, RejectionCode
from lunar_gs.protocols.faults import (
    ActiveFaults,
    FaultAction,
    FaultRecord,
    FaultRequest,
    FaultSpec,
    FaultVia,
    TruthEntry,
)
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.system import ClockState, ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import ArmHousekeeping, DrillHousekeeping
from lunar_gs.protocols.topics import Topics
from lunar_gs.services.runtime.broker import MosquittoProcess
from tests.integration.conftest import RunningMission
from tests.integration.kit import Listener, ServiceProcess

pytestmark = pytest.mark.integration
CODEC = JsonCodec()


@pytest.fixture
def listener(listener_on_running: Listener) -> Listener:
    return listener_on_running


def alarm(name: str, state: AlarmState):  # noqa: ANN201
    return lambda h: isinstance(h.message, Alarm) and h.message.alarm == name and h.message.state is state


async def request(listener: Listener, running: RunningMission, **fields: object) -> str:
    request_id = f"t-{uuid.uuid4().hex[:8]}"
    message = FaultRequest(source=Node.INSTRUCTOR, request_id=request_id, **fields)  # type: ignore[arg-type]
    await listener.publish(running.topics.fault_request, message)
    return request_id


def answer_to(request_id: str):  # noqa: ANN201
    return lambda h: isinstance(h.message, FaultRecord) and h.message.request_id == request_id \
        and h.message.entry in (TruthEntry.ACCEPTED, TruthEntry.REJECTED)


async def test_cli_injects_lists_and_clears_a_fault_that_operators_see_as_a_limit_alarm(
        running: RunningMission, listener: Listener) -> None:
    listed = running.cli("fault", "active")
    assert listed.returncode == 0, listed.stderr
    injected = await asyncio.to_thread(
        running.cli, "fault", "inject", "sensor.bias", "--target", "lander-drill.bit_temperature_c",
        "--param", "offset=200", "--label", "hot-bit")
    assert injected.returncode == 0, injected.stderr
    fault_id = injected.stdout.strip()
    assert fault_id.startswith("F")
    raised = await listener.wait_for(alarm("lander-drill.bit_temperature_c", AlarmState.RAISED), timeout=30,
                                     what="the bit temperature alarm at ground control")
    assert isinstance(raised.message, Alarm) and float(raised.message.value or 0) > 150  # type: ignore[arg-type]
    active = await asyncio.to_thread(running.cli, "fault", "active")
    assert fault_id in active.stdout and "sensor.bias" in active.stdout

    cleared = await asyncio.to_thread(running.cli, "fault", "clear", fault_id)
    assert cleared.returncode == 0, cleared.stderr
    await listener.wait_for(alarm("lander-drill.bit_temperature_c", AlarmState.CLEARED), timeout=30,
                            what="the alarm clearing once the bias is gone")
    truth = [r for r in running.truth() if r.fault_id == fault_id]
    entries = [r.entry for r in truth]
    assert entries[:3] == [TruthEntry.ACCEPTED, TruthEntry.ARMED, TruthEntry.INJECTED]
    assert {TruthEntry.EFFECTIVE, TruthEntry.SYMPTOM, TruthEntry.CLEARED} <= set(entries)
    assert all(r.via is FaultVia.CLI for r in truth)
    effective = next(r for r in truth if r.entry is TruthEntry.EFFECTIVE)
    symptom = next(r for r in truth if r.entry is TruthEntry.SYMPTOM)
    assert symptom.sim_time >= effective.sim_time and "bit_temperature_c" in symptom.detail


async def test_mqtt_request_is_answered_and_bad_requests_are_rejected_and_change_nothing(
        running: RunningMission, listener: Listener) -> None:
    topics = running.topics
    stuck = FaultSpec(kind="sensor.stuck", target="lander-arm.container_mass_g",  # type: ignore[arg-type]
                      params={"value": 1234.0}, label="stuck-mass")
    request_id = await request(listener, running, spec=stuck, via=FaultVia.MQTT)
    accepted = (await listener.wait_for(answer_to(request_id), timeout=20)).message
    assert isinstance(accepted, FaultRecord) and accepted.entry is TruthEntry.ACCEPTED
    await listener.wait_for(lambda h: isinstance(h.message, ArmHousekeeping) and "/ground/" in h.topic
                            and h.message.container_mass_g == 1234.0, timeout=60,
                            what="the stuck reading at ground control")

    # malformed bytes: a rejection from the instructor, on its own event topic (not the operators')
    await listener.publish(topics.fault_request, b"\x00not json")
    bad = await listener.wait_for(lambda h: isinstance(h.message, Rejection)
                                  and h.topic == topics.sys_events(Node.INSTRUCTOR)
                                  and h.message.code is RejectionCode.MALFORMED, timeout=20)
    assert isinstance(bad.message, Rejection)
    # out-of-range parameters: rejected with the reason, answered in the truth with its request id
    raw = json.loads(CODEC.encode(FaultRequest(source=Node.INSTRUCTOR, request_id="t-range", spec=stuck)))
    raw["spec"] = {"kind": "drill.stall", "target": "lander-drill", "params": {"torque_rise_nm_per_s": 999}}
    await listener.publish(topics.fault_request, json.dumps(raw).encode())
    range_answer = (await listener.wait_for(answer_to("t-range"), timeout=20)).message
    assert isinstance(range_answer, FaultRecord) and range_answer.entry is TruthEntry.REJECTED
    assert "torque_rise_nm_per_s" in range_answer.detail
    # an impossible one: a second fault on the same sensor that does not compose
    again = FaultSpec(kind="sensor.dropout", target="lander-arm.container_mass_g")  # type: ignore[arg-type]
    conflict_id = await request(listener, running, spec=again)
    conflict = (await listener.wait_for(answer_to(conflict_id), timeout=20)).message
    assert isinstance(conflict, FaultRecord) and conflict.entry is TruthEntry.REJECTED
    assert accepted.fault_id in conflict.detail and "conflicts" in conflict.detail
    # ... and nothing changed: one active fault, the one accepted
    listener.history.clear()
    clear_id = await request(listener, running, action=FaultAction.CLEAR, fault_id="stuck-mass")
    assert clear_id
    cleared = await listener.wait_for(lambda h: isinstance(h.message, FaultRecord)
                                      and h.message.fault_id == accepted.fault_id
                                      and h.message.entry is TruthEntry.CLEARED, timeout=20)
    assert cleared
    retained = await listener.wait_for(
        lambda h: isinstance(h.message, ActiveFaults) and not [
            f for f in h.message.faults if f.target == "lander-arm.container_mass_g"], timeout=10,
        what="the active list without the cleared fault")
    assert isinstance(retained.message, ActiveFaults)
    rejected = [r for r in running.truth() if r.entry is TruthEntry.REJECTED]
    assert {r.request_id for r in rejected} >= {"t-range", conflict_id}
    assert running.processes[Node.INSTRUCTOR].alive()


async def test_a_hung_service_goes_silent_without_a_last_will_and_comes_back_when_cleared(
        running: RunningMission, listener: Listener) -> None:
    hang = FaultSpec(kind="service.hang", target="lander-drill", label="drill-hang")  # type: ignore[arg-type]
    request_id = await request(listener, running, spec=hang)
    fault_id = (await listener.wait_for(answer_to(request_id), timeout=20)).message.fault_id  # type: ignore[union-attr]
    await listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == fault_id
                            and h.message.entry is TruthEntry.SYMPTOM, timeout=60, what="the hang's symptom")
    await asyncio.sleep(2.0)
    quiet = [h for h in listener.history if isinstance(h.message, DrillHousekeeping)
             and h.at > time.monotonic() - 1.5]
    assert quiet == [], "a hung drill still sent housekeeping"
    offline = [h for h in listener.history if h.topic == running.topics.status(Node.LANDER_DRILL)
               and isinstance(h.message, ServiceStatus) and h.message.state is ServiceState.OFFLINE]
    assert offline == [], "a hang must not fire the Last Will"
    await request(listener, running, action=FaultAction.CLEAR, fault_id="drill-hang")
    mark = time.monotonic()
    await listener.wait_for(lambda h: isinstance(h.message, DrillHousekeeping) and h.at > mark
                            and "/ground/" in h.topic, timeout=60, what="drill housekeeping after the hang")
    assert running.processes[Node.LANDER_DRILL].alive()


async def test_relay_link_loss_injected_by_the_instructor_shows_as_silence_and_ends_when_cleared(
        running: RunningMission, listener: Listener) -> None:
    loss = FaultSpec(kind="link.loss", target="lander-arm.down", params={"percent": 100.0},  # type: ignore[arg-type]
                     label="arm-loss")
    request_id = await request(listener, running, spec=loss)
    answered = (await listener.wait_for(answer_to(request_id), timeout=20)).message
    assert isinstance(answered, FaultRecord) and answered.entry is TruthEntry.ACCEPTED
    await listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == answered.fault_id
                            and h.message.entry is TruthEntry.EFFECTIVE, timeout=20)
    await asyncio.sleep(1.0)
    mark = time.monotonic()
    await asyncio.sleep(2.5)  # at rate 100 the idle arm reports every 0.6 wall seconds
    assert not [h for h in listener.history if isinstance(h.message, ArmHousekeeping) and "/ground/" in h.topic
                and h.at > mark], "arm telemetry crossed a 100 % lossy link"
    assert [h for h in listener.history if isinstance(h.message, ArmHousekeeping) and "/space/" in h.topic
            and h.at > mark], "the arm itself kept reporting on the lander side"
    await request(listener, running, action=FaultAction.CLEAR, fault_id="arm-loss")
    mark = time.monotonic()
    await listener.wait_for(lambda h: isinstance(h.message, ArmHousekeeping) and "/ground/" in h.topic
                            and h.at > mark, timeout=30, what="arm telemetry after the loss cleared")


RANDOM_SCHEDULE_PARAMETERS = ("depth_m", "rpm", "torque_nm", "bit_temperature_c", "motor_temperature_c",
                              "core_mass_g", "penetration_rate_mm_min", "target_depth_m")


def random_schedule_scenario(path: Path) -> Path:
    faults = "\n".join(
        f"  - {{label: r{i}, kind: sensor.bias, target: lander-drill.{name}, params: {{offset: 1.0}},\n"
        f"     trigger: {{at: {3700 + 60 * i}, probability: 0.5}}}}"
        for i, name in enumerate(RANDOM_SCHEDULE_PARAMETERS))
    path.write_text(f"name: random schedule\nfaults:\n{faults}\nphases:\n  - name: hold\n"
                    "    steps:\n      - wait: 60\n")
    return path


async def drawn_schedule(url: str, scenario: Path, seed: int, folder: Path) -> list[tuple[str, str, str]]:
    """Start an instructor service alone with a scenario of chance faults, give it a clock, and read back
    which faults its draws let in."""
    mission = "tr" + uuid.uuid4().hex[:8]
    report = folder / mission
    instructor = ServiceProcess(Node.INSTRUCTOR, url, mission, folder, "--scenario", str(scenario),
                                "--seed", str(seed), "--report", str(report)).start()
    try:
        async with Listener(url, mission) as heard:
            epoch = 1717280596.0
            clock = ClockState(source=Node.GROUND_CONTROL, epoch=epoch, sim_anchor=epoch + 3600,
                               wall_anchor=time.time(), rate=1.0, generation=1)
            # retained, as ground control publishes it: the instructor may subscribe after this
            await heard.bus.publish(Topics(mission).clock, CODEC.encode(clock), qos=1, retain=True)
            decided = (TruthEntry.ARMED, TruthEntry.NOT_DRAWN)
            for _ in range(200):
                records = [r for r in _read_truth(report) if r.entry in decided]
                if len(records) == len(RANDOM_SCHEDULE_PARAMETERS):
                    return [(r.fault_id, r.label, str(r.entry)) for r in records]
                await asyncio.sleep(0.05)
            raise AssertionError(f"the instructor decided {len(records)} faults: {instructor.log()[-2000:]}")
    finally:
        instructor.stop()
        async with Listener(url, mission) as cleaner:  # leave no retained clock behind
            await cleaner.bus.publish(Topics(mission).clock, b"", qos=1, retain=True)
            await cleaner.bus.flush(timeout=5)


def _read_truth(report: Path) -> list[FaultRecord]:
    path = report / "truth.jsonl"
    if not path.exists():
        return []
    return [r for r in (CODEC.decode(line) for line in path.read_bytes().splitlines() if line.strip())
            if isinstance(r, FaultRecord)]


async def test_a_seeded_random_fault_schedule_reproduces(mosquitto_session: MosquittoProcess,
                                                         tmp_path: Path) -> None:
    scenario = random_schedule_scenario(tmp_path / "random.yaml")
    first = await drawn_schedule(mosquitto_session.url, scenario, 11, tmp_path)
    again = await drawn_schedule(mosquitto_session.url, scenario, 11, tmp_path)
    other = await drawn_schedule(mosquitto_session.url, scenario, 12, tmp_path)
    assert first == again
    entries = [entry for _, _, entry in first]
    assert "armed" in entries and "not_drawn" in entries, "eight draws at 0.5 should go both ways"
    assert other != first, "another seed draws another schedule"
