"""Arm model: a 10-site sampling sequence, joint loads, refusals, determinism."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.arm import JOINTS, ArmParams, SimArm
from lunar_gs.hardware_sim.faults import FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.hal import Arm, DeviceCommandError
from lunar_gs.protocols.faults import FaultKind, parse_fault_params


def make(seed: int = 1) -> SimArm:
    return SimArm(ArmParams(), random.Random(seed), 0.0)


def run(arm: SimArm, until: float, every: float = 15.0) -> list:
    events, t = [], arm.time
    while t < until:
        t += every
        arm.advance(t)
        events += arm.drain_events()
    return events


def test_ten_sites_deposit_ten_scoops_in_one_to_two_hours() -> None:
    arm = make()
    assert isinstance(arm, Arm)
    arm.self_test()
    arm.start_sampling(10, 3.0)
    assert arm.state().mode == "sampling" and arm.active()
    events = run(arm, 4 * 3600.0)
    deposits = [e for e in events if e.name == "scoop_deposited"]
    assert [e.data["site"] for e in deposits] == list(range(1, 11))
    assert all(60.0 <= e.data["mass_g"] <= 260.0 for e in deposits)
    complete = [e for e in events if e.name == "sampling_complete"]
    assert len(complete) == 1 and complete[0].data["scoops"] == 10
    assert 900.0 <= complete[0].data["mass_g"] <= 2100.0
    assert complete[0].data["mass_g"] == pytest.approx(sum(e.data["mass_g"] for e in deposits), abs=0.1)
    assert 60 * 60 <= complete[0].time <= 120 * 60
    s = arm.state()
    assert s.mode == "idle" and s.scoops_done == 10 and s.scoop_phase == "none" and not arm.active()


def test_phases_joints_and_loads() -> None:
    arm = make()
    arm.start_sampling(1, 3.0)
    seen: set[str] = set()
    dig_scoop_torque = 0.0
    for t in range(1, 1500):
        arm.advance(float(t))
        s = arm.state()
        seen.add(s.scoop_phase)
        assert [j.name for j in s.joints] == list(JOINTS)
        assert all(j.current_a >= 0 for j in s.joints)
        if s.scoop_phase == "dig":
            dig_scoop_torque = max(dig_scoop_torque, s.joints[4].torque_nm)
    assert {"move", "dig", "lift", "deposit"} <= seen
    assert dig_scoop_torque > ArmParams().dig_load_nm * 0.8
    shoulder = arm.state().joints[1]
    assert shoulder.torque_nm > 5.0  # lunar-gravity load on the shoulder
    assert shoulder.current_a == pytest.approx(0.1 + 0.05 * abs(shoulder.torque_nm))


def test_stow_and_refusals() -> None:
    arm = make()
    for sites, depth in ((0, 3.0), (21, 3.0), (5, 0.0), (5, 11.0)):
        with pytest.raises(DeviceCommandError):
            arm.start_sampling(sites, depth)
    arm.start_sampling(2, 3.0)
    with pytest.raises(DeviceCommandError) as err:
        arm.start_sampling(2, 3.0)
    assert err.value.code == "busy"
    with pytest.raises(DeviceCommandError):
        arm.stow()
    run(arm, 3 * 3600.0)
    arm.stow()
    events = run(arm, 4 * 3600.0)
    assert [e.name for e in events] == ["stowed"]
    assert arm.state().mode == "stowed"
    assert arm.state().joints[0].angle_deg == pytest.approx(ArmParams().stowed_pose_deg[0])


def test_deterministic_with_seed_and_varies_across_seeds() -> None:
    def masses(seed: int) -> list:
        arm = make(seed)
        arm.start_sampling(3, 3.0)
        return [e.data["mass_g"] for e in run(arm, 2 * 3600.0) if e.name == "scoop_deposited"]

    assert masses(4) == masses(4)
    assert masses(4) != masses(5)


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.floats(0.0, 1.0), max_size=15))
def test_idle_partition_independent(cuts: list[float]) -> None:
    a, b = make(), make()
    for c in sorted(cuts):
        a.advance(c * 72_000.0)
    a.advance(72_000.0)
    b.advance(72_000.0)
    assert a.state() == b.state()


# -- faults and recovery commands -----------------------------------------------------------------------------

def fault(kind: str, item: str | None = None, fault_id: str = "f1", **params: float) -> ModelFault:
    """As the node hands it over: params validated against the catalogue, defaults filled."""
    return ModelFault(fault_id, kind, item, parse_fault_params(FaultKind(kind), dict(params)).model_dump())


def until_fault(arm: SimArm, limit: float = 4 * 3600.0) -> list:
    events = []
    while arm.state().mode == "sampling" and arm.time < limit:
        arm.advance(arm.time + 1.0)
        events += arm.drain_events()
    return events


def test_encoder_stuck_faults_the_arm_and_switching_to_the_redundant_encoder_recovers() -> None:
    arm = make()
    arm.start_sampling(3, 3.0)
    arm.inject_fault(fault("arm.encoder_stuck", "elbow"))
    events = until_fault(arm)
    trip = events[-1]
    assert trip.name == "joint_fault" and trip.severity == "error"
    assert trip.data == {"joint": "elbow", "reason": "encoder mismatch"}
    s = arm.state()
    assert s.mode == "fault" and not arm.active() and s.scoop_mass_g == 0.0 and s.scoop_phase == "none"
    (symptom,) = arm.drain_symptoms()
    assert 0.0 < symptom.time < trip.time  # the frozen reading shows before the cross-check trips
    with pytest.raises(DeviceCommandError) as err:
        arm.start_sampling(3, 3.0)
    assert err.value.code == "device_fault"
    with pytest.raises(DeviceCommandError):
        arm.reset_joint("elbow")  # not an over-current
    arm.switch_encoder("elbow", "redundant")
    assert [e.name for e in arm.drain_events()] == ["encoder_switched"]
    s = arm.state()
    assert s.mode == "idle" and s.joints[2].encoder == "redundant" and s.joints[0].encoder == "primary"
    done = s.scoops_done
    arm.start_sampling(3 - done, 3.0)  # re-plan the remaining sites
    events = run(arm, arm.time + 3 * 3600.0)
    complete = [e for e in events if e.name == "sampling_complete"]
    assert len(complete) == 1 and complete[0].data["scoops"] == 3 - done
    assert arm.state().scoops_done == 3 and arm.state().sites_total == 3 - done
    # back to the still-frozen primary: the next move faults again
    arm.switch_encoder("elbow", "primary")
    arm.start_sampling(1, 3.0)
    assert until_fault(arm)[-1].name == "joint_fault"


def test_encoder_drift_trips_even_while_idle_at_the_crossing_time() -> None:
    arm = make()
    arm.inject_fault(fault("arm.encoder_drift", "wrist", rate_deg_per_s=0.05))
    arm.advance(30.0)
    assert arm.state().joints[3].angle_deg == pytest.approx(ArmParams().stowed_pose_deg[3] + 1.5)
    assert arm.state().mode == "stowed" and arm.drain_events() == []
    arm.advance(3600.0)
    (trip,) = arm.drain_events()
    assert trip.name == "joint_fault" and trip.time == pytest.approx(40.0) and trip.data["joint"] == "wrist"
    assert [s.time for s in arm.drain_symptoms()] == pytest.approx([10.0])
    arm.switch_encoder("wrist", "redundant")
    s = arm.state()
    assert s.mode == "stowed" and s.joints[3].angle_deg == pytest.approx(ArmParams().stowed_pose_deg[3])
    arm.clear_fault("f1")
    arm.switch_encoder("wrist", "primary")
    arm.start_sampling(1, 3.0)
    events = run(arm, arm.time + 3600.0)
    assert events[-1].name == "sampling_complete" and arm.state().scoops_done == 1


def test_joint_overcurrent_trips_when_the_joint_moves_reset_and_clear() -> None:
    arm = make()
    arm.inject_fault(fault("arm.joint_overcurrent", "shoulder_yaw"))
    arm.advance(600.0)  # not moving: no extra current, no trip
    assert arm.state().joints[0].current_a < 1.0 and arm.drain_symptoms() == []
    arm.start_sampling(2, 3.0)
    events = until_fault(arm)
    trip = events[-1]
    assert trip.name == "joint_overcurrent" and trip.time == 601.0
    assert trip.data["joint"] == "shoulder_yaw" and trip.data["current_a"] > ArmParams().overcurrent_limit_a
    assert arm.state().mode == "fault" and [s.time for s in arm.drain_symptoms()] == [601.0]
    with pytest.raises(DeviceCommandError):
        arm.reset_joint("elbow")
    with pytest.raises(DeviceCommandError):
        arm.clear_scoop()
    arm.reset_joint("shoulder_yaw")
    assert [e.name for e in arm.drain_events()] == ["joint_reset"] and arm.state().mode == "idle"
    arm.start_sampling(2, 3.0)  # still active: trips again at the first move
    assert until_fault(arm)[-1].name == "joint_overcurrent"
    arm.clear_fault("f1")
    arm.reset_joint("shoulder_yaw")
    arm.start_sampling(2, 3.0)
    events = run(arm, arm.time + 3 * 3600.0)
    assert "joint_overcurrent" not in [e.name for e in events] and events[-1].name == "sampling_complete"


def test_scoop_jam_stops_after_the_dig_and_clear_scoop_recovers() -> None:
    arm = make()
    arm.inject_fault(fault("arm.scoop_jam"))
    arm.start_sampling(2, 3.0)
    events = until_fault(arm)
    jam = events[-1]
    assert jam.name == "scoop_jammed" and jam.severity == "warning"
    s = arm.state()
    assert s.mode == "fault" and s.scoop_phase == "jammed" and s.scoop_mass_g == 0.0 and s.scoops_done == 0
    assert [sy.time for sy in arm.drain_symptoms()] == [jam.time]
    with pytest.raises(DeviceCommandError):
        arm.switch_encoder("bogus", "primary")
    arm.clear_scoop()
    assert arm.active() and arm.state().scoop_phase == "shake"
    with pytest.raises(DeviceCommandError) as err:
        arm.clear_scoop()
    assert err.value.code == "busy"
    arm.advance(arm.time + 29.0)
    assert arm.state().mode == "fault"
    arm.advance(arm.time + 5.0)
    cleared = arm.drain_events()
    assert [e.name for e in cleared] == ["scoop_cleared"] and cleared[0].time == pytest.approx(jam.time + 30.0)
    (recovered,) = arm.drain_symptoms()
    assert recovered.recovered and arm.active_faults() == [] and arm.state().mode == "idle"
    arm.start_sampling(2, 3.0)
    events = run(arm, arm.time + 3 * 3600.0)
    assert events[-1].name == "sampling_complete" and arm.state().scoops_done == 2


def test_switch_encoder_refusals_and_fault_targets() -> None:
    arm = make()
    with pytest.raises(DeviceCommandError):
        arm.switch_encoder("elbow", "spare")
    with pytest.raises(FaultNotApplicable):
        arm.inject_fault(fault("arm.encoder_stuck", "knee"))
    with pytest.raises(FaultNotApplicable):
        arm.inject_fault(fault("drill.feed_stuck"))
    arm.start_sampling(1, 3.0)
    with pytest.raises(DeviceCommandError) as err:
        arm.switch_encoder("elbow", "redundant")
    assert err.value.code == "busy"


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.floats(0.0, 1.0), max_size=15), joint=st.sampled_from(JOINTS))
def test_partition_independent_with_encoder_drift(cuts: list[float], joint: str) -> None:
    a, b = make(3), make(3)
    for arm in (a, b):
        arm.start_sampling(2, 3.0)
        arm.advance(100.0)
        arm.inject_fault(fault("arm.encoder_drift", joint, rate_deg_per_s=0.01))
    end = 100.0 + 3600.0
    for c in sorted(cuts):
        a.advance(100.0 + c * 3600.0)
    a.advance(end)
    b.advance(end)
    assert a.state().mode == b.state().mode
    ea, eb = a.drain_events(), b.drain_events()
    assert [e.name for e in ea] == [e.name for e in eb]
    assert [e.time for e in ea] == pytest.approx([e.time for e in eb])
    for ja, jb in zip(a.state().joints, b.state().joints, strict=True):
        assert ja.angle_deg == pytest.approx(jb.angle_deg, abs=1e-9)
