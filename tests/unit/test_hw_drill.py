"""Drill model: rock without percussion trips, with percussion passes; core mass; determinism; warps."""

import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.drill import DrillParams, SimDrill
from lunar_gs.hardware_sim.faults import FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.hal import DeviceCommandError, Drill
from lunar_gs.protocols.faults import FaultKind, parse_fault_params


def make(seed: int = 1) -> SimDrill:
    return SimDrill(DrillParams(), random.Random(seed), 0.0)


def run(drill: SimDrill, until: float, every: float = 10.0) -> list:
    events = []
    t = drill.time
    while t < until:
        t += every
        drill.advance(t)
        events += drill.drain_events()
    return events


def test_is_a_drill() -> None:
    assert isinstance(make(), Drill)


def test_rock_without_percussion_trips_over_torque() -> None:
    drill = make()
    drill.self_test()
    drill.start(1.5, 120.0, percussion=False)
    events = run(drill, 3 * 3600.0)
    names = [e.name for e in events]
    assert names[:2] == ["self_test_passed", "material_changed"]
    trip = next(e for e in events if e.name == "over_torque")
    rock = next(e for e in events if e.name == "material_changed")
    assert rock.data["material"] == "rock"
    assert trip.severity == "error" and trip.data["torque_nm"] > DrillParams().over_torque_limit_nm
    assert 0.9 <= trip.data["depth_m"] < 0.95
    assert 0.0 < trip.time - rock.time < 60.0  # "within a short time"
    state = drill.state()
    assert state.mode == "tripped" and state.rpm == 0.0 and state.material == "rock"
    assert "target_depth_reached" not in names


def test_percussion_from_rock_layer_passes_to_target_in_about_an_hour() -> None:
    drill = make()
    drill.start(1.5, 120.0, percussion=False)
    events = []
    while not any(e.name == "material_changed" for e in events):
        drill.advance(drill.time + 1.0)
        events += drill.drain_events()
    drill.set_percussion(True)  # operator reacts at the rock layer
    assert drill.state().torque_nm < DrillParams().over_torque_limit_nm
    events += run(drill, 3 * 3600.0)
    names = [e.name for e in events]
    assert "over_torque" not in names
    done = next(e for e in events if e.name == "target_depth_reached")
    assert 60 * 60 <= done.time <= 90 * 60
    state = drill.state()
    assert state.mode == "idle" and state.depth_m == pytest.approx(1.5)
    assert state.core_mass_g == pytest.approx(1.5 * 250.0)
    assert state.material == "compacted_regolith"


def test_trip_is_cleared_by_a_new_start_with_percussion_and_core_is_stowed() -> None:
    drill = make()
    drill.start(1.2, 120.0, percussion=False)
    run(drill, 3000.0)
    assert drill.state().mode == "tripped"
    drill.start(1.2, 120.0, percussion=True)
    events = run(drill, 6000.0)
    assert [e.name for e in events][-1] == "target_depth_reached"
    with pytest.raises(DeviceCommandError):
        drill.start(1.0, 120.0, True)  # not deeper than the hole
    drill.stow_core()
    with pytest.raises(DeviceCommandError) as err:
        drill.stop()
    assert err.value.code == "busy"
    events = run(drill, 6000.0 + 1200.0)
    stowed = [e for e in events if e.name == "core_stowed"]
    assert len(stowed) == 1 and stowed[0].data["mass_g"] == pytest.approx(300.0, abs=1.0)
    assert drill.state().mode == "stowed"
    with pytest.raises(DeviceCommandError):
        drill.start(2.0, 120.0, True)


def test_drilling_heats_bit_and_draws_current() -> None:
    drill = make()
    drill.start(0.5, 120.0, percussion=True)
    drill.advance(600.0)
    s = drill.state()
    assert s.mode == "drilling" and s.rpm == 120.0 and s.penetration_rate_mm_min > 0
    assert s.bit_temperature_c > DrillParams().ambient_c + 5
    shaft = s.torque_nm * s.rpm * 2 * math.pi / 60
    assert s.power_w == pytest.approx(15.0 + shaft / 0.7 + (120.0 if s.percussion else 0.0))
    assert s.motor_current_a == pytest.approx(s.power_w / 28.0)
    assert 0 < s.core_mass_g < 0.5 * 250.0


def test_refusals() -> None:
    drill = make()
    for target, rpm in ((3.0, 120.0), (0.0, 120.0), (1.0, 0.0), (1.0, 500.0)):
        with pytest.raises(DeviceCommandError):
            drill.start(target, rpm, True)
    drill.start(1.0, 120.0, True)
    with pytest.raises(DeviceCommandError) as err:
        drill.start(1.0, 120.0, True)
    assert err.value.code == "busy"
    with pytest.raises(DeviceCommandError):
        drill.self_test()


def test_same_seed_same_trajectory() -> None:
    a, b = make(7), make(7)
    for d in (a, b):
        d.start(1.5, 120.0, percussion=True)
    for t in range(0, 5000, 37):
        a.advance(float(t))
        b.advance(float(t))
        assert a.state() == b.state()
    assert a.drain_events() == b.drain_events()


def test_active_partition_gives_identical_trajectory() -> None:
    a, b = make(7), make(7)
    for d in (a, b):
        d.start(1.5, 120.0, percussion=True)
    for t in range(0, 3000, 37):
        a.advance(float(t) + 0.5)
    b.advance(2997.5)  # one call to the same end, still drilling: same grid, same noise draws
    assert a.state() == b.state() and a.state().mode == "drilling"


def test_warp_while_idle_is_fast_and_consistent() -> None:
    a, b = make(3), make(3)
    for d in (a, b):
        d.start(0.3, 120.0, percussion=True)
        d.advance(1200.0)  # done drilling; bit is hot
    t0 = time.perf_counter()
    a.advance(1200.0 + 20 * 3600.0)
    assert time.perf_counter() - t0 < 0.05
    for k in range(1, 20 * 60 + 1):
        b.advance(1200.0 + k * 60.0)
    assert a.state().bit_temperature_c == pytest.approx(b.state().bit_temperature_c)
    assert a.state().depth_m == b.state().depth_m


@settings(max_examples=25, deadline=None)
@given(target=st.floats(0.05, 2.5), percussion=st.booleans(), rpm=st.floats(30.0, 200.0),
       steps=st.lists(st.floats(0.5, 400.0), min_size=1, max_size=40))
def test_depth_monotonic_and_bounded(target: float, percussion: bool, rpm: float, steps: list[float]) -> None:
    drill = make(5)
    drill.start(target, rpm, percussion)
    t, last = 0.0, 0.0
    for dt in steps:
        t += dt
        drill.advance(t)
        s = drill.state()
        assert s.depth_m >= last
        assert s.depth_m <= min(target, DrillParams().design_length_m) + 1e-12
        last = s.depth_m


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.floats(0.0, 1.0), max_size=20))
def test_idle_partition_independent(cuts: list[float]) -> None:
    a, b = make(2), make(2)
    for d in (a, b):
        d.start(0.1, 120.0, True)
        d.advance(400.0)
    end = 400.0 + 50_000.0
    for c in sorted(cuts):
        a.advance(400.0 + c * 50_000.0)
    a.advance(end)
    b.advance(end)
    assert a.state().bit_temperature_c == pytest.approx(b.state().bit_temperature_c, abs=1e-9)
    assert a.state().depth_m == b.state().depth_m


# -- commands added with the faults: stop event, retract, reset_protection -----------------------------------

def fault(kind: str, fault_id: str = "f1", item: str | None = None, **params: float) -> ModelFault:
    """As the node hands it over: params validated against the catalogue, defaults filled."""
    return ModelFault(fault_id, kind, item, parse_fault_params(FaultKind(kind), dict(params)).model_dump())


def drilled(seconds: float = 600.0, seed: int = 1) -> SimDrill:
    drill = make(seed)
    drill.start(1.5, 120.0, percussion=True)
    drill.advance(seconds)
    assert drill.state().mode == "drilling" and drill.state().material == "regolith"
    return drill


def test_stop_while_drilling_emits_drill_stopped_and_is_silent_when_idle() -> None:
    drill = drilled()
    drill.drain_events()
    drill.stop()
    events = drill.drain_events()
    assert [e.name for e in events] == ["drill_stopped"]
    assert events[0].severity == "info" and events[0].data["depth_m"] == pytest.approx(drill.state().depth_m, abs=1e-4)
    drill.stop()
    assert drill.drain_events() == [] and drill.state().mode == "idle"


def test_retract_raises_bit_keeps_core_and_redrilling_adds_core_only_below_the_hole() -> None:
    drill = drilled()
    drill.stop()
    depth, core = drill.state().depth_m, drill.state().core_mass_g
    for bad in (0.0, -0.1, depth + 0.01):
        with pytest.raises(DeviceCommandError):
            drill.retract(bad)
    drill.retract(0.1)
    assert drill.state().mode == "retracting" and drill.active()
    with pytest.raises(DeviceCommandError) as err:
        drill.start(1.5, 120.0, True)
    assert err.value.code == "busy"
    with pytest.raises(DeviceCommandError) as err:
        drill.retract(0.01)
    assert err.value.code == "busy"
    drill.advance(drill.time + 20.0)
    events = [e for e in drill.drain_events() if e.name == "retracted"]
    assert len(events) == 1 and events[0].time == pytest.approx(600.0 + 10.0)  # 0.1 m at 10 mm/s
    s = drill.state()
    assert s.mode == "idle" and s.depth_m == pytest.approx(depth - 0.1) and s.core_mass_g == core
    assert not drill.active()
    drill.start(depth + 0.01, 120.0, True)
    drill.advance(drill.time + 600.0)
    assert drill.state().depth_m == pytest.approx(depth + 0.01)
    assert drill.state().core_mass_g == pytest.approx(core + 0.01 * 250.0)


def test_retract_refused_while_drilling_and_when_stowed() -> None:
    drill = drilled()
    with pytest.raises(DeviceCommandError) as err:
        drill.retract(0.05)
    assert err.value.code == "busy"
    drill.stop()
    drill.stow_core()
    drill.advance(drill.time + 700.0)
    assert drill.state().mode == "stowed"
    with pytest.raises(DeviceCommandError) as err:
        drill.retract(0.05)
    assert err.value.code == "wrong_mode"


def test_reset_protection_only_from_tripped() -> None:
    drill = make()
    with pytest.raises(DeviceCommandError) as err:
        drill.reset_protection()
    assert err.value.code == "wrong_mode"
    drill.start(1.5, 120.0, percussion=False)
    run(drill, 3000.0)
    assert drill.state().mode == "tripped"
    drill.drain_events()
    drill.reset_protection()
    assert drill.state().mode == "idle" and [e.name for e in drill.drain_events()] == ["protection_reset"]


# -- fault: drill.stall ---------------------------------------------------------------------------------------

def test_stall_jams_trips_worsens_on_restart_and_a_retract_frees_the_bit() -> None:
    drill = drilled()
    before = drill.state()
    drill.inject_fault(fault("drill.stall"))
    events, states = [], []
    while drill.state().mode == "drilling" and drill.time < 700.0:
        drill.advance(drill.time + 1.0)
        states.append(drill.state())
        events += drill.drain_events()
    trip = [e for e in events if e.name == "over_torque"]
    assert len(trip) == 1 and 600.0 < trip[0].time <= 600.0 + 15.0
    assert states[-2].rpm < 120.0 * 0.9  # rpm falls as the jam grows
    assert all(s.penetration_rate_mm_min == 0.0 for s in states)
    assert drill.state().depth_m == pytest.approx(before.depth_m, abs=1e-9)
    assert [(s.time, s.recovered) for s in drill.drain_symptoms()] == [(601.0, False)]
    # DRILL_TO_DEPTH again with the bit still jammed: it jams and trips again
    drill.start(1.5, 120.0, percussion=True)
    again = run(drill, drill.time + 60.0, every=1.0)
    assert [e.name for e in again].count("over_torque") == 1 and drill.state().mode == "tripped"
    # too short a retract does not free it
    drill.retract(0.01)
    run(drill, drill.time + 5.0, every=1.0)
    assert drill.active_faults() and drill.drain_symptoms() == []
    drill.retract(0.03)
    run(drill, drill.time + 10.0, every=1.0)
    recovered = drill.drain_symptoms()
    assert len(recovered) == 1 and recovered[0].recovered and "retract" in recovered[0].what
    assert drill.active_faults() == []
    # re-drilling with percussion now passes the default rock layer to the target
    drill.start(1.5, 120.0, percussion=True)
    events = run(drill, drill.time + 3 * 3600.0, every=60.0)
    names = [e.name for e in events]
    assert "over_torque" not in names and names[-1] == "target_depth_reached"
    assert drill.state().depth_m == pytest.approx(1.5) and drill.state().core_mass_g == pytest.approx(375.0)


def test_stall_cleared_by_the_instructor_lets_a_new_start_drill() -> None:
    drill = drilled()
    drill.inject_fault(fault("drill.stall", torque_rise_nm_per_s=20.0))
    run(drill, drill.time + 10.0, every=1.0)
    assert drill.state().mode == "tripped"
    assert drill.clear_fault("f1")
    drill.start(1.0, 120.0, True)
    drill.advance(drill.time + 60.0)
    assert drill.state().mode == "drilling" and drill.state().penetration_rate_mm_min > 0


# -- fault: drill.bit_overheat --------------------------------------------------------------------------------

def test_bit_overheat_warns_once_then_trips_and_cools_after_stop() -> None:
    p = DrillParams()
    drill = drilled(60.0)
    nominal = drill.state().bit_temperature_c
    drill.inject_fault(fault("drill.bit_overheat", extra_heating_c_per_s=0.5))
    events = run(drill, drill.time + 1200.0, every=1.0)
    names = [e.name for e in events]
    assert names.count("bit_overheat") == 1 and names.count("bit_overheat_trip") == 1
    warn = next(e for e in events if e.name == "bit_overheat")
    trip = next(e for e in events if e.name == "bit_overheat_trip")
    assert warn.severity == "warning" and trip.severity == "error" and warn.time < trip.time
    assert trip.data["bit_temperature_c"] > p.bit_trip_c and drill.state().mode == "tripped"
    (symptom,) = drill.drain_symptoms()
    assert 60.0 < symptom.time < 60.0 + 20.0  # +5 C within ~10 s at 0.5 C/s
    assert nominal < p.bit_warning_c
    drill.advance(drill.time + 3600.0)  # stopped: it cools
    assert drill.state().bit_temperature_c < p.ambient_c + 5.0


def test_bit_overheat_default_warns_in_regolith_and_clearing_stops_it() -> None:
    drill = drilled(60.0)
    drill.inject_fault(fault("drill.bit_overheat", extra_heating_c_per_s=0.2))
    events = run(drill, drill.time + 1500.0, every=10.0)
    assert [e.name for e in events if e.name.startswith("bit_")] == ["bit_overheat"]
    hot = drill.state().bit_temperature_c
    drill.clear_fault("f1")
    drill.advance(drill.time + 1500.0)
    assert drill.state().bit_temperature_c < hot - 40.0 and drill.state().mode == "drilling"


# -- fault: drill.feed_stuck ----------------------------------------------------------------------------------

def test_feed_stuck_turns_without_penetrating_and_never_completes() -> None:
    drill = drilled()
    depth = drill.state().depth_m
    drill.inject_fault(fault("drill.feed_stuck"))
    events = run(drill, drill.time + 3600.0, every=30.0)
    s = drill.state()
    assert s.mode == "drilling" and s.rpm == 120.0 and s.penetration_rate_mm_min == 0.0
    assert s.depth_m == depth and s.torque_nm == pytest.approx(DrillParams().idle_torque_nm, abs=1.5)
    assert "target_depth_reached" not in [e.name for e in events]
    assert [s.time for s in drill.drain_symptoms()] == [601.0]
    drill.clear_fault("f1")
    drill.advance(drill.time + 60.0)
    assert drill.state().depth_m > depth


# -- fault: thermal.drift on the motor ------------------------------------------------------------------------

def test_motor_thermal_drift_is_linear_over_idle_warps_and_relaxes_after_clearing() -> None:
    drill = make()
    with pytest.raises(FaultNotApplicable):
        drill.inject_fault(fault("thermal.drift", item="battery", rate_c_per_h=120.0))
    with pytest.raises(FaultNotApplicable):
        drill.inject_fault(fault("arm.scoop_jam"))
    ambient = DrillParams().ambient_c
    drill.inject_fault(fault("thermal.drift", "a", item="motor", rate_c_per_h=120.0))
    drill.inject_fault(fault("thermal.drift", "b", item="motor", rate_c_per_h=-60.0))
    assert not drill.active()
    drill.advance(3600.0)
    assert drill.state().motor_temperature_c == pytest.approx(ambient + 60.0)
    assert [(s.fault_id, s.time) for s in drill.drain_symptoms()] == [("a", 120.0), ("b", 120.0)]
    drill.clear_fault("a")
    drill.clear_fault("b")
    drill.advance(3600.0 + 5 * 3600.0)
    assert drill.state().motor_temperature_c == pytest.approx(ambient, abs=0.1)


def test_nominal_drilling_keeps_motor_cool() -> None:
    drill = make()
    drill.start(1.5, 200.0, percussion=True)
    hottest = 0.0
    while drill.state().mode == "drilling" and drill.time < 4 * 3600.0:
        drill.advance(drill.time + 30.0)
        hottest = max(hottest, drill.state().motor_temperature_c)
    assert DrillParams().ambient_c + 5.0 < hottest < 80.0


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.floats(0.0, 1.0), max_size=20), kind=st.sampled_from(
    ["drill.stall", "drill.bit_overheat", "drill.feed_stuck", "thermal.drift"]))
def test_partition_independent_with_a_fault_active(cuts: list[float], kind: str) -> None:
    a, b = make(4), make(4)
    for d in (a, b):
        d.start(1.5, 150.0, percussion=True)
        d.advance(300.0)
        d.inject_fault(fault(kind, item="motor" if kind == "thermal.drift" else None,
                             **({"rate_c_per_h": 500.0} if kind == "thermal.drift" else {})))
    end = 300.0 + 2000.0
    for c in sorted(cuts):
        a.advance(300.0 + c * 2000.0)
    a.advance(end)
    b.advance(end)
    sa, sb = a.state(), b.state()
    assert sa.mode == sb.mode and sa.depth_m == sb.depth_m and sa.torque_nm == sb.torque_nm
    assert sa.motor_temperature_c == pytest.approx(sb.motor_temperature_c, abs=1e-6)
    assert sa.bit_temperature_c == pytest.approx(sb.bit_temperature_c, abs=1e-9)
    assert a.drain_events() == b.drain_events()
    assert [s.time for s in a.drain_symptoms()] == pytest.approx([s.time for s in b.drain_symptoms()])
