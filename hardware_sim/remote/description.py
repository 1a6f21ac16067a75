"""What each remotely driven device kind reads and accepts, independent of the wire protocol.

One table per kind: the state's flat fields (name, type, unit) and the commands (HAL method name, typed
arguments). The Modbus register maps, the serial line's payloads, the emulator and the host proxy are all
derived from these tables, so the wire, the emulator and the documentation cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from lunar_gs.hardware_sim.arm import JOINTS
from lunar_gs.hardware_sim.hal import ArmState, ContainerState, DrillState, JointReading

Scalar = str | int | float | bool
FieldType = Literal["f64", "u16", "u32", "bool", "enum", "text"]


@dataclass(frozen=True)
class FieldSpec:
    """One value on the wire. `enum` lists the values of an `enum` field (sent as their index); `size` is
    the most UTF-8 bytes a `text` field carries."""

    name: str
    type: FieldType
    unit: str = ""
    doc: str = ""
    enum: tuple[str, ...] = ()
    size: int = 0


@dataclass(frozen=True)
class CommandSpec:
    """One HAL command: the device method `name`, its arguments in order, and what it returns (if any)."""

    name: str
    opcode: int
    args: tuple[FieldSpec, ...] = ()
    returns: FieldSpec | None = None
    doc: str = ""


@dataclass(frozen=True)
class DeviceDescription:
    kind: str
    state: tuple[FieldSpec, ...]
    commands: tuple[CommandSpec, ...]
    encode_state: Callable[[Any], dict[str, Scalar]]
    """Model state dataclass -> flat field values (the emulator's side)."""
    decode_state: Callable[[Mapping[str, Scalar]], Any]
    """Flat field values -> the HAL state dataclass (the host's side)."""
    safe_command: str | None = None
    """What the device does by itself when its host's watchdog expires (None: only report it)."""

    def command(self, name: str) -> CommandSpec:
        for spec in self.commands:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.kind} has no command {name!r}; known: {[c.name for c in self.commands]}")

    def command_by_opcode(self, opcode: int) -> CommandSpec:
        for spec in self.commands:
            if spec.opcode == opcode:
                return spec
        raise KeyError(f"{self.kind} has no opcode {opcode}")


def _flat(state: Any) -> dict[str, Scalar]:
    return {f.name: getattr(state, f.name) for f in fields(state)}


DRILL_MODES = ("idle", "drilling", "stowing", "stowed", "tripped", "retracting")
ARM_MODES = ("stowed", "sampling", "idle", "fault")
ENCODERS = ("primary", "redundant")

DRILL = DeviceDescription(
    kind="drill",
    state=(
        FieldSpec("mode", "enum", enum=DRILL_MODES),
        FieldSpec("depth_m", "f64", "m", "bit depth below the surface"),
        FieldSpec("target_depth_m", "f64", "m"),
        FieldSpec("rpm", "f64", "rpm"),
        FieldSpec("torque_nm", "f64", "N m", "rotary torque"),
        FieldSpec("motor_current_a", "f64", "A"),
        FieldSpec("power_w", "f64", "W", "electrical power drawn from the lander bus"),
        FieldSpec("penetration_rate_mm_min", "f64", "mm/min"),
        FieldSpec("percussion", "bool"),
        FieldSpec("bit_temperature_c", "f64", "degC"),
        FieldSpec("core_mass_g", "f64", "g"),
        FieldSpec("material", "text", doc="material at the bit (a layer name of the profile)", size=32),
        FieldSpec("motor_temperature_c", "f64", "degC"),
    ),
    commands=(
        CommandSpec("self_test", 1, doc="CHECKOUT"),
        CommandSpec("start", 2, (FieldSpec("target_depth_m", "f64", "m"), FieldSpec("rpm", "f64", "rpm"),
                                 FieldSpec("percussion", "bool")), doc="DRILL_TO_DEPTH"),
        CommandSpec("set_percussion", 3, (FieldSpec("on", "bool"),)),
        CommandSpec("stop", 4),
        CommandSpec("stow_core", 5),
        CommandSpec("retract", 6, (FieldSpec("distance_m", "f64", "m"),)),
        CommandSpec("reset_protection", 7),
        CommandSpec("power_cut", 8, (FieldSpec("reason", "text", size=64),), doc="load shed by the platform"),
    ),
    encode_state=_flat,
    decode_state=lambda values: DrillState(**{f.name: values[f.name] for f in fields(DrillState)}),
    safe_command="stop",
)


def _encode_arm(state: ArmState) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {"mode": state.mode}
    for joint in state.joints:
        out[f"{joint.name}.angle_deg"] = joint.angle_deg
        out[f"{joint.name}.torque_nm"] = joint.torque_nm
        out[f"{joint.name}.current_a"] = joint.current_a
        out[f"{joint.name}.encoder"] = joint.encoder
    out.update(scoop_phase=state.scoop_phase, scoops_done=state.scoops_done, scoop_mass_g=state.scoop_mass_g,
               sites_total=state.sites_total)
    return out


def _decode_arm(values: Mapping[str, Scalar]) -> ArmState:
    joints = tuple(JointReading(name, float(values[f"{name}.angle_deg"]), float(values[f"{name}.torque_nm"]),
                                float(values[f"{name}.current_a"]), str(values[f"{name}.encoder"]))
                   for name in JOINTS)
    return ArmState(mode=str(values["mode"]), joints=joints, scoop_phase=str(values["scoop_phase"]),
                    scoops_done=int(values["scoops_done"]), scoop_mass_g=float(values["scoop_mass_g"]),
                    sites_total=int(values["sites_total"]))


ARM = DeviceDescription(
    kind="arm",
    state=(
        FieldSpec("mode", "enum", enum=ARM_MODES),
        *(spec for name in JOINTS for spec in (
            FieldSpec(f"{name}.angle_deg", "f64", "deg", f"{name} angle from the selected encoder"),
            FieldSpec(f"{name}.torque_nm", "f64", "N m"),
            FieldSpec(f"{name}.current_a", "f64", "A"),
            FieldSpec(f"{name}.encoder", "enum", enum=ENCODERS),
        )),
        FieldSpec("scoop_phase", "text", doc="none, move, dig, deposit, shake, jammed...", size=16),
        FieldSpec("scoops_done", "u16"),
        FieldSpec("scoop_mass_g", "f64", "g"),
        FieldSpec("sites_total", "u16"),
    ),
    commands=(
        CommandSpec("self_test", 1, doc="CHECKOUT"),
        CommandSpec("start_sampling", 2, (FieldSpec("sites", "u16"), FieldSpec("scoop_depth_cm", "f64", "cm")),
                    doc="SAMPLE_SITES"),
        CommandSpec("stow", 3),
        CommandSpec("switch_encoder", 4, (FieldSpec("joint", "enum", enum=JOINTS),
                                          FieldSpec("unit", "enum", enum=ENCODERS))),
        CommandSpec("reset_joint", 5, (FieldSpec("joint", "enum", enum=JOINTS),)),
        CommandSpec("clear_scoop", 6),
    ),
    encode_state=_encode_arm,
    decode_state=_decode_arm,
)

CONTAINER = DeviceDescription(
    kind="container",
    state=(
        FieldSpec("mass_g", "f64", "g"),
        FieldSpec("capacity_g", "f64", "g"),
        FieldSpec("sealed", "bool"),
        FieldSpec("seal_pressure_kpa", "f64", "kPa"),
        FieldSpec("on_ascender", "bool"),
    ),
    commands=(
        CommandSpec("receive", 1, (FieldSpec("mass_g", "f64", "g"),), returns=FieldSpec("accepted_g", "f64", "g"),
                    doc="a scoop or the drill's core poured in; returns what fitted"),
        CommandSpec("seal", 2, doc="SEAL_CONTAINER"),
        CommandSpec("transfer_to_ascender", 3, doc="TRANSFER_CONTAINER"),
    ),
    encode_state=_flat,
    decode_state=lambda values: ContainerState(**{f.name: values[f.name] for f in fields(ContainerState)}),
)

DESCRIPTIONS: dict[str, DeviceDescription] = {d.kind: d for d in (DRILL, ARM, CONTAINER)}
"""The kinds that can stand behind a real link."""


def check_value(spec: FieldSpec, value: Any) -> Scalar:
    """`value` as `spec` carries it, or ValueError saying why it cannot be sent."""
    match spec.type:
        case "f64":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{spec.name}: expected a number, got {value!r}")
            return float(value)
        case "u16" | "u32":
            limit = 0xFFFF if spec.type == "u16" else 0xFFFF_FFFF
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise ValueError(f"{spec.name}: expected an integer 0..{limit}, got {value!r}")
            return value
        case "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{spec.name}: expected true or false, got {value!r}")
            return value
        case "enum":
            if value not in spec.enum:
                raise ValueError(f"{spec.name}: expected one of {list(spec.enum)}, got {value!r}")
            return str(value)
        case "text":
            text = str(value)
            if len(text.encode()) > spec.size:
                raise ValueError(f"{spec.name}: longer than {spec.size} bytes")
            return text
    raise ValueError(f"{spec.name}: unknown field type {spec.type!r}")
