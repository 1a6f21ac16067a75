"""Rotary-percussive coring drill in layered regolith.

Why this model: the real fault case of this mission class is the bit meeting rock (CE-5 hit "several
rocky regions" and stopped near 1 m [28]; CE-6 reportedly "hit a rock" [33]). The feed controller holds
penetration per revolution at `ppr0 / sqrt(h_eff)`; rotary torque is `idle + k * h_eff * ppr`, so it rises
with hardness and with penetration per revolution [32][36]. Percussion fractures hard material, which
lowers the effective hardness `h_eff = 1 + (h - 1) / percussion_relief`: in rock it both speeds
penetration and lowers torque. Without percussion the rock torque exceeds the over-torque limit within
about 15 s (torque lags with a first-order time constant) and protection trips the drill.

Timing with defaults at 120 rpm: regolith 0-0.9 m ~34 min, rock 0.9-1.15 m with percussion ~14 min,
compacted regolith to 1.5 m ~15 min: about 63 min to 1.5 m, shorter than CE-6's ~3 h [12] (which included
pauses and checks the rehearsal scenario can add as waits).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hardware_sim._stepping import SteppedDevice
from hardware_sim.hal import DeviceCommandError, DrillState
from protocols.telemetry import DrillMode

Layer = tuple[float, str, float]
"""(top depth m, material name, hardness relative to loose regolith)."""


@dataclass(frozen=True)
class DrillParams:
    layers: tuple[Layer, ...] = (
        (0.0, "regolith", 1.0),  # loose regolith (assumed)
        (0.9, "rock", 6.0),  # rocky region, as CE-5 met [28] (depth and hardness assumed)
        (1.15, "compacted_regolith", 2.0),  # (assumed)
    )
    design_length_m: float = 2.5  # [30] 2.5 m design length
    max_rpm: float = 200.0  # (assumed)
    ppr0_mm_rev: float = 0.22  # penetration per revolution in loose regolith (assumed; no CE-6 data)
    cutting_coeff_nm_per_mm_rev: float = 64.0  # torque per (hardness x mm/rev) (assumed)
    idle_torque_nm: float = 3.0  # friction of the rotating pipe (assumed)
    percussion_relief: float = 4.0  # percussion divides excess hardness [32][36] (factor assumed)
    over_torque_limit_nm: float = 30.0  # protection threshold (assumed)
    torque_time_constant_s: float = 15.0  # (assumed)
    torque_noise_nm: float = 0.3  # sensor noise (assumed)
    idle_current_a: float = 0.4  # (assumed)
    current_per_nm_a: float = 0.08  # motor constant (assumed)
    ambient_c: float = -20.0  # subsurface regolith; surface spans -171..+134 C [74] (assumed)
    heating_c_per_w: float = 0.15  # bit temperature rise per W of rotary power (assumed)
    thermal_time_constant_s: float = 300.0  # (assumed)
    core_g_per_m: float = 250.0  # [27] CE-5 259.72 g for ~1 m
    stow_duration_s: float = 600.0  # sealing the coring bag (assumed)
    step_s: float = 1.0  # integration step


class SimDrill(SteppedDevice):
    """Simulated drill; see the module docstring for the physics and its sources."""

    kind = "drill"

    def __init__(self, params: DrillParams, rng: random.Random, start_time: float) -> None:
        if not params.layers or params.layers[0][0] != 0.0:
            raise ValueError("drill layers must start at depth 0.0")
        super().__init__(start_time, params.step_s)
        self.p = params
        self._rng = rng
        self._mode = DrillMode.IDLE
        self._depth = 0.0
        self._target = 0.0
        self._rpm = 0.0
        self._percussion = False
        self._torque = 0.0  # true (lagged) torque
        self._torque_meas = 0.0
        self._rate = 0.0  # mm/min
        self._temp = params.ambient_c
        self._core = 0.0
        self._material = self._layer_at(0.0)[1]
        self._stow_left = 0.0

    # -- commands ---------------------------------------------------------------------------------
    def state(self) -> DrillState:
        p = self.p
        current = p.idle_current_a + p.current_per_nm_a * abs(self._torque_meas) if self._rpm else 0.0
        return DrillState(mode=self._mode.value, depth_m=self._depth, target_depth_m=self._target,
                          rpm=self._rpm, torque_nm=self._torque_meas, motor_current_a=current,
                          penetration_rate_mm_min=self._rate, percussion=self._percussion,
                          bit_temperature_c=self._temp, core_mass_g=self._core, material=self._material)

    def active(self) -> bool:
        return self._mode in (DrillMode.DRILLING, DrillMode.STOWING)

    def self_test(self) -> None:
        if self._mode not in (DrillMode.IDLE, DrillMode.TRIPPED):
            raise DeviceCommandError(f"self test needs idle drill, mode is {self._mode.value}")
        self._emit("self_test_passed", "info", "drill motor, feed, percussion and sensors nominal")

    def start(self, target_depth_m: float, rpm: float, percussion: bool) -> None:
        if self._mode == DrillMode.DRILLING:
            raise DeviceCommandError("drill is already drilling", "busy")
        if self._mode not in (DrillMode.IDLE, DrillMode.TRIPPED):
            raise DeviceCommandError(f"cannot start drilling in mode {self._mode.value}")
        if not self._depth < target_depth_m <= self.p.design_length_m:
            raise DeviceCommandError(
                f"target {target_depth_m} m must be beyond depth {self._depth:.3f} m and within the "
                f"{self.p.design_length_m} m design length")
        if not 0.0 < rpm <= self.p.max_rpm:
            raise DeviceCommandError(f"rpm {rpm} outside (0, {self.p.max_rpm}]")
        self._mode = DrillMode.DRILLING
        self._target, self._rpm, self._percussion = float(target_depth_m), float(rpm), bool(percussion)

    def set_percussion(self, on: bool) -> None:
        if self._mode in (DrillMode.STOWING, DrillMode.STOWED):
            raise DeviceCommandError(f"percussion not available in mode {self._mode.value}")
        self._percussion = bool(on)

    def stop(self) -> None:
        if self._mode == DrillMode.STOWING:
            raise DeviceCommandError("core stowing in progress", "busy")
        if self._mode == DrillMode.DRILLING:
            self._halt(DrillMode.IDLE)

    def stow_core(self) -> None:
        if self._mode not in (DrillMode.IDLE, DrillMode.TRIPPED):
            raise DeviceCommandError(f"stow needs a stopped drill, mode is {self._mode.value}",
                                     "busy" if self._mode == DrillMode.DRILLING else "wrong_mode")
        self._mode = DrillMode.STOWING
        self._stow_left = self.p.stow_duration_s

    # -- model ------------------------------------------------------------------------------------
    def _layer_at(self, depth: float) -> Layer:
        current = self.p.layers[0]
        for layer in self.p.layers:
            if depth + 1e-12 >= layer[0]:
                current = layer
        return current

    def _halt(self, mode: DrillMode) -> None:
        self._mode = mode
        self._rpm = 0.0
        self._rate = 0.0
        self._torque = 0.0
        self._torque_meas = 0.0

    def _step(self, dt: float) -> None:
        if self._mode == DrillMode.STOWING:
            self._stow_left -= dt
            self._relax_temperature(dt)
            if self._stow_left <= 1e-9:
                self._mode = DrillMode.STOWED
                self._emit("core_stowed", "info", "core bag sealed and stowed",
                           {"mass_g": round(self._core, 2), "depth_m": round(self._depth, 4)})
            return
        p = self.p
        _, name, hardness = self._layer_at(self._depth)
        h_eff = 1.0 + (hardness - 1.0) / p.percussion_relief if self._percussion else hardness
        ppr = p.ppr0_mm_rev / math.sqrt(h_eff)
        rate = self._rpm * ppr  # mm/min
        static_torque = p.idle_torque_nm + p.cutting_coeff_nm_per_mm_rev * h_eff * ppr
        self._torque += (static_torque - self._torque) * (1.0 - math.exp(-dt / p.torque_time_constant_s))
        self._torque_meas = self._torque + self._rng.gauss(0.0, p.torque_noise_nm)
        power_w = self._torque * self._rpm * 2.0 * math.pi / 60.0
        steady = p.ambient_c + p.heating_c_per_w * power_w
        self._temp = steady + (self._temp - steady) * math.exp(-dt / p.thermal_time_constant_s)
        new_depth = min(self._depth + rate / 1000.0 / 60.0 * dt, self._target)
        self._core += (new_depth - self._depth) * p.core_g_per_m
        self._depth = new_depth
        self._rate = rate
        detected = self._layer_at(self._depth)[1]
        if detected != self._material:
            self._material = detected
            self._emit("material_changed", "info", f"bit entered {detected}",
                       {"material": detected, "depth_m": round(self._depth, 4)})
        if self._torque_meas > p.over_torque_limit_nm:
            torque = self._torque_meas
            self._halt(DrillMode.TRIPPED)
            self._emit("over_torque", "error",
                       f"over-torque protection tripped at {torque:.1f} N m in {name}",
                       {"torque_nm": round(torque, 3), "depth_m": round(self._depth, 4)})
        elif self._depth >= self._target - 1e-12:
            self._halt(DrillMode.IDLE)
            self._emit("target_depth_reached", "info", "target depth reached",
                       {"depth_m": round(self._depth, 4)})

    def _relax_temperature(self, dt: float) -> None:
        amb = self.p.ambient_c
        self._temp = amb + (self._temp - amb) * math.exp(-dt / self.p.thermal_time_constant_s)

    def _coast(self, n_steps: int) -> None:
        self._relax_temperature(n_steps * self._step_s)
