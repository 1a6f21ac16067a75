"""Sensor faults: perturb one measured parameter between the physics and the housekeeping packet.

Why a layer of its own: a stuck or noisy sensor leaves the physics untouched (the drill really is at
1.2 m) while the operators read something else, which is exactly the case trainees must learn to spot
(cross-check with other parameters, switch to a redundant sensor). Faults act on the flat field mapping
the service builds its housekeeping from; a parameter is a top-level field (`torque_nm`) or a joint's
field (`elbow.angle_deg`, inside the `joints` list of mappings).

Composition on one parameter: bias, noise and spikes add up; stuck and dropout exclude every other fault
on that parameter (the instructor service refuses the pair before it gets here).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from lunar_gs.hardware_sim.faults import FaultNotApplicable, FaultParamValue, Symptom

SENSOR_KINDS = ("sensor.stuck", "sensor.bias", "sensor.noise", "sensor.spikes", "sensor.dropout")
_NUMERIC_ONLY = ("sensor.bias", "sensor.noise", "sensor.spikes")


@dataclass
class _SensorFault:
    fault_id: str
    kind: str
    parameter: str
    params: Mapping[str, FaultParamValue]
    rng: random.Random
    held: Any = None
    """Stuck and dropout: the value they hold."""
    symptomatic: bool = False


@dataclass
class SensorFaults:
    """The sensor faults of one node, applied to each housekeeping sample."""

    _faults: dict[str, _SensorFault] = field(default_factory=dict)

    def add(self, fault_id: str, kind: str, parameter: str, params: Mapping[str, FaultParamValue],
            seed: int, sample: Mapping[str, Any]) -> None:
        """Add a fault on `parameter`, checked against a current `sample` of the housekeeping fields."""
        if kind not in SENSOR_KINDS:
            raise FaultNotApplicable(f"{kind} is not a sensor fault")
        value = _read(sample, parameter)
        if kind in _NUMERIC_ONLY and not _is_number(value):
            raise FaultNotApplicable(f"{kind} needs a numeric parameter; {parameter} is {value!r}")
        if kind == "sensor.stuck" and params.get("value") is not None and not _is_number(value):
            raise FaultNotApplicable(f"{parameter} is not numeric: it can only stick at its last value")
        self._faults[fault_id] = _SensorFault(fault_id, kind, parameter, dict(params), random.Random(seed))

    def remove(self, fault_id: str) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def __len__(self) -> int:
        return len(self._faults)

    def apply(self, fields: MutableMapping[str, Any], now: float) -> tuple[list[str], list[Symptom]]:
        """Perturb `fields` in place; returns the parameters to report missing and first symptoms."""
        missing: list[str] = []
        symptoms: list[Symptom] = []
        for fault in self._faults.values():
            true_value = _read(fields, fault.parameter)
            value = self._perturb(fault, true_value)
            if fault.kind == "sensor.dropout":
                missing.append(fault.parameter)
            if value != true_value or fault.kind == "sensor.dropout":
                _write(fields, fault.parameter, value)
                if not fault.symptomatic:
                    fault.symptomatic = True
                    what = ("reported missing" if fault.kind == "sensor.dropout"
                            else f"{fault.parameter} read {value!r} instead of {true_value!r}")
                    symptoms.append(Symptom(fault.fault_id, now, what))
        return missing, symptoms

    @staticmethod
    def _perturb(fault: _SensorFault, value: Any) -> Any:
        p = fault.params
        if fault.kind in ("sensor.stuck", "sensor.dropout"):
            if fault.held is None:
                fixed = p.get("value") if fault.kind == "sensor.stuck" else None
                fault.held = value if fixed is None else _like(value, float(fixed))
            return fault.held
        if not _is_number(value):
            return value
        if fault.kind == "sensor.bias":
            return _like(value, value + float(p["offset"] or 0.0))
        if fault.kind == "sensor.noise":
            return _like(value, value + fault.rng.gauss(0.0, float(p["sigma"] or 0.0)))
        if fault.rng.random() < float(p.get("probability") or 0.0):  # spikes
            return _like(value, value + fault.rng.choice((-1.0, 1.0)) * float(p["magnitude"] or 0.0))
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _like(original: Any, value: float) -> Any:
    """Keep integer parameters integers (a count read with a bias is still a count)."""
    if isinstance(original, bool):
        return bool(value)
    if isinstance(original, int):
        return int(round(value))
    return value


def _locate(fields: Mapping[str, Any], parameter: str) -> tuple[Any, str]:
    """The mapping that holds `parameter` and the key in it."""
    if parameter in fields:
        return fields, parameter
    joint, _, name = parameter.partition(".")
    for item in fields.get("joints", ()) or ():
        if isinstance(item, Mapping) and item.get("name") == joint and name in item:
            return item, name
    raise FaultNotApplicable(f"no housekeeping parameter {parameter!r}")


def _read(fields: Mapping[str, Any], parameter: str) -> Any:
    holder, key = _locate(fields, parameter)
    return holder[key]


def _write(fields: MutableMapping[str, Any], parameter: str, value: Any) -> None:
    holder, key = _locate(fields, parameter)
    holder[key] = value
