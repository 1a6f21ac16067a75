"""Housekeeping telemetry, one packet model per node (packet name `hk`)."""

from enum import StrEnum
from typing import Annotated, Literal

from annotated_types import Ge, Le, MaxLen
from pydantic import BaseModel, ConfigDict

from protocols.envelope import Envelope, NonNegative

Percent = Annotated[float, Ge(0.0), Le(100.0)]


class DrillMode(StrEnum):
    IDLE = "idle"
    DRILLING = "drilling"
    STOWING = "stowing"
    STOWED = "stowed"
    TRIPPED = "tripped"


class DrillHousekeeping(Envelope):
    schema_name: Literal["tm.lander-drill.hk"] = "tm.lander-drill.hk"
    mode: DrillMode
    depth_m: NonNegative
    target_depth_m: NonNegative
    rpm: NonNegative
    torque_nm: float
    motor_current_a: NonNegative
    penetration_rate_mm_min: NonNegative
    percussion: bool
    bit_temperature_c: float
    core_mass_g: NonNegative
    material: str


class JointState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    angle_deg: float
    torque_nm: float
    current_a: NonNegative


class ArmMode(StrEnum):
    STOWED = "stowed"
    SAMPLING = "sampling"
    IDLE = "idle"
    FAULT = "fault"


class ArmHousekeeping(Envelope):
    """The robotic arm and the lander mechanisms it serves: sample container, seal, flag."""

    schema_name: Literal["tm.lander-arm.hk"] = "tm.lander-arm.hk"
    mode: ArmMode
    joints: Annotated[tuple[JointState, ...], MaxLen(8)]
    scoop_phase: str
    scoops_done: Annotated[int, Ge(0)]
    scoop_mass_g: NonNegative
    container_mass_g: NonNegative
    container_sealed: bool
    seal_pressure_kpa: NonNegative
    container_on_ascender: bool
    flag_deployed: bool


class AscentMode(StrEnum):
    ON_LANDER = "on_lander"
    ARMED = "armed"
    POWERED_ASCENT = "powered_ascent"
    ORBIT = "orbit"
    APPROACH = "approach"
    DOCKED = "docked"
    TRANSFERRED = "transferred"


class AscentHousekeeping(Envelope):
    schema_name: Literal["tm.ascent-vehicle.hk"] = "tm.ascent-vehicle.hk"
    mode: AscentMode
    thrust_n: NonNegative
    chamber_pressure_mpa: NonNegative
    propellant_kg: NonNegative
    mass_kg: NonNegative
    altitude_km: float
    velocity_mps: NonNegative
    vertical_velocity_mps: float
    pitch_deg: float
    perilune_km: float
    apolune_km: float
    range_km: NonNegative
    closing_rate_mps: float
    sample_mass_g: NonNegative


class RelayHousekeeping(Envelope):
    schema_name: Literal["tm.relay-satellite.hk"] = "tm.relay-satellite.hk"
    far_side_visible: bool
    one_way_delay_s: NonNegative
    stored_messages: Annotated[int, Ge(0)]
    forwarded_to_ground: Annotated[int, Ge(0)]
    forwarded_to_space: Annotated[int, Ge(0)]
    expired_commands: Annotated[int, Ge(0)]
    dropped_messages: Annotated[int, Ge(0)]
    storage_used: Percent


Housekeeping = DrillHousekeeping | ArmHousekeeping | AscentHousekeeping | RelayHousekeeping
