"""Events: what a node reports on its own, the alarms ground control raises, and rejections."""

from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from annotated_types import MaxLen

from lunar_gs.protocols.envelope import Envelope

EventValue = str | int | float | bool


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Event(Envelope):
    """Something a node noticed: a phase reached, a limit hit, a mechanism moved."""

    schema_name: Literal["event"] = "event"
    event: Annotated[str, MaxLen(64)]
    severity: Severity = Severity.INFO
    message: Annotated[str, MaxLen(500)] = ""
    data: dict[str, EventValue] = {}


class RejectionCode(IntEnum):
    """Why a message was not accepted. Numbers are stable and go into reports."""

    MALFORMED = 1
    """Not decodable at all: bad bytes, bad JSON, wrong structure."""
    INVALID = 2
    """Decodable but fails validation (wrong types, out-of-range values)."""
    UNKNOWN_SCHEMA = 3
    UNKNOWN_COMMAND = 4
    INVALID_ARGUMENTS = 5
    WRONG_TOPIC = 6
    """A valid message on a topic where it has no business (e.g. TM on a TC topic)."""
    HANDLER_ERROR = 7
    """The service failed while handling it; the service itself keeps running."""


class Rejection(Envelope):
    """One message that could not be decoded, validated or handled. Never silent, never fatal."""

    schema_name: Literal["rejection"] = "rejection"
    topic: Annotated[str, MaxLen(512)]
    code: RejectionCode
    reason: Annotated[str, MaxLen(1000)]
    payload_excerpt: Annotated[str, MaxLen(300)] = ""
    request_id: Annotated[str, MaxLen(64)] | None = None


class AlarmState(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class Alarm(Envelope):
    """Raised by ground control when a TM parameter leaves its limits or a link or service is lost."""

    schema_name: Literal["alarm"] = "alarm"
    alarm: Annotated[str, MaxLen(128)]
    state: AlarmState
    severity: Severity = Severity.WARNING
    node: Annotated[str, MaxLen(64)] = ""
    parameter: Annotated[str, MaxLen(64)] = ""
    value: float | str | bool | None = None
    limit: float | None = None
    message: Annotated[str, MaxLen(500)] = ""


EVENT_STREAM = (Event, Rejection, Alarm)
"""Everything that travels on an `ev` topic."""
