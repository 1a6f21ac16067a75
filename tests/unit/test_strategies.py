"""The test kit's hypothesis strategies: every valid message validates and round-trips through the JSON
codec; every invalid payload is refused by the codec with exactly the code it is labelled with; every
refused telecommand decodes, and is one the node's own checks refuse for the labelled reason."""

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lunar_gs.protocols.codec import MESSAGE_TYPES, DecodeError, JsonCodec
from lunar_gs.protocols.commands import COMMAND_CATALOG, Telecommand, UnknownCommand, parse_command_args
from lunar_gs.protocols.faults import FaultSpec
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.verification import VerificationReport
from pydantic import BaseModel, ValidationError

from lunar_gs.testing import strategies
from lunar_gs.testing.strategies import (
    DEFECT_CODES,
    REFUSAL_CODES,
    Defect,
    InvalidPayload,
    Refusal,
    RefusedCommand,
)

CODEC = JsonCodec()
EXAMPLES = 25  # per model, defect or refusal: the whole file runs in a few seconds


def round_trips(message: BaseModel) -> None:
    assert type(message).model_validate(message.model_dump()) == message
    decoded = CODEC.decode(CODEC.encode(message))  # type: ignore[arg-type]
    assert decoded == message
    assert type(decoded) is type(message)


# -- valid messages ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MESSAGE_TYPES, ids=lambda m: m.__name__)
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_every_message_type_draws_valid_messages_that_round_trip(model: type[BaseModel], data: st.DataObject
                                                                 ) -> None:
    message = data.draw(strategies.for_model(model))
    assert type(message) is model
    round_trips(message)
    if isinstance(message, Telecommand):  # valid for the node it is addressed to, not only on the wire
        assert message.source is Node.GROUND_CONTROL
        parse_command_args(message.target, message.command, dict(message.args))
    if isinstance(message, VerificationReport):
        assert message.command in COMMAND_CATALOG[message.source]
        assert (message.failure_code is None) == message.success


@settings(max_examples=60, deadline=None)
@given(strategies.messages())
def test_messages_draws_any_message(message: BaseModel) -> None:
    assert isinstance(message, MESSAGE_TYPES)
    round_trips(message)


@pytest.mark.parametrize("node", ["lander-drill", "lander-arm", "ascent-vehicle", "relay-satellite"])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_housekeeping_of_a_node_comes_from_that_node(node: str, data: st.DataObject) -> None:
    packet = data.draw(strategies.housekeeping(node))
    assert packet.source == node
    assert packet.schema_name == f"tm.{node}.hk"
    assert set(packet.missing) <= set(type(packet).model_fields)
    round_trips(packet)


@settings(max_examples=EXAMPLES, deadline=None)
@given(strategies.telecommands("lander-arm", "SAMPLE_SITES"))
def test_telecommands_can_be_narrowed_to_one_command(command: Telecommand) -> None:
    assert (command.target, command.command) == (Node.LANDER_ARM, "SAMPLE_SITES")
    parse_command_args(command.target, command.command, dict(command.args))


@settings(max_examples=EXAMPLES, deadline=None)
@given(strategies.fault_specs())
def test_fault_specs_are_valid_for_their_kind(spec: FaultSpec) -> None:
    assert FaultSpec.model_validate(spec.model_dump()) == spec


@given(strategies.housekeeping("lander-drill"))  # the example of the module's docstring
def test_the_documented_example(packet: BaseModel) -> None:
    assert packet.source is Node.LANDER_DRILL  # type: ignore[attr-defined]


@pytest.mark.parametrize("call", [
    lambda: strategies.housekeeping("ground-control"),
    lambda: strategies.housekeeping("no-such-node"),
    lambda: strategies.telecommands("relay-satellite"),
    lambda: strategies.telecommands("lander-drill", "LAUNCH"),
    lambda: strategies.command_args("ascent-vehicle", "DRILL_TO_DEPTH"),
    lambda: strategies.invalid_payloads(defects=[]),
    lambda: strategies.refused_telecommands("lander-drill", refusals=[]),
])
def test_asking_for_what_the_contract_does_not_have_fails_at_once(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


# -- invalid payloads -------------------------------------------------------------------------------------

def test_every_defect_has_a_code() -> None:
    assert set(DEFECT_CODES) == set(Defect)


@pytest.mark.parametrize("defect", list(Defect))
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_every_invalid_payload_is_refused_with_its_labelled_code(defect: Defect, data: st.DataObject) -> None:
    bad: InvalidPayload = data.draw(strategies.invalid_payloads(defects=[defect]))
    assert bad.defect is defect and bad.code is DEFECT_CODES[defect]
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(bad.payload)
    assert caught.value.code is bad.code, f"{bad}: {caught.value.reason}"
    assert caught.value.request_id == bad.request_id, bad


@settings(max_examples=EXAMPLES, deadline=None)
@given(strategies.invalid_payloads(models=[Telecommand]))
def test_invalid_payloads_can_be_made_from_chosen_models(bad: InvalidPayload) -> None:
    assert bad.model in (Telecommand, None)
    with pytest.raises(DecodeError) as caught:
        CODEC.decode(bad.payload)
    assert caught.value.code is bad.code, bad


# -- telecommands the node refuses ------------------------------------------------------------------------

@pytest.mark.parametrize("refusal", list(Refusal))
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_every_refused_telecommand_decodes_and_fails_the_nodes_check(refusal: Refusal, data: st.DataObject
                                                                      ) -> None:
    """The node's checks, in its order (`DeviceNode._on_telecommand`): the target, then the catalogue.
    That the node answers them with `REFUSAL_CODES` is checked on the bus
    (tests/integration/test_strategies_on_the_bus.py)."""
    refused: RefusedCommand = data.draw(strategies.refused_telecommands(refusals=[refusal]))
    assert (refused.code, refused.failure) == REFUSAL_CODES[refusal]
    assert CODEC.decode(refused.payload) == refused.command
    command = refused.command
    assert command.expires_at is None  # the relay never drops it as expired
    if refusal is Refusal.WRONG_TARGET:
        assert command.target != refused.node
        return
    assert command.target == refused.node
    expected = UnknownCommand if refusal is Refusal.UNKNOWN_COMMAND else ValidationError
    with pytest.raises(expected):
        parse_command_args(refused.node, command.command, dict(command.args))


@settings(max_examples=10, deadline=None)
@given(strategies.refused_telecommands("lander-drill"))
def test_a_refused_command_takes_another_request_id(refused: RefusedCommand) -> None:
    assert refused.node is Node.LANDER_DRILL  # even a command addressed to another node is sent here
    again = refused.with_request_id("rq-1")
    assert again.command.request_id == "rq-1"
    assert again.command == refused.command.model_copy(update={"request_id": "rq-1"})
    assert (again.node, again.code, again.failure) == (refused.node, refused.code, refused.failure)


# -- the module itself ------------------------------------------------------------------------------------

def test_the_module_is_pure() -> None:
    """No I/O, no asyncio: hypothesis, pydantic, the wire contract and a few standard modules."""
    path = Path(strategies.__file__)
    allowed = {"__future__", "json", "types", "collections", "dataclasses", "enum", "functools", "typing",
               "hypothesis", "pydantic"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed or name.startswith("lunar_gs.protocols"), name


def test_everything_exported_exists() -> None:
    assert all(hasattr(strategies, name) for name in strategies.__all__)
