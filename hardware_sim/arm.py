"""Robotic arm scooping regolith at many sites and depositing it into the sample container.

Why this model: CE-6 ran 10+ sampling points from a single command [12]; no joint data were published
(facts.md: "No joint/torque data published"), so kinematics, masses and rates here are assumed and sized
so a 10-site sequence takes about 75-100 simulated minutes. Each site runs the cycle
move -> dig -> lift -> move (to the container) -> deposit; joints slew toward each phase's pose at a rate
limit. Joint torque is the gravity load of a planar 3-link chain in lunar gravity 1.62 m/s^2 [74] plus
friction while moving and the digging load; current follows torque. The service hands each deposited
scoop (event `scoop_deposited`) to the sample container.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hardware_sim._stepping import SteppedDevice
from hardware_sim.hal import ArmState, DeviceCommandError, JointReading
from protocols.telemetry import ArmMode

JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow", "wrist", "scoop")
Pose = tuple[float, float, float, float, float]


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
    stowed_pose_deg: tuple[float, float, float, float, float] = (0.0, 80.0, -150.0, 60.0, 0.0)  # (assumed)
    # (assumed)
    container_pose_deg: tuple[float, float, float, float, float] = (150.0, 30.0, -60.0, -60.0, 90.0)
    step_s: float = 1.0  # integration step


class SimArm(SteppedDevice):
    """Simulated arm; see the module docstring for the cycle and its sources."""

    kind = "arm"

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
        self._update_torques(digging=False, moving=False, noise=False)

    # -- commands ---------------------------------------------------------------------------------
    def state(self) -> ArmState:
        joints = tuple(
            JointReading(name, angle, torque, self.p.idle_current_a + self.p.current_per_nm_a * abs(torque))
            for name, angle, torque in zip(JOINTS, self._angles, self._torques, strict=True))
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
        self._sites_total, self._site, self._scoops_done = int(sites), 0, 0
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
        for i, goal in enumerate(target):
            delta = goal - self._angles[i]
            if abs(delta) > 1e-9:
                moving = True
                self._angles[i] += max(-max_move, min(max_move, delta))
        self._phase_elapsed += dt
        if phase == "dig":
            self._scoop_mass = self._scoop_target_mass * min(1.0, self._phase_elapsed / min_duration)
        self._update_torques(digging=phase == "dig", moving=moving, noise=True)
        arrived = all(abs(g - a) <= 1e-9 for g, a in zip(target, self._angles, strict=True))
        if arrived and self._phase_elapsed >= min_duration - 1e-9:
            self._finish_phase(phase)

    def _finish_phase(self, phase: str) -> None:
        self._plan.pop(0)
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
            self._emit("sampling_complete", "info", f"{self._scoops_done} scoops deposited",
                       {"scoops": self._scoops_done, "mass_g": round(self._deposited_g, 2)})
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
