"""Backend registry: which implementation stands behind each device kind, chosen by configuration.

Why a registry: a rehearsal swaps a simulated drill for an EGSE bench drill (a byte protocol over TCP or
serial) by editing `seeds/mission.yaml`, never code. Backends: `sim` (the model in this process) and, for
the drill, the arm and the sample container, `modbus_tcp` and `serial_line` (the device, or its emulator,
at the far end of a link: `remote/`). Params are checked against the model's frozen `XParams` dataclass
(unknown key, wrong type) so a bad mission file fails fast with a clear message; a remote device takes the
same params, which its emulator's model uses and which give the host the device's power-on state.
"""

from __future__ import annotations

import dataclasses
import random
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from lunar_gs.hardware_sim.arm import ArmParams, SimArm
from lunar_gs.hardware_sim.ascent import AscentParams, SimAscentVehicle
from lunar_gs.hardware_sim.container import ContainerParams, SimSampleContainer
from lunar_gs.hardware_sim.drill import DrillParams, SimDrill
from lunar_gs.hardware_sim.flag import FlagParams, SimFlag
from lunar_gs.hardware_sim.hal import Device
from lunar_gs.hardware_sim.power import PowerParams, SimPower
from lunar_gs.hardware_sim.relay import RelayParams, SimRelayLink
from lunar_gs.hardware_sim.remote.settings import LinkSettings

DeviceFactory = Callable[[Mapping[str, Any], int, float, LinkSettings | None], Device]
"""(params, seed, start_time, link) -> device; `link` is None for the sim backend."""


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
    def factory(params: Mapping[str, Any], seed: int, start_time: float,
                link: LinkSettings | None = None) -> Device:
        if link is not None:
            raise BackendConfigError(f"device {kind!r} backend 'sim' takes no link section")
        p = params_from_mapping(params_cls, params, kind, "sim")
        try:
            return model(p, random.Random(seed), float(start_time))
        except ValueError as exc:
            raise BackendConfigError(f"device {kind!r} backend 'sim': {exc}") from exc
    return factory


def _remote(kind: str, backend: str) -> DeviceFactory:
    def factory(params: Mapping[str, Any], seed: int, start_time: float,
                link: LinkSettings | None = None) -> Device:
        from lunar_gs.hardware_sim.remote.host import REMOTE_CLASSES
        from lunar_gs.hardware_sim.remote.description import DESCRIPTIONS
        where = f"device {kind!r} backend {backend!r}"
        if link is None or not link.url:
            raise BackendConfigError(f"{where}: needs a link section with a url (or an emulator section)")
        power_on = BACKENDS[kind]["sim"](params, seed, start_time, None)  # checks params; the power-on state
        return REMOTE_CLASSES[kind](
            DESCRIPTIONS[kind], backend, open_link(kind, backend, link), link,
            initial_state=power_on.state(), start_time=float(start_time),  # type: ignore[attr-defined]
            fault_kinds=frozenset(getattr(power_on, "FAULT_KINDS", frozenset())))
    return factory


def open_link(kind: str, backend: str, link: LinkSettings) -> Any:
    """The client half of `backend`'s wire protocol for one device (not connected yet)."""
    assert link.url
    where = f"device {kind!r} backend {backend!r}"
    if backend == "modbus_tcp":
        from lunar_gs.hardware_sim.remote.modbus import ModbusLink
        parsed = urlsplit(link.url)
        if parsed.scheme != "tcp" or not parsed.hostname or not parsed.port:
            raise BackendConfigError(f"{where}: link url must be tcp://HOST:PORT, got {link.url!r}")
        return ModbusLink(kind, parsed.hostname, parsed.port, unit_id=link.unit_id, word_order=link.word_order,
                          timeout_s=link.timeout_s, retries=link.retries)
    from lunar_gs.hardware_sim.remote.serial_line import SerialLineLink
    return SerialLineLink(kind, link.url, timeout_s=link.timeout_s, retries=link.retries)


REMOTE_BACKENDS = ("modbus_tcp", "serial_line")

BACKENDS: dict[str, dict[str, DeviceFactory]] = {
    "drill": {"sim": _sim(SimDrill, DrillParams, "drill"),
              **{b: _remote("drill", b) for b in REMOTE_BACKENDS}},
    "arm": {"sim": _sim(SimArm, ArmParams, "arm"), **{b: _remote("arm", b) for b in REMOTE_BACKENDS}},
    "container": {"sim": _sim(SimSampleContainer, ContainerParams, "container"),
                  **{b: _remote("container", b) for b in REMOTE_BACKENDS}},
    "flag": {"sim": _sim(SimFlag, FlagParams, "flag")},
    "ascent": {"sim": _sim(SimAscentVehicle, AscentParams, "ascent")},
    "relay": {"sim": _sim(SimRelayLink, RelayParams, "relay")},
    "power": {"sim": _sim(SimPower, PowerParams, "power")},
}


def register_backend(kind: str, backend: str, factory: DeviceFactory) -> None:
    """Make `backend` available for `kind` (e.g. a TCP/serial bench device)."""
    BACKENDS.setdefault(kind, {})[backend] = factory


def build_device(kind: str, backend: str, params: Mapping[str, Any], seed: int, start_time: float,
                 link: LinkSettings | None = None) -> Device:
    """The one way services obtain a device: kind, backend and link come from the mission configuration."""
    if kind not in BACKENDS:
        raise BackendConfigError(f"unknown device kind {kind!r}; known: {sorted(BACKENDS)}")
    if backend not in BACKENDS[kind]:
        raise BackendConfigError(
            f"unknown backend {backend!r} for device {kind!r}; known: {sorted(BACKENDS[kind])}")
    if not isinstance(params, Mapping):
        raise BackendConfigError(
            f"device {kind!r} backend {backend!r}: params must be a mapping, got {params!r}")
    return BACKENDS[kind][backend](params, seed, start_time, link)
