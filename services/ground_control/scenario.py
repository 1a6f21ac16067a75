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

from protocols.commands import ArgValue, UnknownCommand, describe_validation_error, parse_command_args
from protocols.nodes import Node
from services.seeds import load_yaml_model

_DURATION = re.compile(r"^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$")
_MISSION_TIME = re.compile(r"^T\+(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$")


def _parse_duration(value: Any) -> float:
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


def _parse_mission_time(value: Any) -> float:
    if isinstance(value, str) and (match := _MISSION_TIME.match(value.strip())):
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise ValueError(f"{value!r} is not a mission time: use T+H:MM:SS from the mission epoch")


Duration = Annotated[float, BeforeValidator(_parse_duration)]
MissionTime = Annotated[float, BeforeValidator(_parse_mission_time)]
"""Seconds after the mission epoch."""

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendSpec(_Strict):
    node: Node
    command: str
    args: dict[str, ArgValue] = {}
    expect: Literal["completed", "failed"] = "completed"
    timeout: Duration | None = None
    expires_after: Duration | None = None
    """Let the relay drop the command if it cannot deliver it within this long (a visibility gap)."""

    @model_validator(mode="after")
    def _known_command(self) -> "SendSpec":
        if self.expect == "completed":
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


STEP_KINDS = ("send", "expect_tm", "expect_event", "wait", "wait_until")


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
    | Annotated[WaitUntilStep, Tag("wait_until")],
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


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    default_timeout: Duration = 600.0
    phases: list[Phase] = Field(min_length=1)


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
    return "step"


def format_mission_elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def load_scenario(path: Path | str) -> Scenario:
    return load_yaml_model(path, Scenario)
