"""Housekeeping telemetry, one packet model per node (packet name `hk`)."""

from enum import StrEnum
from typing import Annotated, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict

from lunar_gs.protocols.envelope import Envelope, NonNegative

Percent = Annotated[float, Ge(0.0), Le(100.0)]


class DeviceLinkReading(BaseModel):
    """The link to one device behind a byte link (Modbus TCP, serial line): flattened as `drill.link_up`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, MinLen(1), MaxLen(32)]
    backend: Annotated[str, MinLen(1), MaxLen(32)]
    link_up: bool
    reading_age_s: Annotated[float, Ge(0.0), Le(1e9)]
    """Simulated seconds since the last good reading of the device: its values are that old."""


class HousekeepingBase(Envelope):
    """Fields every housekeeping packet has besides its measurements."""

    missing: Annotated[tuple[str, ...], MaxLen(64)] = ()
    """Parameters whose sensor gave no reading in this sample (their value is the last good one and
    must not be trusted): a validity flag, as real TM carries."""
    links: Annotated[tuple[DeviceLinkReading, ...], MaxLen(16)] = ()
    """One entry per device of the node behind a link; empty for simulated devices."""


class DrillMode(StrEnum):
    IDLE = "idle"
    DRILLING = "drilling"
    STOWING = "stowing"
    STOWED = "stowed"
    TRIPPED = "tripped"
    RETRACTING = "retracting"


class DrillHousekeeping(HousekeepingBase):
    schema_name: Literal["tm.lander-drill.hk"] = "tm.lander-drill.hk"
    mode: DrillMode
    depth_m: NonNegative
    target_depth_m: NonNegative
    rpm: NonNegative
    torque_nm: float
    motor_current_a: NonNegative
    power_w: NonNegative = 0.0
    """Electrical power drawn from the lander bus."""
    penetration_rate_mm_min: NonNegative
    percussion: bool
    bit_temperature_c: float
    core_mass_g: NonNegative
    material: str
    motor_temperature_c: float


class JointState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    angle_deg: float
    torque_nm: float
    current_a: NonNegative
    encoder: Literal["primary", "redundant"] = "primary"


class ArmMode(StrEnum):
    STOWED = "stowed"
    SAMPLING = "sampling"
    IDLE = "idle"
    FAULT = "fault"


class ArmHousekeeping(HousekeepingBase):
    """The robotic arm and the lander platform it serves: sample container, seal, flag, and the lander's
    power and thermal state (battery, bus, heaters)."""

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
    battery_soc_percent: Percent
    bus_voltage_v: NonNegative
    battery_current_a: float
    """Positive while discharging."""
    load_w: NonNegative
    heaters_on: bool
    battery_temperature_c: float
    arm_motor_temperature_c: float


class AscentMode(StrEnum):
    ON_LANDER = "on_lander"
    ARMED = "armed"
    POWERED_ASCENT = "powered_ascent"
    ORBIT = "orbit"
    APPROACH = "approach"
    DOCKED = "docked"
    TRANSFERRED = "transferred"
    BALLISTIC = "ballistic"
    """Engine cut off short of orbit: falling back."""
    CRASHED = "crashed"


class AscentHousekeeping(HousekeepingBase):
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


class RelayHousekeeping(HousekeepingBase):
    schema_name: Literal["tm.relay-satellite.hk"] = "tm.relay-satellite.hk"
    far_side_visible: bool
    one_way_delay_s: NonNegative
    stored_messages: Annotated[int, Ge(0)]
    forwarded_to_ground: Annotated[int, Ge(0)]
    forwarded_to_space: Annotated[int, Ge(0)]
    expired_commands: Annotated[int, Ge(0)]
    dropped_messages: Annotated[int, Ge(0)]
    storage_used: Percent
    corrupted_frames: Annotated[int, Ge(0)] = 0
    """Frames whose CRC-16 failed at the receiving end of the space link (counted, then dropped)."""
    next_los: float | None = None
    """Mission time the next scheduled loss of signal begins (None: none scheduled, or out of view now)."""
    next_aos: float | None = None
    """Mission time the far side comes back into view (None: in view now, or never)."""


Housekeeping = DrillHousekeeping | ArmHousekeeping | AscentHousekeeping | RelayHousekeeping


ENVELOPE_FIELDS = frozenset({"schema_name", "schema_version", "source", "seq", "sim_time", "wall_time", "missing"})
"""What every packet carries about itself rather than about the spacecraft."""

TmScalar = str | int | float | bool | None

_UNIT_SUFFIXES = (  # longest first: `_mm_min` before `_min`, `_mpa` before `_a`
    ("_mm_min", "mm/min"), ("_percent", "%"), ("_kpa", "kPa"), ("_mpa", "MPa"), ("_mps", "m/s"),
    ("_deg", "°"), ("_km", "km"), ("_kg", "kg"), ("_nm", "N·m"), ("_cm", "cm"), ("_m", "m"), ("_g", "g"),
    ("_a", "A"), ("_w", "W"), ("_c", "°C"), ("_v", "V"), ("_s", "s"), ("_n", "N"),
)
_UNIT_NAMES = {"rpm": "rpm", "storage_used": "%"}


def unit_of(parameter: str) -> str:
    """A housekeeping parameter's unit, read from its name (`torque_nm` is N·m): names carry their units
    by convention across the contract, so the dictionary of units cannot drift from the models."""
    leaf = parameter.rsplit(".", 1)[-1]
    if leaf in _UNIT_NAMES:
        return _UNIT_NAMES[leaf]
    for suffix, unit in _UNIT_SUFFIXES:
        if leaf.endswith(suffix):
            return unit
    return ""


def flatten_housekeeping(fields: dict[str, object]) -> dict[str, TmScalar]:
    """A packet's spacecraft parameters as one level of dotted keys, list items named by their `name`
    (`elbow.angle_deg`, as fault targets name them): what a console row or a plot series is keyed by. Envelope fields are left out."""
    flat: dict[str, TmScalar] = {}

    def put(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                put(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            parent = prefix.rpartition(".")[0]
            for index, item in enumerate(value):
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str):  # a named item stands for itself: `elbow`, not `joints.elbow`
                    put(f"{parent}.{name}" if parent else name, item)
                else:
                    put(f"{prefix}.{index}", item)
        elif value is None or isinstance(value, str | int | float | bool):
            if not prefix.endswith(".name"):
                flat[prefix] = value
        else:
            flat[prefix] = str(value)

    for key, value in fields.items():
        if key not in ENVELOPE_FIELDS:
            put(key, value)
    return flat
