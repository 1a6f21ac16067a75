"""Scenarios: a timeline in mission time of phases and steps, loaded from YAML and validated up front.

```yaml
name: nominal
phases:
  - name: drilling
    start_at: "T+01:00:00"            # optional: the phase waits (warping when idle) until then
    steps:
      - send: {node: lander-drill, command: DRILL_TO_DEPTH, args: {target_depth_m: 0.85}, timeout: "01:00:00"}
      - expect_tm: {node: lander-drill, field: depth_m, op: ">=", value: 0.8, timeout: "00:05:00"}
      - expect_event: {node: ascent-vehicle, event: docked, timeout: "04:00:00"}
      - wait: "00:10:00"
      - wait_until: "T+49:15:00"
```
Durations are seconds or `[H]H:MM:SS`; mission times are `T+H:MM:SS` from the mission epoch. A command's
arguments are checked against the command catalogue when the file loads, so a typo fails before a
rehearsal starts, with the file and line.
"""

import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from lunar_gs.protocols.commands import ArgValue, UnknownCommand, describe_validation_error, parse_command_args
from lunar_gs.protocols.faults import FaultSpec
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.seeds import load_yaml_model

_DURATION = re.compile(r"^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$")
_MISSION_TIME = re.compile(r"^T\+(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$")


def parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is seconds or H:MM:SS, not a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value.strip())):
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise ValueError(f"{value!r} is not a duration: use seconds or H:MM:SS")


def parse_mission_time(value: Any) -> float:
    if isinstance(value, str) and (match := _MISSION_TIME.match(value.strip())):
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise ValueError(f"{value!r} is not a mission time: use T+H:MM:SS from the mission epoch")


Duration = Annotated[float, BeforeValidator(parse_duration)]
MissionTime = Annotated[float, BeforeValidator(parse_mission_time)]
"""Seconds after the mission epoch."""

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(value: Any, op: str, expected: Any) -> bool:
    """`value op expected`; a missing value, or one that does not compare with `expected`, is False."""
    try:
        return value is not None and bool(COMPARISONS[op](value, expected))
    except TypeError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendSpec(_Strict):
    node: Node
    command: str
    args: dict[str, ArgValue] = {}
    expect: Literal["completed", "failed", "any"] = "completed"
    """`any`: the step passes whatever the command's outcome (a drill's script goes on into the fault)."""
    timeout: Duration | None = None
    expires_after: Duration | None = None
    """Let the relay drop the command if it cannot deliver it within this long (a visibility gap)."""

    @model_validator(mode="after")
    def _known_command(self) -> "SendSpec":
        if self.expect != "failed":
            try:
                parse_command_args(self.node, self.command, self.args)
            except UnknownCommand as exc:
                raise ValueError(str(exc)) from None
            except ValidationError as exc:
                raise ValueError(f"{self.command} arguments: {describe_validation_error(exc)}") from None
        return self


class ExpectTmSpec(_Strict):
    node: Node
    field: str
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    value: float | bool | str
    packet: str = "hk"
    timeout: Duration | None = None


class ExpectEventSpec(_Strict):
    node: Node
    event: str
    timeout: Duration | None = None


class SendStep(_Strict):
    send: SendSpec


class ExpectTmStep(_Strict):
    expect_tm: ExpectTmSpec


class ExpectEventStep(_Strict):
    expect_event: ExpectEventSpec


class WaitStep(_Strict):
    wait: Duration


class WaitUntilStep(_Strict):
    wait_until: MissionTime


class InjectFaultStep(_Strict):
    """Ask the instructor service for a fault (with any trigger), as an instructor would."""

    inject_fault: FaultSpec


class ClearFaultStep(_Strict):
    """Clear a fault by its label (or id)."""

    clear_fault: str = Field(min_length=1, max_length=64)


STEP_KINDS = ("send", "expect_tm", "expect_event", "wait", "wait_until", "inject_fault", "clear_fault")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in STEP_KINDS if k in value]
        return present[0] if len(present) == 1 else None
    for kind in STEP_KINDS:
        if hasattr(value, kind):
            return kind
    return None


Step = Annotated[
    Annotated[SendStep, Tag("send")]
    | Annotated[ExpectTmStep, Tag("expect_tm")]
    | Annotated[ExpectEventStep, Tag("expect_event")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitUntilStep, Tag("wait_until")]
    | Annotated[InjectFaultStep, Tag("inject_fault")]
    | Annotated[ClearFaultStep, Tag("clear_fault")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of: " + ", ".join(STEP_KINDS),
    ),
]


class Phase(_Strict):
    name: str = Field(min_length=1, max_length=128)
    start_at: MissionTime | None = None
    steps: list[Step] = Field(min_length=1)


class SetupCall(_Strict):
    """One HAL call that builds a drill's initial conditions, made on the device before the clock starts
    (the device is first stepped to `after` seconds past the epoch)."""

    node: Node
    device: str = Field(min_length=1, max_length=32)
    call: str = Field(min_length=1, max_length=64)
    args: dict[str, ArgValue] = {}
    after: Duration = 0.0


class InitialConditions(_Strict):
    """Start a drill later in the mission (e.g. T+48:30 with a sealed container on the ascender)
    instead of replaying the surface stay."""

    at: MissionTime
    setup: list[SetupCall] = []

    @model_validator(mode="after")
    def _setup_before_start(self) -> "InitialConditions":
        for call in self.setup:
            if call.after > self.at:
                raise ValueError(f"setup call {call.call} after {call.after:.0f} s comes after the start "
                                 f"at T+{format_mission_elapsed(self.at)}")
        return self


class SymptomSpec(_Strict):
    """What a trainee at ground control would notice: exactly one of an alarm, an event, a TM value."""

    alarm: str | None = Field(default=None, min_length=1, max_length=128)
    event: ExpectEventSpec | None = None
    tm: ExpectTmSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SymptomSpec":
        if sum(x is not None for x in (self.alarm, self.event, self.tm)) != 1:
            raise ValueError("a symptom is exactly one of: alarm, event, tm")
        return self

    def describe(self) -> str:
        if self.alarm is not None:
            return f"alarm {self.alarm}"
        if self.event is not None:
            return f"event {self.event.node} {self.event.event}"
        assert self.tm is not None
        return f"{self.tm.node} {self.tm.field} {self.tm.op} {self.tm.value}"


class ResponseSpec(_Strict):
    """An expected trainee response: once `symptom` is visible at ground control, the first command of `send`
    must go out within `within`. With `--autopilot` the commands are sent, in order, `reaction` seconds
    after the symptom; otherwise `contingency` (if any) is injected when the deadline passes."""

    name: str = Field(min_length=1, max_length=128)
    symptom: SymptomSpec
    within: Duration
    reaction: Duration = 30.0
    send: list[SendSpec] = Field(min_length=1)
    when: SymptomSpec | None = None
    """A procedure's precondition: the commands go out only once this also holds (e.g. after an outage,
    once sampling has finished)."""
    contingency: FaultSpec | None = None


class ObjectiveSpec(_Strict):
    """A check of the outcome, judged at the end from what ground control saw: exactly one of a TM value
    (its last value), an event seen, a command completed, a phase passed; `by` adds a deadline."""

    name: str = Field(min_length=1, max_length=128)
    tm: ExpectTmSpec | None = None
    event: ExpectEventSpec | None = None
    command: "CommandOutcome | None" = None
    phase: str | None = Field(default=None, min_length=1, max_length=128)
    by: MissionTime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "ObjectiveSpec":
        if sum(x is not None for x in (self.tm, self.event, self.command, self.phase)) != 1:
            raise ValueError("an objective is exactly one of: tm, event, command, phase")
        return self


class CommandOutcome(_Strict):
    node: Node
    command: str
    state: Literal["completed", "failed"] = "completed"


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    default_timeout: Duration = 600.0
    initial: InitialConditions | None = None
    faults: list[FaultSpec] = []
    """The drill's fault script: armed on their triggers when the run starts."""
    phases: list[Phase] = Field(min_length=1)
    responses: list[ResponseSpec] = []
    objectives: list[ObjectiveSpec] = []

    @model_validator(mode="after")
    def _phases_named_once(self) -> "Scenario":
        names = [p.name for p in self.phases]
        if len(names) != len(set(names)):
            raise ValueError("phase names must be unique (fault triggers and objectives refer to them)")
        return self


def describe_step(step: Step) -> str:
    """A short human label for progress displays and reports."""
    match step:
        case SendStep(send=s):
            return f"send {s.node} {s.command}"
        case ExpectTmStep(expect_tm=e):
            return f"expect {e.node} {e.field} {e.op} {e.value}"
        case ExpectEventStep(expect_event=e):
            return f"expect event {e.node} {e.event}"
        case WaitStep(wait=d):
            return f"wait {d:.0f} s"
        case WaitUntilStep(wait_until=t):
            return f"wait until T+{format_mission_elapsed(t)}"
        case InjectFaultStep(inject_fault=f):
            return f"inject {f.label or f.kind} on {f.target}"
        case ClearFaultStep(clear_fault=label):
            return f"clear fault {label}"
    return "step"


def format_mission_elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def load_scenario(path: Path | str) -> Scenario:
    return load_yaml_model(path, Scenario)


ObjectiveSpec.model_rebuild()
