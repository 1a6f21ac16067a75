"""Service state as versioned JSON: what a killed service resumes from, and what other tools can read.

Why not pickle: a pickle names private classes and cannot hold a device behind a socket; it cannot be read
without our code, nor checked against an edited profile. A snapshot file is one JSON object:

    {"schema": "lunar-gs.service-state", "version": 2, "node": "lander-drill",
     "saved_at": <wall time>, "state": <the service's own state>}

Inside `state`, plain JSON values stand for themselves; anything else is a one-key tagged object:
`{"$tuple": [...]}`, `{"$set": [...]}`, `{"$float": "inf"|"-inf"|"nan"}`, `{"$bytes": <base64>}`,
`{"$map": [[key, value], ...]}` (a dict with keys that are not strings, or that start with `$`),
`{"$random": <random.Random state>}`, `{"$deque": [...], "maxlen": n}`,
`{"$enum": "<module>:<class>", "value": v}`, `{"$model": "<module>:<class>", "json": {...}}` (a pydantic
model) and `{"$object": "<module>:<class>", "fields": {...}}` (a model or dataclass of ours: its fields).
Only classes of the `lunar_gs` package are rebuilt; a file naming any other class is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import json
import math
import random
from collections import deque
from typing import Any

from pydantic import BaseModel

SCHEMA = "lunar-gs.service-state"
VERSION = 2
_PACKAGE = "lunar_gs."


class SnapshotError(ValueError):
    """A snapshot that cannot be read back: another schema or version, or a class that is not ours."""


def _name(cls: type) -> str:
    if not cls.__module__.startswith(_PACKAGE):
        raise SnapshotError(f"cannot snapshot {cls.__module__}.{cls.__qualname__}: not a lunar_gs class")
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not module.startswith(_PACKAGE):
        raise SnapshotError(f"snapshot names {name!r}, not a lunar_gs class")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def encode(value: Any) -> Any:
    """`value` as JSON-ready data (see the module docstring for the tags)."""
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, enum.Enum) else _enum(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": str(value)}
    if isinstance(value, enum.Enum):
        return _enum(value)
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"$set": [encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, deque):
        return {"$deque": [encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, random.Random):
        return {"$random": encode(value.getstate())}
    if isinstance(value, BaseModel):
        return {"$model": _name(type(value)), "json": value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
        fields = vars(value) if hasattr(value, "__dict__") else {
            f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"$object": _name(type(value)), "fields": {k: encode(v) for k, v in fields.items()}}
    raise SnapshotError(f"cannot snapshot a {type(value).__name__}")


def _enum(value: enum.Enum) -> dict[str, Any]:
    return {"$enum": _name(type(value)), "value": value.value}


def decode(data: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "$float" in data:
        return float(data["$float"])
    if "$tuple" in data:
        return tuple(decode(v) for v in data["$tuple"])
    if "$set" in data:
        return {decode(v) for v in data["$set"]}
    if "$deque" in data:
        return deque((decode(v) for v in data["$deque"]), maxlen=data.get("maxlen"))
    if "$bytes" in data:
        return base64.b64decode(data["$bytes"])
    if "$map" in data:
        return {decode(k): decode(v) for k, v in data["$map"]}
    if "$random" in data:
        rng = random.Random()
        rng.setstate(_tuples(decode(data["$random"])))
        return rng
    if "$enum" in data:
        return _class(data["$enum"])(data["value"])
    if "$model" in data:
        model = _class(data["$model"])
        assert issubclass(model, BaseModel)
        return model.model_validate(data["json"])
    if "$object" in data:
        cls = _class(data["$object"])
        obj = object.__new__(cls)
        for key, value in data["fields"].items():
            object.__setattr__(obj, key, decode(value))
        return obj
    return {k: decode(v) for k, v in data.items()}


def _tuples(value: Any) -> Any:
    """random.setstate wants nested tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def dumps(node: str, state: Any, saved_at: float) -> str:
    return json.dumps({"schema": SCHEMA, "version": VERSION, "node": node, "saved_at": saved_at,
                       "state": encode(state)}, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    """The service state in `text`; SnapshotError for another schema, version or an unknown class."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise SnapshotError(f"not a {SCHEMA} document")
    if document.get("version") != VERSION:
        raise SnapshotError(f"{SCHEMA} version {document.get('version')!r}; this build reads version {VERSION}")
    try:
        return decode(document["state"])
    except (AttributeError, ImportError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"cannot rebuild the state: {exc}") from None
