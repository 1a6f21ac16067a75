"""Ascent vehicle: powered ascent figures, the rendezvous plan, approach gating, warps."""

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_sim.ascent import APPROACH_AFTER_LIFTOFF_S, RENDEZVOUS_PLAN, AscentParams, SimAscentVehicle
from hardware_sim.hal import AscentVehicle, DeviceCommandError

L = 1717457890.0  # liftoff 2024-06-03T23:38:10Z [17]


def launched(seed: int = 1, **params: float) -> SimAscentVehicle:
    v = SimAscentVehicle(AscentParams(**params), random.Random(seed), L - 60.0)
    v.self_test()
    v.arm()
    v.load_sample(1935.3)
    v.advance(L)
    v.ignite(15.0, 180.0)
    return v


def test_powered_ascent_reaches_target_orbit_in_about_six_minutes() -> None:
    v = launched()
    assert isinstance(v, AscentVehicle)
    v.advance(L + 60.0)
    s = v.state()
    assert s.mode == "powered_ascent" and s.thrust_n == 3000.0 and s.altitude_km > -5.0
    assert s.chamber_pressure_mpa > 0 and s.vertical_velocity_mps > 0
    v.advance(L + 900.0)
    events = {e.name: e for e in v.drain_events()}
    assert {"liftoff", "engine_cutoff", "orbit_insertion"} <= set(events)
    cut = events["engine_cutoff"]
    assert 300.0 <= cut.data["burn_s"] <= 420.0
    assert abs(cut.data["perilune_km"] - 15.0) <= 3.0
    assert abs(cut.data["apolune_km"] - 180.0) <= 10.0
    assert 1650.0 < cut.data["velocity_mps"] < 1760.0
    s = v.state()
    assert s.mode == "orbit" and s.thrust_n == 0.0 and s.propellant_kg > 0.0
    assert s.perilune_km == pytest.approx(cut.data["perilune_km"], abs=0.01)
    assert s.apolune_km == pytest.approx(cut.data["apolune_km"], abs=0.01)


def test_rendezvous_plan_docks_about_55_hours_after_liftoff() -> None:
    v = launched()
    adjusted = []
    for after, perilune, apolune in RENDEZVOUS_PLAN:
        v.advance(L + after)
        v.orbit_adjust(perilune, apolune)
        adjusted += [e for e in v.drain_events() if e.name == "orbit_adjusted"]
    assert len(adjusted) == 4 and all(0 < e.data["dv_mps"] < 60 for e in adjusted)
    v.advance(L + APPROACH_AFTER_LIFTOFF_S)
    assert v.state().range_km < 80.0
    v.start_approach()
    assert v.state().mode == "approach"
    samples = []
    for k in range(1, 4 * 60):
        v.advance(L + APPROACH_AFTER_LIFTOFF_S + k * 60.0)
        samples.append(v.state())
    docked = [e for e in v.drain_events() if e.name == "docked"]
    assert len(docked) == 1
    assert 53 * 3600 <= docked[0].time - L <= 57 * 3600
    approach = [s for s in samples if s.mode == "approach"]
    assert approach[0].closing_rate_mps > 5.0 and approach[-1].closing_rate_mps == pytest.approx(0.1)
    assert all(a.range_km >= b.range_km for a, b in zip(approach, approach[1:]))
    assert v.state().mode == "docked" and v.state().range_km == 0.0
    v.transfer_sample()
    ev = v.drain_events()
    assert [e.name for e in ev] == ["sample_transferred"] and ev[0].data["mass_g"] == pytest.approx(1935.3)
    assert v.state().mode == "transferred"


def test_approach_refused_when_far_or_orbit_mismatched() -> None:
    v = launched()
    v.advance(L + 3600.0)
    with pytest.raises(DeviceCommandError) as err:
        v.start_approach()
    assert "range" in err.value.reason and "semi-major axis" in err.value.reason


def test_command_refusals_by_mode() -> None:
    v = SimAscentVehicle(AscentParams(), random.Random(0), L)
    with pytest.raises(DeviceCommandError):
        v.ignite(15.0, 180.0)  # not armed
    with pytest.raises(DeviceCommandError):
        v.orbit_adjust(100.0, 200.0)
    with pytest.raises(DeviceCommandError):
        v.transfer_sample()
    v.arm()
    with pytest.raises(DeviceCommandError):
        v.ignite(200.0, 100.0)
    with pytest.raises(DeviceCommandError):
        v.arm()


def test_orbit_warp_is_cheap_and_matches_small_steps() -> None:
    a, b = launched(), launched()
    a.advance(L + 600.0)
    b.advance(L + 600.0)
    t0 = time.perf_counter()
    a.advance(L + 600.0 + 20 * 3600.0)
    assert time.perf_counter() - t0 < 0.01
    for k in range(1, 20 * 60 + 1):
        b.advance(L + 600.0 + k * 60.0)
    assert a.state() == b.state()


def test_deterministic_burn() -> None:
    a, b = launched(3), launched(3)
    for t in range(0, 500, 7):
        a.advance(L + t)
        b.advance(L + t)
        assert a.state() == b.state()


@settings(max_examples=15, deadline=None)
@given(propellant=st.floats(50.0, 450.0), steps=st.lists(st.floats(1.0, 200.0), min_size=1, max_size=10))
def test_propellant_never_negative(propellant: float, steps: list[float]) -> None:
    v = launched(propellant_kg=propellant)
    t = L
    for dt in steps:
        t += dt
        v.advance(t)
        assert v.state().propellant_kg >= 0.0
    v.advance(L + 1000.0)
    assert v.state().propellant_kg >= 0.0
    assert v.state().mode != "powered_ascent"
