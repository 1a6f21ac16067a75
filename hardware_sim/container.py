"""Sample container: receives regolith, seals, and moves onto the ascender.

Why: the container holds exactly 2 kg by design [25] (1,935.3 g returned [24]), so overfilling and
post-seal deliveries are real operator errors the rehearsal should surface. Sealing (CAST-510 redundant
composite seal [40]) takes some minutes while the seal's contact pressure builds; its figures are assumed.

Fault `container.seal_leak`: once sealed, the seal pressure decays linearly at the summed
`rate_kpa_per_h` of the active leaks, also across idle stretches (analytic in `_coast`, so a leak alone
keeps the container inactive and warps cheap); a leak injected before sealing acts from the moment of
sealing. The pressure never goes below 0; clearing stops the decay and the lost pressure stays.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lunar_gs.hardware_sim._stepping import SteppedDevice
from lunar_gs.hardware_sim.faults import FaultHost
from lunar_gs.hardware_sim.hal import ContainerState, DeviceCommandError

LEAK_SYMPTOM_KPA = 0.5
"""A leak shows once the seal pressure is this far below nominal."""


@dataclass(frozen=True)
class ContainerParams:
    capacity_g: float = 2000.0  # [25] designed for exactly 2 kg
    seal_duration_s: float = 300.0  # (assumed)
    seal_pressure_kpa: float = 150.0  # seal contact pressure when closed (assumed)
    step_s: float = 1.0  # integration step


class SimSampleContainer(FaultHost, SteppedDevice):
    kind = "container"
    FAULT_KINDS = frozenset({"container.seal_leak"})

    def __init__(self, params: ContainerParams, rng: random.Random, start_time: float) -> None:
        super().__init__(start_time, params.step_s)
        self.p = params
        self._mass = 0.0
        self._sealed = False
        self._sealing_elapsed: float | None = None
        self._pressure = 0.0
        self._on_ascender = False

    def state(self) -> ContainerState:
        return ContainerState(self._mass, self.p.capacity_g, self._sealed, self._pressure, self._on_ascender)

    def active(self) -> bool:
        return self._sealing_elapsed is not None

    def receive(self, mass_g: float) -> float:
        if self._sealed:
            raise DeviceCommandError("container is sealed")
        if self._sealing_elapsed is not None:
            raise DeviceCommandError("container is being sealed", "busy")
        if mass_g < 0:
            raise DeviceCommandError(f"negative mass {mass_g} g")
        accepted = min(float(mass_g), self.p.capacity_g - self._mass)
        self._mass = min(self.p.capacity_g, self._mass + accepted)
        if self._mass >= self.p.capacity_g and (accepted < mass_g or accepted > 0):
            self._emit("container_full", "warning", "container at capacity",
                       {"mass_g": round(self._mass, 2), "rejected_g": round(mass_g - accepted, 2)})
        return accepted

    def seal(self) -> None:
        if self._sealed:
            raise DeviceCommandError("container already sealed")
        if self._sealing_elapsed is not None:
            raise DeviceCommandError("sealing in progress", "busy")
        self._sealing_elapsed = 0.0

    def transfer_to_ascender(self) -> None:
        if not self._sealed:
            raise DeviceCommandError("container must be sealed before transfer")
        if self._on_ascender:
            raise DeviceCommandError("container already on the ascender")
        self._on_ascender = True
        self._emit("container_transferred", "info", "container moved into the ascender",
                   {"mass_g": round(self._mass, 2)})

    def _step(self, dt: float) -> None:
        assert self._sealing_elapsed is not None
        self._sealing_elapsed += dt
        frac = min(1.0, self._sealing_elapsed / self.p.seal_duration_s)
        self._pressure = self.p.seal_pressure_kpa * (1.0 - math.exp(-5.0 * frac)) / (1.0 - math.exp(-5.0))
        if frac >= 1.0 - 1e-12:
            self._sealing_elapsed = None
            self._sealed = True
            self._pressure = self.p.seal_pressure_kpa
            self._emit("container_sealed", "info", "container sealed", {"mass_g": round(self._mass, 2)})

    def _coast(self, n_steps: int) -> None:
        if not self._sealed or self._pressure <= 0.0:
            return
        leaks = self._faults_of("container.seal_leak")
        rate = self._fault_sum("container.seal_leak", "rate_kpa_per_h") / 3600.0  # kPa/s
        if not leaks or rate <= 0.0:
            return
        t0, span = self.time, n_steps * self._step_s
        before = self._pressure
        self._pressure = max(0.0, before - rate * span)
        threshold = self.p.seal_pressure_kpa - LEAK_SYMPTOM_KPA
        if self._pressure <= threshold:
            at = t0 + max(0.0, before - threshold) / rate
            for fault in leaks:
                self._symptom(fault, at, f"seal pressure {LEAK_SYMPTOM_KPA} kPa below nominal")
