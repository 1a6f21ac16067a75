"""The pure parts behind the consoles: flattened housekeeping and units (protocols), the alarm book, the
live feed, the dictionary and the hazardous-command list. Fast, no broker."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import assume, given, settings

from lunar_gs.protocols.commands import COMMAND_CATALOG, HAZARDOUS_COMMANDS, is_hazardous
from lunar_gs.protocols.events import Alarm, AlarmState, Severity
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.telemetry import ENVELOPE_FIELDS, Housekeeping, flatten_housekeeping, unit_of
from lunar_gs.services.ground_control.alarms import AlarmActionError, AlarmBook, AlarmStatus
from lunar_gs.services.ground_control.console.dictionary import build_dictionary
from lunar_gs.services.ground_control.feed import ConsoleFeed
from lunar_gs.services.mission import load_mission
from lunar_gs.testing.strategies import housekeeping

# -- protocols: flattening and units -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(housekeeping())
def test_flattening_keeps_every_spacecraft_value_and_no_envelope_field(packet: Housekeeping) -> None:
    fields = packet.model_dump()
    names = [j["name"] for j in fields.get("joints", ())]
    assume(len(names) == len(set(names)))  # a real arm names each joint once
    links = [link["name"] for link in fields.get("links", ())]
    assume(len(links) == len(set(links)) and not set(links) & set(fields) and not set(links) & set(names))
    flat = flatten_housekeeping(fields)
    assert not set(flat) & ENVELOPE_FIELDS
    for name, value in fields.items():
        if name in ENVELOPE_FIELDS:
            continue
        if name in ("joints", "links"):  # named items stand for themselves: `elbow.angle_deg`, `drill.link_up`
            for joint in value:
                for sub, inner in joint.items():
                    if sub != "name":
                        assert flat[f"{joint['name']}.{sub}"] == inner
        else:
            assert flat[name] == value
    assert all(isinstance(v, str | int | float | bool) or v is None for v in flat.values())


@pytest.mark.parametrize(("name", "unit"), [
    ("torque_nm", "N·m"), ("elbow.angle_deg", "°"), ("penetration_rate_mm_min", "mm/min"), ("depth_m", "m"),
    ("chamber_pressure_mpa", "MPa"), ("seal_pressure_kpa", "kPa"), ("velocity_mps", "m/s"), ("rpm", "rpm"),
    ("battery_current_a", "A"), ("bus_voltage_v", "V"), ("bit_temperature_c", "°C"), ("storage_used", "%"),
    ("battery_soc_percent", "%"), ("thrust_n", "N"), ("sample_mass_g", "g"), ("mode", ""), ("percussion", ""),
])
def test_units_are_read_from_the_parameter_names(name: str, unit: str) -> None:
    assert unit_of(name) == unit


def test_the_dictionary_has_every_parameter_with_its_limits_and_every_command_argument_with_its_range() -> None:
    profile = load_mission()
    dictionary = build_dictionary("m", profile, 180.0)
    keys = {p["key"] for p in dictionary["parameters"]}
    assert {"lander-drill.torque_nm", "lander-arm.scoop.current_a", "relay-satellite.next_aos"} <= keys
    limited = {p["key"] for p in dictionary["parameters"] if p["limits"]}
    assert limited == {f"{limit.node}.{limit.parameter}" for limit in profile.limits}
    listed = {(c["node"], c["name"]) for c in dictionary["commands"]}
    assert listed == {(str(n), c) for n, cat in COMMAND_CATALOG.items() for c in cat}
    ignite = next(c for c in dictionary["commands"] if c["name"] == "IGNITE")
    apolune = next(a for a in ignite["args"] if a["name"] == "target_apolune_km")
    assert (apolune["minimum"], apolune["maximum"], apolune["default"], apolune["unit"]) == (60.0, 400.0, 180.0, "km")


def test_hazardous_commands_are_real_commands() -> None:
    for node, commands in HAZARDOUS_COMMANDS.items():
        assert commands <= set(COMMAND_CATALOG[node])
    assert is_hazardous(Node.ASCENT_VEHICLE, "IGNITE") and not is_hazardous(Node.LANDER_DRILL, "DRILL_TO_DEPTH")


# -- the alarm book --------------------------------------------------------------------------------------------

def alarm(state: AlarmState, at: float, name: str = "lander-drill.torque_nm") -> Alarm:
    return Alarm(source=Node.GROUND_CONTROL, sim_time=at, alarm=name, state=state, severity=Severity.WARNING,
                 node="lander-drill", parameter="torque_nm", value=27.0, limit=25.0, message="high")


def test_an_alarm_stays_listed_until_acknowledged_even_after_it_clears() -> None:
    book = AlarmBook()
    book.apply(alarm(AlarmState.RAISED, 10.0))
    book.apply(alarm(AlarmState.CLEARED, 20.0))
    [entry] = book.listed(25.0)
    assert entry.status(25.0) is AlarmStatus.UNACKNOWLEDGED and not entry.active
    book.acknowledge(entry.name, "operator", "seen", 30.0, 1.0)
    assert book.listed(31.0) == []


def test_raised_again_after_an_acknowledgement_it_is_unacknowledged_again() -> None:
    book = AlarmBook()
    book.apply(alarm(AlarmState.RAISED, 10.0))
    book.acknowledge("lander-drill.torque_nm", "operator", "seen", 11.0, 1.0)
    assert book.listed(12.0)[0].status(12.0) is AlarmStatus.ACKNOWLEDGED
    book.apply(alarm(AlarmState.CLEARED, 20.0))
    book.apply(alarm(AlarmState.RAISED, 30.0))
    [entry] = book.listed(31.0)
    assert entry.status(31.0) is AlarmStatus.UNACKNOWLEDGED and entry.raise_count == 2


def test_a_second_raise_of_a_raised_alarm_keeps_its_acknowledgement() -> None:
    """A restarted ground control's limits raise again what was raised: it must not undo an operator's ack."""
    book = AlarmBook()
    book.apply(alarm(AlarmState.RAISED, 10.0))
    book.acknowledge("lander-drill.torque_nm", "operator", "seen", 11.0, 1.0)
    book.apply(alarm(AlarmState.RAISED, 12.0))
    [entry] = book.listed(13.0)
    assert entry.status(13.0) is AlarmStatus.ACKNOWLEDGED and entry.raise_count == 1 and entry.raised_at == 10.0


def test_a_shelf_runs_out_in_mission_time_and_is_reported_once() -> None:
    book = AlarmBook()
    book.apply(alarm(AlarmState.RAISED, 10.0))
    book.shelve("lander-drill.torque_nm", "operator", "known", 100.0, 10.0, 1.0)
    assert book.listed(50.0)[0].status(50.0) is AlarmStatus.SHELVED
    assert book.next_shelf_end() == 110.0
    assert book.shelves_due(109.0) == []
    assert [e.name for e in book.shelves_due(110.0)] == ["lander-drill.torque_nm"]
    assert book.shelves_due(111.0) == [] and book.next_shelf_end() is None
    assert book.listed(111.0)[0].status(111.0) is AlarmStatus.UNACKNOWLEDGED


@pytest.mark.parametrize(("action", "error"), [
    (lambda b: b.acknowledge("lander-drill.torque_nm", "op", "", 1.0, 1.0), 400),
    (lambda b: b.acknowledge("lander-drill.torque_nm", "op", 5, 1.0, 1.0), 400),
    (lambda b: b.acknowledge("lander-drill.torque_nm", "op", "x" * 501, 1.0, 1.0), 400),
    (lambda b: b.shelve("lander-drill.torque_nm", "op", "c", 0.5, 1.0, 1.0), 400),
    (lambda b: b.shelve("lander-drill.torque_nm", "op", "c", True, 1.0, 1.0), 400),
    (lambda b: b.shelve("lander-drill.torque_nm", "op", "c", 1e9, 1.0, 1.0), 400),
    (lambda b: b.unshelve("lander-drill.torque_nm", "op", 1.0), 409),
    (lambda b: b.clear("lander-drill.torque_nm", "op", "c", 1.0, 1.0), 409),
    (lambda b: b.acknowledge("no.such", "op", "c", 1.0, 1.0), 404),
])
def test_impossible_actions_are_refused_with_a_status(action, error: int) -> None:  # noqa: ANN001
    book = AlarmBook()
    book.apply(alarm(AlarmState.RAISED, 0.0))
    with pytest.raises(AlarmActionError) as refused:
        action(book)
    assert refused.value.status == error
    assert book.listed(2.0)[0].acknowledged is None  # nothing changed


def test_the_book_survives_a_snapshot_and_restore() -> None:
    book = AlarmBook()
    book.apply(alarm(AlarmState.RAISED, 10.0))
    book.apply(alarm(AlarmState.RAISED, 11.0, name="relay-satellite.storage_used"))
    book.acknowledge("lander-drill.torque_nm", "operator:gnc", "percussion on", 12.0, 99.0)
    book.shelve("relay-satellite.storage_used", "operator", "downlink soon", 600.0, 13.0, 100.0)
    again = AlarmBook()
    again.restore(book.snapshot())
    assert [e.to_json(20.0) for e in again.listed(20.0)] == [e.to_json(20.0) for e in book.listed(20.0)]
    assert again.entries["lander-drill.torque_nm"].acknowledged.comment == "percussion on"  # type: ignore[union-attr]


# -- the feed --------------------------------------------------------------------------------------------------

async def test_a_listener_gets_everything_as_one_batch_and_operators_never_get_truth() -> None:
    feed = ConsoleFeed(max_buffered=5)
    assert not feed.active
    with feed.listen(sees_truth=False) as operator, feed.listen(sees_truth=True) as instructor:
        assert feed.active
        for i in range(3):
            feed.publish({"kind": "tm", "seq": i})
        feed.publish({"kind": "truth", "record": {}})
        items, dropped = await asyncio.wait_for(operator.next_batch(), 1)
        assert [i["seq"] for i in items] == [0, 1, 2] and dropped == 0
        items, _ = await asyncio.wait_for(instructor.next_batch(), 1)
        assert [i["kind"] for i in items] == ["tm", "tm", "tm", "truth"]
        for i in range(8):
            feed.publish({"kind": "tm", "seq": i})
        items, dropped = await asyncio.wait_for(operator.next_batch(), 1)
        assert [i["seq"] for i in items] == [3, 4, 5, 6, 7] and dropped == 3  # the oldest go, counted
    assert not feed.active
