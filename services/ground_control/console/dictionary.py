"""The mission dictionary a console is built from: every housekeeping parameter with its type, unit and
limits, and every command with its typed, ranged arguments. Read from the wire contract's models and the
mission profile, so it cannot drift from what actually flies (and close to what an Open MCT dictionary
plugin wants: keys, names, units, limits)."""

import enum
import types
import typing
from typing import Any

from pydantic import BaseModel

from lunar_gs.protocols.commands import COMMAND_CATALOG, Joint, is_hazardous
from lunar_gs.protocols.faults import LINKED_DEVICES
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.telemetry import (
    ENVELOPE_FIELDS,
    ArmHousekeeping,
    AscentHousekeeping,
    DeviceLinkReading,
    DrillHousekeeping,
    JointState,
    RelayHousekeeping,
    unit_of,
)
from lunar_gs.services.mission import MissionProfile

HOUSEKEEPING_OF: dict[Node, type[BaseModel]] = {
    Node.LANDER_DRILL: DrillHousekeeping,
    Node.LANDER_ARM: ArmHousekeeping,
    Node.ASCENT_VEHICLE: AscentHousekeeping,
    Node.RELAY_SATELLITE: RelayHousekeeping,
}
NAMED_ITEMS: dict[type[BaseModel], tuple[str, ...]] = {JointState: typing.get_args(Joint)}
"""List items a packet names (`elbow`): the names each list holds."""


def _kind(annotation: Any) -> tuple[str, list[str] | None]:
    """(`number` | `boolean` | `string`, choices) of a field's annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(inner[0]) if inner else ("string", None)
    if typing.get_origin(annotation) is typing.Literal:
        return "string", [str(a) for a in typing.get_args(annotation)]
    if annotation is bool:
        return "boolean", None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "string", [str(m.value) for m in annotation]
    if annotation in (int, float):
        return "number", None
    return "string", None


def parameters_of(node: Node, model: type[BaseModel], profile: MissionProfile) -> list[dict[str, Any]]:
    limits: dict[str, list[dict[str, Any]]] = {}
    for limit in profile.limits:
        if limit.node == node:
            limits.setdefault(limit.parameter, []).append(
                {"low": limit.low, "high": limit.high, "severity": str(limit.severity),
                 "when_mode": limit.when_mode, "when_true": limit.when_true})

    def entry(name: str, annotation: Any) -> dict[str, Any]:
        kind, choices = _kind(annotation)
        item = {"key": f"{node}.{name}", "node": str(node), "name": name, "type": kind, "unit": unit_of(name),
                "limits": limits.get(name, [])}
        if choices:
            item["choices"] = choices
        return item

    out = []
    for name, info in model.model_fields.items():
        if name in ENVELOPE_FIELDS:
            continue
        args = typing.get_args(info.annotation)
        item_model = args[0] if args and isinstance(args[0], type) and issubclass(args[0], BaseModel) else None
        if item_model is DeviceLinkReading:  # one entry per device of this node behind a link
            for device in (d for d in LINKED_DEVICES.get(node, ()) if d in profile.devices
                           and profile.devices[d].remote):
                out.extend(entry(f"{device}.{sub}", sub_info.annotation)
                           for sub, sub_info in item_model.model_fields.items() if sub != "name")
        elif item_model is not None and item_model in NAMED_ITEMS:
            for item_name in NAMED_ITEMS[item_model]:
                out.extend(entry(f"{item_name}.{sub}", sub_info.annotation)
                           for sub, sub_info in item_model.model_fields.items() if sub != "name")
        else:
            out.append(entry(name, info.annotation))
    return out


def _arguments(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type", "string")
        out.append({"name": name, "type": "number" if kind in ("number", "integer") else kind,
                    "integer": kind == "integer", "required": name in required,
                    "minimum": prop.get("minimum"), "maximum": prop.get("maximum"),
                    "default": prop.get("default"), "choices": prop.get("enum"), "unit": unit_of(name)})
    return out


def build_dictionary(mission: str, profile: MissionProfile, stale_after_s: float) -> dict[str, Any]:
    commands = [
        {"node": str(node), "name": name, "hazardous": is_hazardous(node, name),
         "args": _arguments(model.model_json_schema())}
        for node, catalogue in COMMAND_CATALOG.items() for name, model in catalogue.items()
    ]
    parameters = [p for node, model in HOUSEKEEPING_OF.items() for p in parameters_of(node, model, profile)]
    return {"mission": mission, "epoch": profile.epoch, "nodes": [str(n) for n in HOUSEKEEPING_OF],
            "parameters": parameters, "commands": commands, "stale_after_s": stale_after_s}
