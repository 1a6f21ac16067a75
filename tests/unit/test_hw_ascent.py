"""Ascent vehicle: powered ascent figures, the rendezvous plan, approach gating, warps."""

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.ascent import APPROACH_AFTER_LIFTOFF_S, RENDEZVOUS_PLAN, AscentParams, SimAscentVehicle
from lunar_gs.hardware_sim.faults import ModelFault
from lunar_gs.hardware_sim.hal import AscentVehicle, DeviceCommandError
from lunar_gs.protocols.faults import FaultKind, parse_fault_params

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


# -- suborbital ascent (bug fix), thrust deficit, retarget ------------------------------------------------------

def fault(kind: str, fault_id: str = "f1", **params: float) -> ModelFault:
    """As the node hands it over: params validated against the catalogue, defaults filled."""
    return ModelFault(fault_id, kind, None, parse_fault_params(FaultKind(kind), dict(params)).model_dump())


def weak(percent: float, retarget: tuple[float, float] | None = None, at: float = 30.0) -> SimAscentVehicle:
    v = SimAscentVehicle(AscentParams(), random.Random(1), L - 60.0)
    v.arm()
    v.load_sample(1935.3)
    v.advance(L)
    v.inject_fault(fault("ascent.thrust_deficit", percent=percent))
    v.ignite(15.0, 180.0)
    if retarget is not None:
        v.advance(L + at)
        v.retarget(*retarget)
    return v


def test_suborbital_cutoff_falls_back_ballistic_and_crashes_never_inserting() -> None:
    v = launched(propellant_kg=250.0)
    events = []
    while v.state().mode == "powered_ascent":
        v.advance(v.time + 10.0)
        events += v.drain_events()
    names = [e.name for e in events]
    assert "suborbital_cutoff" in names and "propellant_depleted" in names
    assert v.state().mode == "ballistic" and v.active() and v.state().perilune_km < -5.256
    altitudes = []
    while v.state().mode == "ballistic":
        v.advance(v.time + 10.0)
        altitudes.append(v.state().altitude_km)
        events += v.drain_events()
    names = [e.name for e in events]
    assert "orbit_insertion" not in names and names[-1] == "impact"
    impact = events[-1]
    assert impact.severity == "critical" and impact.time > next(e for e in events if e.name == "engine_cutoff").time
    s = v.state()
    assert s.mode == "crashed" and not v.active() and s.altitude_km == pytest.approx(-5.256)
    assert s.velocity_mps == 0.0 and s.thrust_n == 0.0
    assert max(altitudes) > 0.0
    t0 = time.perf_counter()
    v.advance(v.time + 30 * 86400.0)
    assert time.perf_counter() - t0 < 0.01 and v.state().mode == "crashed" and v.drain_events() == []


def test_thrust_deficit_lowers_thrust_and_lengthens_the_burn_and_clearing_restores_it() -> None:
    v = weak(20.0)
    v.advance(L + 60.0)
    s = v.state()
    assert s.thrust_n == pytest.approx(2400.0) and s.chamber_pressure_mpa == pytest.approx(0.68)
    (symptom,) = v.drain_symptoms()
    assert symptom.time == pytest.approx(L + 0.1)
    assert v.clear_fault("f1")
    v.advance(L + 61.0)
    assert v.state().thrust_n == 3000.0
    v.advance(L + 900.0)
    cut = next(e for e in v.drain_events() if e.name == "engine_cutoff")
    assert cut.data["burn_s"] > 371.0 + 10.0  # the first minute at 80 %


def test_thrust_deficit_thresholds_of_ignite_15_180_and_what_a_retarget_saves() -> None:
    def outcome(v: SimAscentVehicle) -> tuple[str, float, float, list[str]]:
        v.advance(L + 2 * 86400.0)  # past any impact of a ballistic arc
        events = v.drain_events()
        cut = next(e for e in events if e.name == "engine_cutoff")
        return v.state().mode, cut.data["perilune_km"], cut.data["apolune_km"], [e.name for e in events]

    mode, peri, apo, names = outcome(weak(48.0))
    assert mode == "orbit" and apo == pytest.approx(180.0, abs=0.1) and "propellant_depleted" not in names
    mode, peri, apo, names = outcome(weak(49.0))  # propellant exhausted short of the target apolune
    assert mode == "orbit" and apo < 179.0 and "propellant_depleted" in names
    mode, peri, apo, names = outcome(weak(51.0))  # no orbit at all
    assert mode == "crashed" and peri < 0.0 and "suborbital_cutoff" in names and "orbit_insertion" not in names
    # a RETARGET to a lower orbit 30 s after liftoff
    mode, peri, apo, names = outcome(weak(50.0, (15.0, 60.0)))
    assert mode == "orbit" and peri >= 10.0 and apo == pytest.approx(60.0, abs=0.1) and "retargeted" in names
    assert "propellant_depleted" not in names
    mode, peri, apo, _ = outcome(weak(51.0, (15.0, 60.0)))
    assert mode == "crashed"  # too little, a lower apolune alone does not save 51 %
    mode, peri, apo, _ = outcome(weak(51.0, (10.0, 60.0)))
    assert mode == "orbit" and peri >= 10.0 - 0.01 and apo == pytest.approx(60.0, abs=0.1)


def test_retarget_only_in_powered_ascent_and_within_bounds() -> None:
    v = SimAscentVehicle(AscentParams(), random.Random(0), L)
    v.arm()
    with pytest.raises(DeviceCommandError) as err:
        v.retarget(15.0, 60.0)
    assert err.value.code == "wrong_mode"
    v.ignite(15.0, 180.0)
    for bad in ((4.0, 60.0), (70.0, 60.0), (15.0, 1001.0)):
        with pytest.raises(DeviceCommandError):
            v.retarget(*bad)
    v.retarget(15.0, 100.0)
    assert [e.name for e in v.drain_events()][-1] == "retargeted"
    v.advance(L + 900.0)
    cut = next(e for e in v.drain_events() if e.name == "engine_cutoff")
    assert cut.data["apolune_km"] == pytest.approx(100.0, abs=0.1)
    with pytest.raises(DeviceCommandError):
        v.retarget(15.0, 180.0)


# -- propellant leak, ignition failure ---------------------------------------------------------------------------

def test_propellant_leak_on_the_lander_and_in_orbit_clearing_stops_it() -> None:
    v = SimAscentVehicle(AscentParams(), random.Random(0), L - 36_000.0)
    v.inject_fault(fault("ascent.propellant_leak", rate_kg_per_h=5.0))
    assert not v.active()
    v.advance(L - 36_000.0 + 3600.0)
    assert v.state().propellant_kg == pytest.approx(395.0)
    (symptom,) = v.drain_symptoms()
    assert symptom.time == pytest.approx(L - 36_000.0 + 72.0)
    v.advance(L)
    assert v.state().propellant_kg == pytest.approx(350.0)
    v.arm()
    v.ignite(15.0, 180.0)
    v.advance(L + 900.0)
    assert v.state().mode == "orbit"
    in_orbit = v.state().propellant_kg
    v.advance(L + 900.0 + 3600.0)
    assert v.state().propellant_kg == pytest.approx(in_orbit - 5.0)
    v.clear_fault("f1")
    v.advance(L + 900.0 + 7200.0)
    assert v.state().propellant_kg == pytest.approx(in_orbit - 5.0)


@settings(max_examples=20, deadline=None)
@given(rate=st.floats(0.1, 500.0), cuts=st.lists(st.floats(0.0, 1.0), max_size=10))
def test_leak_never_negative_and_partition_independent(rate: float, cuts: list[float]) -> None:
    a = SimAscentVehicle(AscentParams(), random.Random(0), 0.0)
    b = SimAscentVehicle(AscentParams(), random.Random(0), 0.0)
    for v in (a, b):
        v.inject_fault(fault("ascent.propellant_leak", rate_kg_per_h=rate))
    end = 200 * 3600.0
    for c in sorted(cuts):
        a.advance(c * end)
        assert a.state().propellant_kg >= 0.0
    a.advance(end)
    b.advance(end)
    assert a.state().propellant_kg >= 0.0
    assert a.state().propellant_kg == pytest.approx(b.state().propellant_kg, abs=1e-9)
    assert [s.time for s in a.drain_symptoms()] == pytest.approx([s.time for s in b.drain_symptoms()])


def test_ignition_failure_fails_n_attempts_then_recovers() -> None:
    v = SimAscentVehicle(AscentParams(), random.Random(0), L)
    v.arm()
    v.drain_events()
    v.inject_fault(fault("ascent.ignition_failure", attempts=2))
    for attempt in (1, 2):
        with pytest.raises(DeviceCommandError) as err:
            v.ignite(15.0, 180.0)
        assert err.value.code == "device_fault" and err.value.reason.startswith("ignition failure")
        events = v.drain_events()
        assert [e.name for e in events] == ["ignition_failure"] and events[0].severity == "error"
        assert v.state().mode == "armed"
    symptoms = v.drain_symptoms()
    assert [s.recovered for s in symptoms] == [False, True] and v.active_faults() == []
    v.ignite(15.0, 180.0)
    assert v.state().mode == "powered_ascent"
