"""Backend registry: which implementation stands behind each device kind, chosen by configuration.

Why a registry: a rehearsal swaps a simulated drill for an EGSE bench drill (a byte protocol over TCP or
serial) by editing `seeds/mission.yaml`, never code. Only the `sim` backend exists yet; a real-device
backend registers a factory with `register_backend()`. Params are checked against the backend's frozen
`XParams` dataclass (unknown key, wrong type) so a bad mission file fails fast with a clear message.
"""

from __future__ import annotations

import dataclasses
import random
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from lunar_gs.hardware_sim.arm import ArmParams, SimArm
from lunar_gs.hardware_sim.ascent import AscentParams, SimAscentVehicle
from lunar_gs.hardware_sim.container import ContainerParams, SimSampleContainer
from lunar_gs.hardware_sim.drill import DrillParams, SimDrill
from lunar_gs.hardware_sim.flag import FlagParams, SimFlag
from lunar_gs.hardware_sim.hal import Device
from lunar_gs.hardware_sim.power import PowerParams, SimPower
from lunar_gs.hardware_sim.relay import RelayParams, SimRelayLink

DeviceFactory = Callable[[Mapping[str, Any], int, float], Device]
"""(params, seed, start_time) -> device."""


class BackendConfigError(ValueError):
    """The device configuration names an unknown kind or backend, or carries bad params."""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field annotation; YAML lists become tuples, ints may be floats."""
    origin = typing.get_origin(annotation)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BackendConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BackendConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation in (bool, str):
        if not isinstance(value, annotation):
            raise BackendConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise BackendConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise BackendConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            try:
                return _coerce(value, arg, where)
            except BackendConfigError:
                continue
        raise BackendConfigError(f"{where}: {value!r} matches none of {annotation}")
    return value


def params_from_mapping(cls: type[Any], params: Mapping[str, Any], kind: str, backend: str) -> Any:
    """Build the frozen params dataclass `cls` from a config mapping, strictly."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in params.items():
        if key not in names:
            raise BackendConfigError(
                f"device {kind!r} backend {backend!r}: unknown param {key!r}; known: {sorted(names)}")
        kwargs[key] = _coerce(value, hints[key], f"device {kind!r} backend {backend!r} param {key!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BackendConfigError(f"device {kind!r} backend {backend!r}: {exc}") from exc


def _sim(model: Callable[[Any, random.Random, float], Device], params_cls: type[Any],
         kind: str) -> DeviceFactory:
    def factory(params: Mapping[str, Any], seed: int, start_time: float) -> Device:
        p = params_from_mapping(params_cls, params, kind, "sim")
        try:
            return model(p, random.Random(seed), float(start_time))
        except ValueError as exc:
            raise BackendConfigError(f"device {kind!r} backend 'sim': {exc}") from exc
    return factory


BACKENDS: dict[str, dict[str, DeviceFactory]] = {
    "drill": {"sim": _sim(SimDrill, DrillParams, "drill")},
    "arm": {"sim": _sim(SimArm, ArmParams, "arm")},
    "container": {"sim": _sim(SimSampleContainer, ContainerParams, "container")},
    "flag": {"sim": _sim(SimFlag, FlagParams, "flag")},
    "ascent": {"sim": _sim(SimAscentVehicle, AscentParams, "ascent")},
    "relay": {"sim": _sim(SimRelayLink, RelayParams, "relay")},
    "power": {"sim": _sim(SimPower, PowerParams, "power")},
}


def register_backend(kind: str, backend: str, factory: DeviceFactory) -> None:
    """Make `backend` available for `kind` (e.g. a TCP/serial bench device)."""
    BACKENDS.setdefault(kind, {})[backend] = factory


def build_device(kind: str, backend: str, params: Mapping[str, Any], seed: int, start_time: float) -> Device:
    """The one way services obtain a device: kind and backend come from the mission configuration."""
    if kind not in BACKENDS:
        raise BackendConfigError(f"unknown device kind {kind!r}; known: {sorted(BACKENDS)}")
    if backend not in BACKENDS[kind]:
        raise BackendConfigError(
            f"unknown backend {backend!r} for device {kind!r}; known: {sorted(BACKENDS[kind])}")
    if not isinstance(params, Mapping):
        raise BackendConfigError(
            f"device {kind!r} backend {backend!r}: params must be a mapping, got {params!r}")
    return BACKENDS[kind][backend](params, seed, start_time)
