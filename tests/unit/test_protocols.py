"""The wire contract: every model round-trips through the JSON codec; bad bytes get a precise error."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lunar_gs.protocols.codec import MESSAGE_TYPES, DecodeError, JsonCodec
from lunar_gs.protocols.commands import COMMAND_CATALOG, Telecommand, UnknownCommand, parse_command_args
from lunar_gs.protocols.events import Event, RejectionCode
from lunar_gs.protocols.faults import (
    CATALOGUE,
    THERMAL_COMPONENTS,
    ActiveFault,
    FaultAction,
    FaultKind,
    FaultRequest,
    FaultSpec,
    TargetItem,
)
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.topics import Channel, TopicError, Topics, parse_node_topic
from lunar_gs.protocols.verification import Stage, VerificationReport

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
TEXT = st.text(max_size=20)
SCALAR = st.one_of(st.booleans(), st.integers(-(2**53), 2**53), FINITE, TEXT)


def strategy_for(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    """Finite floats, bounded text, and the annotated-types bounds pydantic also enforces."""
    if annotation is float:
        low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
        high = next((m.le for m in metadata if hasattr(m, "le")), None)
        low = next((m.gt for m in metadata if hasattr(m, "gt")), low)
        return st.floats(low, high, allow_nan=False, allow_infinity=False, exclude_min=any(hasattr(m, "gt") for m in metadata))
    return st.from_type(annotation)


def fault_specs() -> st.SearchStrategy[FaultSpec]:
    """Valid fault specs of every kind: a target of the right form, parameters within their ranges."""
    items = {TargetItem.NONE: None, TargetItem.JOINT: "elbow", TargetItem.PARAMETER: "torque_nm",
             TargetItem.DIRECTION: "down", TargetItem.DEVICE: "drill"}

    def of_kind(kind: FaultKind) -> st.SearchStrategy[FaultSpec]:
        entry = CATALOGUE[kind]
        node = entry.nodes[0]
        item = THERMAL_COMPONENTS[node][0] if entry.item is TargetItem.COMPONENT else items[entry.item]
        target = str(node) if item is None else f"{node}.{item}"
        built = (st.builds(entry.params, rate_c_per_h=st.floats(1, 2000) | st.floats(-2000, -1))
                 if kind is FaultKind.THERMAL_DRIFT else st.builds(entry.params))
        params = built.map(lambda p: p.model_dump(exclude_none=True))
        return st.builds(FaultSpec, kind=st.just(kind), target=st.just(target), params=params,
                         label=st.text(max_size=10), duration=st.one_of(st.none(), st.floats(1, 1e6)))

    return st.sampled_from(list(FaultKind)).flatmap(of_kind)


def message_strategy(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        if name == "schema_name":
            continue
        annotation = info.annotation
        if name == "spec":
            fields[name] = fault_specs()
        elif name == "faults":
            fields[name] = st.lists(st.builds(ActiveFault, params=st.dictionaries(TEXT, SCALAR, max_size=3),
                                              since=st.one_of(st.none(), FINITE),
                                              clears_at=st.one_of(st.none(), FINITE)), max_size=3)
        elif name == "missing":
            fields[name] = st.lists(TEXT, max_size=3).map(tuple)
        elif name in {"data", "args", "params"}:
            fields[name] = st.dictionaries(TEXT, SCALAR, max_size=4)
        elif name in ("backends", "links") and model.__name__ == "ServiceStatus":
            fields[name] = st.dictionaries(TEXT, TEXT, max_size=3)
        elif name == "links":
            from lunar_gs.protocols.telemetry import DeviceLinkReading

            fields[name] = st.lists(st.builds(
                DeviceLinkReading, name=st.text(min_size=1, max_size=32), backend=st.text(min_size=1, max_size=32),
                reading_age_s=st.floats(0, 1e9)), max_size=3).map(tuple)
        elif name == "joints":
            from lunar_gs.protocols.telemetry import JointState

            fields[name] = st.lists(
                st.builds(JointState, name=TEXT, angle_deg=FINITE, torque_nm=FINITE,
                          current_a=st.floats(0, 1e6)), max_size=6).map(tuple)
        elif name == "value" and model.__name__ == "Alarm":
            fields[name] = st.one_of(st.none(), FINITE, TEXT, st.booleans())
        elif annotation in (float, float | None):
            strategy = strategy_for(float, info.metadata)
            fields[name] = strategy if annotation is float else st.one_of(st.none(), strategy)
        elif annotation is str or annotation == (str | None):
            max_len = next((m.max_length for m in info.metadata if hasattr(m, "max_length")), 40)
            min_len = next((m.min_length for m in info.metadata if hasattr(m, "min_length")), 0)
            text = st.text(min_size=min_len, max_size=min(max_len, 40))
            fields[name] = text if annotation is str else st.one_of(st.none(), text)
        elif annotation is int:
            fields[name] = st.integers(0, 2**40)
        else:
            fields[name] = st.from_type(annotation)
    if model is FaultRequest:  # what an action needs: a spec to inject, an id to clear
        return st.one_of(
            st.builds(model, **{**fields, "action": st.just(FaultAction.INJECT)}),
            st.builds(model, **{**fields, "action": st.just(FaultAction.CLEAR),
                                "fault_id": st.text(min_size=1, max_size=20)}),
            st.builds(model, **{**fields, "action": st.just(FaultAction.CLEAR_ALL)}))
    return st.builds(model, **fields)


ANY_MESSAGE = st.one_of([message_strategy(m) for m in MESSAGE_TYPES])


@settings(max_examples=400, deadline=None)
@given(ANY_MESSAGE)
def test_json_codec_round_trips_every_model_exactly(message: BaseModel) -> None:
    codec = JsonCodec()
    decoded = codec.decode(codec.encode(message))  # type: ignore[arg-type]
    assert decoded == message
    assert type(decoded) is type(message)


def test_every_model_has_a_distinct_schema_name() -> None:
    names = [m.model_fields["schema_name"].default for m in MESSAGE_TYPES]
    assert len(names) == len(set(names)) == len(MESSAGE_TYPES)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_decode_error(payload: bytes) -> None:
    try:
        JsonCodec().decode(payload)
    except DecodeError as exc:
        assert exc.code in RejectionCode
        assert exc.reason


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe", RejectionCode.MALFORMED),
        (b"{not json", RejectionCode.MALFORMED),
        (b"[1, 2]", RejectionCode.MALFORMED),
        (b'{"schema_name": "nope"}', RejectionCode.UNKNOWN_SCHEMA),
        (b'{"schema_name": "tc", "source": "ground-control", "request_id": "r1"}', RejectionCode.INVALID),
        (b'{"schema_name": []}', RejectionCode.UNKNOWN_SCHEMA),
        (b"[" * 100_000, RejectionCode.MALFORMED),
        (b'{"a":' * 30_000, RejectionCode.MALFORMED),
        (b"9" * 5000, RejectionCode.MALFORMED),
    ],
)
def test_decode_errors_say_how_far_decoding_got(payload: bytes, code: RejectionCode) -> None:
    with pytest.raises(DecodeError) as caught:
        JsonCodec().decode(payload)
    assert caught.value.code is code


def test_invalid_telecommand_still_yields_its_request_id() -> None:
    payload = json.dumps({"schema_name": "tc", "source": "ground-control", "request_id": "r-42",
                          "target": "lander-drill"}).encode()
    with pytest.raises(DecodeError) as caught:
        JsonCodec().decode(payload)
    assert caught.value.request_id == "r-42"
    assert "command" in caught.value.reason


def test_arguments_are_range_checked_against_the_catalogue() -> None:
    args = parse_command_args(Node.LANDER_DRILL, "DRILL_TO_DEPTH", {"target_depth_m": 1.0})
    assert args.model_dump() == {"target_depth_m": 1.0, "rpm": 120.0, "percussion": False}
    with pytest.raises(ValidationError, match="less than or equal to 2.5"):
        parse_command_args(Node.LANDER_DRILL, "DRILL_TO_DEPTH", {"target_depth_m": 9.0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        parse_command_args(Node.LANDER_DRILL, "DRILL_TO_DEPTH", {"target_depth_m": 1.0, "speed": 3})
    with pytest.raises(UnknownCommand, match="DRILL_TO_DEPTH"):
        parse_command_args(Node.LANDER_DRILL, "LAUNCH", {})


def test_catalogue_covers_every_node() -> None:
    assert set(COMMAND_CATALOG) == set(Node)


def test_pus_subtypes_follow_service_1() -> None:
    def report(stage: Stage, success: bool) -> VerificationReport:
        return VerificationReport(source=Node.LANDER_ARM, request_id="r", command="X", stage=stage, success=success)

    assert [report(s, True).pus_subtype for s in Stage] == [1, 3, 5, 7]
    assert [report(s, False).pus_subtype for s in Stage] == [2, 4, 6, 8]
    assert report(Stage.ACCEPTANCE, False).is_final and report(Stage.COMPLETION, True).is_final
    assert not report(Stage.START, True).is_final


def test_topics_build_and_parse_back() -> None:
    topics = Topics("ce6")
    for side in Side:
        for node in Node:
            for channel in Channel:
                topic = topics.channel(side, node, channel, "hk")
                parsed = topics.parse(topic)
                assert (parsed.side, parsed.node, parsed.channel) == (side, node, channel)
    assert topics.tm(Side.GROUND, Node.LANDER_DRILL) == "lgs/v1/ce6/ground/lander-drill/tm/hk"
    assert topics.side_filter(Side.SPACE, Channel.TM) == "lgs/v1/ce6/space/+/tm/+"


@pytest.mark.parametrize(
    "topic",
    ["lgs/v1/ce6/space/drill/tc", "lgs/v2/ce6/space/lander-drill/tc", "lgs/v1/ce6/moon/lander-drill/tc",
     "lgs/v1/ce6/space/lander-drill/tm", "lgs/v1/ce6/space/lander-drill/tc/extra", "nonsense"],
)
def test_topics_outside_the_tree_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_node_topic(topic)


def test_other_missions_topics_are_not_ours() -> None:
    with pytest.raises(TopicError, match="belongs to mission"):
        Topics("a").parse(Topics("b").tc(Side.SPACE, Node.LANDER_ARM))


@pytest.mark.parametrize("name", ["", "a/b", "+", "#", "x" * 65, "-lead"])
def test_mission_names_must_be_topic_safe(name: str) -> None:
    with pytest.raises(TopicError):
        Topics(name)


def test_telecommand_args_accept_only_scalars() -> None:
    with pytest.raises(ValidationError):
        Telecommand(source=Node.GROUND_CONTROL, request_id="r", target=Node.LANDER_DRILL, command="X",
                    args={"nested": {"a": 1}})  # type: ignore[dict-item]


def test_a_sequence_count_beyond_64_bits_is_invalid_not_a_crash_in_the_archive() -> None:
    from lunar_gs.protocols.envelope import SEQ_MAX

    CODEC = JsonCodec()
    good = json.loads(CODEC.encode(Event(source=Node.LANDER_DRILL, event="x", seq=SEQ_MAX)))
    assert CODEC.decode(json.dumps(good).encode()).seq == SEQ_MAX
    good["seq"] = SEQ_MAX + 1
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(json.dumps(good).encode())
    assert caught.value.code is RejectionCode.INVALID
