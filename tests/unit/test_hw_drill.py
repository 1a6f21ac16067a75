"""Drill model: rock without percussion trips, with percussion passes; core mass; determinism; warps."""

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_sim.drill import DrillParams, SimDrill
from hardware_sim.hal import DeviceCommandError, Drill


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
    assert s.motor_current_a == pytest.approx(0.4 + 0.08 * s.torque_nm)
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
