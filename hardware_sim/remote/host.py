"""The HAL device a service holds for a device at the far end of a link (device contract, version 2).

What the contract adds to a simulated model: commands are coroutines, completed by the device's answer
(a refusal still fails the start stage with its code); `open()` / `close()` bound the link's life; the
link is supervised, reconnected with exponential backoff, and its loss and recovery are device events
(`link_lost`, `link_restored`): while it is down commands fail with `device_fault`, readings keep their
last value and age, and nothing raises out of `advance`. Events the device posts are acknowledged only at
the next `advance`, after the service has published and saved them, and `snapshot()` is plain JSON: what
the host knows (cursor, command sequence, last reading), never a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from lunar_gs.hardware_sim.faults import FaultHost, FaultNotApplicable, ModelFault, Symptom
from lunar_gs.hardware_sim.hal import (
    REFUSAL_CODES,
    ArmState,
    ContainerState,
    DeviceCommandError,
    DeviceEvent,
    DeviceEventName,
    DrillState,
)
from lunar_gs.hardware_sim.remote.description import DeviceDescription, Scalar, check_value
from lunar_gs.hardware_sim.remote.emulated import STOP_ANSWERING
from lunar_gs.hardware_sim.remote.link import CONTRACT_VERSION, DeviceLink, LinkError, WireEvent
from lunar_gs.hardware_sim.remote.settings import LinkSettings

UNRESPONSIVE = "device.unresponsive"
"""The catalogue's fault for a device behind a link: its emulator stops answering for a while."""
SNAPSHOT_SCHEMA = "lunar-gs.remote-device"
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class LinkStatus:
    """What housekeeping and the service status say about one device's link."""

    device: str
    backend: str
    up: bool
    reading_age_s: float
    """Simulated seconds since the last good reading (since start if none yet)."""


class RemoteDevice(FaultHost):
    """Base of the remote drill, arm and container: the state is the last reading, commands go out."""

    def __init__(self, description: DeviceDescription, backend: str, link: DeviceLink, settings: LinkSettings,
                 *, initial_state: Any, start_time: float, fault_kinds: frozenset[str],
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.kind = description.kind
        self.backend = backend
        self.description = description
        self.link = link
        self.settings = settings
        self.FAULT_KINDS = fault_kinds | {UNRESPONSIVE}  # type: ignore[misc]  # per instance: the model's
        self.stepped = (settings.time or "wall") == "step"
        self._wall = wall
        self._state = initial_state
        self._active = False
        self._now = float(start_time)
        self._reading_at = float(start_time)
        self._up = False
        self._down_reason = "not connected yet"
        self._announced_down = False
        self._events: list[DeviceEvent] = []
        self._symptoms: list[Symptom] = []
        self._fault_orders: list[tuple[str, Any]] = []
        self._cursor = 0
        """Sequence number of the newest device event handed to the service."""
        self._acked = 0
        self._seq = 0
        self._serial = ""
        """The far end's serial and boot id, as last seen: another one means it restarted."""
        self._lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self.notify: Callable[[], None] | None = None
        """Set by the service: called when a device on its own clock has news (wakes the service loop)."""
        self.counters = {"link_losses": 0, "reconnects": 0, "commands": 0, "reads": 0, "device_restarts": 0}
        self.log = structlog.get_logger(__name__).bind(device=self.kind, backend=backend, url=settings.url)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def open(self, first_connect_timeout_s: float | None = None) -> None:
        """Start the link's supervisor; wait a little for the first connection, never fail: a device
        unreachable at start is reported (`link_lost`) and reconnected in the background."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"link-{self.kind}")
        wait = first_connect_timeout_s if first_connect_timeout_s is not None else 2 * self.settings.timeout_s
        deadline = self._wall() + wait
        while not self._up and self._wall() < deadline:
            await asyncio.sleep(0.02)
        if not self._up and not self._announced_down:
            self._announce_down(f"unreachable at start: {self._down_reason}", at_start=True)

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        with contextlib.suppress(LinkError):
            await self.link.close()
        self._up = False

    # -- the HAL device -------------------------------------------------------------------------------
    def state(self) -> Any:
        return self._state

    def active(self) -> bool:
        return self._up and self._active

    def drain_events(self) -> list[DeviceEvent]:
        out, self._events = self._events, []
        return out

    def link_status(self) -> LinkStatus:
        return LinkStatus(self.kind, self.backend, self._up, max(0.0, self._now - self._reading_at))

    async def advance(self, now: float) -> None:
        """Acknowledge what the service has saved, step the emulator to `now`, read one snapshot and the
        new events. A failing link is reported, never raised."""
        self._now = max(self._now, float(now))
        if not self._up:
            return
        try:
            async with self._lock:
                if self._cursor > self._acked:
                    await self.link.ack(self._cursor)
                    self._acked = self._cursor
                await self._send_fault_orders()
                if self.stepped:
                    await self.link.step(self._now)
                reading = await self.link.read()
                if reading.event_head < self._cursor:
                    self._device_restarted(f"its event count went back to {reading.event_head}")
                events = await self.link.events(self._cursor) if reading.event_head > self._cursor else []
        except LinkError as exc:
            await self._lost(str(exc))
            return
        self.counters["reads"] += 1
        self._state = self.description.decode_state(reading.fields)
        self._active = reading.active
        self._reading_at = self._now
        self._take(events)

    async def call(self, name: str, **args: Scalar) -> float | None:
        """Send one command; returns the device's value (if it gives one), raises DeviceCommandError."""
        spec = self.description.command(name)
        try:
            args = {arg.name: check_value(arg, args[arg.name]) for arg in spec.args}
        except ValueError as exc:  # as the model refuses an argument it cannot take
            raise DeviceCommandError(f"{name}: {exc}", "wrong_mode") from None
        if not self._up:
            raise DeviceCommandError(f"{self.kind} link is down ({self._down_reason})", "device_fault")
        self._seq += 1
        self.counters["commands"] += 1
        try:
            async with self._lock:
                outcome = await self.link.command(self._seq, name, args)
        except LinkError as exc:
            await self._lost(str(exc))
            raise DeviceCommandError(f"{self.kind} link lost during {name}: {exc}", "device_fault") from None
        if outcome.ok:
            return outcome.value
        code = outcome.code if outcome.code in REFUSAL_CODES else (
            "wrong_mode" if outcome.code == "invalid_arguments" else "device_fault")
        raise DeviceCommandError(outcome.reason or outcome.code, code)

    # -- faults: hosted by the emulated model at the far end ------------------------------------------
    def inject_fault(self, fault: ModelFault) -> None:
        if fault.kind not in self.FAULT_KINDS:
            raise FaultNotApplicable(f"{self.kind} cannot host {fault.kind}; "
                                     f"it takes {', '.join(sorted(self.FAULT_KINDS)) or 'no faults'}")
        if not self._up:
            raise FaultNotApplicable(f"{self.kind} link is down")
        super().inject_fault(fault)
        if fault.kind == UNRESPONSIVE:  # the emulator's own fault: it answers nothing for a while
            self._fault_orders.append(("inject", {"fault_id": fault.fault_id, "kind": STOP_ANSWERING,
                                                  "params": {"seconds": fault.params.get("seconds", 10.0)}}))
            return
        self._fault_orders.append(("inject", {"fault_id": fault.fault_id, "kind": fault.kind, "item": fault.item,
                                              "params": dict(fault.params), "seed": fault.seed}))

    def _check_fault(self, fault: ModelFault) -> None:
        if fault.kind == UNRESPONSIVE and fault.item != self.kind:
            raise FaultNotApplicable(f"{fault.item} is not this device ({self.kind})")

    def clear_fault(self, fault_id: str) -> bool:
        unresponsive = [f.fault_id for f in self._faults_of(UNRESPONSIVE)]
        if not super().clear_fault(fault_id):
            return False
        if fault_id not in unresponsive:  # a silence cannot be cut short: it ends by itself
            self._fault_orders.append(("clear", fault_id))
        return True

    def drain_symptoms(self) -> list[Symptom]:
        out, self._symptoms = self._symptoms + super().drain_symptoms(), []
        return sorted(out, key=lambda symptom: symptom.time)

    # -- crash recovery -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"schema": SNAPSHOT_SCHEMA, "version": SNAPSHOT_VERSION, "kind": self.kind,
                "backend": self.backend, "url": self.settings.url, "event_cursor": self._cursor,
                "command_seq": self._seq, "device_serial": self._serial, "reading": self.description.encode_state(self._state),
                "reading_time": self._reading_at, "active": self._active,
                "faults": {f.fault_id: {"kind": f.kind, "item": f.item, "params": dict(f.params), "seed": f.seed}
                           for f in self.active_faults()}}

    def restore(self, saved: dict[str, Any]) -> None:
        if saved.get("schema") != SNAPSHOT_SCHEMA or saved.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not a {SNAPSHOT_SCHEMA} v{SNAPSHOT_VERSION} snapshot")
        self._cursor = self._acked = int(saved["event_cursor"])
        self._serial = str(saved.get("device_serial", ""))
        # a command sent after the snapshot may have reached the device: never reuse its sequence number
        self._seq = int(saved["command_seq"]) + 1000
        self._state = self.description.decode_state(saved["reading"])
        self._reading_at = self._now = float(saved["reading_time"])
        faults, _, _ = self._fault_state()
        for fault_id, f in saved.get("faults", {}).items():
            faults[fault_id] = ModelFault(fault_id, f["kind"], f["item"], f["params"], f["seed"])

    # -- inside ---------------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.settings.reconnect_min_s
        kick_every = self.settings.watchdog_s / 3 if self.settings.watchdog_s else None
        while True:
            if not self._up:
                try:
                    await self._connect()
                    delay = self.settings.reconnect_min_s
                except LinkError as exc:
                    self._down_reason = str(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.reconnect_max_s)
                    continue
            period = min(p for p in (kick_every, None if self.stepped else self.settings.poll_period_s, 1.0) if p)
            await asyncio.sleep(period)
            if self._up:
                await self._keep_alive()

    async def _connect(self) -> None:
        async with self._lock:
            identity = await self.link.connect()
            if identity.kind != self.kind or identity.contract_version != CONTRACT_VERSION:
                await self.link.close()
                raise LinkError(f"the far end is a {identity.kind} speaking contract v{identity.contract_version};"
                                f" expected a {self.kind} speaking v{CONTRACT_VERSION}")
            if self.stepped and not identity.stepped:
                await self.link.close()
                raise LinkError("the device runs on its own clock and cannot be stepped (link time: wall)")
            await self.link.kick(self.settings.watchdog_s)
        if self._serial and identity.serial != self._serial:
            self._device_restarted(f"it answers as {identity.serial!r}, not {self._serial!r}")
        self._serial = identity.serial
        was_down_for = self._now - self._reading_at
        if self._announced_down:
            self.counters["reconnects"] += 1
            self._post(DeviceEventName.LINK_RESTORED, "info", f"{self.kind} link restored",
                       {"device": self.kind, "backend": self.backend, "down_s": round(was_down_for, 3)})
        self._up, self._announced_down = True, False
        for fault in self._faults_of(UNRESPONSIVE):
            self._recover(fault, self._now, "the device answers again")
        self.log.info("device_link_up", model=identity.model, serial=identity.serial, stepped=identity.stepped)
        if self.notify is not None:
            self.notify()

    async def _keep_alive(self) -> None:
        """Kick the watchdog; a device on its own clock is also read here, to notice its events."""
        try:
            async with self._lock:
                if self.settings.watchdog_s:
                    await self.link.kick(self.settings.watchdog_s)
                if not self.stepped:
                    reading = await self.link.read()
                    if reading.event_head != self._cursor and self.notify is not None:
                        self.notify()
        except LinkError as exc:
            await self._lost(str(exc))

    async def _lost(self, reason: str) -> None:
        if not self._up:
            return
        self._up = False
        self._down_reason = reason
        self.counters["link_losses"] += 1
        self._announce_down(reason)
        for fault in self._faults_of(UNRESPONSIVE):
            self._symptom(fault, self._now, "the device stopped answering: link lost")
        with contextlib.suppress(LinkError):
            await self.link.close()
        if self.notify is not None:
            self.notify()

    def _announce_down(self, reason: str, at_start: bool = False) -> None:
        self._announced_down = True
        self.log.warning("device_link_lost", reason=reason, at_start=at_start)
        self._post(DeviceEventName.LINK_LOST, "error", f"{self.kind} link lost: {reason}"[:500],
                   {"device": self.kind, "backend": self.backend, "at_start": at_start})

    def _device_restarted(self, how: str) -> None:
        """The device was power-cycled (or replaced): a new boot id, or its mailbox counting from zero."""
        self.counters["device_restarts"] += 1
        self._cursor = self._acked = 0
        self._post(DeviceEventName.DEVICE_RESTARTED, "warning",
                   f"{self.kind} restarted ({how}): its state is its power-on state", {"device": self.kind})

    def _take(self, events: list[WireEvent]) -> None:
        for event in sorted(events, key=lambda e: e.seq):
            if event.seq <= self._cursor:
                continue
            self._cursor = event.seq
            if event.symptom_of:
                self._symptoms.append(Symptom(event.symptom_of, event.time, event.message,
                                              bool(event.data.get("recovered"))))
                if event.data.get("recovered"):
                    super().clear_fault(event.symptom_of)
            else:
                self._events.append(DeviceEvent(event.time, event.name, event.severity, event.message,
                                                dict(event.data)))

    def _post(self, name: str, severity: str, message: str, data: dict[str, Scalar]) -> None:
        self._events.append(DeviceEvent(self._now, name, severity, message, data))

    async def _send_fault_orders(self) -> None:
        while self._fault_orders:
            action, what = self._fault_orders[0]
            outcome = await (self.link.inject(what) if action == "inject" else self.link.clear(what))
            self._fault_orders.pop(0)
            if not outcome.ok:
                self.log.warning("device_refused_fault", action=action, reason=outcome.reason)


class RemoteDrill(RemoteDevice):
    def state(self) -> DrillState:
        return self._state  # type: ignore[no-any-return]

    async def self_test(self) -> None:
        await self.call("self_test")

    async def start(self, target_depth_m: float, rpm: float, percussion: bool) -> None:
        await self.call("start", target_depth_m=target_depth_m, rpm=rpm, percussion=percussion)

    async def set_percussion(self, on: bool) -> None:
        await self.call("set_percussion", on=on)

    async def stop(self) -> None:
        await self.call("stop")

    async def stow_core(self) -> None:
        await self.call("stow_core")

    async def retract(self, distance_m: float) -> None:
        await self.call("retract", distance_m=distance_m)

    async def reset_protection(self) -> None:
        await self.call("reset_protection")

    async def power_cut(self, reason: str) -> None:
        await self.call("power_cut", reason=reason.encode()[:64].decode(errors="ignore"))


class RemoteArm(RemoteDevice):
    def state(self) -> ArmState:
        return self._state  # type: ignore[no-any-return]

    async def self_test(self) -> None:
        await self.call("self_test")

    async def start_sampling(self, sites: int, scoop_depth_cm: float) -> None:
        await self.call("start_sampling", sites=sites, scoop_depth_cm=scoop_depth_cm)

    async def stow(self) -> None:
        await self.call("stow")

    async def switch_encoder(self, joint: str, unit: str) -> None:
        await self.call("switch_encoder", joint=joint, unit=unit)

    async def reset_joint(self, joint: str) -> None:
        await self.call("reset_joint", joint=joint)

    async def clear_scoop(self) -> None:
        await self.call("clear_scoop")


class RemoteContainer(RemoteDevice):
    def state(self) -> ContainerState:
        return self._state  # type: ignore[no-any-return]

    async def receive(self, mass_g: float) -> float:
        value = await self.call("receive", mass_g=mass_g)
        return float(value or 0.0)

    async def seal(self) -> None:
        await self.call("seal")

    async def transfer_to_ascender(self) -> None:
        await self.call("transfer_to_ascender")


REMOTE_CLASSES: dict[str, type[RemoteDevice]] = {"drill": RemoteDrill, "arm": RemoteArm,
                                                 "container": RemoteContainer}
