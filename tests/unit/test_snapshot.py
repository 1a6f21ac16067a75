"""Service state as versioned JSON (services/runtime/snapshot.py): every simulated model comes back
exactly, foreign classes are refused, other versions are refused, and a damaged file is set aside."""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.mission import load_mission
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.snapshot import SnapshotError, decode, dumps, encode, loads

PROFILE = load_mission()


@pytest.mark.parametrize("kind", sorted(PROFILE.devices))
def test_every_simulated_model_resumes_exactly_from_json(kind: str) -> None:
    device = build_device(kind, "sim", PROFILE.devices[kind].params, 7, 0.0)
    device.advance(500.0)
    device.drain_events()
    text = dumps("lander-drill", {"device": device}, saved_at=1.0)
    json.loads(text)  # plain, strict JSON: readable by any tool
    copy = loads(text)["device"]
    for t in (900.0, 4000.0, 90_000.0):
        device.advance(t)
        copy.advance(t)
        assert repr(copy.drain_events()) == repr(device.drain_events())
        if hasattr(device, "state"):
            assert repr(copy.state()) == repr(device.state())
        else:  # the relay link: what it answers
            assert copy.one_way_delay_s(t) == device.one_way_delay_s(t)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
                    st.just(float("inf")), st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner), st.frozensets(st.integers(), max_size=3).map(set),
    st.dictionaries(st.text(max_size=5), inner, max_size=3),
    st.dictionaries(st.integers(), inner, max_size=3)), max_leaves=12)


@settings(max_examples=200)
@given(values)
def test_plain_values_round_trip(value: object) -> None:
    assert decode(json.loads(json.dumps(encode(value), allow_nan=False))) == value


def test_random_generators_and_deques_round_trip() -> None:
    rng = random.Random(3)
    rng.random()
    copy = decode(json.loads(json.dumps(encode({"rng": rng, "q": deque([1, 2], maxlen=4)}))))
    assert copy["rng"].random() == rng.random() and copy["q"] == deque([1, 2]) and copy["q"].maxlen == 4


def test_a_class_from_outside_the_package_is_refused_both_ways() -> None:
    class Foreign:
        pass

    with pytest.raises(SnapshotError, match="not a lunar_gs class"):
        encode(Foreign())
    document = {"schema": "lunar-gs.service-state", "version": 2, "node": "x", "saved_at": 0,
                "state": {"$object": "os:system", "fields": {}}}
    with pytest.raises(SnapshotError, match="not a lunar_gs class"):
        loads(json.dumps(document))


def test_another_version_is_refused() -> None:
    with pytest.raises(SnapshotError, match="version 1"):
        loads(json.dumps({"schema": "lunar-gs.service-state", "version": 1, "state": {}}))


def test_a_damaged_state_file_is_set_aside_and_the_service_starts_afresh(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "lander-drill.json", node=str(Node.LANDER_DRILL))
    state.save({"seen": ["a"]}, force=True)
    assert state.load() == {"seen": ["a"]}
    state.path.write_bytes(b"\x80pickle from an older version")
    assert state.load() is None
    assert (tmp_path / "lander-drill.unreadable").exists() and not state.path.exists()


def test_a_state_that_is_slow_to_write_is_written_less_often_unless_forced(tmp_path: Path) -> None:
    """The unforced interval stretches to ten times the last write, so a growing state cannot eat its service."""
    ticks = iter([0.0, 0.5,  # the first write takes 0.5 s: the next unforced one waits 5 s
                  3.0,  # too soon
                  5.6, 5.65,  # 5.1 s after the end of the first: written, in 0.05 s (the next waits 0.5 s)
                  5.8,  # too soon
                  6.0, 6.01,  # forced: written whatever the interval
                  6.6, 6.61])
    state = StateFile(tmp_path / "ground-control.json", node="ground-control", wall=lambda: next(ticks))
    assert state.save({"n": 1})
    assert state.interval_s == pytest.approx(5.0)
    assert not state.save({"n": 2})
    assert state.save({"n": 3})
    assert state.interval_s == pytest.approx(0.5)
    assert not state.save({"n": 4})
    assert state.save({"n": 5}, force=True)
    assert state.save({"n": 6})
    assert state.load() == {"n": 6}


def test_a_resumed_service_notices_an_edited_profile_and_builds_that_device_afresh() -> None:
    from lunar_gs.services.composition import ServiceOptions, build_devices, resume_devices, save_devices

    options = ServiceOptions(node=Node.LANDER_ARM, broker_url="mqtt://127.0.0.1:1", mission="m", profile=PROFILE)
    devices = build_devices(options, 0.0)
    for device in devices.values():
        device.advance(3600.0)
    saved = loads(dumps("lander-arm", save_devices(options, list(devices.values())), 0.0))
    same = resume_devices(options, saved, 0.0)
    assert same["power"].state() == devices["power"].state()  # taken back as saved
    params = {**PROFILE.devices["power"].params, "capacity_wh": 9000.0}
    edited = PROFILE.model_copy(update={"devices": {**PROFILE.devices, "power": PROFILE.devices["power"].model_copy(
        update={"params": params})}})
    changed = resume_devices(ServiceOptions(node=Node.LANDER_ARM, broker_url="mqtt://127.0.0.1:1", mission="m",
                                            profile=edited), saved, 0.0)
    assert changed["power"].state() != devices["power"].state()  # rebuilt from the edited profile
    assert changed["arm"].state() == devices["arm"].state()  # the others are as saved
