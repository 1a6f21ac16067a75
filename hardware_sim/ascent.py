"""Ascent vehicle: powered ascent from the lander, phasing orbit, rendezvous and docking.

Why this model: the ascent is the one irreversible, time-critical phase of the mission; a 3,000 N engine
burns about 6 minutes [17] into a low orbit of the order of 15-18 x 180 km (CE-5T1 18 x 180 km [43]).

Powered ascent: 2-D polar integration (RK4, 0.1 s step) in lunar gravity GM 4,902.8 km^3/s^2, mean
radius 1,737.4 km, lifting off from the site elevation -5,256 m [10]. After a short vertical rise the
closed-loop pitch law steers the vertical velocity toward sqrt(2 a (h_target - h)) so that the vehicle
arrives at the target perilune altitude flying horizontally; the engine cuts off (inside the step, by
interpolation) when the osculating apolune reaches the target. Perilune and apolune are computed from
the state by the energy and angular-momentum integrals.

Orbit and rendezvous: after insertion both vehicles follow analytic Kepler orbits in one plane, so warps
of many hours cost nothing. The orbiter flies a 200 km circular orbit [4] and, at insertion, leads the
ascender by `phase_lead_deg`. The ascender, lower and faster, catches up; each ORBIT_ADJUST is applied
impulsively (position angle kept, perilune direction kept) and charged the Delta-v of the equivalent
two-burn change (apolune at perilune, then perilune at the new apolune), via the rocket equation.
On START_APPROACH the orbiter closes autonomously [18]: closing rate min(v_max, max(v_min, range/tau)),
15 m/s far out, exponential from 9 km, 0.1 m/s at contact, about 1.8 h from 50 km; claw capture [19].

Rendezvous plan (defaults; liftoff at L, insertion at about L+6 min into ~15 x 180 km):
  ORBIT_ADJUST at L+2 h    -> 150 x 180 km
  ORBIT_ADJUST at L+14 h   -> 180 x 195 km
  ORBIT_ADJUST at L+30 h   -> 190 x 200 km
  ORBIT_ADJUST at L+50 h   -> 192 x 200 km (semi-major axis 4 km below the orbiter: slow final drift)
  START_APPROACH at L+53.5 h (range ~50 km, orbiter ahead; conditions hold from about L+50.6 h)
  -> docked at about L+55.3 h (approach ~1.76 h).
Delta-v of the four adjusts 30.0 + 9.4 + 3.1 + 0.4 m/s (propellant 41 -> 36 kg).
With `phase_lead_deg` = 125.32 the orbiter leads by 125.3 deg at insertion and ~1.5 deg at L+53.5 h.
Real mission: ascent 23:38 UTC 3 Jun, docking 06:48 UTC 6 Jun = L+55.2 h [18]. The plan is proven in
tests/unit/test_hw_ascent.py and repeated in seeds/mission.yaml (`rendezvous_plan`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lunar_gs.hardware_sim.faults import FaultHost, ModelFault
from lunar_gs.hardware_sim.hal import AscentState, DeviceCommandError, DeviceEvent, EventData
from lunar_gs.protocols.telemetry import AscentMode

LEAK_SYMPTOM_KG = 0.1
"""A propellant leak shows once this much propellant is lost to it."""

RENDEZVOUS_PLAN: tuple[tuple[float, float, float], ...] = (
    (2 * 3600.0, 150.0, 180.0),
    (14 * 3600.0, 180.0, 195.0),
    (30 * 3600.0, 190.0, 200.0),
    (50 * 3600.0, 192.0, 200.0),
)
"""(time after liftoff s, perilune km, apolune km) of the four phasing adjustments [18][43]."""
APPROACH_AFTER_LIFTOFF_S = 53.5 * 3600.0


@dataclass(frozen=True)
class AscentParams:
    gm_km3_s2: float = 4902.8  # lunar GM (calc in facts.md [74])
    moon_radius_km: float = 1737.4  # mean radius
    site_elevation_km: float = -5.256  # [10] -5,256 m
    thrust_n: float = 3000.0  # [17] 3,000 N
    isp_mps: float = 3100.0  # effective exhaust velocity (assumed)
    chamber_pressure_mpa: float = 0.85  # at full thrust (assumed)
    dry_mass_kg: float = 370.0  # (assumed; sized for a ~6 min burn [17])
    propellant_kg: float = 400.0  # (assumed)
    vertical_rise_s: float = 10.0  # vertical ascent before pitch-over [41] (duration assumed)
    climb_decel_mps2: float = 0.5  # vertical-velocity profile of the pitch law (assumed)
    climb_gain_per_s: float = 0.2  # pitch-law gain on vertical-velocity error (assumed)
    step_s: float = 0.1  # burn integration step
    orbiter_altitude_km: float = 200.0  # [4] periapsis 200-220 km, taken circular
    phase_lead_deg: float = 125.32  # orbiter lead at insertion, tuned for the plan above (assumed)
    approach_max_range_km: float = 100.0  # (assumed)
    approach_max_sma_diff_km: float = 10.0  # (assumed)
    approach_vmax_mps: float = 15.0  # (assumed)
    approach_tau_s: float = 600.0  # (assumed)
    approach_vmin_mps: float = 0.1  # (assumed)


@dataclass(frozen=True)
class _Orbit:
    """Keplerian orbit in the common plane, anchored at (t0, M0)."""

    a: float
    e: float
    omega: float
    t0: float
    m0: float
    gm: float

    @property
    def n(self) -> float:
        return math.sqrt(self.gm / self.a**3)

    def at(self, t: float) -> tuple[float, float, float, float]:
        """Return (r km, theta rad, v_r km/s, v_t km/s) at time t."""
        m = self.m0 + self.n * (t - self.t0)
        e = self.e
        if e >= 0.8:  # eccentric (ballistic) arcs: solve in (-pi, pi] from the safe side
            m = math.remainder(m, 2.0 * math.pi)
        ecc = m if e < 0.8 else math.copysign(math.pi, m)
        for _ in range(30):
            d = (ecc - e * math.sin(ecc) - m) / (1.0 - e * math.cos(ecc))
            ecc -= d
            if abs(d) < 1e-13:
                break
        nu = 2.0 * math.atan2(math.sqrt(1 + e) * math.sin(ecc / 2), math.sqrt(1 - e) * math.cos(ecc / 2))
        p = self.a * (1 - e * e)
        r = p / (1 + e * math.cos(nu))
        k = math.sqrt(self.gm / p)
        return r, self.omega + nu, k * e * math.sin(nu), k * (1 + e * math.cos(nu))

    @staticmethod
    def from_state(gm: float, t: float, r: float, theta: float, vr: float, vt: float) -> _Orbit:
        h = r * vt
        energy = (vr * vr + vt * vt) / 2 - gm / r
        a = -gm / (2 * energy)
        e = math.sqrt(max(0.0, 1 + 2 * energy * h * h / gm**2))
        nu = math.atan2(vr * h / gm, h * h / (gm * r) - 1.0) if e > 1e-12 else 0.0
        ecc = 2.0 * math.atan2(math.sqrt(1 - e) * math.sin(nu / 2), math.sqrt(1 + e) * math.cos(nu / 2))
        return _Orbit(a, e, theta - nu, t, ecc - e * math.sin(ecc), gm)

    @staticmethod
    def from_apsides(gm: float, radius: float, t: float, theta: float, omega: float,
                     perilune_km: float, apolune_km: float) -> _Orbit:
        rp, ra = radius + perilune_km, radius + apolune_km
        a, e = (rp + ra) / 2, (ra - rp) / (ra + rp)
        nu = theta - omega
        ecc = 2.0 * math.atan2(math.sqrt(1 - e) * math.sin(nu / 2), math.sqrt(1 + e) * math.cos(nu / 2))
        return _Orbit(a, e, omega, t, ecc - e * math.sin(ecc), gm)


def apsides_km(gm: float, r: float, vr: float, vt: float) -> tuple[float, float]:
    """(perilune radius, apolune radius) in km of the osculating orbit; apolune inf if unbound."""
    h = r * vt
    energy = (vr * vr + vt * vt) / 2 - gm / r
    if energy >= 0:
        return h * h / (gm * (1 + math.sqrt(1 + 2 * energy * h * h / gm**2))), math.inf
    a = -gm / (2 * energy)
    e = math.sqrt(max(0.0, 1 + 2 * energy * h * h / gm**2))
    return a * (1 - e), a * (1 + e)


def _vis_viva(gm: float, r: float, a: float) -> float:
    return math.sqrt(gm * (2 / r - 1 / a))


class SimAscentVehicle(FaultHost):
    """Simulated ascender; see the module docstring for the physics, the plan and the sources.

    Short of orbit: when the engine cuts off with the perilune below the surface (targets too high for
    a weak engine, propellant exhausted), the vehicle reports `suborbital_cutoff` (never
    `orbit_insertion`), flies an analytic Kepler arc in mode BALLISTIC and, on reaching the surface
    (the site's radius), reports `impact` and mode CRASHED. A vehicle whose thrust cannot lift it stays
    on the pad burning propellant; if that runs out there, it is reported the same way at once.

    Faults:
      ascent.thrust_deficit   thrust, chamber pressure and mass flow reduced by `percent` during the
                              burn (same Isp): a longer burn with more gravity loss. The pitch law holds
                              the loss small until thrust nears the weight (T/W = 1 at 58 %), so from
                              the default parameters IGNITE(15, 180) still reaches 15 x 180 km with a
                              48 % deficit (burn 790 s, 20 % -> 472 s); from 49 % the propellant runs out
                              short of the target apolune (49 %: 15 x 176 km, 50 %: 15 x 65 km, 50.5 %:
                              8.5 x 15 km, still orbits) and from 51 % the perilune is below the surface:
                              suborbital cut-off, ballistic arc, impact. A RETARGET commanded 30 s after
                              liftoff (works until about 2 min) to 15 x 60 km reaches 15 x 60 km up to 50 %
                              but cannot save 51 %; a RETARGET to 10 x 60 km saves 51 % (10 x 60 km);
                              at 52 % no target with a perilune >= 10 km is reachable. Proven in
                              tests/unit/test_hw_ascent.py.
      ascent.propellant_leak  propellant falls at `rate_kg_per_h` (summed) in every mode before
                              TRANSFERRED, linearly and analytically across idle stretches, never below 0.
      ascent.ignition_failure the next `attempts` IGNITE commands fail (`ignition_failure`, refused with
                              device_fault, the vehicle stays ARMED); after the last failing attempt the
                              igniter works again (the fault recovers itself).
    """

    kind = "ascent"
    backend = "sim"
    FAULT_KINDS = frozenset({"ascent.thrust_deficit", "ascent.propellant_leak", "ascent.ignition_failure"})

    def __init__(self, params: AscentParams, rng: random.Random, start_time: float) -> None:
        self.p = params
        self._rng = rng
        self._events: list[DeviceEvent] = []
        self._mode = AscentMode.ON_LANDER
        self._now = float(start_time)
        self._t = float(start_time)  # model time (burn grid, or the last advance otherwise)
        self._prop = params.propellant_kg
        self._sample_g = 0.0
        # polar state during the burn (km, rad, km/s)
        self._r = params.moon_radius_km + params.site_elevation_km
        self._theta = 0.0
        self._vr = 0.0
        self._vt = 0.0
        self._pitch = 90.0
        self._thrusting = False
        self._liftoff_t = 0.0
        self._burn_k = 0
        self._targets = (0.0, 0.0)
        self._orbit: _Orbit | None = None
        self._orbiter: _Orbit | None = None
        self._approach_t0 = 0.0
        self._approach_r0_m = 0.0
        self._dock_t = math.inf
        self._impact_t = math.inf
        self._airborne = False
        self._leaked: dict[str, float] = {}  # kg lost to each propellant leak
        self._ignition_failures: dict[str, int] = {}  # failed IGNITE attempts per igniter fault

    # -- read-out ---------------------------------------------------------------------------------
    @property
    def _mass(self) -> float:
        return self.p.dry_mass_kg + self._prop

    def state(self) -> AscentState:
        p = self.p
        r, theta, vr, vt = self._kinematics(self._now)
        if self._mode == AscentMode.ON_LANDER or self._mode == AscentMode.ARMED:
            peri = apo = p.site_elevation_km
        else:
            rp, ra = apsides_km(p.gm_km3_s2, r, vr, vt)
            peri, apo = rp - p.moon_radius_km, ra - p.moon_radius_km
        if self._mode == AscentMode.CRASHED:
            peri = apo = r - p.moon_radius_km
        rng_km, closing = self._range(self._now)
        factor = self._thrust_factor() if self._thrusting else 0.0
        return AscentState(
            mode=self._mode.value, thrust_n=p.thrust_n * factor,
            chamber_pressure_mpa=p.chamber_pressure_mpa * factor,
            propellant_kg=self._prop, mass_kg=self._mass + self._sample_g / 1000.0,
            altitude_km=r - p.moon_radius_km, velocity_mps=1000.0 * math.hypot(vr, vt),
            vertical_velocity_mps=1000.0 * vr, pitch_deg=self._pitch if self._orbit is None else 0.0,
            perilune_km=peri, apolune_km=apo, range_km=rng_km, closing_rate_mps=closing,
            sample_mass_g=self._sample_g)

    def active(self) -> bool:
        return self._mode in (AscentMode.POWERED_ASCENT, AscentMode.BALLISTIC, AscentMode.APPROACH)

    @property
    def time(self) -> float:
        return self._now

    def _thrust_factor(self) -> float:
        """Share of the rated thrust the engine gives (ascent.thrust_deficit)."""
        return max(0.0, 1.0 - self._fault_sum("ascent.thrust_deficit", "percent") / 100.0)

    def drain_events(self) -> list[DeviceEvent]:
        events, self._events = self._events, []
        return events

    def _emit(self, t: float, name: str, severity: str, message: str, data: EventData | None = None) -> None:
        self._events.append(DeviceEvent(t, name, severity, message, dict(data or {})))

    def _kinematics(self, t: float) -> tuple[float, float, float, float]:
        if self._orbit is None:
            return self._r, self._theta, self._vr, self._vt
        return self._orbit.at(t)

    def _range(self, t: float) -> tuple[float, float]:
        """(range km, closing rate m/s) to the orbiter."""
        if self._orbit is None or self._orbiter is None:
            return 0.0, 0.0
        if self._mode in (AscentMode.DOCKED, AscentMode.TRANSFERRED):
            return 0.0, 0.0
        if self._mode == AscentMode.APPROACH:
            rng_m, rate = self._approach_profile(t - self._approach_t0)
            return rng_m / 1000.0, rate

        def dist(tt: float) -> float:
            assert self._orbit is not None and self._orbiter is not None
            r1, th1, _, _ = self._orbit.at(tt)
            r2, th2, _, _ = self._orbiter.at(tt)
            return math.sqrt(max(0.0, r1 * r1 + r2 * r2 - 2 * r1 * r2 * math.cos(th2 - th1)))

        d = dist(t)
        return d, 1000.0 * (d - dist(t + 1.0))

    # -- commands ---------------------------------------------------------------------------------
    def self_test(self) -> None:
        if self._mode not in (AscentMode.ON_LANDER, AscentMode.ARMED):
            raise DeviceCommandError(f"self test only on the lander, mode is {self._mode.value}")
        self._emit(self._now, "self_test_passed", "info", "engine, valves, GNC and docking mechanism nominal")

    def arm(self) -> None:
        if self._mode != AscentMode.ON_LANDER:
            raise DeviceCommandError(f"arm needs mode on_lander, mode is {self._mode.value}")
        self._mode = AscentMode.ARMED
        self._emit(self._now, "armed", "info", "ascent vehicle armed")

    def load_sample(self, mass_g: float) -> None:
        if self._mode not in (AscentMode.ON_LANDER, AscentMode.ARMED):
            raise DeviceCommandError(f"sample can only be loaded on the lander, mode is {self._mode.value}")
        if mass_g < 0:
            raise DeviceCommandError(f"negative sample mass {mass_g} g")
        self._sample_g = float(mass_g)

    def ignite(self, target_perilune_km: float, target_apolune_km: float) -> None:
        if self._mode != AscentMode.ARMED:
            raise DeviceCommandError(f"ignite needs mode armed, mode is {self._mode.value}")
        if not 5.0 <= target_perilune_km <= target_apolune_km <= 1000.0:
            raise DeviceCommandError(
                f"targets {target_perilune_km} x {target_apolune_km} km outside "
                "5 <= perilune <= apolune <= 1000")
        for fault in self._faults_of("ascent.ignition_failure"):
            failed = self._ignition_failures.get(fault.fault_id, 0) + 1
            self._ignition_failures[fault.fault_id] = failed
            attempts = int(fault.params.get("attempts") or 1)
            self._emit(self._now, "ignition_failure", "error", "igniter failed: no ignition",
                       {"attempt": failed, "target_perilune_km": target_perilune_km,
                        "target_apolune_km": target_apolune_km})
            self._symptom(fault, self._now, "IGNITE failed: no ignition")
            if failed >= attempts:
                self._recover(fault, self._now, f"igniter works again after {failed} failed attempts")
            raise DeviceCommandError(f"ignition failure: igniter did not light (attempt {failed})",
                                     "device_fault")
        self._targets = (float(target_perilune_km), float(target_apolune_km))
        self._mode = AscentMode.POWERED_ASCENT
        self._thrusting = True
        self._liftoff_t = self._t = self._now
        self._burn_k = 0
        self._emit(self._now, "liftoff", "info", "ignition and liftoff",
                   {"target_perilune_km": target_perilune_km, "target_apolune_km": target_apolune_km})

    def retarget(self, target_perilune_km: float, target_apolune_km: float) -> None:
        """New insertion targets for the guidance during the powered ascent (e.g. a lower apolune when
        the engine is weak)."""
        if self._mode != AscentMode.POWERED_ASCENT:
            raise DeviceCommandError(f"retarget needs mode powered_ascent, mode is {self._mode.value}")
        if not 5.0 <= target_perilune_km <= target_apolune_km <= 1000.0:
            raise DeviceCommandError(
                f"targets {target_perilune_km} x {target_apolune_km} km outside "
                "5 <= perilune <= apolune <= 1000")
        self._targets = (float(target_perilune_km), float(target_apolune_km))
        self._emit(self._now, "retargeted", "info",
                   f"ascent guidance retargeted to {target_perilune_km} x {target_apolune_km} km",
                   {"target_perilune_km": target_perilune_km, "target_apolune_km": target_apolune_km})

    def orbit_adjust(self, perilune_km: float, apolune_km: float) -> None:
        if self._mode != AscentMode.ORBIT or self._orbit is None:
            raise DeviceCommandError(f"orbit adjust needs mode orbit, mode is {self._mode.value}")
        if not 10.0 <= perilune_km <= apolune_km <= 5000.0:
            raise DeviceCommandError(
                f"orbit {perilune_km} x {apolune_km} km outside 10 <= perilune <= apolune <= 5000")
        p, gm, big_r = self.p, self.p.gm_km3_s2, self.p.moon_radius_km
        old = self._orbit
        rp1, ra2, rp2 = old.a * (1 - old.e), big_r + apolune_km, big_r + perilune_km
        mid_a = (rp1 + ra2) / 2
        dv = (abs(_vis_viva(gm, rp1, mid_a) - _vis_viva(gm, rp1, old.a))
              + abs(_vis_viva(gm, ra2, (rp2 + ra2) / 2) - _vis_viva(gm, ra2, mid_a))) * 1000.0
        burnt = self._mass * (1.0 - math.exp(-dv / p.isp_mps))
        if burnt > self._prop:
            raise DeviceCommandError(f"needs {burnt:.1f} kg propellant for {dv:.1f} m/s, "
                                     f"only {self._prop:.1f} kg left", "device_fault")
        self._prop -= burnt
        _, theta, _, _ = old.at(self._now)
        self._orbit = _Orbit.from_apsides(gm, big_r, self._now, theta, old.omega, perilune_km, apolune_km)
        self._emit(self._now, "orbit_adjusted", "info", f"orbit adjusted to {perilune_km} x {apolune_km} km",
                   {"dv_mps": round(dv, 3), "perilune_km": perilune_km, "apolune_km": apolune_km,
                    "propellant_kg": round(self._prop, 3)})

    def start_approach(self) -> None:
        if self._mode != AscentMode.ORBIT or self._orbit is None or self._orbiter is None:
            raise DeviceCommandError(f"approach needs mode orbit, mode is {self._mode.value}")
        rng_km, _ = self._range(self._now)
        sma_diff = self._orbit.a - self._orbiter.a
        problems = []
        if rng_km > self.p.approach_max_range_km:
            problems.append(f"range {rng_km:.1f} km > {self.p.approach_max_range_km} km")
        if abs(sma_diff) > self.p.approach_max_sma_diff_km:
            problems.append(f"semi-major axis differs from the orbiter's by {sma_diff:+.1f} km "
                            f"(limit {self.p.approach_max_sma_diff_km} km)")
        if problems:
            raise DeviceCommandError("approach conditions not met: " + "; ".join(problems))
        self._mode = AscentMode.APPROACH
        self._approach_t0 = self._now
        self._approach_r0_m = rng_km * 1000.0
        self._dock_t = self._now + self._approach_duration(self._approach_r0_m)
        self._emit(self._now, "approach_started", "info", "orbiter closing autonomously",
                   {"range_km": round(rng_km, 3)})

    def transfer_sample(self) -> None:
        if self._mode != AscentMode.DOCKED:
            raise DeviceCommandError(f"sample transfer needs mode docked, mode is {self._mode.value}")
        mass, self._sample_g = self._sample_g, 0.0
        self._mode = AscentMode.TRANSFERRED
        self._emit(self._now, "sample_transferred", "info", "sample container moved into the returner",
                   {"mass_g": round(mass, 2)})

    # -- time -------------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        if now <= self._now:
            return
        if self._mode == AscentMode.POWERED_ASCENT:
            dt = self.p.step_s
            k_target = math.floor((now - self._liftoff_t) / dt + 1e-9)
            while self._burn_k < k_target and self._mode == AscentMode.POWERED_ASCENT:
                self._burn_step(dt)
            if self._mode != AscentMode.POWERED_ASCENT:
                self._leak(self._t, now)  # engine cut off inside this advance at self._t
        else:
            self._leak(self._now, now)
        if self._mode == AscentMode.BALLISTIC and now >= self._impact_t:
            self._crash(self._impact_t)
        if self._mode == AscentMode.APPROACH and now >= self._dock_t:
            self._mode = AscentMode.DOCKED
            self._emit(self._dock_t, "docked", "info", "claw capture: docked with the orbiter",
                       {"approach_s": round(self._dock_t - self._approach_t0, 1)})
        self._now = now

    def _accel(self, r: float, vr: float, vt: float, mass: float) -> tuple[float, float, float]:
        """Radial and tangential acceleration (km/s^2) and pitch (deg) from the guidance law."""
        p, gm = self.p, self.p.gm_km3_s2
        a_thrust = p.thrust_n * self._thrust_factor() / mass / 1000.0
        grav_net = gm / (r * r) - vt * vt / r
        if self._t - self._liftoff_t < p.vertical_rise_s:
            sin_pitch = 1.0
        else:
            dh = self._targets[0] - (r - p.moon_radius_km)
            vr_des = math.copysign(math.sqrt(2 * p.climb_decel_mps2 / 1000.0 * abs(dh)), dh)
            a_r = p.climb_gain_per_s * (vr_des - vr) + grav_net
            sin_pitch = max(-0.5, min(1.0, a_r / a_thrust))
        cos_pitch = math.sqrt(1.0 - sin_pitch * sin_pitch)
        return (a_thrust * sin_pitch - grav_net, a_thrust * cos_pitch, math.degrees(math.asin(sin_pitch)))

    def _burn_step(self, dt: float) -> None:
        p, gm = self.p, self.p.gm_km3_s2
        factor = self._thrust_factor()
        mdot = p.thrust_n * factor / p.isp_mps
        y0 = (self._r, self._theta, self._vr, self._vt)
        m0 = self._mass

        def deriv(y: tuple[float, float, float, float], m: float) -> tuple[float, float, float, float]:
            r, _, vr, vt = y
            ar, at, _ = self._accel(r, vr, vt, m)
            return vr, vt / r, ar, at - vr * vt / r

        def add(y: tuple[float, ...], k: tuple[float, ...], h: float) -> tuple[float, float, float, float]:
            return (y[0] + h * k[0], y[1] + h * k[1], y[2] + h * k[2], y[3] + h * k[3])

        k1 = deriv(y0, m0)
        k2 = deriv(add(y0, k1, dt / 2), m0 - mdot * dt / 2)
        k3 = deriv(add(y0, k2, dt / 2), m0 - mdot * dt / 2)
        k4 = deriv(add(y0, k3, dt), m0 - mdot * dt)
        y1 = tuple(y0[i] + dt / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(4))
        site_r = p.moon_radius_km + p.site_elevation_km
        if not self._airborne:
            if y1[0] <= site_r:  # thrust below weight: the vehicle stays on the pad, burning propellant
                y1 = (site_r, y0[1], 0.0, 0.0)
            else:
                self._airborne = True
        ra0 = apsides_km(gm, y0[0], y0[2], y0[3])[1] - p.moon_radius_km
        ra1 = apsides_km(gm, y1[0], y1[2], y1[3])[1] - p.moon_radius_km
        target_ra = self._targets[1]
        frac = 1.0
        cutoff = ra1 >= target_ra
        if cutoff and ra1 > ra0:
            frac = max(0.0, min(1.0, (target_ra - ra0) / (ra1 - ra0)))
        if mdot * dt * frac >= self._prop:
            frac, cutoff = (self._prop / (mdot * dt) if mdot > 0 else 0.0), True
        # partial step: interpolate linearly inside the last (short) step
        self._r, self._theta, self._vr, self._vt = (y0[i] + frac * (y1[i] - y0[i]) for i in range(4))
        self._prop = max(0.0, self._prop - mdot * dt * frac)
        self._pitch = self._accel(self._r, self._vr, self._vt, self._mass)[2]
        self._burn_k += 1
        t0, self._t = self._t, self._liftoff_t + (self._burn_k - 1 + frac) * dt
        self._leak(t0, self._t)
        if factor < 1.0:
            for fault in self._faults_of("ascent.thrust_deficit"):
                self._symptom(fault, self._t, f"thrust {p.thrust_n * factor:.0f} N, rated {p.thrust_n:.0f} N")
        if self._r - p.moon_radius_km < p.site_elevation_km - 0.01:
            self._thrusting = False
            self._crash(self._t)
        elif cutoff:
            self._insert()

    def _insert(self) -> None:
        p, gm = self.p, self.p.gm_km3_s2
        self._thrusting = False
        burn_s = self._t - self._liftoff_t
        rp, ra = apsides_km(gm, self._r, self._vr, self._vt)
        speed = 1000.0 * math.hypot(self._vr, self._vt)
        if self._prop <= 0.0 and ra - p.moon_radius_km < self._targets[1] - 1.0:
            self._emit(self._t, "propellant_depleted", "critical", "engine cut-off on propellant depletion")
        self._emit(self._t, "engine_cutoff", "info", "main engine cut-off",
                   {"burn_s": round(burn_s, 2), "perilune_km": round(rp - p.moon_radius_km, 3),
                    "apolune_km": round(ra - p.moon_radius_km, 3), "velocity_mps": round(speed, 2)})
        site_r = p.moon_radius_km + p.site_elevation_km
        if rp < site_r or ra == math.inf:
            self._emit(self._t, "suborbital_cutoff", "critical", "perilune below the surface: no orbit",
                       {"perilune_km": round(rp - p.moon_radius_km, 3),
                        "apolune_km": round(min(ra, 1e9) - p.moon_radius_km, 3)})
            self._mode = AscentMode.BALLISTIC
            if self._r <= site_r + 1e-9 or ra == math.inf:
                self._crash(self._t)
            else:
                self._orbit = _Orbit.from_state(gm, self._t, self._r, self._theta, self._vr, self._vt)
                self._impact_t = self._impact_time(self._orbit, site_r)
            return
        self._orbit = _Orbit.from_state(gm, self._t, self._r, self._theta, self._vr, self._vt)
        r_o = p.moon_radius_km + p.orbiter_altitude_km
        self._orbiter = _Orbit(r_o, 0.0, self._theta + math.radians(p.phase_lead_deg), self._t, 0.0, gm)
        self._mode = AscentMode.ORBIT
        self._emit(self._t, "orbit_insertion", "info", "in lunar orbit",
                   {"perilune_km": round(rp - p.moon_radius_km, 3),
                    "apolune_km": round(ra - p.moon_radius_km, 3),
                    "phase_lead_deg": p.phase_lead_deg})

    @staticmethod
    def _impact_time(orbit: _Orbit, surface_r: float) -> float:
        """First time after `orbit.t0` the arc comes down through radius `surface_r` (analytic)."""
        e = orbit.e
        if e < 1e-12:
            return math.inf
        semi_latus = orbit.a * (1 - e * e)
        nu = -math.acos(max(-1.0, min(1.0, (semi_latus / surface_r - 1.0) / e)))  # descending branch
        ecc = 2.0 * math.atan2(math.sqrt(1 - e) * math.sin(nu / 2), math.sqrt(1 + e) * math.cos(nu / 2))
        m = ecc - e * math.sin(ecc)
        while m < orbit.m0 - 1e-12:
            m += 2.0 * math.pi
        return orbit.t0 + (m - orbit.m0) / orbit.n

    def _crash(self, t: float) -> None:
        """The vehicle reached the surface at `t`."""
        if self._orbit is not None:
            self._r, self._theta, self._vr, self._vt = self._orbit.at(t)
        speed = 1000.0 * math.hypot(self._vr, self._vt)
        self._r = self.p.moon_radius_km + self.p.site_elevation_km
        self._vr = self._vt = 0.0
        self._orbit = None
        self._thrusting = False
        self._impact_t = math.inf
        self._mode = AscentMode.CRASHED
        self._emit(t, "impact", "critical", "vehicle fell back to the surface",
                   {"impact_speed_mps": round(speed, 2), "range_from_site_km": round(
                       self._theta * self._r, 3)})

    # -- faults -----------------------------------------------------------------------------------
    def _leak(self, t0: float, t1: float) -> None:
        """Propellant lost to the active leaks over [t0, t1]: linear, never below 0."""
        if t1 <= t0 or self._mode in (AscentMode.TRANSFERRED, AscentMode.CRASHED) or self._prop <= 0.0:
            return
        leaks = self._faults_of("ascent.propellant_leak")
        rate = sum(float(f.params.get("rate_kg_per_h") or 0.0) for f in leaks) / 3600.0
        if rate <= 0.0:
            return
        span = min(t1 - t0, self._prop / rate)
        self._prop = max(0.0, self._prop - rate * span)
        for f in leaks:
            f_rate = float(f.params.get("rate_kg_per_h") or 0.0) / 3600.0
            before = self._leaked.get(f.fault_id, 0.0)
            self._leaked[f.fault_id] = before + f_rate * span
            if self._leaked[f.fault_id] >= LEAK_SYMPTOM_KG and f_rate > 0:
                at = t0 + max(0.0, (LEAK_SYMPTOM_KG - before) / f_rate)
                self._symptom(f, at, f"{LEAK_SYMPTOM_KG} kg propellant lost")

    def _on_fault_cleared(self, fault: ModelFault) -> None:
        self._leaked.pop(fault.fault_id, None)
        self._ignition_failures.pop(fault.fault_id, None)

    # -- approach ---------------------------------------------------------------------------------
    def _approach_rate(self, rng_m: float) -> float:
        p = self.p
        return min(p.approach_vmax_mps, max(p.approach_vmin_mps, rng_m / p.approach_tau_s))

    def _approach_segments(self, r0: float) -> list[tuple[str, float, float]]:
        """Piecewise closing profile from r0 m: (kind, start range m, duration s)."""
        p = self.p
        r_hi = p.approach_vmax_mps * p.approach_tau_s  # above: constant v_max
        r_lo = p.approach_vmin_mps * p.approach_tau_s  # below: constant v_min
        segments = []
        r = r0
        if r > r_hi:
            segments.append(("const_max", r, (r - r_hi) / p.approach_vmax_mps))
            r = r_hi
        if r > r_lo:
            segments.append(("exp", r, p.approach_tau_s * math.log(r / r_lo)))
            r = r_lo
        segments.append(("const_min", r, r / p.approach_vmin_mps))
        return segments

    def _approach_duration(self, r0: float) -> float:
        return sum(d for _, _, d in self._approach_segments(r0))

    def _approach_profile(self, elapsed: float) -> tuple[float, float]:
        """(range m, closing rate m/s) after `elapsed` seconds of approach, analytic."""
        p = self.p
        for kind, r_start, duration in self._approach_segments(self._approach_r0_m):
            if elapsed <= duration:
                if kind == "const_max":
                    return r_start - p.approach_vmax_mps * elapsed, p.approach_vmax_mps
                if kind == "exp":
                    r = r_start * math.exp(-elapsed / p.approach_tau_s)
                    return r, r / p.approach_tau_s
                return max(0.0, r_start - p.approach_vmin_mps * elapsed), p.approach_vmin_mps
            elapsed -= duration
        return 0.0, 0.0
