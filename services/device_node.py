"""The common life of a far-side node: execute telecommands through the HAL, report their verification
after PUS service 1, step devices in simulated time, publish housekeeping and device events.

A node subclass says only what is particular to it: its devices, how each command maps onto them
(`CommandBinding`), how its housekeeping packet is filled, and how it reacts to other lander nodes.
"""

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Le
from pydantic import ValidationError

from lunar_gs.hardware_sim.hal import Device, DeviceCommandError, DeviceEvent, DeviceEventName, LinkedDevice, settle
from lunar_gs.protocols.commands import (
    Telecommand,
    UnknownCommand,
    describe_validation_error,
    parse_command_args,
)
from lunar_gs.protocols.events import Event, RejectionCode, Severity
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.telemetry import Housekeeping
from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport
from lunar_gs.services.mission import Timing
from lunar_gs.services.node_faults import NodeFaults
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.clock import Wakeup
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.service import ServiceRuntime

_FAILURE_BY_DEVICE_CODE = {
    "wrong_mode": FailureCode.WRONG_MODE,
    "busy": FailureCode.BUSY,
    "device_fault": FailureCode.DEVICE_FAULT,
}


@dataclass(frozen=True)
class CommandBinding:
    """How one telecommand runs on the node's devices.

    `execute` calls the device (and returns what the device call returns: a remote device answers with an
    awaitable) and raises DeviceCommandError to fail the start stage. With no
    `completes_on` the command completes as soon as it has started; otherwise an event of `device`
    completes it, a `fails_on` event fails it (device fault), an `aborts_on` event ends it as aborted
    (e.g. STOP ending a DRILL_TO_DEPTH), and each `progress_on` event reports a progress step.
    """

    execute: Callable[[Any], object]
    device: str = ""
    """Kind of the device the command runs on: only that device's events can end it."""
    completes_on: str | None = None
    fails_on: tuple[str, ...] = ()
    aborts_on: tuple[str, ...] = ()
    progress_on: tuple[str, ...] = ()


@dataclass
class _Pending:
    """A started command waiting for its device. Each ending event ends exactly one request: the oldest
    one of that device that it can end. (Events from before a command started were drained and reported
    before it executed, so every event considered here comes after it.)"""

    command: Telecommand
    binding: CommandBinding
    progress: int = 0


@dataclass
class NodeCounters:
    commands_received: int = 0
    duplicates_ignored: int = 0
    housekeeping_sent: int = 0
    events_sent: int = 0


class DeviceNode:
    """Base of the lander drill, lander arm and ascent vehicle services."""

    side = Side.SPACE

    def __init__(self, runtime: ServiceRuntime, devices: Sequence[Device], timing: Timing) -> None:
        self.runtime = runtime
        self.devices = list(devices)
        self.state_file: StateFile | None = None
        """Set by the composition root when the service should survive a crash."""
        self.save_devices: Callable[[Sequence[Device]], dict[str, Any]] = lambda devices: {
            device.kind: device for device in devices}
        """How the devices go into the snapshot (the composition root tags each with its configuration)."""
        self.timing = timing
        self.node = runtime.node
        self.topics = runtime.topics
        self.counters = NodeCounters()
        self._pending: dict[str, _Pending] = {}
        self._seen_requests: dict[str, None] = {}
        self._wake = Wakeup()
        self.faults = NodeFaults(runtime, self.devices, sample=self._housekeeping_sample)
        self._linked: list[LinkedDevice] | None = None
        self._stepping = asyncio.Lock()
        """Held while the devices are stepped and read, and while a command runs on them: a device behind a
        link answers later, and nothing may step it in between (an event from before a command must never
        end that command)."""
        runtime.bus.subscribe(self.topics.tc(self.side, self.node), self._on_telecommand, qos=1)

    # -- to be provided by each node ------------------------------------------------------------------
    def bindings(self) -> dict[str, CommandBinding]:
        raise NotImplementedError

    def housekeeping(self) -> tuple[type[Housekeeping], dict[str, Any]]:
        """The housekeeping model and its fields at the current device state."""
        raise NotImplementedError

    async def on_device_event(self, event: DeviceEvent) -> None:
        """React to one of this node's own device events (e.g. a scoop deposited into the container)."""

    # -- devices behind a link ----------------------------------------------------------------------
    def linked_devices(self) -> list[LinkedDevice]:
        """The devices behind a link (worked out once: a protocol isinstance check is slow per packet)."""
        if self._linked is None:
            self._linked = [device for device in self.devices if isinstance(device, LinkedDevice)]
        return self._linked

    async def open_devices(self) -> None:
        """Open every device's link (never fails: an unreachable device is reported and retried)."""
        for device in self.linked_devices():
            device.notify = self._wake.set  # type: ignore[attr-defined]
            await device.open()
        self.runtime.links = self._link_states()

    async def close_devices(self) -> None:
        for device in self.linked_devices():
            await device.close()

    def _link_states(self) -> dict[str, str]:
        return {status.device: "up" if status.up else "down"
                for status in (device.link_status() for device in self.linked_devices())}

    # -- persistence --------------------------------------------------------------------------------
    def save_state(self, *, force: bool = False) -> None:
        if self.state_file is None:
            return
        self.state_file.save({
            "devices": self.save_devices(self.devices),
            "runtime": self.runtime.snapshot(),
            "pending": {rid: (p.command.model_dump_json(), p.progress) for rid, p in self._pending.items()},
            "seen": list(self._seen_requests),
            "faults": self.faults.snapshot(),
        }, force=force)

    def resume(self, saved: dict[str, Any]) -> None:
        """Take back what a previous run of this service saved (its devices were restored by the caller)."""
        self.runtime.restore(saved["runtime"])
        bindings = self.bindings()
        for request_id, (command_json, progress) in saved["pending"].items():
            command = Telecommand.model_validate_json(command_json)
            self._pending[request_id] = _Pending(command, bindings[command.command], progress)
        self._seen_requests = dict.fromkeys(saved["seen"])
        if "faults" in saved:
            self.faults.restore(saved["faults"])
        self.runtime.log.info("state_resumed", pending=len(self._pending), seen=len(self._seen_requests))

    # -- main loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.runtime.clock.wait_ready()
        self.runtime.log.info("node_running", devices=[d.kind for d in self.devices])
        next_hk = self.runtime.clock.now()
        while True:
            now = self.runtime.clock.now()
            await self.advance(now)
            active = self.active()
            if now >= next_hk:
                await self.publish_housekeeping(now)
                period = self.timing.hk_period_s if active else self.timing.idle_hk_period_s
                # after a warp, report once and carry on rather than backfill what was skipped
                next_hk = next_hk + period if next_hk + period > now else now + period
            elif active:
                next_hk = min(next_hk, now + self.timing.hk_period_s)  # woken by a command: full rate now
            self.save_state()
            await self.runtime.clock.sleep_until(next_hk, self._wake)

    def active(self) -> bool:
        return any(device.active() for device in self.devices)

    async def advance(self, now: float) -> None:
        """Step every device to `now` and publish what happened, in time order."""
        async with self._stepping:
            await self._advance(now)

    @contextlib.asynccontextmanager
    async def stepped_to_now(self) -> AsyncIterator[None]:
        """The devices stepped to the clock's now, what happened until then reported, and held there for the
        block (to act on them: a command, the platform shedding the drill, a sample poured)."""
        async with self._stepping:
            await self._advance(self.runtime.clock.now())
            yield

    def before_advance(self) -> None:
        """Hook: what a node sets on its devices before each step (e.g. the arm's load on the bus)."""

    async def _advance(self, now: float) -> None:
        self.before_advance()
        events: list[tuple[DeviceEvent, str]] = []
        for device in self.devices:
            await settle(device.advance(now))
            events.extend((event, device.kind) for event in device.drain_events())
        for event, device_kind in sorted(events, key=lambda pair: pair[0].time):
            await self.on_device_event(event)
            await self.publish_event(event)
            await self._resolve_pending(event, device_kind)
        await self.faults.collect()
        if any(event.name in (DeviceEventName.LINK_LOST, DeviceEventName.LINK_RESTORED) for event, _ in events):
            self.runtime.links = self._link_states()
            await self.runtime.publish_status_now()
        if events:
            # what was just reported must survive a crash: a restart from before the drain reports
            # again (same sequence counts, dropped as duplicates); one from after it has them queued
            self.save_state(force=True)

    async def publish_housekeeping(self, sampled_at: float) -> None:
        if self.faults.hung:
            await self.faults.note_silence(sampled_at)
            return
        model, fields = self.housekeeping()
        linked = self.linked_devices()
        links = [device.link_status() for device in linked] if linked else []
        if links:
            fields["links"] = [{"name": s.device, "backend": s.backend, "link_up": s.up,
                                "reading_age_s": round(s.reading_age_s, 3)} for s in links]
        missing = await self.faults.perturb_housekeeping(fields, sampled_at)
        if missing:
            fields["missing"] = tuple(missing)
        topic = self.topics.tm(self.side, self.node, "hk")
        await self.runtime.publish(topic, model, qos=0, sim_time=sampled_at, **saturate(model, fields))
        self.counters.housekeeping_sent += 1

    def _housekeeping_sample(self) -> dict[str, Any]:
        return self.housekeeping()[1]

    async def publish_event(self, event: DeviceEvent) -> None:
        await self.runtime.publish(
            self.runtime.event_topic,
            Event,
            qos=1,
            event=event.name[:64],
            severity=Severity(event.severity),
            message=event.message[:500],
            data=dict(event.data),
        )
        self.counters.events_sent += 1

    # -- telecommands -------------------------------------------------------------------------------
    async def _on_telecommand(self, message: IncomingMessage) -> None:
        command = await self.runtime.decode(message, Telecommand, source=Node.GROUND_CONTROL)
        if command is None:
            return
        if self.faults.hung:
            # a hung node hears nothing; ground control re-sends what got no report
            await self.faults.note_silence(self.runtime.clock.now())
            return
        if command.request_id in self._seen_requests:
            # at-least-once delivery: a repeat of a request already handled changes nothing
            self.counters.duplicates_ignored += 1
            return
        self._remember(command.request_id)
        self.counters.commands_received += 1
        log = self.runtime.log.bind(request_id=command.request_id, command=command.command)
        if command.target != self.node:
            await self._fail(command, Stage.ACCEPTANCE, FailureCode.WRONG_MODE, f"addressed to {command.target}")
            await self.runtime.reject(message, RejectionCode.WRONG_TOPIC, "telecommand for another node",
                                      command.request_id)
            return
        try:
            args = parse_command_args(self.node, command.command, command.args)
        except UnknownCommand as exc:
            await self._fail(command, Stage.ACCEPTANCE, FailureCode.UNKNOWN_COMMAND, str(exc))
            await self.runtime.reject(message, RejectionCode.UNKNOWN_COMMAND, str(exc), command.request_id)
            return
        except ValidationError as exc:
            reason = describe_validation_error(exc)
            await self._fail(command, Stage.ACCEPTANCE, FailureCode.INVALID_ARGUMENTS, reason)
            await self.runtime.reject(message, RejectionCode.INVALID_ARGUMENTS, reason, command.request_id)
            return
        await self._report(command, Stage.ACCEPTANCE)
        async with self.stepped_to_now():
            binding = self.bindings()[command.command]
            try:
                await settle(binding.execute(args))
            except DeviceCommandError as exc:
                code = _FAILURE_BY_DEVICE_CODE.get(exc.code, FailureCode.EXECUTION_FAILED)
                log.info("command_refused", reason=str(exc))
                await self._fail(command, Stage.START, code, str(exc))
                return
            await self._report(command, Stage.START)
            log.info("command_started")
            if binding.completes_on is None:
                await self._report(command, Stage.COMPLETION)
            else:
                self._pending[command.request_id] = _Pending(command, binding)
        self.save_state(force=True)
        self._wake.set()

    async def _resolve_pending(self, event: DeviceEvent, device_kind: str) -> None:
        """End or advance the request this device event belongs to (oldest first, one request per ending
        event: two CHECKOUTs in flight are completed by two events, not both by the first)."""
        if event.name == DeviceEventName.LINK_LOST:
            # whether the device finishes what it was doing cannot be known: every command waiting on it fails
            for request_id, pending in list(self._pending.items()):
                if pending.binding.device == device_kind:
                    del self._pending[request_id]
                    await self._fail(pending.command, Stage.COMPLETION, FailureCode.DEVICE_FAULT, event.message)
            return
        for request_id, pending in list(self._pending.items()):
            binding = pending.binding
            if binding.device != device_kind:
                continue
            if event.name in binding.fails_on:
                del self._pending[request_id]
                await self._fail(pending.command, Stage.COMPLETION, FailureCode.DEVICE_FAULT,
                                 f"{event.name}: {event.message}")
                return
            if event.name in binding.aborts_on:
                del self._pending[request_id]
                await self._fail(pending.command, Stage.COMPLETION, FailureCode.ABORTED,
                                 f"{event.name}: {event.message}")
                return
            if event.name == binding.completes_on:
                del self._pending[request_id]
                await self._report(pending.command, Stage.COMPLETION)
                return
            if event.name in binding.progress_on:
                pending.progress += 1
                await self._report(pending.command, Stage.PROGRESS, progress_step=pending.progress)
                return

    async def _report(self, command: Telecommand, stage: Stage, **fields: Any) -> None:
        await self.runtime.publish(
            self.topics.ack(self.side, self.node),
            VerificationReport,
            qos=1,
            request_id=command.request_id,
            command=command.command,
            stage=stage,
            **fields,
        )

    async def _fail(self, command: Telecommand, stage: Stage, code: FailureCode, reason: str) -> None:
        await self._report(command, stage, success=False, failure_code=code, reason=reason[:1000])

    def _remember(self, request_id: str, most: int = 10_000) -> None:
        self._seen_requests[request_id] = None
        if len(self._seen_requests) > most:
            del self._seen_requests[next(iter(self._seen_requests))]



def saturate(model: type[Housekeeping], fields: dict[str, Any]) -> dict[str, Any]:
    """Clip numeric readings to the ranges the packet declares, as a real sensor saturates at the end of
    its range: a biased or noisy sensor must give a strange reading, never an unsendable packet."""
    for name, low, high in _ranges(model):
        value = fields.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if low is not None and value < low:
            fields[name] = type(value)(low)
        elif high is not None and value > high:
            fields[name] = type(value)(high)
    return fields


@functools.cache
def _ranges(model: type[Housekeeping]) -> tuple[tuple[str, float | None, float | None], ...]:
    """(field, lowest, highest) of every bounded field of a packet model, worked out once."""
    out = []
    for name, info in model.model_fields.items():
        low = next((float(b.ge) for b in info.metadata if isinstance(b, Ge)), None)  # type: ignore[arg-type]
        high = next((float(b.le) for b in info.metadata if isinstance(b, Le)), None)  # type: ignore[arg-type]
        if low is not None or high is not None:
            out.append((name, low, high))
    return tuple(out)
