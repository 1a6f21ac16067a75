"""Sample container capacity and seal rules; the flag."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.container import ContainerParams, SimSampleContainer
from lunar_gs.hardware_sim.faults import FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.flag import FlagParams, SimFlag
from lunar_gs.hardware_sim.hal import DeviceCommandError, Flag, SampleContainer


def make() -> SimSampleContainer:
    return SimSampleContainer(ContainerParams(), random.Random(0), 0.0)


def test_capacity_accepts_what_fits_and_reports_full() -> None:
    c = make()
    assert isinstance(c, SampleContainer)
    assert c.receive(1500.0) == 1500.0
    assert c.drain_events() == []
    assert c.receive(700.0) == pytest.approx(500.0)
    full = c.drain_events()
    assert [e.name for e in full] == ["container_full"] and full[0].data["rejected_g"] == pytest.approx(200.0)
    assert c.state().mass_g == 2000.0 and c.state().capacity_g == 2000.0
    assert c.receive(10.0) == 0.0


def test_seal_takes_minutes_then_refuses_deliveries_and_transfers() -> None:
    c = make()
    c.receive(1935.3)
    with pytest.raises(DeviceCommandError):
        c.transfer_to_ascender()
    c.seal()
    assert c.active()
    with pytest.raises(DeviceCommandError) as err:
        c.receive(1.0)
    assert err.value.code == "busy"
    c.advance(150.0)
    mid = c.state()
    assert not mid.sealed and 0.0 < mid.seal_pressure_kpa < ContainerParams().seal_pressure_kpa
    c.advance(400.0)
    events = c.drain_events()
    assert [e.name for e in events] == ["container_sealed"]
    assert events[0].time == pytest.approx(300.0) and events[0].data["mass_g"] == pytest.approx(1935.3)
    assert c.state().sealed and c.state().seal_pressure_kpa == ContainerParams().seal_pressure_kpa
    with pytest.raises(DeviceCommandError):
        c.receive(1.0)
    with pytest.raises(DeviceCommandError):
        c.seal()
    c.transfer_to_ascender()
    assert c.state().on_ascender
    assert [e.name for e in c.drain_events()] == ["container_transferred"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 800.0), max_size=30))
def test_mass_never_exceeds_capacity(deliveries: list[float]) -> None:
    c = make()
    total = 0.0
    for m in deliveries:
        total += c.receive(m)
        assert c.state().mass_g <= ContainerParams().capacity_g
    assert c.state().mass_g == pytest.approx(min(total, 2000.0))


def test_flag_deploys_after_a_minute() -> None:
    f = SimFlag(FlagParams(), random.Random(0), 100.0)
    assert isinstance(f, Flag)
    f.deploy()
    with pytest.raises(DeviceCommandError):
        f.deploy()
    f.advance(150.0)
    assert not f.state()
    f.advance(10_000.0)
    events = f.drain_events()
    assert f.state() and [e.name for e in events] == ["flag_deployed"] and events[0].time == 160.0
    assert events[0].data["mass_g"] == 11.3
    with pytest.raises(DeviceCommandError):
        f.deploy()


# -- fault: container.seal_leak ---------------------------------------------------------------------------

def leak(fault_id: str = "f1", rate: float = 20.0) -> ModelFault:
    return ModelFault(fault_id, "container.seal_leak", None, {"rate_kpa_per_h": rate})


def sealed(c: SimSampleContainer | None = None) -> SimSampleContainer:
    c = c or make()
    c.receive(1500.0)
    c.seal()
    c.advance(c.time + 300.0)
    assert c.state().sealed
    return c


def test_seal_leak_decays_pressure_while_idle_and_clearing_stops_it() -> None:
    c = sealed()
    c.inject_fault(leak())
    assert not c.active()  # a leak alone keeps the container idle: warps stay cheap
    c.advance(300.0 + 3600.0)
    assert c.state().seal_pressure_kpa == pytest.approx(150.0 - 20.0)
    symptoms = c.drain_symptoms()
    assert len(symptoms) == 1 and symptoms[0].fault_id == "f1"
    assert symptoms[0].time == pytest.approx(300.0 + 0.5 / 20.0 * 3600.0)  # 90 s after the injection
    assert c.clear_fault("f1")
    c.advance(300.0 + 3 * 3600.0)
    assert c.state().seal_pressure_kpa == pytest.approx(130.0)  # lost pressure stays
    assert c.drain_symptoms() == []


def test_seal_leak_injected_before_sealing_acts_from_sealing_and_leaks_add() -> None:
    c = make()
    c.inject_fault(leak("a", 10.0))
    c.inject_fault(leak("b", 30.0))
    c.advance(10_000.0)
    assert c.state().seal_pressure_kpa == 0.0 and not c.state().sealed
    sealed(c)  # seal at 10 000 s, sealed at 10 300 s
    assert c.state().seal_pressure_kpa == pytest.approx(150.0)
    c.advance(10_300.0 + 1800.0)
    assert c.state().seal_pressure_kpa == pytest.approx(150.0 - 20.0)
    assert {s.fault_id for s in c.drain_symptoms()} == {"a", "b"}
    with pytest.raises(FaultNotApplicable):
        c.inject_fault(ModelFault("x", "drill.stall"))


@settings(max_examples=30, deadline=None)
@given(rate=st.floats(0.1, 1000.0), cuts=st.lists(st.floats(0.0, 1.0), max_size=15))
def test_leak_never_makes_pressure_negative_and_is_partition_independent(rate: float,
                                                                         cuts: list[float]) -> None:
    a, b = sealed(), sealed()
    for c in (a, b):
        c.inject_fault(leak(rate=rate))
    end = 300.0 + 20 * 3600.0
    for cut in sorted(cuts):
        a.advance(300.0 + cut * 20 * 3600.0)
        assert a.state().seal_pressure_kpa >= 0.0
    a.advance(end)
    b.advance(end)
    assert a.state().seal_pressure_kpa >= 0.0
    assert a.state().seal_pressure_kpa == pytest.approx(b.state().seal_pressure_kpa, abs=1e-6)
    assert [s.time for s in a.drain_symptoms()] == pytest.approx([s.time for s in b.drain_symptoms()])
