"""A simulated model on the device's side of a wire: what a bench device's firmware would do.

Wire servers (Modbus, serial line) decode requests into calls on `EmulatedDevice` and encode its answers;
the model is the same `sim` model, built from the same profile parameters and seed, so an emulated device
behaves exactly as the simulated one would. What the firmware adds is here: sequence-numbered commands
that execute once (a retried request replays its first outcome), an event mailbox kept until the host
acknowledges it, a host watchdog in wall time, and device-level faults (`STOP_ANSWERING` for N seconds,
plus the model's own faults).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from lunar_gs.hardware_sim.faults import FaultHost, FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.hal import Device, DeviceCommandError
from lunar_gs.hardware_sim.remote.description import DeviceDescription, Scalar, check_value
from lunar_gs.hardware_sim.remote.link import (
    CONTRACT_VERSION,
    FAULT_WORD_MODEL_FAULT,
    FAULT_WORD_WATCHDOG,
    CommandOutcome,
    DeviceIdentity,
    DeviceReading,
    WireEvent,
)

STOP_ANSWERING = "emulator.stop_answering"
"""Emulator-only fault: the device answers nothing for `seconds` (wall), as a hung controller."""
MAILBOX_DEPTH = 256
"""Unacknowledged events kept; older ones are dropped (and counted) when a host never acknowledges."""


class EmulatedDevice:
    def __init__(self, description: DeviceDescription, model: Device, *, stepped: bool = True,
                 serial: str = "", wall: Callable[[], float] = time.monotonic) -> None:
        self.description = description
        self.model = model
        self.stepped = stepped
        self.serial = serial
        self._wall = wall
        self._event_seq = 0
        self._mailbox: deque[WireEvent] = deque()
        self.events_dropped = 0
        self._last: CommandOutcome | None = None
        self.commands_executed = 0
        self.duplicates_replayed = 0
        self._watchdog_s: float | None = None
        self._kicked_at = wall()
        self.watchdog_expired = False
        self._muted_until = 0.0

    # -- what a server asks ---------------------------------------------------------------------------
    def answering(self) -> bool:
        """False while a STOP_ANSWERING fault holds: servers then stay silent (no reply at all)."""
        return self._wall() >= self._muted_until

    def identify(self) -> DeviceIdentity:
        return DeviceIdentity(self.description.kind, CONTRACT_VERSION, self.stepped,
                              model=f"lunar-gs emulated {self.description.kind}", serial=self.serial)

    def step(self, sim_time: float) -> None:
        """Advance the model (emulator-only: a bench device runs on its own clock)."""
        self._check_watchdog()
        self.model.advance(sim_time)
        self._collect()

    def advance_own_clock(self, sim_time: float) -> None:
        """A device on its own clock moves by itself (a host's `step` is for emulators it steps)."""
        self.model.advance(sim_time)
        self._collect()

    def read(self) -> DeviceReading:
        self._check_watchdog()
        self._collect()
        values = self.description.encode_state(self.model.state())  # type: ignore[attr-defined]
        word = (FAULT_WORD_WATCHDOG if self.watchdog_expired else 0) | (
            FAULT_WORD_MODEL_FAULT if isinstance(self.model, FaultHost) and self.model.active_faults() else 0)
        return DeviceReading(self._time(), self.model.active(), values, self._event_seq, word)

    def events(self, after_seq: int) -> list[WireEvent]:
        return [event for event in self._mailbox if event.seq > after_seq]

    def ack(self, upto_seq: int) -> None:
        while self._mailbox and self._mailbox[0].seq <= upto_seq:
            self._mailbox.popleft()

    def command(self, seq: int, name: str, args: Mapping[str, Any]) -> CommandOutcome:
        """Execute once per sequence number: the same `seq` again replays the first outcome."""
        if self._last is not None and self._last.seq == seq:
            self.duplicates_replayed += 1
            return self._last
        self._last = self._execute(seq, name, args)
        return self._last

    def kick(self, timeout_s: float) -> None:
        self._kicked_at = self._wall()
        self._watchdog_s = timeout_s if timeout_s > 0 else None
        self.watchdog_expired = False

    def inject(self, fault: Mapping[str, Any]) -> CommandOutcome:
        kind = str(fault.get("kind", ""))
        params = dict(fault.get("params") or {})
        if kind == STOP_ANSWERING:
            self._muted_until = self._wall() + float(params.get("seconds", 10.0))
            return CommandOutcome(0)
        if not isinstance(self.model, FaultHost):
            return CommandOutcome(0, "invalid_arguments", f"{self.description.kind} hosts no faults")
        try:
            self.model.inject_fault(ModelFault(str(fault["fault_id"]), kind, fault.get("item"), params,
                                               int(fault.get("seed", 0))))
        except (FaultNotApplicable, KeyError, ValueError) as exc:
            return CommandOutcome(0, "invalid_arguments", str(exc))
        return CommandOutcome(0)

    def clear(self, fault_id: str) -> CommandOutcome:
        if isinstance(self.model, FaultHost) and self.model.clear_fault(fault_id):
            return CommandOutcome(0)
        return CommandOutcome(0, "invalid_arguments", f"fault {fault_id!r} is not active")

    # -- inside ---------------------------------------------------------------------------------------
    def _execute(self, seq: int, name: str, args: Mapping[str, Any]) -> CommandOutcome:
        try:
            spec = self.description.command(name)
        except KeyError as exc:
            return CommandOutcome(seq, "unknown_command", str(exc.args[0]))
        try:
            values = [check_value(arg, args[arg.name]) for arg in spec.args]
        except (KeyError, ValueError) as exc:
            return CommandOutcome(seq, "invalid_arguments", f"{name}: {exc}")
        try:
            result = getattr(self.model, name)(*values)
        except DeviceCommandError as exc:
            self._collect()
            return CommandOutcome(seq, exc.code, exc.reason)
        self.commands_executed += 1
        self._collect()
        value = float(result) if isinstance(result, int | float) and not isinstance(result, bool) else None
        return CommandOutcome(seq, "ok", "", value)

    def _time(self) -> float:
        return float(getattr(self.model, "time", 0.0))

    def _collect(self) -> None:
        """Move the model's new events (and its faults' symptoms) into the mailbox."""
        for event in self.model.drain_events():
            self._post(event.time, event.name, event.severity, event.message, dict(event.data))
        if isinstance(self.model, FaultHost):
            for symptom in self.model.drain_symptoms():
                self._post(symptom.time, "fault_symptom", "info", symptom.what,
                           {"recovered": symptom.recovered}, symptom_of=symptom.fault_id)

    def _post(self, at: float, name: str, severity: str, message: str, data: dict[str, Scalar],
              symptom_of: str = "") -> None:
        self._event_seq += 1
        self._mailbox.append(WireEvent(self._event_seq, at, name, severity, message, data, symptom_of))
        while len(self._mailbox) > MAILBOX_DEPTH:
            self._mailbox.popleft()
            self.events_dropped += 1

    def _check_watchdog(self) -> None:
        if self._watchdog_s is None or self.watchdog_expired:
            return
        if self._wall() - self._kicked_at <= self._watchdog_s:
            return
        self.watchdog_expired = True
        safe = self.description.safe_command
        if safe is not None and self.model.active():
            try:
                getattr(self.model, safe)()
            except DeviceCommandError:
                pass
        self._collect()
        self._post(self._time(), "watchdog_expired", "warning",
                   f"no word from the host for {self._watchdog_s:g} s"
                   + (f"; {safe} executed" if safe else ""), {"timeout_s": self._watchdog_s})


def build_emulated(kind: str, model: Device, **kwargs: Any) -> EmulatedDevice:
    from lunar_gs.hardware_sim.remote.description import DESCRIPTIONS
    if kind not in DESCRIPTIONS:
        raise ValueError(f"no emulator for device {kind!r}; emulated kinds: {sorted(DESCRIPTIONS)}")
    return EmulatedDevice(DESCRIPTIONS[kind], model, **kwargs)
