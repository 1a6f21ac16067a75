"""Turn the command line's words into a FaultSpec: `--param k=v`, `--when 'node.field>=v'`, durations and
mission times, each with a message that says what is wrong."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from lunar_gs.protocols.faults import FaultKind, FaultSpec
from lunar_gs.services.assignments import AssignmentError, cli_value, parse_assignments
from lunar_gs.services.ground_control.scenario import parse_duration, parse_mission_time

_CONDITION = re.compile(r"^\s*([A-Za-z0-9-]+)\.([A-Za-z0-9_]+)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*$")


class FaultOptionError(ValueError):
    pass


def spec_from_options(kind: str, target: str, params: list[str], *, duration: str | None = None,
                      at: str | None = None, after: str | None = None, when: str | None = None,
                      when_event: str | None = None, phase: str | None = None, before_los: str | None = None,
                      probability: float | None = None, label: str = "") -> FaultSpec:
    try:
        fault_kind = FaultKind(kind)
    except ValueError:
        raise FaultOptionError(f"unknown fault kind {kind!r}; see `lunar-gs fault list`") from None
    try:
        values = parse_assignments(params, "--param")
    except AssignmentError as exc:
        raise FaultOptionError(str(exc)) from None
    trigger: dict[str, Any] = {}
    try:
        if at is not None:
            trigger["at"] = parse_mission_time(at)
        if after is not None:
            trigger["after"] = parse_duration(cli_value(after))
        if before_los is not None:
            trigger["before_los"] = parse_duration(cli_value(before_los))
        spec_duration = parse_duration(cli_value(duration)) if duration is not None else None
    except ValueError as exc:
        raise FaultOptionError(str(exc)) from None
    if when is not None:
        match = _CONDITION.match(when)
        if match is None:
            raise FaultOptionError(f"--when {when!r}: write it as NODE.FIELD OP VALUE, e.g. 'lander-drill.depth_m>=0.9'")
        node, field, op, text = match.groups()
        trigger["when_tm"] = {"node": node, "field": field, "op": op, "value": cli_value(text)}
    if when_event is not None:
        node, sep, event = when_event.partition(":")
        if not sep:
            raise FaultOptionError(f"--when-event {when_event!r}: write it as NODE:EVENT")
        trigger["when_event"] = {"node": node, "event": event}
    if phase is not None:
        trigger["phase"] = phase
    if probability is not None:
        trigger["probability"] = probability
    try:
        return FaultSpec.model_validate({"kind": fault_kind, "target": target, "params": values,
                                         "trigger": trigger, "duration": spec_duration, "label": label})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'fault'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise FaultOptionError(problems) from None
