"""Backend registry, strict params, and the mission file's device sections."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from lunar_gs.hardware_sim import hal
from lunar_gs.hardware_sim.ascent import RENDEZVOUS_PLAN
from lunar_gs.hardware_sim.backends import BACKENDS, BackendConfigError, build_device, register_backend

MISSION = Path(__file__).resolve().parents[2] / "seeds" / "mission.yaml"
PROTOCOLS = {"drill": hal.Drill, "arm": hal.Arm, "container": hal.SampleContainer, "flag": hal.Flag,
             "ascent": hal.AscentVehicle, "relay": hal.RelayLink, "power": hal.Power}


@pytest.mark.parametrize("kind", sorted(PROTOCOLS))
def test_sim_backend_builds_each_kind(kind: str) -> None:
    device = build_device(kind, "sim", {}, seed=1, start_time=0.0)
    assert isinstance(device, PROTOCOLS[kind])
    assert device.kind == kind and device.backend == "sim"


def test_mission_file_builds_every_device_with_its_params() -> None:
    mission = yaml.safe_load(MISSION.read_text())
    assert mission["mission"]["name"] == "ce6" and mission["mission"]["epoch"] == "2024-06-01T22:23:16Z"
    assert set(mission["devices"]) == set(PROTOCOLS)
    for kind, spec in mission["devices"].items():
        device = build_device(kind, spec["backend"], spec["params"], seed=1, start_time=0.0)
        defaults = type(device.p)()  # type: ignore[attr-defined]
        params = device.p  # type: ignore[attr-defined]
        assert params == defaults, f"{kind}: mission.yaml params differ from code defaults"
        assert set(spec["params"]) == {f.name for f in dataclasses.fields(defaults)}
    plan = [(s["time_after_liftoff_s"], s["perilune_km"], s["apolune_km"])
            for s in mission["rendezvous_plan"]]
    assert plan == [tuple(map(float, step)) for step in RENDEZVOUS_PLAN]


@pytest.mark.parametrize(("kind", "backend", "params", "needle"), [
    ("laser", "sim", {}, "laser"),
    ("drill", "tcp", {}, "tcp"),
    ("drill", "sim", {"torque_limit": 3}, "torque_limit"),
    ("drill", "sim", {"max_rpm": "fast"}, "max_rpm"),
    ("drill", "sim", {"max_rpm": True}, "max_rpm"),
    ("arm", "sim", {"max_sites": 2.5}, "max_sites"),
    ("arm", "sim", {"link_lengths_m": [1.0, 2.0]}, "link_lengths_m"),
    ("drill", "sim", {"layers": [[0.0, "regolith"]]}, "layers"),
    ("drill", "sim", {"layers": [[0.5, "regolith", 1.0]]}, "layers"),
    ("relay", "sim", {"gaps_s": [[10.0, 5.0]]}, "gap"),
    ("container", "sim", [1, 2], "mapping"),
])
def test_bad_config_names_kind_backend_and_key(kind: str, backend: str, params: object, needle: str) -> None:
    with pytest.raises(BackendConfigError) as err:
        build_device(kind, backend, params, seed=1, start_time=0.0)  # type: ignore[arg-type]
    assert needle in str(err.value) and kind in str(err.value)


def test_a_new_backend_can_be_registered() -> None:
    made = []

    def factory(params, seed, start_time, link):  # type: ignore[no-untyped-def]
        made.append((dict(params), seed, start_time, link))
        return build_device("flag", "sim", {}, seed, start_time)

    register_backend("flag", "bench", factory)
    try:
        build_device("flag", "bench", {"port": 5000}, seed=3, start_time=1.0)
        assert made == [({"port": 5000}, 3, 1.0, None)]
    finally:
        del BACKENDS["flag"]["bench"]


def test_ints_in_yaml_are_accepted_for_float_fields() -> None:
    device = build_device("container", "sim", {"capacity_g": 2000}, seed=1, start_time=0.0)
    capacity = device.p.capacity_g  # type: ignore[attr-defined]
    assert capacity == 2000.0 and isinstance(capacity, float)
