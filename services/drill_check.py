"""What would spoil a drill before it runs, found from the file alone: a fault that no housekeeping
parameter or event could reveal, a trigger that can never fire, two faults that conflict, a response
waiting for an alarm that does not exist. Each problem names the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.relay import SimRelayLink
from lunar_gs.protocols.faults import ARM_JOINTS, CATALOGUE, FaultLayer, FaultSpec, composes
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.telemetry import (
    ArmHousekeeping,
    AscentHousekeeping,
    DrillHousekeeping,
    JointState,
    RelayHousekeeping,
)
from lunar_gs.services.ground_control.scenario import (
    ExpectTmSpec,
    InjectFaultStep,
    Scenario,
    format_mission_elapsed,
)
from lunar_gs.services.mission import MissionProfile
from lunar_gs.services.seeds import line_of

HOUSEKEEPING_OF: dict[Node, type[BaseModel]] = {Node.LANDER_DRILL: DrillHousekeeping, Node.LANDER_ARM: ArmHousekeeping,
                   Node.ASCENT_VEHICLE: AscentHousekeeping, Node.RELAY_SATELLITE: RelayHousekeeping}


def housekeeping_parameters(node: Node) -> set[str]:
    """Parameters of a node's housekeeping: top-level fields and, for the arm, `JOINT.field`."""
    model = HOUSEKEEPING_OF.get(node)
    if model is None:
        return set()
    names = {n for n in model.model_fields if n not in ("schema_name", "schema_version", "source", "seq",
                                                          "sim_time", "wall_time", "missing")}
    if node is Node.LANDER_ARM:
        names |= {f"{joint}.{field}" for joint in ARM_JOINTS for field in JointState.model_fields
                  if field != "name"}
    return names


def check_drill(path: Path, scenario: Scenario, profile: MissionProfile) -> list[str]:
    problems: list[str] = []

    def problem(loc: tuple[int | str, ...], text: str) -> None:
        line = line_of(path, loc)
        problems.append(f"{path}:{line}: {text}" if line else f"{path}: {text}")

    start = scenario.initial.at if scenario.initial is not None else 0.0
    phases = {p.name for p in scenario.phases}
    faults: list[tuple[tuple[int | str, ...], FaultSpec]] = [(("faults", i), f) for i, f in enumerate(scenario.faults)]
    for p_index, phase in enumerate(scenario.phases):
        for s_index, step in enumerate(phase.steps):
            if isinstance(step, InjectFaultStep):
                faults.append((("phases", p_index, "steps", s_index, "inject_fault"), step.inject_fault))
    for r_index, response in enumerate(scenario.responses):
        if response.contingency is not None:
            faults.append((("responses", r_index, "contingency"), response.contingency))
    relay = _relay(profile)
    for loc, spec in faults:
        for text in _fault_problems(spec, start, phases, relay, profile.epoch):
            problem(loc, f"{spec.label or spec.kind}: {text}")
    for i, (loc_a, a) in enumerate(faults):
        for loc_b, b in faults[i + 1:]:
            if not composes(a, b):
                line_b = line_of(path, loc_b)
                problem(loc_a, f"{a.label or a.kind} conflicts with {b.label or b.kind} (line {line_b}): both act on "
                        f"{a.target} ({a.entry.aspect}) and do not compose")
    alarms = {f"{limit.node}.{limit.parameter}" for limit in profile.limits}
    alarms |= {f"service.{n}" for n in Node} | {"broker.link"}
    for r_index, response in enumerate(scenario.responses):
        on = response.symptom
        if on.alarm is not None and on.alarm not in alarms:
            problem(("responses", r_index, "symptom", "alarm"),
                    f"response {response.name!r} waits for alarm {on.alarm!r}, which nothing raises "
                    f"(limits give: {', '.join(sorted(alarms))})")
        if on.tm is not None and (tm_text := _tm_problem(on.tm)):
            problem(("responses", r_index, "symptom", "tm"), f"response {response.name!r}: {tm_text}")
    for o_index, objective in enumerate(scenario.objectives):
        if objective.phase is not None and objective.phase not in phases:
            problem(("objectives", o_index, "phase"), f"objective {objective.name!r}: no phase {objective.phase!r}")
        if objective.tm is not None and (tm_text := _tm_problem(objective.tm)):
            problem(("objectives", o_index, "tm"), f"objective {objective.name!r}: {tm_text}")
    return problems


def _tm_problem(spec: ExpectTmSpec | Any) -> str | None:
    known = housekeeping_parameters(spec.node)
    if spec.field not in known:
        return f"{spec.node} housekeeping has no parameter {spec.field!r}"
    return None


def _relay(profile: MissionProfile) -> SimRelayLink | None:
    config = profile.devices.get("relay")
    if config is None or config.backend != "sim":
        return None
    device = build_device("relay", "sim", config.params, 0, profile.epoch)
    return device if isinstance(device, SimRelayLink) else None


def _fault_problems(spec: FaultSpec, start: float, phases: set[str], relay: SimRelayLink | None,
                    epoch: float) -> list[str]:
    out = []
    entry = CATALOGUE[spec.kind]
    if entry.layer is FaultLayer.SENSOR:
        assert spec.item is not None
        if spec.item not in housekeeping_parameters(spec.node):
            out.append(f"{spec.node} housekeeping has no parameter {spec.item!r}: the fault could never show")
    elif not entry.reveals:
        out.append("no housekeeping parameter or event could reveal it")
    trigger = spec.trigger
    if trigger.probability == 0:
        out.append("probability 0: it can never fire")
    if trigger.phase is not None and trigger.phase not in phases:
        out.append(f"trigger waits for phase {trigger.phase!r}, which the scenario does not have")
    if trigger.at is not None and trigger.at < start:
        out.append(f"trigger at T+{format_mission_elapsed(trigger.at)} is before the drill starts "
                   f"(T+{format_mission_elapsed(start)})")
    if trigger.when_tm is not None:
        condition = trigger.when_tm
        if condition.node not in HOUSEKEEPING_OF or condition.node is Node.RELAY_SATELLITE:
            out.append(f"trigger watches {condition.node}, which has no far-side housekeeping")
        elif condition.field not in housekeeping_parameters(condition.node):
            out.append(f"trigger watches {condition.node}.{condition.field}, which its housekeeping does not have")
    if trigger.when_event is not None and trigger.when_event.node not in HOUSEKEEPING_OF:
        out.append(f"trigger waits for an event of {trigger.when_event.node}, which reports none")
    if trigger.before_los is not None:
        los = relay.next_loss_of_signal(epoch + start) if relay is not None else None
        if los is None:
            out.append("trigger is relative to the next loss of signal, but the relay has none ahead")
    return out
