"""Hypothesis strategies for every message of the wire contract, and for payloads ground control refuses.

Valid messages are valid by construction: each field is drawn from its pydantic annotation and the
`annotated_types` bounds on it (`Ge`, `Gt`, `Le`, `Lt`, `MinLen`, `MaxLen`), so the strategies follow the
models when those change. Every drawn message passes model validation and round-trips exactly through
`JsonCodec` (encode, then decode, gives an equal model). What an annotation cannot say is taken from the
contract's own tables: a telecommand's command and arguments from `COMMAND_CATALOG`, a fault's target and
parameters from the fault `CATALOGUE`, a housekeeping packet's `missing` names from its own fields.

Where the contract says who sends a message, the strategy says so too (a drill packet comes from
`lander-drill`, a telecommand and a clock from `ground-control`, fault orders from the `instructor`), so a
drawn message is also one its topic's owner would accept. Everything else spans what the contract
allows: any finite float, text of any Unicode (short), integers without an upper bound within 64 bits
(what SQLite and CCSDS fields hold).

    import pytest
    from hypothesis import given
    from lunar_gs.protocols.codec import DecodeError, JsonCodec
    from lunar_gs.testing import strategies

    @given(strategies.housekeeping("lander-drill"))
    def test_my_handler_takes_any_drill_packet(packet):
        assert my_handler(packet) is not None

    @given(strategies.invalid_payloads())
    def test_my_decoder_refuses_what_ground_control_refuses(bad):
        with pytest.raises(DecodeError) as caught:
            JsonCodec().decode(bad.payload)
        assert caught.value.code is bad.code, bad.label

Invalid payloads (`invalid_payloads`) are labelled with the `RejectionCode` that `JsonCodec.decode` gives
them, which is the code of the `Rejection` ground control (or any service) publishes for them on any
topic it owns (`ServiceRuntime.decode`). `DEFECT_CODES` is the whole mapping. Not in it, on purpose:

- an empty payload: MALFORMED on most topics, but on a retained topic (status, clock) it only clears the
  retained message and nobody rejects it;
- a valid message in UTF-16 or UTF-32 with a byte-order mark: `json.loads` detects the encoding, so the
  codec accepts it (it is not "non-UTF-8" in the sense of MALFORMED); the NOT_UTF8 payloads here carry
  bytes that no decoding accepts;
- UTF-8-encoded surrogates (`ED A0 80`): `json.loads` decodes them (surrogatepass) and validation then
  refuses the string: INVALID, not MALFORMED;
- telecommands whose command the node lacks or whose arguments are out of range: the codec decodes them
  (arguments are a free dictionary on the wire); the addressed device node refuses them at acceptance.
  `refused_telecommands` draws those, with the node's rejection code and the verification failure code.

This module is pure (no I/O, no asyncio): hypothesis, pydantic and `lunar_gs.protocols` only.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum, IntEnum, StrEnum
from functools import cache
from typing import Annotated, Any, Literal, TypeAlias, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from lunar_gs.protocols.codec import MESSAGE_TYPES, SCHEMA_NAMES, JsonCodec, Message
from lunar_gs.protocols.commands import COMMAND_CATALOG, ArgValue, CommandArgs, Joint, Telecommand
from lunar_gs.protocols.delivery import RELIABLE_RECEIVERS, DeliveryReceipt
from lunar_gs.protocols.envelope import SCHEMA_VERSION, Envelope
from lunar_gs.protocols.events import Alarm, Event, Rejection, RejectionCode
from lunar_gs.protocols.faults import (
    CATALOGUE,
    LINK_DIRECTIONS,
    LINKED_DEVICES,
    THERMAL_COMPONENTS,
    ActiveFault,
    ActiveFaults,
    FaultAction,
    FaultKind,
    FaultOrder,
    FaultRecord,
    FaultReport,
    FaultRequest,
    FaultSpec,
    TargetItem,
    Trigger,
)
from lunar_gs.protocols.nodes import FAR_SIDE_NODES, Node
from lunar_gs.protocols.system import ClockState, ScenarioProgress, ServiceStatus
from lunar_gs.protocols.telemetry import (
    ArmHousekeeping,
    AscentHousekeeping,
    DrillHousekeeping,
    Housekeeping,
    HousekeepingBase,
    JointState,
    RelayHousekeeping,
)
from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport

__all__ = [
    "DEFECT_CODES",
    "Defect",
    "InvalidPayload",
    "REFUSAL_CODES",
    "Refusal",
    "RefusedCommand",
    "active_faults",
    "alarms",
    "arm_housekeeping",
    "ascent_housekeeping",
    "clock_states",
    "command_args",
    "delivery_receipts",
    "drill_housekeeping",
    "events",
    "fault_messages",
    "fault_orders",
    "fault_records",
    "fault_reports",
    "fault_requests",
    "fault_specs",
    "for_model",
    "housekeeping",
    "invalid_payloads",
    "messages",
    "refused_telecommands",
    "rejections",
    "relay_housekeeping",
    "scenario_progress",
    "service_statuses",
    "telecommands",
    "verification_reports",
]

_CODEC = JsonCodec()
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
"""Integers the contract leaves unbounded are drawn within 64 bits. (A `seq` of 2**63 or more decodes,
but ground control's SQLite archive cannot store it.)"""
_TEXT_MAX = 24
"""Longest text drawn for a field whose own maximum is larger (or absent): long enough to hold any
character class, short enough to keep examples readable."""
_ITEMS_MAX = 4
"""Most items drawn into a list, tuple or dictionary whose own maximum is larger."""


# -- reading annotations -------------------------------------------------------------------------------

def _flat_metadata(metadata: Iterable[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for item in metadata:
        out.extend(item.metadata if isinstance(item, FieldInfo) else (item,))
    return tuple(out)


def _bound(metadata: Iterable[Any], name: str) -> Any:
    return next((getattr(m, name) for m in metadata if getattr(m, name, None) is not None), None)


def _members(annotation: Any, metadata: tuple[Any, ...] = ()) -> list[tuple[Any, tuple[Any, ...]]]:
    """The alternatives of a (possibly optional, possibly annotated) type, each with its own bounds."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return _members(base, metadata + _flat_metadata(extra))
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg, metadata)]
    return [(annotation, metadata)]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _element_type(annotation: Any) -> Any:
    """The item type of `tuple[X, ...]` or `list[X]`, else None."""
    if get_origin(annotation) in (tuple, list):
        return get_args(annotation)[0]
    return None


# -- valid values from annotations -----------------------------------------------------------------------

def _value_strategy(annotation: Any, metadata: tuple[Any, ...] = ()) -> st.SearchStrategy[Any]:
    """Valid values of one annotated type: bounds from `annotated_types` metadata, as pydantic reads them."""
    members = _members(annotation, _flat_metadata(metadata))
    if len(members) > 1:
        return st.one_of([_value_strategy(t, m) for t, m in members])
    annotation, metadata = members[0]
    origin = get_origin(annotation)
    if annotation is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return st.sampled_from(list(annotation))
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        gt, lt = _bound(metadata, "gt"), _bound(metadata, "lt")
        low = _bound(metadata, "ge") if gt is None else gt + 1
        high = _bound(metadata, "le") if lt is None else lt - 1
        return st.integers(_INT_MIN if low is None else low, _INT_MAX if high is None else high)
    if annotation is float:
        gt, lt = _bound(metadata, "gt"), _bound(metadata, "lt")
        return st.floats(
            min_value=_bound(metadata, "ge") if gt is None else gt,
            max_value=_bound(metadata, "le") if lt is None else lt,
            exclude_min=gt is not None, exclude_max=lt is not None,
            allow_nan=False, allow_infinity=False,
        )
    if annotation is str:
        low = _bound(metadata, "min_length") or 0
        high = _bound(metadata, "max_length")
        return st.text(min_size=low, max_size=max(low, min(_TEXT_MAX, _TEXT_MAX if high is None else high)))
    if origin in (tuple, list):
        items = _value_strategy(_element_type(annotation))
        low = _bound(metadata, "min_length") or 0
        high = min(_ITEMS_MAX, _bound(metadata, "max_length") or _ITEMS_MAX)
        drawn = st.lists(items, min_size=low, max_size=max(low, high))
        return drawn.map(tuple) if origin is tuple else drawn
    if origin is dict:
        key_type, value_type = get_args(annotation)
        return st.dictionaries(_value_strategy(key_type), _value_strategy(value_type), max_size=_ITEMS_MAX)
    if _is_model(annotation):
        return for_model(annotation)
    raise TypeError(f"no strategy for {annotation!r}: teach lunar_gs.testing.strategies this type")


def _fields(model: type[BaseModel], overrides: Mapping[str, st.SearchStrategy[Any]]
            ) -> dict[str, st.SearchStrategy[Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        if name == "schema_name":
            continue  # the discriminator: its default is the model's own name
        if name in overrides:
            fields[name] = overrides[name]
        elif name == "schema_version" and issubclass(model, Envelope):
            fields[name] = st.just(SCHEMA_VERSION)
        else:
            fields[name] = _value_strategy(info.annotation, tuple(info.metadata))
    return fields


def _builds(model: type[BaseModel], **overrides: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Instances of `model`, every field drawn from its annotation unless overridden."""
    return st.builds(model, **_fields(model, overrides))


def _source(*nodes: Node) -> st.SearchStrategy[Node]:
    return st.sampled_from(nodes)


# -- housekeeping ---------------------------------------------------------------------------------------

_HOUSEKEEPING_MODELS: tuple[type[HousekeepingBase], ...] = get_args(Housekeeping)
_HOUSEKEEPING_OF: dict[Node, type[HousekeepingBase]] = {
    Node(m.model_fields["schema_name"].default.split(".")[1]): m for m in _HOUSEKEEPING_MODELS
}
"""Each node's housekeeping model, read off the schema names (`tm.{node}.hk`)."""


def _measurements(model: type[HousekeepingBase]) -> list[str]:
    """The parameters of a packet (what `missing` may name): its fields beyond the common ones."""
    return [n for n in model.model_fields if n not in HousekeepingBase.model_fields and n != "schema_name"]


def _joints() -> st.SearchStrategy[JointState]:
    return _builds(JointState, name=st.sampled_from(get_args(Joint)))


def _housekeeping_of(model: type[HousekeepingBase]) -> st.SearchStrategy[Housekeeping]:
    node = next(n for n, m in _HOUSEKEEPING_OF.items() if m is model)
    names = _measurements(model)
    limit = _bound(HousekeepingBase.model_fields["missing"].metadata, "max_length") or len(names)
    overrides: dict[str, st.SearchStrategy[Any]] = {
        "source": st.just(node),
        "missing": st.lists(st.sampled_from(names), unique=True, max_size=min(limit, len(names))).map(tuple),
    }
    if "joints" in model.model_fields:
        limit = _bound(model.model_fields["joints"].metadata, "max_length") or _ITEMS_MAX
        overrides["joints"] = st.lists(_joints(), max_size=min(limit, len(get_args(Joint)))).map(tuple)
    return _builds(model, **overrides)


def drill_housekeeping() -> st.SearchStrategy[DrillHousekeeping]:
    """`DrillHousekeeping` packets from `lander-drill`, every reading within its declared range."""
    return _housekeeping_of(DrillHousekeeping)


def arm_housekeeping() -> st.SearchStrategy[ArmHousekeeping]:
    """`ArmHousekeeping` packets from `lander-arm`, with up to five joints named as the arm's joints."""
    return _housekeeping_of(ArmHousekeeping)


def ascent_housekeeping() -> st.SearchStrategy[AscentHousekeeping]:
    """`AscentHousekeeping` packets from `ascent-vehicle`."""
    return _housekeeping_of(AscentHousekeeping)


def relay_housekeeping() -> st.SearchStrategy[RelayHousekeeping]:
    """`RelayHousekeeping` packets from `relay-satellite`."""
    return _housekeeping_of(RelayHousekeeping)


def housekeeping(node: Node | str | None = None) -> st.SearchStrategy[Housekeeping]:
    """Housekeeping packets of `node` (a node name or `Node`), or of any node that has housekeeping."""
    if node is None:
        return st.sampled_from(_HOUSEKEEPING_MODELS).flatmap(_housekeeping_of)
    try:
        model = _HOUSEKEEPING_OF[Node(node)]
    except (ValueError, KeyError):
        known = ", ".join(_HOUSEKEEPING_OF)
        raise ValueError(f"{node!r} has no housekeeping packet (nodes with one: {known})") from None
    return _housekeeping_of(model)


# -- telecommands and their verification -------------------------------------------------------------------

_COMMANDED_NODES = tuple(n for n, commands in COMMAND_CATALOG.items() if commands)


def _commanded_node(node: Node | str | None) -> tuple[Node, ...]:
    if node is None:
        return _COMMANDED_NODES
    if Node(node) not in _COMMANDED_NODES:
        raise ValueError(f"{node!r} takes no telecommands (nodes that do: {', '.join(_COMMANDED_NODES)})")
    return (Node(node),)


def _args_model(node: Node, command: str) -> type[CommandArgs]:
    try:
        return COMMAND_CATALOG[node][command]
    except KeyError:
        known = ", ".join(sorted(COMMAND_CATALOG[node]))
        raise ValueError(f"{node} has no command {command!r} (known: {known})") from None


def command_args(node: Node | str, command: str) -> st.SearchStrategy[dict[str, ArgValue]]:
    """Valid arguments of one catalogue command: every required argument, each optional one or not, every
    value within its range, as a telecommand carries them (a dictionary of scalars)."""
    model = _args_model(Node(node), command)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        values = _value_strategy(info.annotation, tuple(info.metadata))
        (required if info.is_required() else optional)[name] = values
    return st.fixed_dictionaries(required, optional=optional)


def telecommands(node: Node | str | None = None, command: str | None = None
                 ) -> st.SearchStrategy[Telecommand]:
    """Telecommands from ground control that the addressed node accepts: a command of its catalogue
    (`command`, or any of them) with valid, in-range arguments, to `node` or to any commanded node.

    `expires_at` is any finite time or None, as the contract allows: through the relay, one in the past is
    dropped as expired. Request ids are drawn, so two examples may share one; a node takes a repeated
    request id as a re-send and ignores it.
    """
    nodes = _commanded_node(node)
    if command is not None:
        for each in nodes:
            _args_model(each, command)

    def of(target: Node, name: str) -> st.SearchStrategy[Telecommand]:
        return _builds(Telecommand, source=st.just(Node.GROUND_CONTROL), target=st.just(target),
                       command=st.just(name), args=command_args(target, name))

    def of_node(target: Node) -> st.SearchStrategy[Telecommand]:
        names = [command] if command is not None else sorted(COMMAND_CATALOG[target])
        return st.sampled_from(names).flatmap(lambda name: of(target, name))

    # sampled_from, not one_of: one_of flattens nested alternatives, and a node with many commands (or a
    # message type with many branches inside messages()) would crowd out the rest
    return st.sampled_from(nodes).flatmap(of_node)


@st.composite
def _verification(draw: st.DrawFn, nodes: tuple[Node, ...]) -> VerificationReport:
    node = draw(st.sampled_from(nodes))
    stage = draw(st.sampled_from(list(Stage)))
    success = draw(st.booleans())
    fields = _fields(VerificationReport, {
        "source": st.just(node),
        "command": st.sampled_from(sorted(COMMAND_CATALOG[node])),
        "stage": st.just(stage),
        "success": st.just(success),
        "failure_code": st.none() if success else st.sampled_from(list(FailureCode)),
        "progress_step": _value_strategy(int, (*VerificationReport.model_fields["progress_step"].metadata,))
        if stage is Stage.PROGRESS else st.just(0),
        "reason": st.just("") if success else _value_strategy(str, tuple(
            VerificationReport.model_fields["reason"].metadata)),
    })
    return VerificationReport(**{name: draw(values) for name, values in fields.items()})


def verification_reports(node: Node | str | None = None) -> st.SearchStrategy[VerificationReport]:
    """PUS-1 verification reports from a commanded node (`node`, or any), for one of its commands: a
    failure carries a failure code and a reason, a success neither; only progress reports count steps."""
    return _verification(_commanded_node(node))


# -- events and system messages -----------------------------------------------------------------------------

def events() -> st.SearchStrategy[Event]:
    """Events from any node, with any severity and scalar data."""
    return _builds(Event)


def alarms() -> st.SearchStrategy[Alarm]:
    """Alarms, raised or cleared by ground control."""
    return _builds(Alarm, source=st.just(Node.GROUND_CONTROL))


def rejections() -> st.SearchStrategy[Rejection]:
    """Rejection events from any service, with any rejection code."""
    return _builds(Rejection)


def service_statuses() -> st.SearchStrategy[ServiceStatus]:
    """Service liveness (`online` or `offline`) of any node, with backends and counters."""
    return _builds(ServiceStatus)


def clock_states() -> st.SearchStrategy[ClockState]:
    """The mission clock as ground control publishes it: any epoch and anchors, a positive rate."""
    return _builds(ClockState, source=st.just(Node.GROUND_CONTROL))


def scenario_progress() -> st.SearchStrategy[ScenarioProgress]:
    """Scenario progress as ground control publishes it."""
    return _builds(ScenarioProgress, source=st.just(Node.GROUND_CONTROL))


_RECEIPT_STREAMS = [(source, channel, receiver) for (source, channel), receivers in RELIABLE_RECEIVERS.items()
                    for receiver in sorted(receivers)]


def delivery_receipts() -> st.SearchStrategy[DeliveryReceipt]:
    """Receipts from a receiver of a reliable stream to that stream's source (`RELIABLE_RECEIVERS`)."""
    def of(stream: tuple[Node, Any, Node]) -> st.SearchStrategy[DeliveryReceipt]:
        source, channel, receiver = stream
        return _builds(DeliveryReceipt, source=st.just(receiver), stream_source=st.just(source),
                       channel=st.just(channel.value))
    return st.sampled_from(_RECEIPT_STREAMS).flatmap(of)


# -- faults -------------------------------------------------------------------------------------------------

def _non_null(model: type[BaseModel], name: str) -> st.SearchStrategy[Any]:
    """Valid values of one field of `model`, None left out."""
    info = model.model_fields[name]
    members = [(t, m) for t, m in _members(info.annotation, tuple(info.metadata)) if t is not type(None)]
    return st.one_of([_value_strategy(t, m) for t, m in members])


def _fault_params(kind: FaultKind) -> st.SearchStrategy[dict[str, Any]]:
    """Parameters of a kind as a request carries them: required ones always, optional ones or not, all in
    range. A kind's own cross-checks (a model validator, e.g. a drift rate other than 0) are not in its
    annotations: drawn values that fail them are filtered out."""
    model = CATALOGUE[kind].params
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        values = _non_null(model, name)  # on the wire a parameter is a scalar, never None
        (required if info.is_required() else optional)[name] = values
    return st.fixed_dictionaries(required, optional=optional).filter(lambda p: _accepts(model, p))


def _accepts(model: type[BaseModel], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
    except ValueError:  # pydantic's ValidationError is one
        return False
    return True


def _fault_targets(kind: FaultKind) -> st.SearchStrategy[str]:
    entry = CATALOGUE[kind]

    def of(node: Node) -> st.SearchStrategy[str]:
        if entry.item is TargetItem.NONE:
            return st.just(str(node))
        if entry.item is TargetItem.JOINT:
            items: list[str] = list(get_args(Joint))
        elif entry.item is TargetItem.COMPONENT:
            items = list(THERMAL_COMPONENTS[node])
        elif entry.item is TargetItem.DEVICE:
            items = list(LINKED_DEVICES[node])
        elif entry.item is TargetItem.DIRECTION:
            items = list(LINK_DIRECTIONS)
        else:  # a housekeeping parameter of the node
            items = _measurements(_HOUSEKEEPING_OF[node])
        return st.sampled_from(items).map(lambda item: f"{node}.{item}")

    nodes = [n for n in entry.nodes if entry.item is not TargetItem.COMPONENT or THERMAL_COMPONENTS.get(n)]
    return st.sampled_from(nodes).flatmap(of)


def _triggers() -> st.SearchStrategy[Trigger]:
    """At most one condition (the trigger's own rule), with or without a probability."""
    conditions = [n for n in Trigger.model_fields if n != "probability"]
    probability = _value_strategy(Trigger.model_fields["probability"].annotation,
                                  tuple(Trigger.model_fields["probability"].metadata))
    one = st.sampled_from(conditions).flatmap(lambda name: _non_null(Trigger, name).map(lambda v: {name: v}))
    return st.builds(lambda condition, p: Trigger(**condition, probability=p),
                     st.just({}) | one, probability)


def fault_specs(kind: FaultKind | str | None = None) -> st.SearchStrategy[FaultSpec]:
    """Faults of `kind` (or any kind) as an instructor asks for them: a target of the form the catalogue
    gives the kind, parameters in range, a trigger with at most one condition, any duration and label."""
    kinds = list(FaultKind) if kind is None else [FaultKind(kind)]

    def of(each: FaultKind) -> st.SearchStrategy[FaultSpec]:
        return _builds(FaultSpec, kind=st.just(each), target=_fault_targets(each), params=_fault_params(each),
                       trigger=_triggers())

    return st.sampled_from(kinds).flatmap(of)


def fault_requests() -> st.SearchStrategy[FaultRequest]:
    """Requests to the instructor service: inject (with a spec), clear (with a fault id) or clear all."""
    ids = _non_null(FaultRequest, "fault_id").filter(bool)  # a clear needs a fault id (the request's rule)
    return st.one_of(
        _builds(FaultRequest, action=st.just(FaultAction.INJECT), spec=fault_specs()),
        _builds(FaultRequest, action=st.just(FaultAction.CLEAR), spec=st.none(), fault_id=ids),
        _builds(FaultRequest, action=st.just(FaultAction.CLEAR_ALL), spec=st.none()),
    )


def fault_orders() -> st.SearchStrategy[FaultOrder]:
    """Orders from the instructor service to a node: a catalogue fault's kind, target and parameters."""
    return fault_specs().flatmap(lambda spec: _builds(
        FaultOrder, source=st.just(Node.INSTRUCTOR), kind=st.just(spec.kind), target=st.just(spec.target),
        params=st.just(dict(spec.params))))


def fault_reports() -> st.SearchStrategy[FaultReport]:
    """What a fault did, reported by a node that hosts faults (a far-side node or the relay)."""
    return _builds(FaultReport, source=_source(*FAR_SIDE_NODES, Node.RELAY_SATELLITE))


def fault_records() -> st.SearchStrategy[FaultRecord]:
    """Lines of the instructor's ground-truth log, for a catalogue fault or for none (e.g. a rejection)."""
    def of(spec: FaultSpec | None) -> st.SearchStrategy[FaultRecord]:
        if spec is None:
            return _builds(FaultRecord, source=st.just(Node.INSTRUCTOR), kind=st.none(), target=st.just(""),
                           params=st.just({}))
        return _builds(FaultRecord, source=st.just(Node.INSTRUCTOR), kind=st.just(spec.kind),
                       target=st.just(spec.target), params=st.just(dict(spec.params)),
                       label=st.just(spec.label))
    return st.one_of(st.none(), fault_specs()).flatmap(of)


def _active_fault() -> st.SearchStrategy[ActiveFault]:
    return fault_specs().flatmap(lambda spec: _builds(
        ActiveFault, kind=st.just(spec.kind), target=st.just(spec.target), params=st.just(dict(spec.params)),
        label=st.just(spec.label), trigger=st.just(spec.trigger.describe())))


def active_faults() -> st.SearchStrategy[ActiveFaults]:
    """The instructor's retained list of armed and active faults (a few)."""
    limit = _bound(ActiveFaults.model_fields["faults"].metadata, "max_length") or _ITEMS_MAX
    return _builds(ActiveFaults, source=st.just(Node.INSTRUCTOR),
                   faults=st.lists(_active_fault(), max_size=min(limit, _ITEMS_MAX)))


FaultMessage: TypeAlias = FaultRequest | FaultOrder | FaultReport | FaultRecord | ActiveFaults


def fault_messages() -> st.SearchStrategy[FaultMessage]:
    """Any of the fault messages: requests, orders, reports, ground-truth records, the active list."""
    return st.one_of(fault_requests(), fault_orders(), fault_reports(), fault_records(), active_faults())


# -- any message --------------------------------------------------------------------------------------------

_NAMED: dict[type[BaseModel], Callable[[], st.SearchStrategy[Any]]] = {
    DrillHousekeeping: drill_housekeeping,
    ArmHousekeeping: arm_housekeeping,
    AscentHousekeeping: ascent_housekeeping,
    RelayHousekeeping: relay_housekeeping,
    Telecommand: telecommands,
    VerificationReport: verification_reports,
    Event: events,
    Alarm: alarms,
    Rejection: rejections,
    ServiceStatus: service_statuses,
    ClockState: clock_states,
    ScenarioProgress: scenario_progress,
    DeliveryReceipt: delivery_receipts,
    FaultRequest: fault_requests,
    FaultOrder: fault_orders,
    FaultReport: fault_reports,
    FaultRecord: fault_records,
    ActiveFaults: active_faults,
    FaultSpec: fault_specs,
    Trigger: _triggers,
    JointState: _joints,
    ActiveFault: _active_fault,
}


@cache
def for_model(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Valid instances of any model of the contract: its named strategy above, or, for a model this module
    does not know yet, one drawn field by field from its annotations (a model validator the annotations
    do not show may then refuse some draws)."""
    named = _NAMED.get(model)
    return named() if named is not None else st.deferred(lambda: _builds(model))


def messages() -> st.SearchStrategy[Message]:
    """Any message of the wire contract (every type the codec knows, `codec.MESSAGE_TYPES`)."""
    return st.sampled_from(MESSAGE_TYPES).flatmap(for_model)  # each type as likely as any other


# -- invalid payloads --------------------------------------------------------------------------------------

class Defect(StrEnum):
    """What is wrong with an invalid payload."""

    OUT_OF_RANGE = "out_of_range"
    """A value outside its declared bounds: a number past `ge`/`gt`/`le`/`lt`, text or a list past its
    length limits, a name that is not one of the allowed values."""
    NOT_FINITE = "not_finite"
    """`NaN` or `Infinity` in a float field (not standard JSON, but Python's parser takes it)."""
    WRONG_TYPE = "wrong_type"
    """A value of a JSON type the field cannot take, even with pydantic's lax coercions."""
    MISSING_FIELD = "missing_field"
    UNEXPECTED_FIELD = "unexpected_field"
    """A field the model does not have (every model forbids extra fields)."""
    UNKNOWN_SCHEMA = "unknown_schema"
    """`schema_name` that names no model, or is not a string."""
    MISSING_SCHEMA = "missing_schema"
    TRUNCATED = "truncated"
    """A valid message cut short."""
    NOT_UTF8 = "not_utf8"
    """A valid message with a byte no decoding accepts (0x80-0xBF alone, 0xC0, 0xC1, 0xF5-0xFF)."""
    NOT_JSON = "not_json"
    """Text that is no JSON at all (a message's repr, plain words)."""
    NOT_OBJECT = "not_object"
    """JSON that is not an object: a message in an array, a message encoded twice, a bare value."""


DEFECT_CODES: Mapping[Defect, RejectionCode] = types.MappingProxyType({
    Defect.OUT_OF_RANGE: RejectionCode.INVALID,
    Defect.NOT_FINITE: RejectionCode.INVALID,
    Defect.WRONG_TYPE: RejectionCode.INVALID,
    Defect.MISSING_FIELD: RejectionCode.INVALID,
    Defect.UNEXPECTED_FIELD: RejectionCode.INVALID,
    Defect.UNKNOWN_SCHEMA: RejectionCode.UNKNOWN_SCHEMA,
    Defect.MISSING_SCHEMA: RejectionCode.UNKNOWN_SCHEMA,
    Defect.TRUNCATED: RejectionCode.MALFORMED,
    Defect.NOT_UTF8: RejectionCode.MALFORMED,
    Defect.NOT_JSON: RejectionCode.MALFORMED,
    Defect.NOT_OBJECT: RejectionCode.MALFORMED,
})
"""The code `JsonCodec.decode` (so ground control's rejection) gives each defect."""


@dataclass(frozen=True, repr=False)
class InvalidPayload:
    """A payload ground control must refuse, and how."""

    payload: bytes
    code: RejectionCode
    """The code of the rejection: `DecodeError.code`, and `Rejection.code` on the bus."""
    defect: Defect
    label: str
    """What is wrong, for people (`depth_m = -0.5: must be >= 0.0`)."""
    model: type[BaseModel] | None
    """The message model the payload was made from (None for text made from no message)."""
    request_id: str | None = None
    """The request id the rejection carries (the codec reads it from any JSON object that has one)."""

    def __repr__(self) -> str:
        shown = self.payload[:120]
        more = f"...+{len(self.payload) - len(shown)} bytes" if len(self.payload) > len(shown) else ""
        model = self.model.__name__ if self.model is not None else None
        return (f"InvalidPayload({self.defect}, {self.code.name}, {self.label!r}, model={model}, "
                f"payload={shown!r}{more})")


def _document(message: BaseModel) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(_CODEC.encode(message))  # type: ignore[arg-type]
    return decoded


def _dumps(value: Any) -> bytes:
    """JSON as the codec reads it; NaN and Infinity as Python writes them (only NOT_FINITE has any)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode()


def _path_text(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _short(value: Any, most: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} chars)"


@dataclass(frozen=True)
class _Slot:
    """One field at one place of a message document."""

    path: tuple[str | int, ...]
    annotation: Any
    metadata: tuple[Any, ...]
    required: bool


def _submodel(model: type[BaseModel], name: str, annotation: Any, owner: dict[str, Any]
              ) -> type[BaseModel] | None:
    """The model a nested object of this field is validated against, if any.

    A fault spec's `params` are a free dictionary in the annotation but are checked against the kind's
    parameter model by the spec's validator: the codec refuses bad ones, so they are walked like a model.
    (A telecommand's `args` are checked only by the node: not walked.)"""
    if model is FaultSpec and name == "params":
        try:
            return CATALOGUE[FaultKind(owner.get("kind"))].params
        except ValueError:
            return None
    return next((t for t, _ in _members(annotation) if _is_model(t)), None)


def _objects(model: type[BaseModel], doc: dict[str, Any], path: tuple[str | int, ...] = ()
             ) -> Iterator[tuple[tuple[str | int, ...], type[BaseModel]]]:
    """Every object of a document that a model validates, with its path and model (the root first)."""
    yield path, model
    for name, info in model.model_fields.items():
        value = doc.get(name)
        element = next((_element_type(t) for t, _ in _members(info.annotation) if _element_type(t)), None)
        sub = _submodel(model, name, info.annotation, doc)
        if sub is not None and isinstance(value, dict):
            yield from _objects(sub, value, (*path, name))
        elif element is not None and _is_model(element) and isinstance(value, list) and value \
                and isinstance(value[0], dict):
            yield from _objects(element, value[0], (*path, name, 0))


def _slots(model: type[BaseModel], doc: dict[str, Any]) -> list[_Slot]:
    slots = []
    for path, owner in _objects(model, doc):
        for name, info in owner.model_fields.items():
            if path or name != "schema_name":
                slots.append(_Slot((*path, name), info.annotation, tuple(info.metadata), info.is_required()))
    return slots


def _at(doc: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    for step in path:
        doc = doc[step]  # type: ignore[index]
    return doc


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    _at(doc, path[:-1])[path[-1]] = value


_WRONG_VALUES: dict[str, Any] = {
    "string": "wrong type", "bool": True, "number": 7, "fraction": 1.5, "null": None,
    "array": [1, 2], "object": {"wrong": "type"},
}
"""One value of each JSON kind; "wrong type" is no number, boolean word, enum value or literal."""


def _takes(annotation: Any) -> set[str]:
    """Which of `_WRONG_VALUES` one (non-union) type may take, counting pydantic's lax coercions (a float
    field takes `true` and "1.5", a bool field 0 and 1, an int field 2.0)."""
    origin = get_origin(annotation)
    if annotation is type(None):
        return {"null"}
    if annotation is bool:
        return {"bool"}
    if annotation is float:
        return {"number", "bool", "fraction"}
    if annotation is int or (isinstance(annotation, type) and issubclass(annotation, IntEnum)):
        return {"number", "bool"}
    if annotation is str:
        return {"string"}
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        # a name that is not one of the values is OUT_OF_RANGE, not of the wrong type
        values = get_args(annotation) if origin is Literal else [m.value for m in annotation]
        return {"number", "bool"} if all(isinstance(v, int) for v in values) else {"string"}
    if origin in (tuple, list):
        return {"array"}
    if origin is dict or _is_model(annotation):
        return {"object"}
    return set(_WRONG_VALUES)  # unknown: assume it takes anything (never mutated)


def _labelled(values: st.SearchStrategy[Any], label: str) -> st.SearchStrategy[tuple[Any, str]]:
    return values.map(lambda value: (value, label))


def _allowed_values(annotation: Any) -> list[Any] | None:
    """The values of a Literal or an Enum, else None."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [member.value for member in annotation]
    return None


_FAR = 10**6
"""How far past a bound an out-of-range number may go (far, yet within any parser's range)."""


def _numbers_past(annotation: type, metadata: tuple[Any, ...]) -> list[st.SearchStrategy[tuple[Any, str]]]:
    """Numbers on the wrong side of each bound of an int or float: just past it, or up to `_FAR` past."""
    out = []
    for name, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        bound = _bound(metadata, name)
        if bound is None:
            continue
        below, strict = name in ("ge", "gt"), name in ("gt", "lt")  # below a lower bound / above an upper
        if annotation is float:
            values = (st.floats(bound - _FAR, bound, exclude_max=not strict) if below
                      else st.floats(bound, bound + _FAR, exclude_min=not strict))
        else:
            step = 0 if strict else 1
            values = (st.integers(bound - _FAR, bound - step) if below
                      else st.integers(bound + step, bound + _FAR))
        out.append(_labelled(values, f"must be {sign} {bound}"))
    return out


def _out_of_range(annotation: Any, metadata: tuple[Any, ...]) -> list[st.SearchStrategy[tuple[Any, str]]]:
    """Values outside one (non-union) type's declared range, each with the rule it breaks: numbers past
    their bounds, text and lists past their lengths, names that are none of the allowed values."""
    if annotation in (int, float):
        return _numbers_past(annotation, metadata)
    low, high = _bound(metadata, "min_length"), _bound(metadata, "max_length")
    if annotation is str:
        out = []
        if low:
            out.append(_labelled(st.text(max_size=low - 1), f"shorter than {low}"))
        if high is not None:
            out.append(_labelled(st.text(min_size=high + 1, max_size=high + 8), f"longer than {high}"))
        return out
    allowed = _allowed_values(annotation)
    if allowed is not None:
        if all(isinstance(a, str) for a in allowed):
            other: st.SearchStrategy[Any] = st.text(min_size=1, max_size=_TEXT_MAX).filter(
                lambda v: v not in allowed)
        else:  # integer codes: above the highest or below the lowest
            other = st.integers(max(allowed) + 1, max(allowed) + 100) | st.integers(
                min(allowed) - 100, min(allowed) - 1)
        return [_labelled(other, "not one of the allowed values")]
    element = _element_type(annotation)
    if element is not None and high is not None:  # one valid item, repeated once more than allowed
        dump = _adapter(element).dump_python
        return [_value_strategy(element).map(
            lambda item: ([dump(item, mode="json")] * (high + 1), f"more than {high} items"))]
    return []


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _non_null_types(annotation: Any) -> list[Any]:
    return [t for t, _ in _members(annotation) if t is not type(None)]


def _break_missing(draw: st.DrawFn, model: type[BaseModel], doc: dict[str, Any]) -> str | None:
    candidates = [s for s in _slots(model, doc) if s.required and s.path[-1] in _at(doc, s.path[:-1])]
    if not candidates:
        return None
    slot = draw(st.sampled_from(candidates))
    del _at(doc, slot.path[:-1])[slot.path[-1]]
    return f"required {_path_text(slot.path)} missing"


def _break_unexpected(draw: st.DrawFn, model: type[BaseModel], doc: dict[str, Any]) -> str | None:
    objects = [(p, m) for p, m in _objects(model, doc) if m.model_config.get("extra") == "forbid"]
    if not objects:
        return None
    path, owner = draw(st.sampled_from(objects))
    key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in owner.model_fields))
    value = draw(st.one_of(st.none(), st.booleans(), st.integers(-9, 9), st.text(max_size=8)))
    _at(doc, path)[key] = value
    return f"unexpected {_path_text((*path, key))} = {_short(value)}"


def _break_finite(draw: st.DrawFn, model: type[BaseModel], doc: dict[str, Any]) -> str | None:
    candidates = [s for s in _slots(model, doc)
                  if (types_ := _non_null_types(s.annotation)) and all(t is float for t in types_)]
    if not candidates:
        return None
    slot = draw(st.sampled_from(candidates))
    value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    _set(doc, slot.path, value)
    return f"{_path_text(slot.path)} = {_short(value)}"


def _break_type(draw: st.DrawFn, model: type[BaseModel], doc: dict[str, Any]) -> str | None:
    options: list[tuple[_Slot, str]] = []
    for slot in _slots(model, doc):
        taken = set().union(*(_takes(t) for t, _ in _members(slot.annotation)))
        options += [(slot, kind) for kind in _WRONG_VALUES if kind not in taken]
    if not options:
        return None
    slot, kind = draw(st.sampled_from(options))
    _set(doc, slot.path, _WRONG_VALUES[kind])
    return f"{_path_text(slot.path)} = {_short(_WRONG_VALUES[kind])}: a {kind} where it takes none"


def _break_range(draw: st.DrawFn, model: type[BaseModel], doc: dict[str, Any]) -> str | None:
    options: list[tuple[_Slot, st.SearchStrategy[tuple[Any, str]]]] = []
    for slot in _slots(model, doc):
        members = [(t, m) for t, m in _members(slot.annotation, _flat_metadata(slot.metadata))
                   if t is not type(None)]
        if len(members) == 1:  # (out of one alternative's range may be within another's)
            options += [(slot, values) for values in _out_of_range(*members[0])]
    if not options:
        return None
    slot, values = draw(st.sampled_from(options))
    value, broken = draw(values)
    _set(doc, slot.path, value)
    return f"{_path_text(slot.path)} = {_short(value)}: {broken}"


_BREAK_FIELD: dict[Defect, Callable[[st.DrawFn, type[BaseModel], dict[str, Any]], str | None]] = {
    Defect.OUT_OF_RANGE: _break_range,
    Defect.NOT_FINITE: _break_finite,
    Defect.WRONG_TYPE: _break_type,
    Defect.MISSING_FIELD: _break_missing,
    Defect.UNEXPECTED_FIELD: _break_unexpected,
}
"""Each breaks one field of a message document in place and says how, or gives None if the model has no
field it can break."""


_INVALID_UTF8 = bytes([*range(0x80, 0xC0), 0xC0, 0xC1, *range(0xF5, 0x100)])
_NOT_JSON_START = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in '{["-0123456789tfnNI')
"""Characters no JSON value starts with (Python's parser also takes NaN and Infinity)."""
_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(_INT_MIN, _INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=_TEXT_MAX),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _request_id(doc: Any) -> str | None:
    value = doc.get("request_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


@st.composite
def _invalid(draw: st.DrawFn, defect: Defect, models: tuple[type[BaseModel], ...]) -> InvalidPayload:
    model = draw(st.sampled_from(models))
    message = draw(for_model(model))
    code = DEFECT_CODES[defect]

    def made(payload: bytes, label: str, doc: Any = None, source: type[BaseModel] | None = model
             ) -> InvalidPayload:
        return InvalidPayload(payload, code, defect, label, source, _request_id(doc))

    if defect in _BREAK_FIELD:
        doc = _document(message)
        label = _BREAK_FIELD[defect](draw, model, doc)
        if label is None:  # this model has nothing this defect can break: fall back to a model that has
            return draw(_invalid(defect, MESSAGE_TYPES))
        return made(_dumps(doc), label, doc)
    if defect is Defect.UNKNOWN_SCHEMA:
        doc = _document(message)
        name = doc["schema_name"]
        near = st.sampled_from([name + "x", name.upper(), f"{name}.v2", name.replace(".", "/"), " " + name])
        other = st.one_of(near, st.text(max_size=_TEXT_MAX)).filter(lambda v: v not in SCHEMA_NAMES)
        not_text = st.none() | st.integers(-9, 9) | st.just([name]) | st.just({"name": name})
        doc["schema_name"] = draw(other | not_text)
        return made(_dumps(doc), f"schema_name = {_short(doc['schema_name'])}", doc)
    if defect is Defect.MISSING_SCHEMA:
        doc = _document(message)
        del doc["schema_name"]
        return made(_dumps(doc), "schema_name missing", doc)
    encoded = _CODEC.encode(message)  # type: ignore[arg-type]
    if defect is Defect.TRUNCATED:
        cut = draw(st.integers(1, len(encoded) - 1))
        return made(encoded[:cut], f"cut after {cut} of {len(encoded)} bytes")
    if defect is Defect.NOT_UTF8:
        at = draw(st.integers(1, len(encoded)))  # never first: no byte-order mark can form
        byte = draw(st.sampled_from(_INVALID_UTF8))
        return made(encoded[:at] + bytes([byte]) + encoded[at:], f"byte 0x{byte:02x} inserted at {at}")
    if defect is Defect.NOT_JSON:
        variant = draw(st.sampled_from(["repr", "words"]))
        if variant == "repr":
            return made(repr(message).encode(), "the message's repr, not JSON")
        text = draw(st.builds(lambda first, rest: first + rest, st.sampled_from(_NOT_JSON_START),
                              st.text(max_size=_TEXT_MAX)))
        return made(text.encode(), f"text {_short(text)}", source=None)
    if defect is Defect.NOT_OBJECT:
        variant = draw(st.sampled_from(["array", "twice", "value"]))
        doc = _document(message)
        if variant == "array":
            return made(_dumps([doc]), "the message inside an array")
        if variant == "twice":
            return made(_dumps(json.dumps(doc)), "the message encoded twice (a JSON string)")
        value = draw(_JSON_VALUE.filter(lambda v: not isinstance(v, dict)))
        return made(_dumps(value), f"a JSON {type(value).__name__}: {_short(value)}", source=None)
    raise AssertionError(defect)


def invalid_payloads(
    defects: Iterable[Defect | str] | None = None, models: Iterable[type[Message]] | None = None
) -> st.SearchStrategy[InvalidPayload]:
    """Payloads the codec refuses, each labelled with the code ground control's rejection will carry.

    `defects` narrows what is wrong (default: every `Defect`); `models` which messages the payloads are made
    from (default: every message type). Each payload starts from a valid message and breaks one thing, so a
    failure points at one rule. A model without a field a defect can break (rare) yields a payload made from
    another model; `InvalidPayload.model` always says which.
    """
    chosen = tuple(Defect(d) for d in defects) if defects is not None else tuple(Defect)
    sources = tuple(models) if models is not None else MESSAGE_TYPES
    if not chosen or not sources:
        raise ValueError("invalid_payloads needs at least one defect and one model")
    return st.one_of([_invalid(defect, sources) for defect in chosen])


# -- telecommands the node refuses -----------------------------------------------------------------------

class Refusal(StrEnum):
    """Why a device node refuses a telecommand that decodes (checked in this order by the node)."""

    WRONG_TARGET = "wrong_target"
    """Sent to one node's telecommand topic, addressed to another."""
    UNKNOWN_COMMAND = "unknown_command"
    ARGUMENT_OUT_OF_RANGE = "argument_out_of_range"
    ARGUMENT_WRONG_TYPE = "argument_wrong_type"
    ARGUMENT_MISSING = "argument_missing"
    ARGUMENT_UNEXPECTED = "argument_unexpected"


REFUSAL_CODES: Mapping[Refusal, tuple[RejectionCode, FailureCode]] = types.MappingProxyType({
    Refusal.WRONG_TARGET: (RejectionCode.WRONG_TOPIC, FailureCode.WRONG_MODE),
    Refusal.UNKNOWN_COMMAND: (RejectionCode.UNKNOWN_COMMAND, FailureCode.UNKNOWN_COMMAND),
    Refusal.ARGUMENT_OUT_OF_RANGE: (RejectionCode.INVALID_ARGUMENTS, FailureCode.INVALID_ARGUMENTS),
    Refusal.ARGUMENT_WRONG_TYPE: (RejectionCode.INVALID_ARGUMENTS, FailureCode.INVALID_ARGUMENTS),
    Refusal.ARGUMENT_MISSING: (RejectionCode.INVALID_ARGUMENTS, FailureCode.INVALID_ARGUMENTS),
    Refusal.ARGUMENT_UNEXPECTED: (RejectionCode.INVALID_ARGUMENTS, FailureCode.INVALID_ARGUMENTS),
})
"""What the node publishes for each refusal: the code of its `Rejection` and the failure code of the
failed acceptance report (`VerificationReport`, stage acceptance) for the same request id."""


@dataclass(frozen=True)
class RefusedCommand:
    """A telecommand that decodes, and that the node whose telecommand topic it is sent to refuses at
    acceptance: a `Rejection` with `code` and a failed acceptance report with `failure`, both carrying the
    command's request id. Ground control hears both through the relay (and archives the rejection); it
    rejects nothing itself. The command has no expiry, so the relay never drops it on the way."""

    command: Telecommand
    node: Node
    """The node whose telecommand topic (`{side}/{node}/tc`) it is sent to: the one that refuses it."""
    refusal: Refusal
    code: RejectionCode
    failure: FailureCode
    label: str

    @property
    def payload(self) -> bytes:
        return _CODEC.encode(self.command)

    @property
    def stage(self) -> Stage:
        return Stage.ACCEPTANCE

    def with_request_id(self, request_id: str) -> RefusedCommand:
        """The same refusal under another request id (a node ignores a request id it has seen before)."""
        return replace(self, command=self.command.model_copy(update={"request_id": request_id}))


_Breaker = Callable[[st.DrawFn, dict[str, Any]], str]
"""Breaks a telecommand's arguments in place, drawing what it needs, and says how."""


def _argument_breakers(model: type[CommandArgs]) -> list[tuple[Refusal, _Breaker]]:
    """Every way to break the arguments of one command, read from its argument model."""
    fields = model.model_fields

    def unexpected(draw: st.DrawFn, args: dict[str, Any]) -> str:
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in fields))
        args[key] = draw(st.one_of(st.booleans(), st.integers(-9, 9), st.text(max_size=8)))
        return f"unexpected argument {key} = {_short(args[key])}"

    def missing(name: str) -> _Breaker:
        def breaks(draw: st.DrawFn, args: dict[str, Any]) -> str:
            args.pop(name, None)
            return f"required argument {name} missing"
        return breaks

    def out_of_range(name: str, values: st.SearchStrategy[tuple[Any, str]]) -> _Breaker:
        def breaks(draw: st.DrawFn, args: dict[str, Any]) -> str:
            args[name], broken = draw(values)
            return f"{name} = {_short(args[name])}: {broken}"
        return breaks

    def wrong_type(name: str, kind: str) -> _Breaker:
        def breaks(draw: st.DrawFn, args: dict[str, Any]) -> str:
            args[name] = _WRONG_VALUES[kind]
            return f"{name} = {_short(args[name])}: a {kind} where it takes none"
        return breaks

    ways: list[tuple[Refusal, _Breaker]] = [(Refusal.ARGUMENT_UNEXPECTED, unexpected)]
    for name, info in fields.items():
        members = _members(info.annotation, tuple(info.metadata))
        if info.is_required():
            ways.append((Refusal.ARGUMENT_MISSING, missing(name)))
        ways += [(Refusal.ARGUMENT_OUT_OF_RANGE, out_of_range(name, values))
                 for annotation, metadata in members for values in _out_of_range(annotation, metadata)]
        taken = set().union(*(_takes(t) for t, _ in members))
        ways += [(Refusal.ARGUMENT_WRONG_TYPE, wrong_type(name, kind))
                 for kind in ("string", "bool", "number", "fraction") if kind not in taken]  # scalars only
    return ways


def _ways_to_refuse(node: Node, command: str) -> dict[Refusal, list[_Breaker]]:
    ways: dict[Refusal, list[_Breaker]] = {}
    for refusal, breaks in _argument_breakers(COMMAND_CATALOG[node][command]):
        ways.setdefault(refusal, []).append(breaks)
    return ways


@st.composite
def _refused(draw: st.DrawFn, nodes: tuple[Node, ...], refusals: frozenset[Refusal]) -> RefusedCommand:
    # the kind first (each alike), then a command that can be refused that way: most commands take no
    # arguments, so an argument refusal drawn from any command would mostly be impossible
    refusal = draw(st.sampled_from(sorted(refusals)))
    if refusal is Refusal.WRONG_TARGET:
        node = draw(st.sampled_from(nodes))
        valid = draw(telecommands(draw(st.sampled_from([n for n in _COMMANDED_NODES if n != node]))))
        command, args, label = valid.command, dict(valid.args), f"addressed to {valid.target}, sent to {node}"
    elif refusal is Refusal.UNKNOWN_COMMAND:
        node = draw(st.sampled_from(nodes))
        valid = draw(telecommands(node))
        length = _bound(Telecommand.model_fields["command"].metadata, "max_length") or _TEXT_MAX
        names = st.text(min_size=1, max_size=min(length, _TEXT_MAX))
        command = draw(names.filter(lambda c: c not in COMMAND_CATALOG[node]))
        args, label = dict(valid.args), f"{node} has no command {command!r}"
    else:
        pairs = [(n, c) for n in nodes for c in sorted(COMMAND_CATALOG[n])
                 if refusal in _ways_to_refuse(n, c)]
        node, command = draw(st.sampled_from(pairs))
        valid = draw(telecommands(node, command))
        args = dict(valid.args)
        label = f"{command}: " + draw(st.sampled_from(_ways_to_refuse(node, command)[refusal]))(draw, args)
    # no expiry: through the relay, a command past its expiry is dropped (an event), never refused
    refused = Telecommand(**{**valid.model_dump(), "command": command, "args": args, "expires_at": None})
    code, failure = REFUSAL_CODES[refusal]
    return RefusedCommand(refused, node, refusal, code, failure, label)


def refused_telecommands(
    node: Node | str | None = None, refusals: Iterable[Refusal | str] | None = None
) -> st.SearchStrategy[RefusedCommand]:
    """Telecommands the codec accepts and a device node refuses at acceptance, to be sent to the
    telecommand topic of `RefusedCommand.node` (`node`, or any commanded node): an unknown command,
    arguments out of range, of the wrong type, missing or unexpected, or a command addressed to another
    node (`refusals` narrows the kinds). Request ids are drawn: a node ignores one it has seen, so give
    each a fresh one (`RefusedCommand.with_request_id`) before sending it to a running node.

    The node answers each with a `Rejection` (`code`) and a failed acceptance report (`failure`), as
    `DeviceNode._on_telecommand` does; `REFUSAL_CODES` has the mapping. A refusal no command of the nodes
    allows (e.g. a missing argument, where no command has a required one) is left out. A telecommand whose
    arguments are not scalars never reaches the node: the codec refuses it (INVALID, `invalid_payloads`).
    """
    chosen = frozenset(Refusal(r) for r in refusals) if refusals is not None else frozenset(Refusal)
    if not chosen:
        raise ValueError("refused_telecommands needs at least one refusal")
    nodes = _commanded_node(node)
    possible = {Refusal.UNKNOWN_COMMAND} | ({Refusal.WRONG_TARGET} if len(_COMMANDED_NODES) > 1 else set())
    possible |= {r for n in nodes for c in COMMAND_CATALOG[n] for r in _ways_to_refuse(n, c)}
    if not chosen & possible:
        raise ValueError(f"no command of {', '.join(nodes)} can be refused as {', '.join(sorted(chosen))}")
    return _refused(nodes, frozenset(chosen & possible))
