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

Motor temperature: the motor and gearbox turn `motor_loss_fraction` of the rotary power into heat and
relax toward the ambient with `motor_thermal_time_constant_s` (figures assumed; nominal drilling stays
below about 20 C, far from any limit). The bit temperature protection warns at `bit_warning_c` and trips
the drill at `bit_trip_c` (nominal drilling peaks near 55 C at 200 rpm in rock with percussion).

RETRACT raises the bit at `retract_rate_mm_s`; the core stays in the pipe (core mass unchanged) and a new
start first lowers the bit down the already-drilled hole at the same rate, without cutting. A retract of
`stall_clear_m` or more frees a jammed bit.

Faults (see protocols.faults for their parameters):
  drill.stall        while drilling, a jam torque builds from 0 (from the injection, and again from each
                     new start) at `torque_rise_nm_per_s`, rpm falls by up to `rpm_loss_percent` as the jam
                     grows, penetration stops; the over-torque protection then trips. RETRACT frees it.
  drill.bit_overheat extra bit heating `extra_heating_c_per_s` (summed) while turning: a heat source in the
                     bit's first-order thermal model, so its steady offset is rate x time constant
                     (0.2 C/s -> +60 C); STOP and waiting cools the bit.
  drill.feed_stuck   the bit turns at idle torque but goes no deeper: a DRILL_TO_DEPTH never completes.
  thermal.drift      (item "motor") the motor temperature drifts linearly at `rate_c_per_h` (summed) on
                     top of the model while the fault is active; once cleared, the offset relaxes with the
                     motor's time constant.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lunar_gs.hardware_sim._stepping import SteppedDevice
from lunar_gs.hardware_sim.faults import FaultHost, FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.hal import DeviceCommandError, DrillState
from lunar_gs.protocols.telemetry import DrillMode

BIT_HEAT_SYMPTOM_C = 5.0
"""An overheating bit shows once it is this much hotter than it would be without the fault."""
MOTOR_DRIFT_SYMPTOM_C = 2.0
"""A motor thermal drift shows once the motor is this far from its modelled temperature."""
BIT_WARNING_HYSTERESIS_C = 2.0

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
    electronics_power_w: float = 15.0  # drive electronics while turning (assumed)
    motor_efficiency: float = 0.7  # rotary shaft power / electrical power, motor and gearbox (assumed)
    percussion_power_w: float = 120.0  # hammer drive while percussion is on and the bit turns (assumed)
    bus_voltage_v: float = 28.0  # nominal lander bus, for the motor current (assumed)
    ambient_c: float = -20.0  # subsurface regolith; surface spans -171..+134 C [74] (assumed)
    heating_c_per_w: float = 0.15  # bit temperature rise per W of rotary power (assumed)
    thermal_time_constant_s: float = 300.0  # (assumed)
    core_g_per_m: float = 250.0  # [27] CE-5 259.72 g for ~1 m
    stow_duration_s: float = 600.0  # sealing the coring bag (assumed)
    motor_loss_fraction: float = 0.25  # share of rotary power lost as heat in motor and gearbox (assumed)
    motor_heating_c_per_w: float = 0.4  # motor temperature rise per W of losses (assumed)
    motor_thermal_time_constant_s: float = 900.0  # (assumed)
    bit_warning_c: float = 70.0  # bit temperature warning threshold (assumed)
    bit_trip_c: float = 90.0  # bit temperature protection trip (assumed)
    retract_rate_mm_s: float = 10.0  # bit raise rate, also the rate of lowering it down the hole (assumed)
    stall_clear_m: float = 0.02  # a retract at least this long frees a jammed bit (assumed)
    step_s: float = 1.0  # integration step


class SimDrill(FaultHost, SteppedDevice):
    """Simulated drill; see the module docstring for the physics and its sources."""

    kind = "drill"
    FAULT_KINDS = frozenset({"drill.stall", "drill.bit_overheat", "drill.feed_stuck", "thermal.drift"})

    def __init__(self, params: DrillParams, rng: random.Random, start_time: float) -> None:
        if not params.layers or params.layers[0][0] != 0.0:
            raise ValueError("drill layers must start at depth 0.0")
        super().__init__(start_time, params.step_s)
        self.p = params
        self._rng = rng
        self._mode = DrillMode.IDLE
        self._depth = 0.0
        self._target = 0.0
        self._rpm = 0.0  # actual rpm (a jammed bit turns slower than commanded)
        self._rpm_cmd = 0.0
        self._percussion = False
        self._torque = 0.0  # true (lagged) torque
        self._torque_meas = 0.0
        self._rate = 0.0  # mm/min
        self._temp = params.ambient_c  # bit temperature as the nominal model gives it
        self._temp_extra = 0.0  # extra bit temperature from drill.bit_overheat
        self._bit_warned = False
        self._motor_temp = params.ambient_c  # motor temperature as the nominal model gives it
        self._motor_drift = 0.0  # offset from thermal.drift
        self._core = 0.0
        self._hole = 0.0  # bottom of the drilled hole (the bit may be above it after a retract)
        self._material = self._layer_at(0.0)[1]
        self._stow_left = 0.0
        self._retract_left = 0.0
        self._retracted = 0.0
        self._jam = 0.0  # jam torque of drill.stall, N m

    # -- commands ---------------------------------------------------------------------------------
    def state(self) -> DrillState:
        p = self.p
        power = self.electrical_power_w()
        return DrillState(mode=self._mode.value, depth_m=self._depth, target_depth_m=self._target,
                          rpm=self._rpm, torque_nm=self._torque_meas, motor_current_a=power / p.bus_voltage_v,
                          power_w=power,
                          penetration_rate_mm_min=self._rate, percussion=self._percussion,
                          bit_temperature_c=self._temp + self._temp_extra, core_mass_g=self._core,
                          material=self._material, motor_temperature_c=self._motor_temp + self._motor_drift)

    def electrical_power_w(self) -> float:
        """What the drill draws from the lander bus: shaft power over the drive's efficiency, plus the
        hammer and the electronics while the bit turns (the load the platform's power model carries)."""
        if not self._rpm:
            return 0.0
        p = self.p
        shaft = abs(self._torque_meas) * self._rpm * 2.0 * math.pi / 60.0
        hammer = p.percussion_power_w if self._percussion else 0.0
        return p.electronics_power_w + shaft / p.motor_efficiency + hammer

    def active(self) -> bool:
        return self._mode in (DrillMode.DRILLING, DrillMode.STOWING, DrillMode.RETRACTING)

    def self_test(self) -> None:
        if self._mode not in (DrillMode.IDLE, DrillMode.TRIPPED):
            raise DeviceCommandError(f"self test needs idle drill, mode is {self._mode.value}")
        self._emit("self_test_passed", "info", "drill motor, feed, percussion and sensors nominal")

    def start(self, target_depth_m: float, rpm: float, percussion: bool) -> None:
        if self._mode == DrillMode.DRILLING:
            raise DeviceCommandError("drill is already drilling", "busy")
        if self._mode == DrillMode.RETRACTING:
            raise DeviceCommandError("drill is retracting", "busy")
        if self._mode not in (DrillMode.IDLE, DrillMode.TRIPPED):
            raise DeviceCommandError(f"cannot start drilling in mode {self._mode.value}")
        if not self._depth < target_depth_m <= self.p.design_length_m:
            raise DeviceCommandError(
                f"target {target_depth_m} m must be beyond depth {self._depth:.3f} m and within the "
                f"{self.p.design_length_m} m design length")
        if not 0.0 < rpm <= self.p.max_rpm:
            raise DeviceCommandError(f"rpm {rpm} outside (0, {self.p.max_rpm}]")
        self._mode = DrillMode.DRILLING
        self._target, self._percussion = float(target_depth_m), bool(percussion)
        self._rpm = self._rpm_cmd = float(rpm)
        self._jam = 0.0  # a still-jammed bit jams again from the start

    def set_percussion(self, on: bool) -> None:
        if self._mode in (DrillMode.STOWING, DrillMode.STOWED):
            raise DeviceCommandError(f"percussion not available in mode {self._mode.value}")
        self._percussion = bool(on)

    def stop(self) -> None:
        """Stop drilling (or a retract) where the bit is; a no-op while idle or tripped."""
        if self._mode == DrillMode.STOWING:
            raise DeviceCommandError("core stowing in progress", "busy")
        if self._mode in (DrillMode.DRILLING, DrillMode.RETRACTING):
            what = "drilling" if self._mode == DrillMode.DRILLING else "retract"
            self._halt(DrillMode.IDLE)
            self._retract_left = 0.0
            self._emit("drill_stopped", "info", f"{what} stopped by command at {self._depth:.3f} m",
                       {"depth_m": round(self._depth, 4)})

    def power_cut(self, reason: str) -> None:
        """The lander platform shed the drill's power (bus undervoltage): the motor stops where it is and
        the drill is left tripped, as any protection leaves it; a no-op unless it was turning."""
        if self._mode in (DrillMode.DRILLING, DrillMode.RETRACTING):
            self._halt(DrillMode.TRIPPED)
            self._retract_left = 0.0
            self._emit("power_lost", "error", f"drill power shed at {self._depth:.3f} m: {reason}"[:500],
                       {"depth_m": round(self._depth, 4)})

    def stow_core(self) -> None:
        if self._mode not in (DrillMode.IDLE, DrillMode.TRIPPED):
            busy = self._mode in (DrillMode.DRILLING, DrillMode.RETRACTING)
            raise DeviceCommandError(f"stow needs a stopped drill, mode is {self._mode.value}",
                                     "busy" if busy else "wrong_mode")
        self._mode = DrillMode.STOWING
        self._stow_left = self.p.stow_duration_s

    def retract(self, distance_m: float) -> None:
        """Raise the bit by `distance_m` (from idle or tripped); event `retracted` when done."""
        if self._mode in (DrillMode.DRILLING, DrillMode.STOWING, DrillMode.RETRACTING):
            raise DeviceCommandError(f"cannot retract while {self._mode.value}", "busy")
        if self._mode == DrillMode.STOWED:
            raise DeviceCommandError("core is stowed: the drill cannot retract")
        if not 0.0 < distance_m <= self._depth + 1e-12:
            raise DeviceCommandError(
                f"retract distance {distance_m} m outside (0, depth {self._depth:.3f} m]")
        self._halt(DrillMode.RETRACTING)
        self._retract_left = min(float(distance_m), self._depth)
        self._retracted = 0.0

    def reset_protection(self) -> None:
        """Acknowledge a protection trip: TRIPPED -> IDLE."""
        if self._mode != DrillMode.TRIPPED:
            raise DeviceCommandError(f"no protection trip to reset, mode is {self._mode.value}")
        self._mode = DrillMode.IDLE
        self._emit("protection_reset", "info", "drill protection reset", {"depth_m": round(self._depth, 4)})

    # -- faults -----------------------------------------------------------------------------------
    def _check_fault(self, fault: ModelFault) -> None:
        if fault.kind == "thermal.drift" and fault.item != "motor":
            raise FaultNotApplicable(f"the drill's thermal.drift takes component 'motor', got {fault.item!r}")

    def _on_fault_injected(self, fault: ModelFault) -> None:
        if fault.kind == "drill.stall":
            self._jam = 0.0

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
            self._thermal(dt, 0.0)
            if self._stow_left <= 1e-9:
                self._mode = DrillMode.STOWED
                self._emit("core_stowed", "info", "core bag sealed and stowed",
                           {"mass_g": round(self._core, 2), "depth_m": round(self._depth, 4)})
            return
        if self._mode == DrillMode.RETRACTING:
            self._retract_step(dt)
            return
        p = self.p
        t = self.time
        _, name, hardness = self._layer_at(self._depth)
        stalls = self._faults_of("drill.stall")
        feed_stuck = self._faults_of("drill.feed_stuck")
        h_eff = 1.0 + (hardness - 1.0) / p.percussion_relief if self._percussion else hardness
        ppr = p.ppr0_mm_rev / math.sqrt(h_eff)
        static_torque = p.idle_torque_nm + p.cutting_coeff_nm_per_mm_rev * h_eff * ppr
        reentry = self._depth < self._hole - 1e-12
        if feed_stuck or reentry:
            static_torque = p.idle_torque_nm  # turning without cutting
        self._rpm = self._rpm_cmd
        if stalls:
            self._jam += sum(float(f.params.get("torque_rise_nm_per_s") or 0.0) for f in stalls) * dt
            jam_frac = min(1.0, self._jam / max(1e-9, p.over_torque_limit_nm - p.idle_torque_nm))
            loss = max(float(f.params.get("rpm_loss_percent") or 0.0) for f in stalls) / 100.0
            self._rpm = self._rpm_cmd * (1.0 - loss * jam_frac)
            rate = 0.0
            for f in stalls:
                self._symptom(f, t, "bit jammed: penetration stopped, torque rising")
        elif feed_stuck:
            rate = 0.0
            for f in feed_stuck:
                self._symptom(f, t, "bit turns but penetration stopped")
        elif reentry:
            rate = p.retract_rate_mm_s * 60.0  # lowering the bit down the drilled hole
        else:
            rate = self._rpm * ppr  # mm/min
        self._torque += (static_torque - self._torque) * (1.0 - math.exp(-dt / p.torque_time_constant_s))
        self._torque_meas = self._torque + self._jam + self._rng.gauss(0.0, p.torque_noise_nm)
        power_w = (self._torque + self._jam) * self._rpm * 2.0 * math.pi / 60.0
        self._thermal(dt, power_w)
        new_depth = min(self._depth + rate / 1000.0 / 60.0 * dt, self._target)
        if reentry:
            new_depth = min(new_depth, self._hole)
        self._core += max(0.0, new_depth - max(self._depth, self._hole)) * p.core_g_per_m
        self._depth = new_depth
        self._hole = max(self._hole, new_depth)
        self._rate = rate
        self._update_material()
        bit = self._temp + self._temp_extra
        if bit >= p.bit_warning_c and not self._bit_warned:
            self._bit_warned = True
            self._emit("bit_overheat", "warning", f"bit temperature {bit:.1f} C above {p.bit_warning_c} C",
                       {"bit_temperature_c": round(bit, 2), "depth_m": round(self._depth, 4)})
        if self._torque_meas > p.over_torque_limit_nm:
            torque = self._torque_meas
            self._halt(DrillMode.TRIPPED)
            self._emit("over_torque", "error",
                       f"over-torque protection tripped at {torque:.1f} N m in {name}",
                       {"torque_nm": round(torque, 3), "depth_m": round(self._depth, 4)})
        elif bit > p.bit_trip_c:
            self._halt(DrillMode.TRIPPED)
            self._emit("bit_overheat_trip", "error",
                       f"bit temperature protection tripped at {bit:.1f} C",
                       {"bit_temperature_c": round(bit, 2), "depth_m": round(self._depth, 4)})
        elif self._depth >= self._target - 1e-12:
            self._halt(DrillMode.IDLE)
            self._emit("target_depth_reached", "info", "target depth reached",
                       {"depth_m": round(self._depth, 4)})

    def _retract_step(self, dt: float) -> None:
        p = self.p
        move = min(self._retract_left, p.retract_rate_mm_s / 1000.0 * dt)
        self._retract_left -= move
        self._retracted += move
        self._depth = max(0.0, self._depth - move)
        self._thermal(dt, 0.0)
        self._update_material()
        if self._retracted >= p.stall_clear_m - 1e-12:
            for f in self._faults_of("drill.stall"):
                self._recover(f, self.time, "bit freed by retract")
            self._jam = 0.0
        if self._retract_left <= 1e-12:
            self._retract_left = 0.0
            self._mode = DrillMode.IDLE
            self._emit("retracted", "info", f"bit retracted to {self._depth:.3f} m",
                       {"depth_m": round(self._depth, 4)})

    def _update_material(self) -> None:
        detected = self._layer_at(self._depth)[1]
        if detected != self._material:
            self._material = detected
            self._emit("material_changed", "info", f"bit entered {detected}",
                       {"material": detected, "depth_m": round(self._depth, 4)})

    def _thermal(self, dt: float, power_w: float) -> None:
        """Bit and motor temperatures over one step with rotary power `power_w` (0: not turning)."""
        p = self.p
        steady = p.ambient_c + p.heating_c_per_w * power_w
        self._temp = steady + (self._temp - steady) * math.exp(-dt / p.thermal_time_constant_s)
        decay = math.exp(-dt / p.thermal_time_constant_s)
        extra_rate = self._fault_sum("drill.bit_overheat", "extra_heating_c_per_s") if power_w > 0 else 0.0
        source = extra_rate * p.thermal_time_constant_s
        self._temp_extra = source + (self._temp_extra - source) * decay
        if self._temp_extra >= BIT_HEAT_SYMPTOM_C:
            for f in self._faults_of("drill.bit_overheat"):
                self._symptom(f, self.time, "bit hotter than the drilling load explains")
        if self._temp + self._temp_extra < p.bit_warning_c - BIT_WARNING_HYSTERESIS_C:
            self._bit_warned = False
        motor_steady = p.ambient_c + p.motor_heating_c_per_w * p.motor_loss_fraction * power_w
        self._motor_temp = motor_steady + (self._motor_temp - motor_steady) * math.exp(
            -dt / p.motor_thermal_time_constant_s)
        self._drift_motor(self.time - dt, dt)

    def _drift_motor(self, t0: float, span: float) -> None:
        """thermal.drift on the motor over [t0, t0 + span]: linear while active, relaxing once cleared."""
        drifts = self._faults_of("thermal.drift", "motor")
        if not drifts:
            self._motor_drift *= math.exp(-span / self.p.motor_thermal_time_constant_s)
            return
        rate = sum(float(f.params.get("rate_c_per_h") or 0.0) for f in drifts) / 3600.0
        before = self._motor_drift
        self._motor_drift = before + rate * span
        if rate != 0.0 and abs(self._motor_drift) >= MOTOR_DRIFT_SYMPTOM_C:
            target = math.copysign(MOTOR_DRIFT_SYMPTOM_C, rate)
            at = t0 + max(0.0, (target - before) / rate) if abs(before) < MOTOR_DRIFT_SYMPTOM_C else t0
            for f in drifts:
                self._symptom(f, at, f"motor temperature {rate * 3600.0:+.0f} C/h off its model")

    def _coast(self, n_steps: int) -> None:
        p = self.p
        span = n_steps * self._step_s
        decay = math.exp(-span / p.thermal_time_constant_s)
        self._temp = p.ambient_c + (self._temp - p.ambient_c) * decay
        self._temp_extra *= decay
        if self._temp + self._temp_extra < p.bit_warning_c - BIT_WARNING_HYSTERESIS_C:
            self._bit_warned = False
        self._motor_temp = p.ambient_c + (self._motor_temp - p.ambient_c) * math.exp(
            -span / p.motor_thermal_time_constant_s)
        self._drift_motor(self.time, span)
