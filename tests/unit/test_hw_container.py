"""Sample container capacity and seal rules; the flag."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_sim.container import ContainerParams, SimSampleContainer
from hardware_sim.flag import FlagParams, SimFlag
from hardware_sim.hal import DeviceCommandError, Flag, SampleContainer


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
