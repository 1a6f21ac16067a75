"""Codecs turn messages into bytes and back. JSON is the default: readable with any MQTT client."""

import json
from typing import Annotated, Protocol

from pydantic import Field, TypeAdapter, ValidationError

from lunar_gs.protocols.commands import CommandRequest, CommandUpdate, Telecommand
from lunar_gs.protocols.delivery import DeliveryReceipt
from lunar_gs.protocols.events import Alarm, Event, Rejection, RejectionCode
from lunar_gs.protocols.faults import ActiveFaults, FaultOrder, FaultRecord, FaultReport, FaultRequest
from lunar_gs.protocols.system import ClockState, ScenarioProgress, ServiceStatus
from lunar_gs.protocols.telemetry import (
    ArmHousekeeping,
    AscentHousekeeping,
    DrillHousekeeping,
    RelayHousekeeping,
)
from lunar_gs.protocols.verification import VerificationReport

Message = (
    DrillHousekeeping
    | ArmHousekeeping
    | AscentHousekeeping
    | RelayHousekeeping
    | Event
    | Alarm
    | Rejection
    | Telecommand
    | VerificationReport
    | ServiceStatus
    | ClockState
    | ScenarioProgress
    | DeliveryReceipt
    | FaultRequest
    | FaultOrder
    | FaultReport
    | FaultRecord
    | ActiveFaults
    | CommandRequest
    | CommandUpdate
)
MESSAGE_TYPES: tuple[type[Message], ...] = Message.__args__  # type: ignore[attr-defined]
SCHEMA_NAMES: frozenset[str] = frozenset(
    t.model_fields["schema_name"].default for t in MESSAGE_TYPES
)

_ADAPTER: TypeAdapter[Message] = TypeAdapter(Annotated[Message, Field(discriminator="schema_name")])


class DecodeError(ValueError):
    """Bytes that are not a valid message; `code` says how far decoding got."""

    def __init__(self, code: RejectionCode, reason: str, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.request_id = request_id


class Codec(Protocol):
    name: str

    def encode(self, message: Message) -> bytes: ...

    def decode(self, payload: bytes) -> Message: ...


def excerpt(payload: bytes, limit: int = 200) -> str:
    """A printable, bounded view of a payload for rejection reports."""
    text = payload[:limit].decode("utf-8", errors="backslashreplace")
    return text + ("…" if len(payload) > limit else "")


class JsonCodec:
    name = "json"

    def encode(self, message: Message) -> bytes:
        # the bytes model_dump_json() would give, without the str round trip
        return message.__pydantic_serializer__.to_json(message)

    def decode(self, payload: bytes) -> Message:
        # Fast path: pydantic parses and validates the JSON in one pass (no Python dict in between).
        # Anything it refuses goes through the step-by-step path below, which says why (MALFORMED,
        # UNKNOWN_SCHEMA or INVALID, with the request id when there is one).
        try:
            return _ADAPTER.validate_json(payload)
        except ValidationError:
            pass
        return self._decode_checked(payload)

    def _decode_checked(self, payload: bytes) -> Message:
        try:
            raw = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(RejectionCode.MALFORMED, f"not JSON: {exc}") from None
        except (RecursionError, ValueError) as exc:  # nesting too deep, integers too long to convert
            raise DecodeError(RejectionCode.MALFORMED, f"JSON beyond limits: {str(exc)[:200]}") from None
        if not isinstance(raw, dict):
            raise DecodeError(RejectionCode.MALFORMED, f"expected a JSON object, got {type(raw).__name__}")
        schema = raw.get("schema_name")
        request_id = raw.get("request_id") if isinstance(raw.get("request_id"), str) else None
        if not isinstance(schema, str) or schema not in SCHEMA_NAMES:
            raise DecodeError(
                RejectionCode.UNKNOWN_SCHEMA, f"unknown schema_name {schema!r}", request_id=request_id
            )
        try:
            return _ADAPTER.validate_python(raw)
        except RecursionError:
            raise DecodeError(RejectionCode.MALFORMED, "nested too deep", request_id=request_id) from None
        except ValidationError as exc:
            raise DecodeError(RejectionCode.INVALID, _summarise(exc), request_id=request_id) from None


def _summarise(error: ValidationError, most: int = 5) -> str:
    items = error.errors(include_url=False)
    lines = [f"{'.'.join(str(p) for p in e['loc'][1:]) or '(root)'}: {e['msg']}" for e in items[:most]]
    more = f" (+{len(items) - most} more)" if len(items) > most else ""
    return "; ".join(lines) + more


CODECS: dict[str, Codec] = {"json": JsonCodec()}


def get_codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODECS)}") from None
