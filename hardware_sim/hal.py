"""The hardware-abstraction layer: one typing.Protocol per device kind (device contract, version 2).

Services talk only to these protocols, so a simulated model and a real device behind a byte link are
interchangeable by configuration. Every device steps in *simulated* time through `advance(now)` and
reports what happened through `drain_events()`; commands it refuses raise `DeviceCommandError`.

Version 2 lets a device live at the far end of a link: `advance` and every command may return an
awaitable (a simulated model returns None at once; a remote device answers when its reply arrives), so
callers go through `settle()`. A device with a link also has a lifecycle (`LinkedDevice`: open, close,
link status) and reports link loss and recovery as typed events (`DeviceEventName`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from lunar_gs.protocols.events import Severity

EventData = dict[str, str | int | float | bool]
T = TypeVar("T")

Completion = Awaitable[T] | T
"""What a v2 command returns: its result, or an awaitable of it for a device behind a link."""


async def settle(result: Completion[T]) -> T:
    """The result of a device call, awaited if the device answers asynchronously."""
    if inspect.isawaitable(result):
        return await result  # type: ignore[no-any-return]
    return result  # type: ignore[return-value]


class DeviceEventName(StrEnum):
    """Every event a device can report: a typo in a model or a binding fails at once, not silently."""

    # drill
    SELF_TEST_PASSED = "self_test_passed"
    MATERIAL_CHANGED = "material_changed"
    TARGET_DEPTH_REACHED = "target_depth_reached"
    OVER_TORQUE = "over_torque"
    BIT_OVERHEAT = "bit_overheat"
    BIT_OVERHEAT_TRIP = "bit_overheat_trip"
    DRILL_STOPPED = "drill_stopped"
    POWER_LOST = "power_lost"
    CORE_STOWED = "core_stowed"
    RETRACTED = "retracted"
    PROTECTION_RESET = "protection_reset"
    # arm, container, flag, power
    SAMPLING_COMPLETE = "sampling_complete"
    SCOOP_DEPOSITED = "scoop_deposited"
    SCOOP_CLEARED = "scoop_cleared"
    STOWED = "stowed"
    ENCODER_SWITCHED = "encoder_switched"
    JOINT_RESET = "joint_reset"
    JOINT_FAULT = "joint_fault"
    JOINT_OVERCURRENT = "joint_overcurrent"
    SCOOP_JAMMED = "scoop_jammed"
    CONTAINER_FULL = "container_full"
    CONTAINER_SEALED = "container_sealed"
    CONTAINER_TRANSFERRED = "container_transferred"
    FLAG_DEPLOYED = "flag_deployed"
    LOAD_SHED = "load_shed"
    # ascent vehicle
    ARMED = "armed"
    IGNITION_FAILURE = "ignition_failure"
    LIFTOFF = "liftoff"
    RETARGETED = "retargeted"
    ORBIT_ADJUSTED = "orbit_adjusted"
    APPROACH_STARTED = "approach_started"
    SAMPLE_TRANSFERRED = "sample_transferred"
    DOCKED = "docked"
    PROPELLANT_DEPLETED = "propellant_depleted"
    ENGINE_CUTOFF = "engine_cutoff"
    SUBORBITAL_CUTOFF = "suborbital_cutoff"
    ORBIT_INSERTION = "orbit_insertion"
    IMPACT = "impact"
    # relay
    FAR_SIDE_LOST = "far_side_lost"
    FAR_SIDE_REGAINED = "far_side_regained"
    # a device behind a link (contract v2)
    LINK_LOST = "link_lost"
    LINK_RESTORED = "link_restored"
    DEVICE_RESTARTED = "device_restarted"
    WATCHDOG_EXPIRED = "watchdog_expired"

REFUSAL_CODES = ("wrong_mode", "busy", "device_fault")
"""Why a device refuses a command; services map these onto PUS 1 failure codes."""


@dataclass(frozen=True)
class DeviceEvent:
    """Something a device noticed, stamped with the simulated time it happened."""

    time: float
    name: DeviceEventName
    severity: Severity
    message: str
    data: EventData = field(default_factory=dict)

    def __post_init__(self) -> None:
        # models and links pass plain strings; an unknown name or severity is a bug, caught here
        object.__setattr__(self, "name", DeviceEventName(self.name))
        object.__setattr__(self, "severity", Severity(self.severity))


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

    def advance(self, now: float) -> Completion[None]:
        """Step to simulated time `now`; calls with `now` earlier than the last one are ignored."""
        ...

    def drain_events(self) -> list[DeviceEvent]:
        """Events since the last drain, in time order."""
        ...

    def active(self) -> bool:
        """True while something moves; services send full-rate housekeeping only then."""
        ...


@runtime_checkable
class LinkedDevice(Protocol):
    """A device at the far end of a link: opened and closed by its service, which reports its link."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def link_status(self) -> Any:
        """A `remote.host.LinkStatus`: backend, up, age of the last reading."""
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
    def self_test(self) -> Completion[None]: ...
    def start(self, target_depth_m: float, rpm: float, percussion: bool) -> Completion[None]: ...
    def set_percussion(self, on: bool) -> Completion[None]: ...
    def stop(self) -> Completion[None]: ...
    def stow_core(self) -> Completion[None]: ...
    def retract(self, distance_m: float) -> Completion[None]: ...
    def reset_protection(self) -> Completion[None]: ...
    def power_cut(self, reason: str) -> Completion[None]: ...


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
    def self_test(self) -> Completion[None]: ...
    def start_sampling(self, sites: int, scoop_depth_cm: float) -> Completion[None]: ...
    def stow(self) -> Completion[None]: ...
    def switch_encoder(self, joint: str, unit: str) -> Completion[None]: ...
    def reset_joint(self, joint: str) -> Completion[None]: ...
    def clear_scoop(self) -> Completion[None]: ...


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
    def receive(self, mass_g: float) -> Completion[float]: ...
    def seal(self) -> Completion[None]: ...
    def transfer_to_ascender(self) -> Completion[None]: ...


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
