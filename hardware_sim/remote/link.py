"""The device contract on the wire, protocol-neutral: what a host can ask of a remote device.

A wire protocol (Modbus TCP, the framed serial line) is a pair: a client `DeviceLink` the host's
`RemoteDevice` calls, and a server that answers from an `EmulatedDevice` (or, on a bench, the device's
own firmware). Both carry exactly these operations:

- `identify`: kind, contract version, whether the far end can be stepped in simulated time;
- `step(t)`: emulator-only; advance the model to simulated time t (exact accelerated rehearsals);
- `read`: one consistent snapshot of every state field, with the device's own time and event head;
- `events(after)`, `ack(upto)`: the event mailbox; the host acknowledges only what it has saved;
- `command(seq, name, args)`: executes once per sequence number: a repeat returns the first outcome;
- `kick(timeout_s)`: the host's watchdog; a device not kicked within `timeout_s` (wall) makes itself safe;
- `inject(fault)` / `clear(fault_id)` / `mute(seconds)`: emulator-only device-level faults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lunar_gs.hardware_sim.remote.description import Scalar

CONTRACT_VERSION = 2

OUTCOME_CODES = ("ok", "wrong_mode", "busy", "device_fault", "unknown_command", "invalid_arguments")
"""A command's outcome on the wire; the middle three are the HAL's refusal codes."""


class LinkError(Exception):
    """The link failed: no connection, a timeout, an answer that does not decode. Never a refusal."""


@dataclass(frozen=True)
class DeviceIdentity:
    kind: str
    contract_version: int
    stepped: bool
    """True for an emulator the host steps in simulated time; False for a device on wall-clock time."""
    model: str = ""
    serial: str = ""


@dataclass(frozen=True)
class DeviceReading:
    """One snapshot, read in one transaction so that its fields belong together."""

    sim_time: float
    """The device's own time when the snapshot was taken (simulated for an emulator)."""
    active: bool
    fields: dict[str, Scalar]
    event_head: int
    """Sequence number of the newest event in the mailbox (0: none yet)."""
    fault_word: int = 0
    """Bit 0 watchdog expired, bit 1 a model fault is active; the rest reserved."""


@dataclass(frozen=True)
class WireEvent:
    seq: int
    time: float
    name: str
    severity: str
    message: str
    data: dict[str, Scalar] = field(default_factory=dict)
    symptom_of: str = ""
    """Non-empty for an injected fault's first symptom or recovery (`recovered` in data): the fault id."""


@dataclass(frozen=True)
class CommandOutcome:
    seq: int
    code: str = "ok"
    reason: str = ""
    value: float | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def json_object(raw: bytes) -> dict[str, Any]:
    """A wire payload that must be one UTF-8 JSON object; ValueError saying why it is not."""
    try:
        body = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"payload is not a JSON object: {type(body).__name__}")
    return body


FAULT_WORD_WATCHDOG = 0x1
FAULT_WORD_MODEL_FAULT = 0x2


class DeviceLink(Protocol):
    """The client half of a wire protocol. Every method raises LinkError when the link fails."""

    async def connect(self) -> DeviceIdentity: ...
    async def close(self) -> None: ...
    async def step(self, sim_time: float) -> None: ...
    async def read(self) -> DeviceReading: ...
    async def events(self, after_seq: int) -> list[WireEvent]: ...
    async def ack(self, upto_seq: int) -> None: ...
    async def command(self, seq: int, name: str, args: Mapping[str, Scalar]) -> CommandOutcome: ...
    async def kick(self, timeout_s: float) -> None: ...
    async def inject(self, fault: Mapping[str, Any]) -> CommandOutcome: ...
    async def clear(self, fault_id: str) -> CommandOutcome: ...
