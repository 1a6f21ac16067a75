"""Telecommands: one envelope for all, and a catalogue of each node's commands with typed arguments.

The envelope is decoded first, so that a command with bad arguments can still be answered with an
acceptance failure carrying its request id; the arguments are then checked against the catalogue.
"""

from typing import Annotated, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, ValidationError

from lunar_gs.protocols.envelope import Envelope
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.verification import FailureCode

ArgValue = str | int | float | bool


class Telecommand(Envelope):
    """A command to one node. `expires_at` (simulated Unix seconds) lets the relay drop a command that
    waited out a visibility gap for too long; None means it waits for the next window however long."""

    schema_name: Literal["tc"] = "tc"
    request_id: Annotated[str, MinLen(1), MaxLen(64)]
    target: Node
    command: Annotated[str, MinLen(1), MaxLen(64)]
    args: dict[str, ArgValue] = {}
    expires_at: float | None = None


class CommandArgs(BaseModel):
    """Base of every command's arguments: unknown arguments are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoArgs(CommandArgs):
    pass


class DrillToDepth(CommandArgs):
    target_depth_m: Annotated[float, Ge(0.05), Le(2.5)]
    rpm: Annotated[float, Ge(30.0), Le(300.0)] = 120.0
    percussion: bool = False


class SetPercussion(CommandArgs):
    enabled: bool


class SampleSites(CommandArgs):
    sites: Annotated[int, Ge(1), Le(12)] = 10
    scoop_depth_cm: Annotated[float, Ge(1.0), Le(5.0)] = 3.0


class Ignite(CommandArgs):
    target_perilune_km: Annotated[float, Ge(10.0), Le(60.0)] = 15.0
    target_apolune_km: Annotated[float, Ge(60.0), Le(400.0)] = 180.0


class Retract(CommandArgs):
    distance_m: Annotated[float, Ge(0.005), Le(0.5)] = 0.05


Joint = Literal["shoulder_yaw", "shoulder_pitch", "elbow", "wrist", "scoop"]


class SwitchEncoder(CommandArgs):
    joint: Joint
    unit: Literal["primary", "redundant"] = "redundant"


class JointArg(CommandArgs):
    joint: Joint


class SetHeaters(CommandArgs):
    enabled: bool


class Retarget(CommandArgs):
    """A new insertion target during the burn: a lower apolune needs less propellant."""

    target_perilune_km: Annotated[float, Ge(10.0), Le(60.0)] = 15.0
    target_apolune_km: Annotated[float, Ge(30.0), Le(400.0)] = 100.0


class OrbitAdjust(CommandArgs):
    perilune_km: Annotated[float, Ge(10.0), Le(400.0)]
    apolune_km: Annotated[float, Ge(10.0), Le(400.0)]


COMMAND_CATALOG: dict[Node, dict[str, type[CommandArgs]]] = {
    Node.LANDER_DRILL: {
        "CHECKOUT": NoArgs,
        "DRILL_TO_DEPTH": DrillToDepth,
        "SET_PERCUSSION": SetPercussion,
        "STOP": NoArgs,
        "STOW_CORE": NoArgs,
        "RETRACT": Retract,
        "RESET_PROTECTION": NoArgs,
    },
    Node.LANDER_ARM: {
        "CHECKOUT": NoArgs,
        "SAMPLE_SITES": SampleSites,
        "SEAL_CONTAINER": NoArgs,
        "TRANSFER_CONTAINER": NoArgs,
        "DEPLOY_FLAG": NoArgs,
        "STOW": NoArgs,
        "SWITCH_ENCODER": SwitchEncoder,
        "RESET_JOINT": JointArg,
        "CLEAR_SCOOP": NoArgs,
        "SET_HEATERS": SetHeaters,
    },
    Node.ASCENT_VEHICLE: {
        "CHECKOUT": NoArgs,
        "ARM": NoArgs,
        "IGNITE": Ignite,
        "ORBIT_ADJUST": OrbitAdjust,
        "START_APPROACH": NoArgs,
        "TRANSFER_SAMPLE": NoArgs,
        "RETARGET": Retarget,
    },
    Node.RELAY_SATELLITE: {},
    Node.GROUND_CONTROL: {},
    Node.INSTRUCTOR: {},
}


HAZARDOUS_COMMANDS: dict[Node, frozenset[str]] = {
    Node.LANDER_ARM: frozenset({"SEAL_CONTAINER", "TRANSFER_CONTAINER"}),
    Node.ASCENT_VEHICLE: frozenset({"IGNITE", "ORBIT_ADJUST", "TRANSFER_SAMPLE"}),
}
"""Commands that cannot be taken back (a burn, a seal, a transfer): an operator must confirm them."""


def is_hazardous(node: Node, command: str) -> bool:
    return command in HAZARDOUS_COMMANDS.get(node, frozenset())


class CommandRequest(Envelope):
    """An operator's command to ground control (`lunar-gs cmd`, a console): ground control checks it,
    sends it as a `Telecommand` and tracks it like a scenario's. `client_ref` comes back in every
    `CommandUpdate` about it, so the requester can follow the request id ground control assigns."""

    schema_name: Literal["command_request"] = "command_request"
    client_ref: Annotated[str, MinLen(1), MaxLen(64)]
    target: Node
    command: Annotated[str, MinLen(1), MaxLen(64)]
    args: dict[str, ArgValue] = {}
    confirm: bool = False
    """Must be true for a hazardous command."""
    timeout_s: Annotated[float, Ge(1.0), Le(864000.0)] | None = None
    """Simulated seconds to wait for completion beyond the round-trip light time (None: the default)."""
    operator: Annotated[str, MaxLen(64)] = ""
    """Who sent it, for the audit log."""


class CommandUpdate(Envelope):
    """Where one tracked command stands, published by ground control on every change (QoS 1)."""

    schema_name: Literal["command_update"] = "command_update"
    request_id: Annotated[str, MinLen(1), MaxLen(64)]
    client_ref: Annotated[str, MaxLen(64)] | None = None
    target: Node
    command: Annotated[str, MaxLen(64)]
    args: dict[str, ArgValue] = {}
    origin: Annotated[str, MaxLen(32)]
    state: Annotated[str, MaxLen(32)]
    """sent, accepted, started, completed, failed, timed_out, expired: ground control's command states."""
    stage: Annotated[str, MaxLen(32)] = ""
    """The verification stage this update is about (acceptance, start, progress, completion), if any."""
    progress: Annotated[int, Ge(0)] = 0
    final: bool = False
    failed_stage: Annotated[str, MaxLen(32)] | None = None
    failure_code: Annotated[str, MaxLen(32)] | None = None
    reason: Annotated[str, MaxLen(1000)] = ""


class UnknownCommand(LookupError):
    pass


def parse_command_args(node: Node, command: str, args: dict[str, ArgValue]) -> CommandArgs:
    """Validate a command's arguments against the catalogue.

    Raises UnknownCommand for a command the node does not have, and pydantic's ValidationError for
    arguments out of range, of the wrong type, missing or unexpected.
    """
    try:
        model = COMMAND_CATALOG[node][command]
    except KeyError:
        known = ", ".join(sorted(COMMAND_CATALOG.get(node, {}))) or "none"
        raise UnknownCommand(f"{node} has no command {command!r} (known: {known})") from None
    return model.model_validate(args)


def catalogue_refusal(node: Node, command: str, args: dict[str, ArgValue]) -> tuple[FailureCode, str] | None:
    """Why the catalogue refuses a command: the failure code the node would report at acceptance and a
    reason naming the field; None when it passes. Ground control checks commands by hand with it before
    sending them, and `lunar-gs cmd` before asking ground control."""
    try:
        parse_command_args(node, command, args)
    except UnknownCommand as exc:
        return FailureCode.UNKNOWN_COMMAND, str(exc)
    except ValidationError as exc:
        return FailureCode.INVALID_ARGUMENTS, describe_validation_error(exc)
    return None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the field: what an operator reads in a failure report."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
