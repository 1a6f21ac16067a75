"""Lander platform power and thermal: battery, solar input, bus loads, heaters, load shedding.

Why this model: the drill is the largest load on the lander, and a weakened battery turns a nominal drilling
run into a bus undervoltage that the platform answers by shedding the drill. Operators recover by freeing
power (heaters off) and drilling slower (less power), so the figures are chosen to make exactly that
trade visible. No lander power figures are published in the fact sheet (../shared/facts.md); every
electrical and thermal figure below is assumed, sized for a Chang'e-class lander.

Electrical: an 8-cell Li-ion pack (8S, 3.0..4.1 V per cell, ~28.8 V nominal) is the ~28 V bus. Its
open-circuit voltage follows the state of charge through a piecewise-linear curve. The net bus power
`P = base + heaters + external loads - solar` is drawn as constant power, so the current solves
`I * (OCV - I * R) = P` and the bus voltage is `OCV - I * R` (I > 0 discharging; < 0 charging, when
the bus sits above the OCV). When the pack is full, a shunt regulator takes the solar surplus (I = 0).
State of charge is energy counted at the cells: `dE/dt = -(P + I^2 R)`, in percent of the nominal capacity.

Thermal: battery temperature relaxes toward the compartment's sink temperature (`environment_c`),
warmed by the heaters and by I^2 R. Its time constant (`C / G` ~ 8.3 h) makes it fall slowly (hours) with
the heaters off. The arm motors (one aggregate temperature) relax toward the deck temperature and are
warmed by a fraction of the arm's electrical load.

Why the figures (with defaults; checked by tests/unit/test_hw_power.py):
- Nominal: idle net power is -70 W (base 180 W + heaters 50 W - solar 300 W), so the battery trickle-charges
  during the lunar morning. Drilling at 400 W draws a net 330 W (~11 A at ~30 V). With R = 0.09 ohm the
  sag is ~1 V, so the bus stays at 29.7 V or more over 3 h, well above the 26.5 V warning. A 3 h drill
  uses ~1 kWh of the 4 kWh pack (90 % -> 64 %), and the solar surplus refills it, so a 48 h stay (3 h
  drilling, 11 h arm work at 100 W) keeps SoC at 58 % or more.
- Default battery_undervoltage (capacity -50 %, R x4 = 0.36 ohm): SoC halves (e.g. 90 % -> 45 %, OCV
  ~29.5 V). At the same 330 W net, I ~ 13.4 A and the sag is ~4.8 V: the bus drops to ~24.7 V, below the
  25.5 V shed threshold at once, and the platform sheds the drill after `shed_delay_s`.
- Recovery: with the fault, heaters off and drilling at 80 rpm (250 W), the net power is 130 W, so
  I ~ 4.6 A and the sag is ~1.7 V: the bus stays at 27.3..27.8 V over 3 h, above the shed threshold (and
  here even above the warning).
- Thermal: with the heaters on, the battery settles near +5 C idle (+25 K from the heater on a -20 C sink),
  a few kelvin warmer while drilling. With the heaters off it cools ~3 K in the first hour and passes 0 C
  after ~2 h. Drift at +120 C/h (~2 C/min, slowed a little by the relaxation) reaches +45 C after ~20 min.

Protection: a bus below `shed_voltage_v` for `shed_delay_s` sheds the drill (event `load_shed`, once per
episode). The undervoltage is timed only while the drill draws power, because the drill is the only load
the platform sheds. No new shed follows until the bus has been above `shed_voltage_v + shed_hysteresis_v`.

Faults: `power.battery_undervoltage` cuts the usable capacity (the SoC, in percent of the nominal capacity,
falls by the same share and can charge only up to what is left) and multiplies R. The OCV follows that
SoC, so the bus sits lower as well as sagging more. Its symptom is the bus being more than 0.2 V off the
fault-free value (same loads, SoC before the loss, nominal R). While coasting, this is checked at chunk
boundaries. `thermal.drift` adds `rate_c_per_h` to the heat balance of "battery" or "arm_motors"
(summed). Each fault's share of the temperature is tracked on its own, and its symptom time (share
> 1 C) is computed exactly.

Time: fixed 1 s steps while an external load is set; idle stretches are coasted analytically
(linear SoC, exponential relaxation with constant drive). The only non-constant drive while loads are
constant is the I^2 R loss, which changes slowly with SoC. It is held over `coast_chunk_s` pieces aligned to
the global grid, in stepping and coasting alike, so a long warp equals stepping it and any partition
of advance() calls gives the same state.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lunar_gs.hardware_sim._stepping import SteppedDevice
from lunar_gs.hardware_sim.faults import FaultHost, FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.hal import DeviceCommandError, PowerState

BATTERY_UNDERVOLTAGE = "power.battery_undervoltage"
THERMAL_DRIFT = "thermal.drift"
COMPONENTS = ("battery", "arm_motors")
"""Components hosting `thermal.drift` (protocols.faults.THERMAL_COMPONENTS of lander-arm)."""

_VOLTAGE_SYMPTOM_V = 0.2
"""A battery fault is observable once the bus differs from its fault-free value by more than this."""
_DRIFT_SYMPTOM_C = 1.0
"""A thermal drift is observable once it moved its component's temperature by more than this."""


@dataclass(frozen=True)
class PowerParams:
    capacity_wh: float = 4000.0  # usable pack energy at 100 %: ~140 Ah at 28.8 V (assumed)
    initial_soc_percent: float = 90.0  # after the powered descent (assumed)
    ocv_curve: tuple[tuple[float, float], ...] = (
        (0.0, 24.0), (5.0, 26.4), (10.0, 27.6), (20.0, 28.4), (40.0, 29.2), (60.0, 30.4), (80.0, 31.6),
        (100.0, 32.8),
    )  # (SoC %, OCV V): 8S Li-ion, 3.0..4.1 V per cell (assumed, typical NMC shape)
    internal_resistance_ohm: float = 0.09  # pack plus harness and power switches (assumed)
    solar_w: float = 300.0  # array input in the local morning, low sun (assumed; constant over the stay)
    base_load_w: float = 180.0  # avionics, communications, payloads (assumed)
    heater_w: float = 50.0  # battery heaters when on (assumed; no radioisotope heaters on CE-6 [77])
    warning_voltage_v: float = 26.5  # (assumed)
    shed_voltage_v: float = 25.5  # (assumed)
    shed_hysteresis_v: float = 0.5  # re-arm above shed + this (assumed)
    shed_delay_s: float = 5.0  # undervoltage must last this long before shedding (assumed)
    environment_c: float = -20.0  # battery compartment's sink; surface spans -171..+134 C [74] (assumed)
    battery_heat_capacity_j_per_k: float = 60000.0  # ~40 kg pack and mounting (assumed)
    battery_conductance_w_per_k: float = 2.0  # to the sink (assumed; time constant ~8.3 h)
    arm_environment_c: float = 10.0  # deck in the local morning; surface -171..+134 C [74] (assumed)
    arm_heat_capacity_j_per_k: float = 6000.0  # all joint motors and gearboxes together (assumed)
    arm_conductance_w_per_k: float = 2.5  # (assumed; time constant 40 min)
    arm_heat_fraction: float = 0.6  # share of the arm's electrical load dissipated in the motors (assumed)
    coast_chunk_s: float = 60.0  # how long the I^2 R drive is held while integrating (numerical choice)
    step_s: float = 1.0  # integration step


class SimPower(FaultHost, SteppedDevice):
    """Simulated lander power and thermal subsystem; see the module docstring for figures and sources."""

    kind = "power"
    FAULT_KINDS = frozenset({BATTERY_UNDERVOLTAGE, THERMAL_DRIFT})

    def __init__(self, params: PowerParams, rng: random.Random, start_time: float) -> None:
        _check_params(params)
        super().__init__(start_time, params.step_s)
        self.p = params
        self._chunk_steps = max(1, round(params.coast_chunk_s / params.step_s))
        self._soc = params.initial_soc_percent
        self._heaters = True
        self._loads: dict[str, float] = {}
        # temperature added by thermal.drift: the thermal model is linear, so each fault's share is
        # tracked apart (its symptom is its own share) and what cleared faults left relaxes on its own
        self._drift_offset: dict[str, float] = {}
        self._residual = {c: 0.0 for c in COMPONENTS}
        self._arm_temp = params.arm_environment_c
        self._batt_temp = params.environment_c  # set to its steady state below
        self._hold_end_k = -1  # grid index where the held I^2 R drive expires; <= k means recompute
        self._hold_loss_w = 0.0
        self._below_since: float | None = None  # shed timer
        self._shed = False  # drill shed; not re-armed until the bus recovers
        _, i, r = self._electrical()
        self._batt_temp = self._battery_steady(i * i * r)

    # -- commands ---------------------------------------------------------------------------------
    def state(self) -> PowerState:
        v, i, _ = self._electrical()
        return PowerState(
            battery_soc_percent=self._soc, bus_voltage_v=v, battery_current_a=i, load_w=self._load_w(),
            heaters_on=self._heaters, battery_temperature_c=self._batt_temp + self._offset("battery"),
            arm_motor_temperature_c=self._arm_temp + self._offset("arm_motors"), solar_w=self.p.solar_w,
            drill_shed=self._shed)

    def active(self) -> bool:
        return any(w > 0.0 for w in self._loads.values()) or self._below_since is not None

    def set_load(self, name: str, watts: float) -> None:
        """External bus load `name` (the service sets "drill" and "arm") draws `watts`; 0 removes it."""
        if not name:
            raise DeviceCommandError("load name must not be empty")
        if isinstance(watts, bool) or not math.isfinite(watts) or watts < 0.0:
            raise DeviceCommandError(f"load {name!r}: {watts!r} W is not a finite non-negative power")
        old = self._loads.get(name, 0.0)
        if watts == 0.0:
            self._loads.pop(name, None)
        else:
            self._loads[name] = float(watts)
        if float(watts) != old:
            self._invalidate_hold()

    def set_heaters(self, on: bool) -> None:
        if bool(on) != self._heaters:
            self._heaters = bool(on)
            self._invalidate_hold()

    # -- faults -----------------------------------------------------------------------------------
    def _check_fault(self, fault: ModelFault) -> None:
        if fault.kind == THERMAL_DRIFT and fault.item not in COMPONENTS:
            raise FaultNotApplicable(
                f"thermal.drift on the lander platform needs a component: one of {', '.join(COMPONENTS)}; "
                f"got {fault.item!r}")
        if fault.kind == BATTERY_UNDERVOLTAGE and fault.item is not None:
            raise FaultNotApplicable(f"power.battery_undervoltage takes no component, got {fault.item!r}")

    def _on_fault_injected(self, fault: ModelFault) -> None:
        if fault.kind == BATTERY_UNDERVOLTAGE:
            # the lost capacity takes its share of the stored energy with it
            self._soc *= 1.0 - _capacity_loss(fault)
        else:
            self._drift_offset[fault.fault_id] = 0.0
        self._invalidate_hold()
        self._check_symptoms(self.time)

    def _on_fault_cleared(self, fault: ModelFault) -> None:
        # capacity and resistance return; the lost charge and the heat stay
        if fault.kind == THERMAL_DRIFT and fault.item in self._residual:
            self._residual[fault.item] += self._drift_offset.pop(fault.fault_id, 0.0)
        self._invalidate_hold()

    def _offset(self, component: str) -> float:
        return self._residual[component] + sum(
            self._drift_offset.get(f.fault_id, 0.0) for f in self._faults_of(THERMAL_DRIFT, component))

    def _capacity_factor(self) -> float:
        factor = 1.0
        for fault in self._faults_of(BATTERY_UNDERVOLTAGE):
            factor *= 1.0 - _capacity_loss(fault)
        return factor

    def _resistance(self) -> float:
        r = self.p.internal_resistance_ohm
        for fault in self._faults_of(BATTERY_UNDERVOLTAGE):
            r *= float(fault.params.get("resistance_factor") or 1.0)
        return r

    # -- electrical -------------------------------------------------------------------------------
    def _load_w(self) -> float:
        return self.p.base_load_w + (self.p.heater_w if self._heaters else 0.0) + sum(self._loads.values())

    def _ocv(self, soc: float) -> float:
        curve = self.p.ocv_curve
        if soc <= curve[0][0]:
            return curve[0][1]
        for (s0, v0), (s1, v1) in zip(curve, curve[1:], strict=False):
            if soc <= s1:
                return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
        return curve[-1][1]

    def _solve(self, soc: float, soc_max: float, r: float) -> tuple[float, float]:
        """(bus voltage, battery current) for the present loads at state of charge `soc`."""
        p_net = self._load_w() - self.p.solar_w
        ocv = self._ocv(soc)
        if p_net <= 0.0 and soc >= soc_max - 1e-9:
            return ocv, 0.0  # full: the shunt regulator takes the surplus
        if p_net > 0.0 and soc <= 0.0:
            return 0.0, 0.0  # exhausted: the bus collapses
        disc = ocv * ocv - 4.0 * r * p_net
        if disc <= 0.0:
            return ocv / 2.0, ocv / (2.0 * r)  # beyond the maximum power point: the bus collapses
        i = (ocv - math.sqrt(disc)) / (2.0 * r)
        return ocv - i * r, i

    def _electrical(self) -> tuple[float, float, float]:
        r = self._resistance()
        v, i = self._solve(self._soc, 100.0 * self._capacity_factor(), r)
        return v, i, r

    def _fault_free_voltage(self) -> float:
        soc = min(100.0, self._soc / max(self._capacity_factor(), 1e-9))
        return self._solve(soc, 100.0, self.p.internal_resistance_ohm)[0]

    # -- thermal ----------------------------------------------------------------------------------
    def _battery_steady(self, loss_w: float) -> float:
        heat = (self.p.heater_w if self._heaters else 0.0) + loss_w
        return self.p.environment_c + heat / self.p.battery_conductance_w_per_k

    # -- time -------------------------------------------------------------------------------------
    def _invalidate_hold(self) -> None:
        self._hold_end_k = -1

    def _new_hold(self, k: int) -> None:
        """Hold the I^2 R drive from grid index k to the next chunk boundary of the global grid."""
        v, i, r = self._electrical()
        self._hold_loss_w = i * i * r
        self._hold_end_k = (k // self._chunk_steps + 1) * self._chunk_steps
        self._check_rearm(v)
        self._check_symptoms(self._start + k * self._step_s)

    def _integrate(self, k0: int, n: int) -> None:
        k, end = k0, k0 + n
        while k < end:
            if k >= self._hold_end_k:
                self._new_hold(k)
            m = min(end, self._hold_end_k) - k
            self._evolve(self._start + k * self._step_s, m * self._step_s)
            k += m

    def _evolve(self, t0: float, t: float) -> None:
        """Exact solution from time `t0` over `t` seconds with constant loads and the held I^2 R loss."""
        p = self.p
        loss = self._hold_loss_w
        soc_max = 100.0 * self._capacity_factor()
        p_net = self._load_w() - p.solar_w
        if not (p_net <= 0.0 and self._soc >= soc_max - 1e-9):
            rate = -(p_net + loss) / (p.capacity_wh * 3600.0) * 100.0  # % per s
            soc = max(self._soc + rate * t, 0.0)
            self._soc = min(soc, soc_max) if rate > 0.0 else soc
        tau_b = p.battery_heat_capacity_j_per_k / p.battery_conductance_w_per_k
        tau_a = p.arm_heat_capacity_j_per_k / p.arm_conductance_w_per_k
        decay_b, decay_a = math.exp(-t / tau_b), math.exp(-t / tau_a)
        steady_b = self._battery_steady(loss)
        self._batt_temp = steady_b + (self._batt_temp - steady_b) * decay_b
        arm_heat = p.arm_heat_fraction * self._loads.get("arm", 0.0)
        steady_a = p.arm_environment_c + arm_heat / p.arm_conductance_w_per_k
        self._arm_temp = steady_a + (self._arm_temp - steady_a) * decay_a
        for component, tau, decay in (("battery", tau_b, decay_b), ("arm_motors", tau_a, decay_a)):
            self._residual[component] *= decay
            for fault in self._faults_of(THERMAL_DRIFT, component):
                steady = float(fault.params.get("rate_c_per_h") or 0.0) / 3600.0 * tau
                before = self._drift_offset.get(fault.fault_id, 0.0)
                after = steady + (before - steady) * decay
                self._drift_offset[fault.fault_id] = after
                if abs(after) > _DRIFT_SYMPTOM_C >= abs(before):
                    # exact crossing time, rounded up to the grid as 1 s stepping would see it
                    limit = math.copysign(_DRIFT_SYMPTOM_C, steady)
                    crossing = -tau * math.log((limit - steady) / (before - steady))
                    at = t0 + min(t, math.ceil(crossing / self._step_s - 1e-9) * self._step_s)
                    self._symptom(fault, at, f"{component} temperature off by {limit:+.1f} C")

    def _step(self, dt: float) -> None:
        self._integrate(self._k - 1, 1)
        v = self._electrical()[0]
        self._check_rearm(v)
        self._check_shed(v)
        self._check_symptoms(self.time)

    def _coast(self, n_steps: int) -> None:
        self._integrate(self._k, n_steps)

    # -- protection and symptoms ------------------------------------------------------------------
    def _check_rearm(self, v: float) -> None:
        if self._shed and v > self.p.shed_voltage_v + self.p.shed_hysteresis_v:
            self._shed = False

    def _check_shed(self, v: float) -> None:
        # only the drill is shed, so an undervoltage is timed only while the drill draws power
        if self._shed or v >= self.p.shed_voltage_v or self._loads.get("drill", 0.0) <= 0.0:
            self._below_since = None
            return
        if self._below_since is None:
            self._below_since = self.time
        if self.time - self._below_since >= self.p.shed_delay_s - 1e-9:
            self._below_since = None
            self._shed = True
            self._emit("load_shed", "error",
                       f"bus at {v:.2f} V below {self.p.shed_voltage_v} V for {self.p.shed_delay_s:g} s: "
                       f"drill shed", {"load": "drill", "bus_voltage_v": round(v, 3)})

    def _check_symptoms(self, t: float) -> None:
        battery_faults = self._faults_of(BATTERY_UNDERVOLTAGE)
        if battery_faults:
            v, v_free = self._electrical()[0], self._fault_free_voltage()
            if abs(v - v_free) > _VOLTAGE_SYMPTOM_V:
                for fault in battery_faults:
                    self._symptom(fault, t, f"bus at {v:.2f} V where a healthy battery gives {v_free:.2f} V; "
                                            f"SoC {self._soc:.1f} %")


def _capacity_loss(fault: ModelFault) -> float:
    return min(max(float(fault.params.get("capacity_loss_percent") or 0.0) / 100.0, 0.0), 0.99)


def _check_params(p: PowerParams) -> None:
    curve = p.ocv_curve
    if len(curve) < 2 or curve[0][0] != 0.0 or curve[-1][0] != 100.0:
        raise ValueError("ocv_curve must run from SoC 0 to 100 % in at least two points")
    if any(s1 <= s0 or v1 < v0 for (s0, v0), (s1, v1) in zip(curve, curve[1:], strict=False)):
        raise ValueError("ocv_curve must have increasing SoC and non-decreasing voltage")
    positive = ("capacity_wh", "internal_resistance_ohm", "battery_heat_capacity_j_per_k",
                "battery_conductance_w_per_k", "arm_heat_capacity_j_per_k", "arm_conductance_w_per_k",
                "coast_chunk_s", "step_s")
    for name in positive:
        if getattr(p, name) <= 0.0:
            raise ValueError(f"{name} must be positive")
    if not 0.0 <= p.initial_soc_percent <= 100.0:
        raise ValueError("initial_soc_percent must lie within 0..100")
    if not p.shed_voltage_v < p.warning_voltage_v:
        raise ValueError("shed_voltage_v must lie below warning_voltage_v")
    if p.shed_hysteresis_v < 0.0 or p.shed_delay_s < 0.0:
        raise ValueError("shed_hysteresis_v and shed_delay_s must not be negative")
