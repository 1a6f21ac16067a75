"""Robotic arm scooping regolith at many sites and depositing it into the sample container.

Why this model: CE-6 ran 10+ sampling points from a single command [12]; no joint data were published
(facts.md: "No joint/torque data published"), so kinematics, masses and rates here are assumed and sized
so a 10-site sequence takes about 75-100 simulated minutes. Each site runs the cycle
move -> dig -> lift -> move (to the container) -> deposit; joints slew toward each phase's pose at a rate
limit. Joint torque is the gravity load of a planar 3-link chain in lunar gravity 1.62 m/s^2 [74] plus
friction while moving and the digging load; current follows torque. The service hands each deposited
scoop (event `scoop_deposited`) to the sample container.

Protection and redundancy (assumed, modelled on common practice): each joint has a primary and a
redundant encoder; while a joint reads from its primary, the controller cross-checks the two every step
and on a mismatch over `encoder_mismatch_deg` emits `joint_fault` and stops in mode FAULT (the plan and a
scoop in progress are lost). A joint current over `overcurrent_limit_a` (nominal peak about 2.4 A on the
shoulder) stops the arm the same way (`joint_overcurrent`). Recovery: SWITCH_ENCODER to the redundant unit,
RESET_JOINT after an over-current, CLEAR_SCOOP (`clear_scoop_duration_s` of shaking) after a jam; then a
new SAMPLE_SITES re-plans the remaining sites (`scoops_done` counts across plans).

Faults: arm.encoder_stuck (primary frozen), arm.encoder_drift (primary drifts at `rate_deg_per_s`, also
while idle, analytically), arm.joint_overcurrent (`extra_current_a` while that joint is driven), and
arm.scoop_jam (the scoop does not close at the end of the dig: `scoop_jammed`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lunar_gs.hardware_sim._stepping import SteppedDevice
from lunar_gs.hardware_sim.faults import FaultHost, FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.hal import ArmState, DeviceCommandError, EventData, JointReading
from lunar_gs.protocols.telemetry import ArmMode

JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow", "wrist", "scoop")
Pose = tuple[float, float, float, float, float]
ENCODER_UNITS = ("primary", "redundant")
ENCODER_SYMPTOM_DEG = 0.5
"""A bad primary encoder shows once its reading is this far off the true angle."""
JOINT_KINDS = frozenset({"arm.encoder_stuck", "arm.encoder_drift", "arm.joint_overcurrent"})


@dataclass(frozen=True)
class ArmParams:
    lunar_g_mps2: float = 1.62  # [74]
    link_lengths_m: tuple[float, float, float] = (1.6, 1.5, 0.5)  # CE-5 arm ~3.6 m [38]
    link_masses_kg: tuple[float, float, float] = (6.0, 5.0, 2.0)  # (assumed)
    scoop_mass_kg: float = 1.5  # (assumed)
    slew_rate_deg_s: float = 1.0  # (assumed)
    dig_duration_s: float = 120.0  # (assumed)
    deposit_duration_s: float = 60.0  # (assumed)
    dig_load_nm: float = 12.0  # extra scoop/wrist torque while digging (assumed)
    friction_nm: float = 1.5  # joint friction while moving (assumed)
    scoop_mass_mean_g: float = 150.0  # (assumed; 10+ points [12], total returned 1,935.3 g [24])
    scoop_mass_sd_g: float = 25.0  # (assumed)
    nominal_scoop_depth_cm: float = 3.0  # scoop depth that yields the mean mass (assumed)
    max_scoop_depth_cm: float = 10.0  # (assumed)
    max_sites: int = 20  # (assumed)
    idle_current_a: float = 0.1  # (assumed)
    current_per_nm_a: float = 0.05  # (assumed)
    torque_noise_nm: float = 0.1  # (assumed)
    encoder_mismatch_deg: float = 2.0  # primary/redundant cross-check limit (assumed)
    overcurrent_limit_a: float = 3.0  # joint over-current protection; nominal peak ~2.4 A (assumed)
    clear_scoop_duration_s: float = 30.0  # shaking a jammed scoop free (assumed)
    stowed_pose_deg: tuple[float, float, float, float, float] = (0.0, 80.0, -150.0, 60.0, 0.0)  # (assumed)
    # (assumed)
    container_pose_deg: tuple[float, float, float, float, float] = (150.0, 30.0, -60.0, -60.0, 90.0)
    step_s: float = 1.0  # integration step


class SimArm(FaultHost, SteppedDevice):
    """Simulated arm; see the module docstring for the cycle and its sources."""

    kind = "arm"
    FAULT_KINDS = frozenset(JOINT_KINDS | {"arm.scoop_jam"})

    def __init__(self, params: ArmParams, rng: random.Random, start_time: float) -> None:
        super().__init__(start_time, params.step_s)
        self.p = params
        self._rng = rng
        self._mode = ArmMode.STOWED
        self._angles = list(params.stowed_pose_deg)
        self._torques = [0.0] * len(JOINTS)
        self._phase = "none"
        self._plan: list[tuple[str, Pose, float]] = []  # (phase, target pose, minimum duration)
        self._phase_elapsed = 0.0
        self._site = 0
        self._sites_total = 0
        self._scoops_done = 0
        self._scoop_mass = 0.0
        self._scoop_target_mass = 0.0
        self._deposited_g = 0.0
        self._depth_cm = params.nominal_scoop_depth_cm
        self._moving = False
        self._stowing = False
        self._encoder = ["primary"] * len(JOINTS)
        self._enc_frozen: dict[int, float] = {}  # primary readings frozen by arm.encoder_stuck
        self._enc_drift = [0.0] * len(JOINTS)  # primary offsets from arm.encoder_drift
        self._extra_current = [0.0] * len(JOINTS)
        self._fault_cause: tuple[str, str] | None = None  # ("encoder"|"overcurrent"|"jam", joint)
        self._resume_mode = ArmMode.IDLE  # where a recovery returns to
        self._update_torques(digging=False, moving=False, noise=False)

    # -- commands ---------------------------------------------------------------------------------
    def state(self) -> ArmState:
        joints = tuple(
            JointReading(name, self._reading(i), self._torques[i], self._current(i), self._encoder[i])
            for i, name in enumerate(JOINTS))
        return ArmState(mode=self._mode.value, joints=joints, scoop_phase=self._phase,
                        scoops_done=self._scoops_done, scoop_mass_g=self._scoop_mass,
                        sites_total=self._sites_total)

    def active(self) -> bool:
        return bool(self._plan)

    def self_test(self) -> None:
        if self._mode not in (ArmMode.STOWED, ArmMode.IDLE) or self._plan:
            raise DeviceCommandError(f"self test needs a resting arm, mode is {self._mode.value}")
        self._emit("self_test_passed", "info", "joints, encoders, scoop and cameras nominal")

    def start_sampling(self, sites: int, scoop_depth_cm: float) -> None:
        if self._mode == ArmMode.SAMPLING or self._plan:
            raise DeviceCommandError("arm is busy", "busy")
        if self._mode == ArmMode.FAULT:
            raise DeviceCommandError("arm is in fault", "device_fault")
        if not 1 <= sites <= self.p.max_sites:
            raise DeviceCommandError(f"sites {sites} outside 1..{self.p.max_sites}")
        if not 0.0 < scoop_depth_cm <= self.p.max_scoop_depth_cm:
            raise DeviceCommandError(
                f"scoop depth {scoop_depth_cm} cm outside (0, {self.p.max_scoop_depth_cm}]")
        self._mode = ArmMode.SAMPLING
        self._sites_total, self._site = int(sites), 0  # scoops_done counts on across plans
        self._deposited_g = 0.0
        self._depth_cm = float(scoop_depth_cm)
        self._plan_site()

    def stow(self) -> None:
        if self._plan:
            raise DeviceCommandError("arm is moving", "busy")
        if self._mode == ArmMode.STOWED:
            return
        if self._mode == ArmMode.FAULT:
            raise DeviceCommandError("arm is in fault", "device_fault")
        self._stowing = True
        self._plan = [("move", tuple(self.p.stowed_pose_deg), 0.0)]  # type: ignore[list-item]
        self._phase, self._phase_elapsed = "move", 0.0

    def switch_encoder(self, joint: str, unit: str) -> None:
        """Read `joint` from its `unit` encoder; switching to the redundant one after an encoder fault on
        that joint returns the arm to service."""
        i = self._joint_index(joint)
        if unit not in ENCODER_UNITS:
            raise DeviceCommandError(f"encoder unit {unit!r} is not one of {', '.join(ENCODER_UNITS)}")
        if self._plan:
            raise DeviceCommandError("arm is moving", "busy")
        self._encoder[i] = unit
        self._emit("encoder_switched", "info", f"{joint} reads from its {unit} encoder",
                   {"joint": joint, "unit": unit})
        if unit == "redundant" and self._mode == ArmMode.FAULT and self._fault_cause == ("encoder", joint):
            self._back_in_service()

    def reset_joint(self, joint: str) -> None:
        """Reset the over-current protection of `joint` (arm back to IDLE)."""
        self._joint_index(joint)
        if self._mode != ArmMode.FAULT or self._fault_cause != ("overcurrent", joint):
            raise DeviceCommandError(f"no over-current trip on {joint} to reset, mode is {self._mode.value}")
        self._back_in_service()
        self._emit("joint_reset", "info", f"{joint} over-current protection reset", {"joint": joint})

    def clear_scoop(self) -> None:
        """Shake a jammed scoop free (takes `clear_scoop_duration_s`), then back to IDLE."""
        if self._plan:
            raise DeviceCommandError("arm is busy", "busy")
        if self._mode != ArmMode.FAULT or self._fault_cause is None or self._fault_cause[0] != "jam":
            raise DeviceCommandError(f"no jammed scoop to clear, mode is {self._mode.value}")
        self._plan = [("shake", tuple(self._angles), self.p.clear_scoop_duration_s)]  # type: ignore[list-item]
        self._phase, self._phase_elapsed = "shake", 0.0

    # -- faults -----------------------------------------------------------------------------------
    def _joint_index(self, joint: str) -> int:
        if joint not in JOINTS:
            raise DeviceCommandError(f"unknown joint {joint!r}; joints are {', '.join(JOINTS)}")
        return JOINTS.index(joint)

    def _check_fault(self, fault: ModelFault) -> None:
        if fault.kind in JOINT_KINDS and fault.item not in JOINTS:
            raise FaultNotApplicable(f"{fault.kind} needs a joint, one of {', '.join(JOINTS)}; got {fault.item!r}")

    def _on_fault_injected(self, fault: ModelFault) -> None:
        if fault.kind == "arm.encoder_stuck" and fault.item is not None:
            i = JOINTS.index(fault.item)
            self._enc_frozen[i] = self._primary(i)

    def _on_fault_cleared(self, fault: ModelFault) -> None:
        if fault.item not in JOINTS:
            return
        i = JOINTS.index(fault.item)
        if fault.kind == "arm.encoder_stuck" and not self._faults_of(fault.kind, fault.item):
            self._enc_frozen.pop(i, None)
        elif fault.kind == "arm.encoder_drift" and not self._faults_of(fault.kind, fault.item):
            self._enc_drift[i] = 0.0
        elif fault.kind == "arm.joint_overcurrent":
            self._extra_current[i] = 0.0

    def _primary(self, i: int) -> float:
        if i in self._enc_frozen:
            return self._enc_frozen[i]
        return self._angles[i] + self._enc_drift[i]

    def _reading(self, i: int) -> float:
        return self._primary(i) if self._encoder[i] == "primary" else self._angles[i]

    def _current(self, i: int) -> float:
        return self.p.idle_current_a + self.p.current_per_nm_a * abs(self._torques[i]) + self._extra_current[i]

    def _trip(self, cause: tuple[str, str], name: str, severity: str, message: str, data: EventData,
              at: float | None = None) -> None:
        """Protection stops the arm: mode FAULT, plan and any scoop in progress dropped."""
        if self._mode != ArmMode.FAULT:
            self._resume_mode = ArmMode.STOWED if self._mode == ArmMode.STOWED else ArmMode.IDLE
        self._mode = ArmMode.FAULT
        self._fault_cause = cause
        self._plan = []
        self._stowing = False
        self._scoop_mass = 0.0
        self._phase = "jammed" if cause[0] == "jam" else "none"
        self._extra_current = [0.0] * len(JOINTS)
        self._update_torques(digging=False, moving=False, noise=False)
        self._emit(name, severity, message, data, at=at)

    def _back_in_service(self) -> None:
        self._mode = self._resume_mode
        self._fault_cause = None
        self._phase = "none"

    def _check_encoders(self, t: float) -> bool:
        """Cross-check primary against redundant; True if the arm tripped."""
        for i, joint in enumerate(JOINTS):
            if self._encoder[i] != "primary":
                continue
            error = self._primary(i) - self._angles[i]
            if abs(error) >= ENCODER_SYMPTOM_DEG:
                for f in self._faults_of("arm.encoder_stuck", joint) + self._faults_of("arm.encoder_drift", joint):
                    self._symptom(f, t, f"{joint} primary encoder {error:+.1f} deg off")
            if abs(error) > self.p.encoder_mismatch_deg and self._mode != ArmMode.FAULT:
                self._trip(("encoder", joint), "joint_fault", "error",
                           f"{joint}: primary and redundant encoders disagree by {abs(error):.1f} deg",
                           {"joint": joint, "reason": "encoder mismatch"})
                return True
        return False

    def _drift_encoders(self, t0: float, span: float) -> None:
        """arm.encoder_drift over [t0, t0 + span] (linear); while idle the cross-check fires at the exact
        crossing time."""
        for i, joint in enumerate(JOINTS):
            drifts = self._faults_of("arm.encoder_drift", joint)
            if not drifts:
                continue
            rate = sum(float(f.params.get("rate_deg_per_s") or 0.0) for f in drifts)
            before = self._enc_drift[i]
            self._enc_drift[i] = before + rate * span
            if self._plan or self._encoder[i] != "primary" or i in self._enc_frozen or rate == 0.0:
                continue  # while stepping, _check_encoders looks every step

            def crossing(limit: float, before: float = before, rate: float = rate) -> float:
                return t0 + max(0.0, (math.copysign(limit, rate) - before) / rate)

            if abs(self._enc_drift[i]) >= ENCODER_SYMPTOM_DEG:
                for f in drifts:
                    self._symptom(f, crossing(ENCODER_SYMPTOM_DEG), f"{joint} primary encoder drifting")
            if abs(self._enc_drift[i]) > self.p.encoder_mismatch_deg and self._mode != ArmMode.FAULT:
                self._trip(("encoder", joint), "joint_fault", "error",
                           f"{joint}: primary and redundant encoders disagree by more than "
                           f"{self.p.encoder_mismatch_deg} deg",
                           {"joint": joint, "reason": "encoder mismatch"},
                           at=crossing(self.p.encoder_mismatch_deg))

    def _coast(self, n_steps: int) -> None:
        self._drift_encoders(self.time, n_steps * self._step_s)

    # -- model ------------------------------------------------------------------------------------
    def _plan_site(self) -> None:
        rng = self._rng
        site: Pose = (rng.uniform(-60.0, 60.0), rng.uniform(-20.0, -5.0), rng.uniform(-80.0, -50.0),
                      rng.uniform(-50.0, -30.0), 0.0)
        dig: Pose = (site[0], site[1] - 5.0, site[2], site[3], 90.0)
        lift: Pose = (site[0], site[1] + 25.0, site[2], site[3], 90.0)
        self._plan = [("move", site, 0.0), ("dig", dig, self.p.dig_duration_s), ("lift", lift, 0.0),
                      ("move", tuple(self.p.container_pose_deg), 0.0),  # type: ignore[list-item]
                      ("deposit", self.p.container_pose_deg[:4] + (-30.0,), self.p.deposit_duration_s)]
        mean = self.p.scoop_mass_mean_g * self._depth_cm / self.p.nominal_scoop_depth_cm
        self._scoop_target_mass = max(0.2 * mean, rng.gauss(mean, self.p.scoop_mass_sd_g * mean / 150.0))
        self._phase, self._phase_elapsed = self._plan[0][0], 0.0

    def _step(self, dt: float) -> None:
        phase, target, min_duration = self._plan[0]
        max_move = self.p.slew_rate_deg_s * dt
        moving = False
        moved = [False] * len(JOINTS)
        for i, goal in enumerate(target):
            delta = goal - self._angles[i]
            if abs(delta) > 1e-9:
                moving = moved[i] = True
                self._angles[i] += max(-max_move, min(max_move, delta))
        self._phase_elapsed += dt
        t = self.time
        self._drift_encoders(t - dt, dt)
        if phase == "dig":
            self._scoop_mass = self._scoop_target_mass * min(1.0, self._phase_elapsed / min_duration)
        self._update_torques(digging=phase == "dig", moving=moving, noise=True)
        for i, joint in enumerate(JOINTS):
            faults = self._faults_of("arm.joint_overcurrent", joint)
            extra = sum(float(f.params.get("extra_current_a") or 0.0) for f in faults) if moved[i] else 0.0
            self._extra_current[i] = extra
            if extra > 0.0:
                for f in faults:
                    self._symptom(f, t, f"{joint} draws {extra:.1f} A more than its load explains")
        if self._check_encoders(t):
            return
        for i, joint in enumerate(JOINTS):
            current = self._current(i)
            if current > self.p.overcurrent_limit_a:
                self._trip(("overcurrent", joint), "joint_overcurrent", "error",
                           f"{joint} over-current {current:.2f} A: arm stopped",
                           {"joint": joint, "current_a": round(current, 3)})
                return
        arrived = all(abs(g - a) <= 1e-9 for g, a in zip(target, self._angles, strict=True))
        if arrived and self._phase_elapsed >= min_duration - 1e-9:
            jams = self._faults_of("arm.scoop_jam") if phase == "dig" else []
            if jams:
                for f in jams:
                    self._symptom(f, t, "scoop did not close after digging")
                self._trip(("jam", "scoop"), "scoop_jammed", "warning",
                           "scoop jammed: it does not close; sampling stopped", {"site": self._site + 1})
                return
            self._finish_phase(phase)

    def _finish_phase(self, phase: str) -> None:
        self._plan.pop(0)
        if phase == "shake":
            for f in self._faults_of("arm.scoop_jam"):
                self._recover(f, self.time, "scoop shaken free by CLEAR_SCOOP")
            self._back_in_service()
            self._update_torques(digging=False, moving=False, noise=False)
            self._emit("scoop_cleared", "info", "scoop cleared")
            return
        if phase == "deposit":
            mass = self._scoop_mass
            self._site += 1
            self._scoops_done += 1
            self._deposited_g += mass
            self._scoop_mass = 0.0
            self._emit("scoop_deposited", "info", f"scoop {self._site} deposited",
                       {"site": self._site, "mass_g": round(mass, 2)})
            if self._site < self._sites_total:
                self._plan_site()
                return
            self._mode = ArmMode.IDLE
            self._emit("sampling_complete", "info", f"{self._site} scoops deposited",
                       {"scoops": self._site, "mass_g": round(self._deposited_g, 2)})
        if self._plan:
            self._phase, self._phase_elapsed = self._plan[0][0], 0.0
            return
        self._phase = "none"
        if self._stowing:
            self._stowing = False
            self._mode = ArmMode.STOWED
            self._emit("stowed", "info", "arm stowed")
        self._update_torques(digging=False, moving=False, noise=False)

    def _update_torques(self, digging: bool, moving: bool, noise: bool) -> None:
        """Gravity load of the planar chain (shoulder_pitch, elbow, wrist) plus friction and digging."""
        p = self.p
        g = p.lunar_g_mps2
        l1, l2, l3 = p.link_lengths_m
        m1, m2, m3 = p.link_masses_kg
        m_end = p.scoop_mass_kg + self._scoop_mass / 1000.0
        a1 = math.radians(self._angles[1])
        a2 = a1 + math.radians(self._angles[2])
        a3 = a2 + math.radians(self._angles[3])
        wrist = g * (m3 * l3 / 2 + m_end * l3) * math.cos(a3)
        elbow = g * m2 * l2 / 2 * math.cos(a2) + g * (m3 + m_end) * l2 * math.cos(a2) + wrist
        shoulder = (g * m1 * l1 / 2 * math.cos(a1) + g * (m2 + m3 + m_end) * l1 * math.cos(a1) + elbow)
        torques = [0.0, shoulder, elbow, wrist, g * m_end * 0.1]
        if moving:
            torques = [t + p.friction_nm for t in torques]
        if digging:
            torques[3] += p.dig_load_nm * 0.5
            torques[4] += p.dig_load_nm
        if noise:
            torques = [t + self._rng.gauss(0.0, p.torque_noise_nm) for t in torques]
        self._torques = torques
