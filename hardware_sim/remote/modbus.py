"""Modbus TCP: the host's `DeviceLink` (pymodbus async client) and the emulator's server, both driven by
the register map in `modbus_map`.

Why Modbus TCP: it is what a bench motor controller or PLC in front of a drill or an arm speaks. The
device contract (sequence-numbered commands executed once, an event mailbox acknowledged only once saved,
a host watchdog) is laid over plain register reads and writes; see docs/devices/<kind>-modbus.md.

The server answers from an `EmulatedDevice` through pymodbus's per-request datastore hook (`SimDevice`
`action`): a read of the snapshot calls `emulated.read()` once, so one FC04 is one consistent snapshot;
a command write calls `emulated.command()` before the write is answered. While the emulated device is not
answering (`emulator.stop_answering`), requests are dropped on arrival: nothing executes, nothing replies.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Self

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from lunar_gs.hardware_sim.remote.description import Scalar
from lunar_gs.hardware_sim.remote.emulated import STOP_ANSWERING, EmulatedDevice
from lunar_gs.hardware_sim.remote.link import (
    CommandOutcome,
    DeviceIdentity,
    DeviceReading,
    LinkError,
    WireEvent,
)
from lunar_gs.hardware_sim.remote.modbus_map import (
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    Block,
    DecodeError,
    ModbusMap,
    WordOrder,
    build_map,
    encode_value,
)

log = structlog.get_logger(__name__)

_FC_READ_HOLDING, _FC_READ_INPUT, _FC_WRITE_SINGLE, _FC_WRITE_MULTIPLE = 3, 4, 6, 16
_EXCEPTION_NAMES = {code.value: code.name.lower() for code in ExcCodes}


class ModbusLink:
    """The host's link to one device over Modbus TCP. Every failure raises LinkError; a refusal does not.

    connect() tries once (the host's supervisor owns reconnecting, with its backoff); after close() it may
    be called again. `requests` and `failures` count Modbus requests for benchmarks.
    """

    def __init__(self, kind: str, host: str, port: int, *, unit_id: int = 1, word_order: WordOrder = "big",
                 timeout_s: float = 1.0, retries: int = 1) -> None:
        self.map: ModbusMap = build_map(kind)
        self.kind = kind
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.word_order: WordOrder = word_order
        self.timeout_s = timeout_s
        self.retries = retries
        self.identity: DeviceIdentity | None = None
        self.requests = 0
        self.failures = 0
        self.timeouts = 0
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._step_seq = 0
        self._kicks = 0
        self._fault_seq: int | None = None
        """Last fault request number; read from the device before the first request of a connection."""

    def __repr__(self) -> str:
        return f"ModbusLink({self.kind} at {self.host}:{self.port} unit {self.unit_id})"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # -- DeviceLink --------------------------------------------------------------------------------------
    async def connect(self) -> DeviceIdentity:
        async with self._lock:
            self._drop_client()
            # reconnect_delay=0: pymodbus must not reconnect behind the supervisor's back
            client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s,
                                          retries=self.retries, reconnect_delay=0, name=f"{self.kind}-link")
            try:
                ok = await client.connect()
            except (TimeoutError, OSError, ModbusException) as exc:
                ok = False
                log.debug("modbus connect raised", link=repr(self), error=str(exc))
            if not ok:
                client.close()
                self.failures += 1
                raise LinkError(f"{self!r}: cannot connect (refused, unreachable or no answer within "
                                f"{self.timeout_s:g} s)")
            self._client = client
            try:
                regs = await self._read(self.map.identity)
                identity = self.map.decode_identity(regs, self.word_order)
            except DecodeError as exc:
                self._drop_client()
                self.failures += 1
                raise LinkError(f"{self!r}: {exc}") from exc
            except LinkError:
                self._drop_client()
                raise
            self._fault_seq = None
            self.identity = identity
            log.info("modbus link connected", link=repr(self), stepped=identity.stepped,
                     serial=identity.serial)
            return identity

    async def close(self) -> None:
        async with self._lock:
            self._drop_client()

    async def step(self, sim_time: float) -> None:
        async with self._lock:
            self._step_seq = (self._step_seq + 1) & 0xFFFF_FFFF
            await self._write(self.map.step.address, self.map.encode_step(sim_time, self._step_seq,
                                                                          self.word_order))

    async def read(self) -> DeviceReading:
        async with self._lock:
            regs = await self._read(self.map.snapshot)
            return self._decode(self.map.decode_reading, regs, self.word_order)

    async def events(self, after_seq: int) -> list[WireEvent]:
        """Every event after `after_seq` still in the mailbox, oldest first."""
        out: list[WireEvent] = []
        cursor = after_seq
        cursor_field = self.map.mailbox.field("events_after")
        first = min(MAX_READ_REGISTERS, self.map.event.size)
        header_words = self.map.event_header_words
        async with self._lock:
            while True:
                await self._write(cursor_field.address,
                                  encode_value(cursor_field.spec, cursor, self.word_order))
                regs = await self._read_raw(self.map.event.address, first)
                seq, at, length, pending = self._decode(self.map.decode_event_header, regs, self.word_order)
                if seq == 0:
                    return out
                if seq <= cursor:
                    self.failures += 1
                    raise LinkError(f"{self!r}: mailbox shows event {seq}, asked for one after {cursor}")
                payload = list(regs[header_words:])
                need = (length + 1) // 2
                while len(payload) < need:
                    at_word = self.map.event.address + header_words + len(payload)
                    payload += await self._read_raw(at_word, min(MAX_READ_REGISTERS, need - len(payload)))
                out.append(self._decode(self.map.decode_event, seq, at, length, payload))
                cursor = seq
                if pending <= 1:
                    return out

    async def ack(self, upto_seq: int) -> None:
        ack = self.map.mailbox.field("ack")
        async with self._lock:
            await self._write(ack.address, encode_value(ack.spec, upto_seq, self.word_order))

    async def command(self, seq: int, name: str, args: Mapping[str, Scalar]) -> CommandOutcome:
        """One FC16 write of the command block, then a read of the result. An argument the command cannot
        take is refused here, as the device would refuse it, without a request."""
        try:
            regs = self.map.encode_command(seq, name, args, self.word_order)
        except KeyError as exc:
            if name not in {c.name for c in self.map.description.commands}:
                return CommandOutcome(seq, "unknown_command", str(exc.args[0]))
            return CommandOutcome(seq, "invalid_arguments", f"{name}: missing argument {exc.args[0]!r}")
        except ValueError as exc:
            return CommandOutcome(seq, "invalid_arguments", f"{name}: {exc}")
        async with self._lock:
            await self._write(self.map.command.address, regs)
            result = await self._read(self.map.result)
        outcome = self._decode(self.map.decode_outcome, result, self.word_order)
        if outcome.seq != seq:
            self.failures += 1
            raise LinkError(f"{self!r}: result block holds command {outcome.seq}, expected {seq} "
                            "(another host writing commands?)")
        return outcome

    async def kick(self, timeout_s: float) -> None:
        async with self._lock:
            self._kicks = (self._kicks + 1) & 0xFFFF
            await self._write(self.map.watchdog.address, self.map.encode_kick(self._kicks, timeout_s,
                                                                              self.word_order))

    async def inject(self, fault: Mapping[str, Any]) -> CommandOutcome:
        return await self._fault({"op": "inject", **fault},
                                 expect_silence=str(fault.get("kind", "")) == STOP_ANSWERING)

    async def clear(self, fault_id: str) -> CommandOutcome:
        return await self._fault({"op": "clear", "fault_id": fault_id})

    # -- inside --------------------------------------------------------------------------------------------
    async def _fault(self, request: Mapping[str, Any], expect_silence: bool = False) -> CommandOutcome:
        """Write the fault block (tail chunks first, then the write at `seq` that executes it), read the
        result. A STOP_ANSWERING device answers its own write and then nothing: its result is not read."""
        async with self._lock:
            if self._fault_seq is None:  # continue after the device's last request: ours must not be replayed
                self._fault_seq, _ = self._decode(self.map.decode_fault_result,
                                                  await self._read(self.map.fault_result), self.word_order)
            seq = (self._fault_seq + 1) & 0xFFFF_FFFF
            try:
                regs = self.map.encode_fault_request(seq, request, self.word_order)
            except (TypeError, ValueError) as exc:
                return CommandOutcome(0, "invalid_arguments", str(exc))
            self._fault_seq = seq
            base = self.map.fault.address
            head = min(len(regs), MAX_WRITE_REGISTERS)
            try:
                for end in range(len(regs), head, -MAX_WRITE_REGISTERS):
                    start = max(head, end - MAX_WRITE_REGISTERS)
                    await self._write(base + start, regs[start:end])
                await self._write(base, regs[:head])
                if expect_silence:
                    return CommandOutcome(0)
                result = await self._read(self.map.fault_result)
            except LinkError:
                self._fault_seq = None  # did it execute? the next request asks the device first
                raise
            got, outcome = self._decode(self.map.decode_fault_result, result, self.word_order)
        if got != seq:
            self.failures += 1
            raise LinkError(f"{self!r}: fault result holds request {got}, expected {seq}")
        return outcome

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _decode(self, decode: Callable[..., Any], *args: Any) -> Any:
        try:
            return decode(*args)
        except DecodeError as exc:
            self.failures += 1
            raise LinkError(f"{self!r}: answer does not decode: {exc}") from exc

    async def _read(self, block: Block) -> list[int]:
        return await self._read_raw(block.address, block.size)

    async def _read_raw(self, address: int, count: int) -> list[int]:
        response = await self._request(f"read {count} input registers at {address}",
                                       lambda c: c.read_input_registers(address, count=count,
                                                                        device_id=self.unit_id))
        regs = list(response.registers)
        if len(regs) != count:
            self.failures += 1
            raise LinkError(f"{self!r}: asked for {count} registers at {address}, got {len(regs)}")
        return regs

    async def _write(self, address: int, registers: Sequence[int]) -> None:
        await self._request(f"write {len(registers)} registers at {address}",
                            lambda c: c.write_registers(address, list(registers), device_id=self.unit_id))

    async def _request(self, what: str,
                       send: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]) -> ModbusPDU:
        client = self._client
        if client is None or not client.connected:
            self.failures += 1
            raise LinkError(f"{self!r}: not connected ({what})")
        self.requests += 1
        try:
            response = await send(client)
        except ModbusException as exc:
            self.failures += 1
            if "No response" in str(exc):
                self.timeouts += 1
                raise LinkError(f"{self!r}: no answer within {self.timeout_s:g} s x {self.retries + 1} "
                                f"({what})") from exc
            raise LinkError(f"{self!r}: {what}: {exc}") from exc
        except (TimeoutError, OSError, ValueError) as exc:
            self.failures += 1
            raise LinkError(f"{self!r}: {what}: {type(exc).__name__}: {exc}") from exc
        if response.isError():
            self.failures += 1
            code = response.exception_code
            raise LinkError(f"{self!r}: {what}: Modbus exception {code} "
                            f"({_EXCEPTION_NAMES.get(code, 'unknown')})")
        return response


class _Rejected(Exception):
    """A request the emulator refuses with a Modbus exception (and executes nothing for)."""

    def __init__(self, code: ExcCodes, why: str) -> None:
        super().__init__(why)
        self.code = code


class ModbusEmulatorServer:
    """A Modbus TCP server in front of an EmulatedDevice (async context manager; `serve_forever` for a CLI).

    Counters: `requests` (decoded requests), `rejected` (exception responses sent, requests for another
    unit), `dropped_muted` (requests ignored while not answering).
    """

    def __init__(self, emulated: EmulatedDevice, host: str = "127.0.0.1", port: int = 0, *, unit_id: int = 1,
                 word_order: WordOrder = "big") -> None:
        self.emulated = emulated
        self.map = build_map(emulated.description.kind)
        self.host = host
        self._port = port
        self.unit_id = unit_id
        self.word_order: WordOrder = word_order
        self.requests = 0
        self.rejected = 0
        self.dropped_muted = 0
        self.last_step_seq = 0
        self._outcome: CommandOutcome | None = None
        self._fault_seq = 0
        self._fault_outcome = CommandOutcome(0)
        self._cursor = 0
        self._server: ModbusTcpServer | None = None
        self._owed: Counter[tuple[int, int]] = Counter()
        self._send_next = True

    @property
    def port(self) -> int:
        """The bound port (a free one was picked when constructed with port 0)."""
        return self._port

    async def start(self) -> None:
        if self._server is not None:
            return
        bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]  # pymodbus needs bit tables (unused)
        holding = [SimData(b.address, count=b.size, values=0, datatype=DataType.REGISTERS)
                   for b in self.map.holding_blocks()]
        inputs = [SimData(b.address, count=b.size, values=0, datatype=DataType.REGISTERS)
                  for b in self.map.input_blocks()]
        device = SimDevice(self.unit_id, simdata=(bits, list(bits), holding, inputs), action=self._action)
        server = ModbusTcpServer(device, address=(self.host, self._port), trace_pdu=self._trace_pdu,
                                 trace_packet=self._trace_packet)
        await server.serve_forever(background=True)
        self._server = server
        sockets = getattr(server.transport, "sockets", None) or ()
        if sockets:
            self._port = sockets[0].getsockname()[1]
        log.info("modbus emulator listening", kind=self.map.kind, host=self.host, port=self._port,
                 unit_id=self.unit_id, word_order=self.word_order)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            log.info("modbus emulator stopped", kind=self.map.kind, port=self._port, requests=self.requests,
                     rejected=self.rejected)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- pymodbus hooks --------------------------------------------------------------------------------------
    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """Receiving: drop requests while muted or for another unit (None: pymodbus then handles nothing).
        Sending: a reply is owed to a request taken while answering; anything else is silenced if muted."""
        if sending:
            key = (pdu.dev_id, pdu.transaction_id)
            if self._owed[key] > 0:
                self._owed[key] -= 1
                if not self._owed[key]:
                    del self._owed[key]
                self._send_next = True
            else:
                self._send_next = self.emulated.answering()
            if isinstance(pdu, ExceptionResponse):
                self.rejected += 1
            return pdu
        if not self.emulated.answering():
            self.dropped_muted += 1
            return None  # type: ignore[return-value]
        if pdu.dev_id != self.unit_id:
            self.rejected += 1
            log.debug("modbus request for another unit ignored", unit=pdu.dev_id)
            return None  # type: ignore[return-value]
        self.requests += 1
        if len(self._owed) > 1024:  # replies that were never sent (a connection closed first)
            self._owed.clear()
        self._owed[(pdu.dev_id, pdu.transaction_id)] += 1
        return pdu

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        if sending and not self._send_next:
            self._send_next = True
            return b""
        return packet

    async def _action(self, function_code: int, start: int, address: int, count: int, registers: list[int],
                      values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus's per-request hook: fill the input registers a read covers, act on a write."""
        try:
            if function_code == _FC_READ_INPUT:
                self._fill_inputs(start, address, count, registers)
            elif function_code in (_FC_WRITE_SINGLE, _FC_WRITE_MULTIPLE) and values is not None:
                self._on_write(start, address, [int(v) for v in values], registers)
            elif function_code not in (_FC_READ_HOLDING, _FC_WRITE_SINGLE):
                raise _Rejected(ExcCodes.ILLEGAL_FUNCTION, f"function code {function_code} not served")
        except _Rejected as exc:
            log.debug("modbus request rejected", fc=function_code, address=address, count=count, why=str(exc))
            return exc.code
        except Exception:  # a model or codec bug must not take the server down
            log.exception("modbus emulator failed on a request", fc=function_code, address=address)
            return ExcCodes.DEVICE_FAILURE
        return None

    def _fill_inputs(self, start: int, address: int, count: int, registers: list[int]) -> None:
        end = address + count
        order = self.word_order
        for block in self.map.input_blocks():
            if block.address >= end or block.end <= address:
                continue
            if block is self.map.identity:
                regs = self.map.encode_identity(self.emulated.identify(), order)
            elif block is self.map.snapshot:
                regs = self.map.encode_reading(self.emulated.read(), order)
            elif block is self.map.result:
                regs = self.map.encode_outcome(self._outcome, order)
            elif block is self.map.fault_result:
                regs = self.map.encode_fault_result(self._fault_seq, self._fault_outcome, order)
            else:
                waiting = self.emulated.events(self._cursor)
                regs = self.map.encode_event(waiting[0] if waiting else None, len(waiting), order)
            if len(regs) != block.size:  # a slice assignment of another length would resize pymodbus's memory
                raise RuntimeError(f"{block.name}: encoded {len(regs)} registers, the block has {block.size}")
            offset = block.address - start
            registers[offset:offset + block.size] = regs

    def _on_write(self, start: int, address: int, values: list[int], registers: list[int]) -> None:
        block = self.map.holding_block_at(address)
        if block is None or address + len(values) > block.end:
            raise _Rejected(ExcCodes.ILLEGAL_ADDRESS, "write outside one block")
        offset = block.address - start
        merged = registers[offset:offset + block.size]
        merged[address - block.address:address - block.address + len(values)] = values
        order = self.word_order
        if block is self.map.command:
            self._on_command(address, values)
            return
        if block is self.map.fault:
            if address == block.address:
                self._on_fault(merged, len(values))
            return
        self._check_whole_fields(block, address, len(values))
        if block is self.map.mailbox:
            cursor, ack = block.field("events_after"), block.field("ack")
            if address <= cursor.address < address + len(values):
                self._cursor = int(block.decode(merged, order)["events_after"])
            if address <= ack.address < address + len(values):
                self.emulated.ack(int(block.decode(merged, order)["ack"]))
        elif block is self.map.watchdog:
            _, timeout_s = self.map.decode_kick(merged, order)
            self.emulated.kick(timeout_s)
        elif block is self.map.step:
            if address != block.address or len(values) != block.size:
                raise _Rejected(ExcCodes.ILLEGAL_VALUE, "the step block is written whole")
            if not self.emulated.stepped:
                raise _Rejected(ExcCodes.ILLEGAL_FUNCTION, "this device runs on its own clock")
            sim_time, seq = self.map.decode_step(merged, order)
            if not math.isfinite(sim_time):
                raise _Rejected(ExcCodes.ILLEGAL_VALUE, f"step to {sim_time}")
            self.emulated.step(sim_time)
            self.last_step_seq = seq

    @staticmethod
    def _check_whole_fields(block: Block, address: int, count: int) -> None:
        starts = {f.address for f in block.fields}
        ends = {f.end for f in block.fields}
        if address not in starts or address + count not in ends:
            raise _Rejected(ExcCodes.ILLEGAL_ADDRESS,
                            f"write of {count} at {address} splits a field of {block.name}")

    def _on_command(self, address: int, values: list[int]) -> None:
        if address != self.map.command.address or len(values) < 3:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, "a command is written whole, from the block's start")
        opcode = values[self.map.command.field("opcode").address - self.map.command.address]
        need = self.map.command_words(opcode)
        if need is not None and len(values) < need:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE,
                            f"opcode {opcode} needs {need} registers, got {len(values)}")
        try:
            seq, opcode, name, args = self.map.decode_command(values, self.word_order)
        except DecodeError as exc:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, f"command does not decode: {exc}") from exc
        if name is None:
            name = f"opcode_{opcode}"  # the device answers unknown_command under this seq
        self._outcome = self.emulated.command(seq, name, args)
        log.debug("modbus command", kind=self.map.kind, seq=seq, command=name, outcome=self._outcome.code)

    def _on_fault(self, merged: list[int], written: int) -> None:
        if written < self.map.fault.field("payload").address - self.map.fault.address:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, "the fault request's seq and length are written together")
        try:
            seq, request = self.map.decode_fault_request(merged, self.word_order)
        except DecodeError as exc:
            raise _Rejected(ExcCodes.ILLEGAL_VALUE, str(exc)) from exc
        if seq == self._fault_seq:
            return  # a retried request: its result stands
        op = request.pop("op", None)
        if op == "inject":
            outcome = self.emulated.inject(request)
        elif op == "clear":
            outcome = self.emulated.clear(str(request.get("fault_id", "")))
        else:
            outcome = CommandOutcome(0, "invalid_arguments", f"fault op {op!r}: expected 'inject' or 'clear'")
        self._fault_seq, self._fault_outcome = seq, outcome
        log.info("modbus emulator fault request", kind=self.map.kind, op=op, outcome=outcome.code,
                 request=json.dumps(request, default=str)[:200])
