"""The hardware-abstraction layer: one typing.Protocol per device kind.

Services talk only to these protocols, so a simulated model and a real device behind a byte link are
interchangeable by configuration. Every device steps in *simulated* time through `advance(now)` and
reports what happened through `drain_events()`; commands it refuses raise `DeviceCommandError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

EventData = dict[str, str | int | float | bool]

REFUSAL_CODES = ("wrong_mode", "busy", "device_fault")
"""Why a device refuses a command; services map these onto PUS 1 failure codes."""


@dataclass(frozen=True)
class DeviceEvent:
    """Something a device noticed, stamped with the simulated time it happened."""

    time: float
    name: str
    severity: str
    message: str
    data: EventData = field(default_factory=dict)


class DeviceCommandError(Exception):
    """A command the device refuses (wrong mode, busy, out of physical range)."""

    def __init__(self, reason: str, code: str = "wrong_mode") -> None:
        if code not in REFUSAL_CODES:
            raise ValueError(f"unknown refusal code {code!r}; expected one of {REFUSAL_CODES}")
        super().__init__(reason)
        self.reason = reason
        self.code = code


@runtime_checkable
class Device(Protocol):
    """What every device offers the clock and the service loop."""

    kind: str
    backend: str

    def advance(self, now: float) -> None:
        """Step to simulated time `now`; calls with `now` earlier than the last one are ignored."""
        ...

    def drain_events(self) -> list[DeviceEvent]:
        """Events since the last drain, in time order."""
        ...

    def active(self) -> bool:
        """True while something moves; services send full-rate housekeeping only then."""
        ...


@dataclass(frozen=True)
class DrillState:
    mode: str
    depth_m: float
    target_depth_m: float
    rpm: float
    torque_nm: float
    motor_current_a: float
    power_w: float
    """Electrical power drawn from the lander bus."""
    penetration_rate_mm_min: float
    percussion: bool
    bit_temperature_c: float
    core_mass_g: float
    material: str
    motor_temperature_c: float


@runtime_checkable
class Drill(Device, Protocol):
    def state(self) -> DrillState: ...
    def self_test(self) -> None: ...
    def start(self, target_depth_m: float, rpm: float, percussion: bool) -> None: ...
    def set_percussion(self, on: bool) -> None: ...
    def stop(self) -> None: ...
    def stow_core(self) -> None: ...
    def retract(self, distance_m: float) -> None: ...
    def reset_protection(self) -> None: ...
    def power_cut(self, reason: str) -> None: ...


@dataclass(frozen=True)
class JointReading:
    name: str
    angle_deg: float
    torque_nm: float
    current_a: float
    encoder: str = "primary"
    """Which of the joint's two encoders the angle comes from: "primary" or "redundant"."""


@dataclass(frozen=True)
class ArmState:
    mode: str
    joints: tuple[JointReading, ...]
    scoop_phase: str
    scoops_done: int
    scoop_mass_g: float
    sites_total: int


@runtime_checkable
class Arm(Device, Protocol):
    def state(self) -> ArmState: ...
    def self_test(self) -> None: ...
    def start_sampling(self, sites: int, scoop_depth_cm: float) -> None: ...
    def stow(self) -> None: ...
    def switch_encoder(self, joint: str, unit: str) -> None: ...
    def reset_joint(self, joint: str) -> None: ...
    def clear_scoop(self) -> None: ...


@dataclass(frozen=True)
class ContainerState:
    mass_g: float
    capacity_g: float
    sealed: bool
    seal_pressure_kpa: float
    on_ascender: bool


@runtime_checkable
class SampleContainer(Device, Protocol):
    def state(self) -> ContainerState: ...
    def receive(self, mass_g: float) -> float: ...
    def seal(self) -> None: ...
    def transfer_to_ascender(self) -> None: ...


@runtime_checkable
class Flag(Device, Protocol):
    def state(self) -> bool: ...
    def deploy(self) -> None: ...


@dataclass(frozen=True)
class AscentState:
    mode: str
    thrust_n: float
    chamber_pressure_mpa: float
    propellant_kg: float
    mass_kg: float
    altitude_km: float
    velocity_mps: float
    vertical_velocity_mps: float
    pitch_deg: float
    perilune_km: float
    apolune_km: float
    range_km: float
    closing_rate_mps: float
    sample_mass_g: float


@runtime_checkable
class AscentVehicle(Device, Protocol):
    def state(self) -> AscentState: ...
    def self_test(self) -> None: ...
    def arm(self) -> None: ...
    def load_sample(self, mass_g: float) -> None: ...
    def ignite(self, target_perilune_km: float, target_apolune_km: float) -> None: ...
    def retarget(self, target_perilune_km: float, target_apolune_km: float) -> None: ...
    def orbit_adjust(self, perilune_km: float, apolune_km: float) -> None: ...
    def start_approach(self) -> None: ...
    def transfer_sample(self) -> None: ...


@runtime_checkable
class RelayLink(Device, Protocol):
    storage_capacity: int

    def one_way_delay_s(self, now: float) -> float: ...
    def far_side_visible(self, now: float) -> bool: ...
    def next_window_start(self, now: float) -> float | None: ...
    def next_loss_of_signal(self, now: float) -> float | None: ...


@dataclass(frozen=True)
class PowerState:
    """The lander platform's power and thermal state (the first seven feed ArmHousekeeping as named)."""

    battery_soc_percent: float
    bus_voltage_v: float
    battery_current_a: float
    """Positive while discharging."""
    load_w: float
    """Everything on the bus: base avionics, heaters and the external loads."""
    heaters_on: bool
    battery_temperature_c: float
    arm_motor_temperature_c: float
    solar_w: float
    drill_shed: bool
    """The drill was shed for undervoltage and the bus has not yet recovered (no new shed until it has)."""


@runtime_checkable
class Power(Device, Protocol):
    """Lander platform power and thermal (hosted by the lander-arm service); emits `load_shed`."""

    def state(self) -> PowerState: ...
    def set_load(self, name: str, watts: float) -> None: ...
    def set_heaters(self, on: bool) -> None: ...
