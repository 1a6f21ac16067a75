"""What a test waits for: a condition says which messages it is about and whether one satisfies it.

A condition looks at each message heard (`Heard`) and answers None when the message is not about it (another
node, another parameter), or a `Sample`: the value it is about, and whether the predicate passes. That split
lets a failed wait tell the closest misses and the last values seen, and lets `always` tell a window with
no samples from one whose samples all passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from lunar_gs.protocols.codec import Message
from lunar_gs.protocols.events import Alarm, AlarmState, Event, Rejection, RejectionCode, Severity
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.telemetry import HousekeepingBase
from lunar_gs.protocols.topics import Channel, TopicError, parse_node_topic
from lunar_gs.protocols.verification import VerificationReport
from lunar_gs.testing.predicates import Predicate, anything, as_predicate

__all__ = ["Heard", "Sample", "Condition", "tm", "event", "alarm", "rejection", "verification", "on_topic",
           "parameter_value"]


@dataclass(frozen=True, slots=True)
class Heard:
    """One message as the test client received it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    message: Message | None
    """Decoded with the wire contract, or None when it is not a message of ours (or is malformed)."""
    sim_time: float | None
    """Mission clock when it arrived (simulated Unix seconds); None before the clock was known."""
    wall_time: float
    index: int
    """Its position in the client's history."""

    @property
    def stamp(self) -> float | None:
        """When it happened in mission time: the message's own stamp, else when it arrived."""
        return getattr(self.message, "sim_time", None) or self.sim_time


@dataclass(frozen=True, slots=True)
class Sample:
    """What a condition read from a message it is about."""

    value: Any
    passed: bool
    heard: Heard
    miss: float | None = None


class Condition(Protocol):
    def sample(self, heard: Heard) -> Sample | None:
        """None when `heard` is not about this condition; otherwise the value and whether it passes."""

    def describe(self) -> str: ...

    def fresh(self) -> Condition:
        """A copy whose predicate has no memory of earlier values."""


_MISSING = object()


def parameter_value(message: BaseModel, path: str) -> Any:
    """The value at a dotted path in a decoded message: `torque_nm`, `joints.0.angle_deg`, or a list item
    by its `name`: `joints.shoulder.angle_deg`. Raises KeyError when the path leads nowhere."""
    value: Any = message
    for part in path.split("."):
        if isinstance(value, BaseModel):
            value = getattr(value, part, _MISSING)
        elif isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list | tuple):
            if part.isdigit():
                index = int(part)
                value = value[index] if index < len(value) else _MISSING
            else:
                value = next((item for item in value if getattr(item, "name", None) == part), _MISSING)
        else:
            value = _MISSING
        if value is _MISSING:
            raise KeyError(f"{type(message).__name__} has no {path!r}")
    return value


def _judge(predicate: Predicate, value: Any, heard: Heard) -> Sample:
    passed = predicate(value)
    return Sample(value, passed, heard, 0.0 if passed else predicate.miss(value))


def _where(topic: str) -> tuple[Side, Node, Channel, str | None] | None:
    try:
        parsed = parse_node_topic(topic)
    except TopicError:
        return None
    return parsed.side, parsed.node, parsed.channel, parsed.packet


@dataclass
class TmCondition:
    node: Node
    parameter: str
    predicate: Predicate
    packet: str = "hk"
    side: Side = Side.GROUND

    def __post_init__(self) -> None:
        # the tail of the topic this parameter comes on (lgs/v1/{mission}/{side}/{node}/tm/{packet}): one
        # string comparison per message heard, which is what a `never` window costs per packet
        self._tail = f"/{self.side}/{self.node}/{Channel.TM}/{self.packet}"

    def sample(self, heard: Heard) -> Sample | None:
        message = heard.message
        if not isinstance(message, HousekeepingBase) or not heard.topic.endswith(self._tail):
            return None
        if self.parameter.split(".", 1)[0] in message.missing:
            return None  # a dropout: the packet says it carries no value for this parameter
        try:
            value = parameter_value(message, self.parameter)
        except KeyError:
            return None
        return _judge(self.predicate, value, heard)

    def describe(self) -> str:
        side = "" if self.side is Side.GROUND else f" (on the {self.side} side)"
        packet = "" if self.packet == "hk" else f" in packet {self.packet}"
        return f"{self.node}.{self.parameter} {self.predicate}{packet}{side}"

    def fresh(self) -> TmCondition:
        return TmCondition(self.node, self.parameter, self.predicate.fresh(), self.packet, self.side)


def tm(node: Node | str, parameter: str, where: Any = anything, *, packet: str = "hk",
       side: Side | str = Side.GROUND) -> TmCondition:
    """A telemetry parameter of a node, as ground receives it (after the relay) unless `side="space"`.

    `where` is a predicate (`gt(30)`), a plain value (equality) or a callable on the value.
    """
    return TmCondition(Node(node), parameter, as_predicate(where), packet, Side(side))


@dataclass
class EventCondition:
    name: str | None
    node: Node | None
    severity: Severity | None
    predicate: Predicate
    side: Side = Side.GROUND

    def sample(self, heard: Heard) -> Sample | None:
        message = heard.message
        if not isinstance(message, Event):
            return None
        if self.node is not None:
            where = _where(heard.topic)
            if where is None or where[:3] != (self.side, self.node, Channel.EV):
                return None
        elif not heard.topic.split("/")[3:4] == [str(self.side)] and "/sys/" not in heard.topic:
            return None
        if self.severity is not None and message.severity != self.severity:
            return None
        if self.name is not None and message.event != self.name:
            return Sample(message.event, False, heard)  # an event of the node, not the one awaited
        return _judge(self.predicate, message.data, heard) if self.predicate is not anything \
            else Sample(message, True, heard, 0.0)

    def describe(self) -> str:
        who = f"{self.node} " if self.node else ""
        what = f"event {self.name!r}" if self.name else "an event"
        severity = f" of severity {self.severity}" if self.severity else ""
        data = "" if self.predicate is anything else f" with data {self.predicate}"
        return f"{who}{what}{severity}{data}"

    def fresh(self) -> EventCondition:
        return EventCondition(self.name, self.node, self.severity, self.predicate.fresh(), self.side)


def event(name: str | None = None, *, node: Node | str | None = None, severity: Severity | str | None = None,
          data: Any = anything, side: Side | str = Side.GROUND) -> EventCondition:
    """An event of a node (as ground receives it), by name; `data` is a predicate on its data dict."""
    return EventCondition(name, Node(node) if node else None, Severity(severity) if severity else None,
                          as_predicate(data), Side(side))


@dataclass
class AlarmCondition:
    name: str | None
    parameter: str | None
    state: AlarmState

    def sample(self, heard: Heard) -> Sample | None:
        message = heard.message
        if not isinstance(message, Alarm):
            return None
        if self.name is not None and message.alarm != self.name:
            return None
        if self.parameter is not None and message.parameter != self.parameter:
            return None
        return Sample(message.state, message.state == self.state, heard)

    def describe(self) -> str:
        what = self.name or (f"on {self.parameter}" if self.parameter else "any")
        return f"alarm {what} {self.state}"

    def fresh(self) -> AlarmCondition:
        return self


def alarm(name: str | None = None, *, parameter: str | None = None,
          state: AlarmState | str = AlarmState.RAISED) -> AlarmCondition:
    """A ground-control alarm (`lander-drill.torque_nm`, or any alarm on a parameter), raised by default."""
    return AlarmCondition(name, parameter, AlarmState(state))


@dataclass
class RejectionCondition:
    code: RejectionCode | None
    topic_contains: str | None

    def sample(self, heard: Heard) -> Sample | None:
        message = heard.message
        if not isinstance(message, Rejection):
            return None
        if self.topic_contains is not None and self.topic_contains not in message.topic:
            return None
        return Sample(message.code, self.code is None or message.code == self.code, heard)

    def describe(self) -> str:
        code = self.code.name if self.code is not None else "any code"
        return f"a rejection with {code}" + (f" of a message on *{self.topic_contains}*"
                                             if self.topic_contains else "")

    def fresh(self) -> RejectionCondition:
        return self


def rejection(code: RejectionCode | int | None = None, *, topic_contains: str | None = None
              ) -> RejectionCondition:
    """A service rejected a message (with `code`, about a topic containing `topic_contains`)."""
    return RejectionCondition(RejectionCode(code) if code is not None else None, topic_contains)


@dataclass
class VerificationCondition:
    request_id: str
    predicate: Predicate = field(default_factory=lambda: anything)

    def sample(self, heard: Heard) -> Sample | None:
        message = heard.message
        if not isinstance(message, VerificationReport) or message.request_id != self.request_id:
            return None
        if "/ground/" not in heard.topic:
            return None
        return _judge(self.predicate, message, heard)

    def describe(self) -> str:
        return f"a verification report of {self.request_id} {self.predicate}"

    def fresh(self) -> VerificationCondition:
        return VerificationCondition(self.request_id, self.predicate.fresh())


def verification(request_id: str, where: Any = anything) -> VerificationCondition:
    """A verification report (as ground receives it) of one telecommand."""
    return VerificationCondition(request_id, as_predicate(where))


@dataclass
class TopicCondition:
    topic_filter: str
    predicate: Predicate
    _levels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._levels = tuple(self.topic_filter.split("/"))

    def matches_topic(self, topic: str) -> bool:
        levels = topic.split("/")
        for i, want in enumerate(self._levels):
            if want == "#":
                return True
            if i >= len(levels) or (want != "+" and want != levels[i]):
                return False
        return len(levels) == len(self._levels)

    def sample(self, heard: Heard) -> Sample | None:
        if not self.matches_topic(heard.topic):
            return None
        value = heard.message if heard.message is not None else heard.payload
        return _judge(self.predicate, value, heard)

    def describe(self) -> str:
        return f"a message on {self.topic_filter} {self.predicate}"

    def fresh(self) -> TopicCondition:
        return TopicCondition(self.topic_filter, self.predicate.fresh())


def on_topic(topic_filter: str, where: Any = anything) -> TopicCondition:
    """Any message on a topic (MQTT filter, `+` and `#`), e.g. the output of the handler under test.
    The predicate gets the decoded message when it is one of ours, else the payload bytes."""
    return TopicCondition(topic_filter, as_predicate(where))
