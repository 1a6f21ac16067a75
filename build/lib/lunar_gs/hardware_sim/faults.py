"""Faults as perturbations of the models: what a device model needs to host injected faults.

Why here and not in the services: a fault must act where the real failure acts (a jammed bit raises the
physical torque; the protection then trips by itself), so the services see only symptoms. A model keeps
its active faults by id, asks for them by kind while stepping, and notes the first moment each one changed
something observable (`_symptom`), so a fault that changed nothing can be reported as a dud.

Parameters arrive already validated and with their defaults filled (the node validates them against the
catalogue in `protocols.faults`); additive kinds may be active more than once and are summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FaultParamValue = str | int | float | bool | None


class FaultNotApplicable(Exception):
    """The model cannot host this fault (unknown kind for this device, unknown joint or component)."""


@dataclass(frozen=True)
class ModelFault:
    """One fault acting on a model. `kind` is a `protocols.faults.FaultKind` value."""

    fault_id: str
    kind: str
    item: str | None = None
    """Joint or component name, when the kind targets one."""
    params: Mapping[str, FaultParamValue] = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True)
class Symptom:
    """The first time a fault changed something observable, or (`recovered`) the moment the physics
    itself ended it (a retract freed the jammed bit)."""

    fault_id: str
    time: float
    what: str
    recovered: bool = False


class FaultHost:
    """Mixin of the models that host faults. Subclasses list the kinds they take in `FAULT_KINDS` and may
    override `_check_fault` (e.g. to check a joint name) and `_on_fault_cleared`."""

    FAULT_KINDS: frozenset[str] = frozenset()

    def _fault_state(self) -> tuple[dict[str, ModelFault], list[Symptom], set[str]]:
        # created lazily so that models keep their own __init__ free of fault plumbing
        if not hasattr(self, "_faults"):
            self._faults: dict[str, ModelFault] = {}
            self._symptoms: list[Symptom] = []
            self._symptomatic: set[str] = set()
        return self._faults, self._symptoms, self._symptomatic

    def inject_fault(self, fault: ModelFault) -> None:
        """Start `fault` now; raises FaultNotApplicable if this model cannot host it."""
        if fault.kind not in self.FAULT_KINDS:
            raise FaultNotApplicable(
                f"{getattr(self, 'kind', type(self).__name__)} cannot host {fault.kind}; "
                f"it takes {', '.join(sorted(self.FAULT_KINDS)) or 'no faults'}")
        self._check_fault(fault)
        faults, _, _ = self._fault_state()
        faults[fault.fault_id] = fault
        self._on_fault_injected(fault)

    def clear_fault(self, fault_id: str) -> bool:
        """Stop a fault; what it already did to the physics stays. Returns False if it was not here."""
        faults, _, _ = self._fault_state()
        fault = faults.pop(fault_id, None)
        if fault is None:
            return False
        self._on_fault_cleared(fault)
        return True

    def active_faults(self) -> list[ModelFault]:
        return list(self._fault_state()[0].values())

    def drain_symptoms(self) -> list[Symptom]:
        """First observable symptom of each fault (once) and recoveries, in the order they happened."""
        _, symptoms, _ = self._fault_state()
        out = list(symptoms)
        symptoms.clear()
        return out

    # -- for the models -------------------------------------------------------------------------------
    def _faults_of(self, kind: str, item: str | None = None) -> list[ModelFault]:
        faults = self.__dict__.get("_faults")  # models ask on every step: nothing to do is the usual case
        if not faults:
            return []
        return [f for f in faults.values() if f.kind == kind and (item is None or f.item == item)]

    def _fault_sum(self, kind: str, param: str, item: str | None = None) -> float:
        """Sum of a numeric parameter over the active faults of `kind` (additive composition)."""
        if not self.__dict__.get("_faults"):
            return 0.0
        return sum(float(f.params.get(param) or 0.0) for f in self._faults_of(kind, item))

    def _symptom(self, fault: ModelFault, time: float, what: str) -> None:
        """Note that `fault` first changed something observable at `time` (once per fault)."""
        _, symptoms, seen = self._fault_state()
        if fault.fault_id not in seen:
            seen.add(fault.fault_id)
            symptoms.append(Symptom(fault.fault_id, time, what))

    def _recover(self, fault: ModelFault, time: float, how: str) -> None:
        """The model's own physics ended `fault` (e.g. retracting freed the bit): it stops acting and
        the node reports it cleared, saying how."""
        faults, symptoms, _ = self._fault_state()
        if faults.pop(fault.fault_id, None) is not None:
            symptoms.append(Symptom(fault.fault_id, time, how, recovered=True))
            self._on_fault_cleared(fault)

    def _check_fault(self, fault: ModelFault) -> None:
        """Raise FaultNotApplicable for a fault this model cannot take (default: all kinds listed are fine)."""

    def _on_fault_injected(self, fault: ModelFault) -> None:
        """Hook: a fault just went in."""

    def _on_fault_cleared(self, fault: ModelFault) -> None:
        """Hook: a fault was just cleared."""
