"""Each kind of the fault catalogue, injected through the instructor service into one running mission
(real processes, real Mosquitto), shows its observable effect where operators look (ground-side telemetry,
events and alarms, after the relay) and stops when cleared. The relay's link kinds have their own file
(test_link_faults.py); loss through the instructor is in test_fault_injection.py.

Commands are sent as ground control sends them, on the ground-side telecommand topics through the relay.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from lunar_gs.protocols.commands import Telecommand
from lunar_gs.protocols.events import Alarm, AlarmState, Event
from lunar_gs.protocols.faults import FaultAction, FaultRecord, FaultRequest, FaultSpec, TruthEntry
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import ArmHousekeeping, AscentHousekeeping, DrillHousekeeping
from lunar_gs.protocols.verification import Stage, VerificationReport
from tests.integration.conftest import RunningMission
from tests.integration.kit import Heard, Listener

pytestmark = pytest.mark.integration


class Faults:
    """Inject, clear and command on the shared mission, waiting for each step in the ground truth."""

    def __init__(self, running: RunningMission, listener: Listener) -> None:
        self.running, self.listener, self.topics = running, listener, running.topics

    async def inject(self, kind: str, target: str, **params: Any) -> str:
        spec = FaultSpec(kind=kind, target=target, params=params)  # type: ignore[arg-type]
        request_id = f"cat-{uuid.uuid4().hex[:8]}"
        await self.listener.publish(self.topics.fault_request,
                                    FaultRequest(source=Node.INSTRUCTOR, request_id=request_id, spec=spec))
        answer = await self._truth(lambda r: r.request_id == request_id and r.entry in (
            TruthEntry.ACCEPTED, TruthEntry.REJECTED), f"an answer to {kind}")
        assert answer.entry is TruthEntry.ACCEPTED, answer.detail
        await self._truth(lambda r: r.fault_id == answer.fault_id and r.entry is TruthEntry.EFFECTIVE,
                          f"{kind} taking effect")
        return answer.fault_id

    async def clear(self, fault_id: str) -> float:
        """Clear a fault; returns the wall time (monotonic) from which its effect must be gone."""
        await self.listener.publish(self.topics.fault_request, FaultRequest(
            source=Node.INSTRUCTOR, request_id=f"cat-{uuid.uuid4().hex[:8]}", action=FaultAction.CLEAR,
            fault_id=fault_id))
        await self._truth(lambda r: r.fault_id == fault_id and r.entry is TruthEntry.CLEARED, f"{fault_id} cleared")
        return time.monotonic()

    async def command(self, node: Node, name: str, **args: Any) -> str:
        request_id = f"cmd-{uuid.uuid4().hex[:8]}"
        await self.listener.publish(self.topics.tc(Side.GROUND, node), Telecommand(
            source=Node.GROUND_CONTROL, request_id=request_id, target=node, command=name, args=args))
        return request_id

    async def report(self, request_id: str, stage: Stage, success: bool = True, timeout: float = 30.0) -> Heard:
        return await self.listener.wait_for(
            lambda h: "/ground/" in h.topic and isinstance(h.message, VerificationReport)
            and h.message.request_id == request_id and h.message.stage is stage and h.message.success is success,
            timeout=timeout, what=f"{stage} {'ok' if success else 'failed'} for {request_id}")

    async def seen(self, predicate: Callable[[Any], bool], since: float, what: str, timeout: float = 30.0) -> Any:
        """The first ground-side message heard after `since` that satisfies `predicate`."""
        heard = await self.listener.wait_for(
            lambda h: h.at >= since and "/space/" not in h.topic and h.message is not None
            and predicate(h.message), timeout=timeout, what=what)
        return heard.message

    async def _truth(self, predicate: Callable[[FaultRecord], bool], what: str) -> FaultRecord:
        heard = await self.listener.wait_for(
            lambda h: isinstance(h.message, FaultRecord) and predicate(h.message), timeout=30, what=what)
        assert isinstance(heard.message, FaultRecord)
        return heard.message


def drill(check: Callable[[DrillHousekeeping], bool]) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, DrillHousekeeping) and check(m)


def arm(check: Callable[[ArmHousekeeping], bool]) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, ArmHousekeeping) and check(m)


def ascent(check: Callable[[AscentHousekeeping], bool]) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, AscentHousekeeping) and check(m)


def event(node: Node, name: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, Event) and m.source == node and m.event == name


def alarm(name: str, state: AlarmState = AlarmState.RAISED) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, Alarm) and m.alarm == name and m.state is state


@pytest.fixture
def faults(running: RunningMission, listener_on_running: Listener) -> Faults:
    return Faults(running, listener_on_running)


async def test_sensor_faults_show_in_the_readings_and_stop_when_cleared(faults: Faults) -> None:
    mark = time.monotonic()
    fault = await faults.inject("sensor.stuck", "lander-drill.bit_temperature_c", value=55.5)
    await faults.seen(drill(lambda m: m.bit_temperature_c == 55.5), mark, "the stuck reading")
    gone = await faults.clear(fault)
    await faults.seen(drill(lambda m: m.bit_temperature_c != 55.5), gone, "the true reading again")

    mark = time.monotonic()
    fault = await faults.inject("sensor.bias", "lander-arm.bus_voltage_v", offset=-10.0)
    await faults.seen(alarm("lander-arm.bus_voltage_v"), mark, "the bus undervoltage alarm from the biased sensor")
    gone = await faults.clear(fault)
    await faults.seen(alarm("lander-arm.bus_voltage_v", AlarmState.CLEARED), gone, "the alarm clearing")

    mark = time.monotonic()
    fault = await faults.inject("sensor.spikes", "lander-drill.motor_temperature_c", magnitude=200.0,
                                probability=1.0)
    await faults.seen(drill(lambda m: abs(m.motor_temperature_c) > 150), mark, "a spike")
    gone = await faults.clear(fault)
    await faults.seen(drill(lambda m: abs(m.motor_temperature_c) < 60), gone, "no spike after clearing")

    mark = time.monotonic()
    fault = await faults.inject("sensor.dropout", "ascent-vehicle.propellant_kg")
    await faults.seen(ascent(lambda m: "propellant_kg" in m.missing), mark, "propellant flagged missing")
    gone = await faults.clear(fault)
    await faults.seen(ascent(lambda m: not m.missing), gone, "propellant valid again")

    mark = time.monotonic()
    fault = await faults.inject("sensor.noise", "lander-arm.battery_temperature_c", sigma=30.0)
    noisy = [(await faults.seen(arm(lambda m: True), time.monotonic(), "arm tm")).battery_temperature_c
             for _ in range(4)]
    assert max(noisy) - min(noisy) > 5.0, noisy
    gone = await faults.clear(fault)
    await faults.seen(arm(lambda m: True), gone, "arm tm after clearing")
    calm = [(await faults.seen(arm(lambda m: True), time.monotonic(), "arm tm")).battery_temperature_c
            for _ in range(3)]
    assert max(calm) - min(calm) < 1.0, calm


async def test_thermal_drift_heats_past_the_limit_and_stops_when_cleared(faults: Faults) -> None:
    for target, name, reading in (
            ("lander-arm.battery", "lander-arm.battery_temperature_c",
             lambda m: isinstance(m, ArmHousekeeping) and m.battery_temperature_c),
            ("lander-drill.motor", "lander-drill.motor_temperature_c",
             lambda m: isinstance(m, DrillHousekeeping) and m.motor_temperature_c)):
        mark = time.monotonic()
        fault = await faults.inject("thermal.drift", target, rate_c_per_h=2000.0)
        await faults.seen(alarm(name), mark, f"{name} over its limit", timeout=60)
        gone = await faults.clear(fault)
        first = await faults.seen(lambda m: reading(m) is not False, gone + 0.3, "a reading after clearing")
        later = await faults.seen(lambda m: reading(m) is not False, time.monotonic() + 1.0, "a later reading")
        assert reading(later) <= reading(first) + 0.5, "still heating after the drift was cleared"


async def test_drill_faults_and_the_weak_battery_act_on_a_turning_drill(faults: Faults) -> None:
    # a weak battery sheds the turning drill; cleared, the same drilling carries on
    fault = await faults.inject("power.battery_undervoltage", "lander-arm")
    mark = time.monotonic()
    request = await faults.command(Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=0.4, rpm=120,
                                   percussion=True)
    await faults.seen(event(Node.LANDER_ARM, "load_shed"), mark, "the drill shed for undervoltage")
    await faults.report(request, Stage.COMPLETION, success=False)
    gone = await faults.clear(fault)
    request = await faults.command(Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=0.2, rpm=120,
                                   percussion=True)
    await faults.report(request, Stage.COMPLETION, timeout=60)
    assert not [h for h in faults.listener.history if h.at > gone and isinstance(h.message, Event)
                and h.message.event == "load_shed" and "/ground/" in h.topic]

    # overheating bit: the protection trips; cleared, drilling runs cool
    fault = await faults.inject("drill.bit_overheat", "lander-drill", extra_heating_c_per_s=5.0)
    mark = time.monotonic()
    request = await faults.command(Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=0.5, rpm=120)
    await faults.seen(event(Node.LANDER_DRILL, "bit_overheat_trip"), mark, "the bit temperature trip", timeout=60)
    await faults.report(request, Stage.COMPLETION, success=False)
    await faults.clear(fault)

    # stuck feed: the bit turns, the depth does not change; cleared, it goes deeper again
    fault = await faults.inject("drill.feed_stuck", "lander-drill")
    mark = time.monotonic()
    request = await faults.command(Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=0.6, rpm=120)
    await faults.seen(drill(lambda m: m.mode == "drilling" and m.rpm > 0 and m.penetration_rate_mm_min == 0),
                      mark, "turning without going deeper", timeout=60)
    stuck_at = (await faults.seen(drill(lambda m: m.mode == "drilling"), time.monotonic(), "drill tm")).depth_m
    gone = await faults.clear(fault)
    await faults.seen(drill(lambda m: m.depth_m > stuck_at + 0.002), gone, "drilling deeper after clearing",
                      timeout=60)
    await faults.command(Node.LANDER_DRILL, "STOP")

    # jammed bit: over-torque trip; a retract frees it (recovered by the physics)
    fault = await faults.inject("drill.stall", "lander-drill")
    mark = time.monotonic()
    request = await faults.command(Node.LANDER_DRILL, "DRILL_TO_DEPTH", target_depth_m=0.9, rpm=120)
    await faults.seen(event(Node.LANDER_DRILL, "over_torque"), mark, "the over-torque trip", timeout=60)
    await faults.report(request, Stage.COMPLETION, success=False)
    retract = await faults.command(Node.LANDER_DRILL, "RETRACT", distance_m=0.05)
    await faults.report(retract, Stage.COMPLETION, timeout=60)
    await faults.listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == fault
                                   and h.message.entry is TruthEntry.CLEARED and "recovered" in h.message.detail,
                                   timeout=30, what="the stall recovered by the retract")


async def test_arm_and_container_faults(faults: Faults) -> None:
    jam = await faults.inject("arm.scoop_jam", "lander-arm")
    mark = time.monotonic()
    sampling = await faults.command(Node.LANDER_ARM, "SAMPLE_SITES", sites=2, scoop_depth_cm=3)
    await faults.seen(event(Node.LANDER_ARM, "scoop_jammed"), mark, "the jammed scoop", timeout=90)
    await faults.report(sampling, Stage.COMPLETION, success=False)
    cleared = await faults.command(Node.LANDER_ARM, "CLEAR_SCOOP")
    await faults.report(cleared, Stage.COMPLETION, timeout=60)
    await faults.listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == jam
                                   and h.message.entry is TruthEntry.CLEARED, timeout=30, what="jam recovered")

    # one joint each: a joint switched to its redundant encoder is no longer cross-checked
    for kind, joint, params, symptom in (
            ("arm.encoder_drift", "elbow", {"rate_deg_per_s": 2.0}, "joint_fault"),
            ("arm.encoder_stuck", "wrist", {}, "joint_fault"),
            ("arm.joint_overcurrent", "shoulder_pitch", {"extra_current_a": 5.0}, "joint_overcurrent")):
        fault = await faults.inject(kind, f"lander-arm.{joint}", **params)
        mark = time.monotonic()
        await faults.command(Node.LANDER_ARM, "SAMPLE_SITES", sites=1, scoop_depth_cm=3)
        await faults.seen(event(Node.LANDER_ARM, symptom), mark, f"{kind}: {symptom}", timeout=90)
        await faults.clear(fault)
        recovery = ("RESET_JOINT", {"joint": joint}) if symptom == "joint_overcurrent" else (
            "SWITCH_ENCODER", {"joint": joint, "unit": "redundant"})
        reset = await faults.command(Node.LANDER_ARM, recovery[0], **recovery[1])
        await faults.report(reset, Stage.COMPLETION, timeout=30)
        again = await faults.command(Node.LANDER_ARM, "SAMPLE_SITES", sites=1, scoop_depth_cm=3)
        await faults.report(again, Stage.COMPLETION, timeout=120)  # cleared: a scoop goes through

    leak = await faults.inject("container.seal_leak", "lander-arm", rate_kpa_per_h=500.0)
    seal = await faults.command(Node.LANDER_ARM, "SEAL_CONTAINER")
    await faults.report(seal, Stage.COMPLETION, timeout=60)
    mark = time.monotonic()
    await faults.seen(alarm("lander-arm.seal_pressure_kpa"), mark, "seal pressure low", timeout=60)
    gone = await faults.clear(leak)
    first = await faults.seen(arm(lambda m: True), gone + 0.3, "arm tm after clearing")
    later = await faults.seen(arm(lambda m: True), time.monotonic() + 1.5, "a later arm tm")
    assert later.seal_pressure_kpa >= first.seal_pressure_kpa - 0.01, "the seal still leaks after clearing"


async def test_ascent_faults(faults: Faults) -> None:
    leak = await faults.inject("ascent.propellant_leak", "ascent-vehicle", rate_kg_per_h=500.0)
    first = await faults.seen(ascent(lambda m: True), time.monotonic(), "ascent tm")
    later = await faults.seen(ascent(lambda m: m.propellant_kg < first.propellant_kg - 1.0), time.monotonic(),
                              "propellant going down", timeout=30)
    gone = await faults.clear(leak)
    after = await faults.seen(ascent(lambda m: True), gone + 0.3, "ascent tm after clearing")
    steady = await faults.seen(ascent(lambda m: True), time.monotonic() + 1.5, "a later ascent tm")
    assert steady.propellant_kg == pytest.approx(after.propellant_kg, abs=0.01)
    assert later.propellant_kg < first.propellant_kg

    await faults.report(await faults.command(Node.ASCENT_VEHICLE, "ARM"), Stage.COMPLETION)
    igniter = await faults.inject("ascent.ignition_failure", "ascent-vehicle")
    refused = await faults.command(Node.ASCENT_VEHICLE, "IGNITE")
    failed = (await faults.report(refused, Stage.START, success=False)).message
    assert failed.failure_code is not None and "ignition" in failed.reason
    await faults.listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == igniter
                                   and h.message.entry is TruthEntry.CLEARED, timeout=30,
                                   what="the igniter fault spent after one attempt")

    await faults.inject("ascent.thrust_deficit", "ascent-vehicle", percent=60.0)
    mark = time.monotonic()
    ignite = await faults.command(Node.ASCENT_VEHICLE, "IGNITE")
    await faults.seen(alarm("ascent-vehicle.chamber_pressure_mpa"), mark, "low chamber pressure", timeout=60)
    final = (await faults.report(ignite, Stage.COMPLETION, success=False, timeout=120)).message
    assert "suborbital" in final.reason or "impact" in final.reason, final.reason


async def test_a_crashed_service_goes_offline_and_comes_back(running: RunningMission, faults: Faults) -> None:
    mark = time.monotonic()
    fault = await faults.inject("service.crash", "lander-arm")
    await faults.seen(alarm("service.lander-arm"), mark, "ground control's offline alarm", timeout=30)
    process = running.processes[Node.LANDER_ARM]
    for _ in range(100):
        if not process.alive():
            break
        await asyncio.sleep(0.1)
    assert not process.alive()
    assert process.process is not None and process.process.returncode == 70
    await faults.listener.wait_for(lambda h: isinstance(h.message, FaultRecord) and h.message.fault_id == fault
                                   and h.message.entry is TruthEntry.SYMPTOM, timeout=30, what="crash symptom")
    process.start()  # what a supervisor does
    back = time.monotonic()
    await faults.seen(lambda m: isinstance(m, ServiceStatus) and m.source == Node.LANDER_ARM
                      and m.state is ServiceState.ONLINE, back, "the arm back online", timeout=30)
