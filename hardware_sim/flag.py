"""The flag: a basalt-fibre flag of 11.3 g [15][16], shown after sampling and before liftoff [15]."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lunar_gs.hardware_sim._stepping import SteppedDevice
from lunar_gs.hardware_sim.hal import DeviceCommandError


@dataclass(frozen=True)
class FlagParams:
    mass_g: float = 11.3  # [15][16]
    deploy_duration_s: float = 60.0  # (assumed)
    step_s: float = 1.0  # integration step


class SimFlag(SteppedDevice):
    kind = "flag"

    def __init__(self, params: FlagParams, rng: random.Random, start_time: float) -> None:
        super().__init__(start_time, params.step_s)
        self.p = params
        self._deployed = False
        self._elapsed: float | None = None

    def state(self) -> bool:
        return self._deployed

    def active(self) -> bool:
        return self._elapsed is not None

    def deploy(self) -> None:
        if self._deployed:
            raise DeviceCommandError("flag already deployed")
        if self._elapsed is not None:
            raise DeviceCommandError("flag deployment in progress", "busy")
        self._elapsed = 0.0

    def _step(self, dt: float) -> None:
        assert self._elapsed is not None
        self._elapsed += dt
        if self._elapsed >= self.p.deploy_duration_s - 1e-9:
            self._elapsed = None
            self._deployed = True
            self._emit("flag_deployed", "info", "flag deployed", {"mass_g": self.p.mass_g})
