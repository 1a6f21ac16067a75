"""Fixed-grid stepping shared by the simulated devices.

Why a grid: model time only ever lands on `start + k * step`, so any partition of `advance()` calls
(one call of 20 h or a million small ones) produces the same trajectory, and a command is applied at
the grid time at or before the moment it arrives. While nothing moves, the whole stretch is skipped
in one analytic `_coast()` call, which makes clock warps cheap.
"""

from __future__ import annotations

import math

from lunar_gs.hardware_sim.hal import DeviceEvent, EventData


class SteppedDevice:
    """Base of the sim models: grid clock, event queue, analytic coasting while idle."""

    kind: str = ""
    backend: str = "sim"

    def __init__(self, start_time: float, step_s: float) -> None:
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        self._start = float(start_time)
        self._step_s = float(step_s)
        self._k = 0
        self._now = float(start_time)
        self._events: list[DeviceEvent] = []

    @property
    def time(self) -> float:
        """Model time: the last grid point reached."""
        return self._start + self._k * self._step_s

    def advance(self, now: float) -> None:
        if now <= self._now:
            return
        self._now = now
        k_target = math.floor((now - self._start) / self._step_s + 1e-9)
        while self._k < k_target:
            if not self.active():
                self._coast(k_target - self._k)
                self._k = k_target
                break
            self._k += 1
            self._step(self._step_s)

    def drain_events(self) -> list[DeviceEvent]:
        events, self._events = self._events, []
        return events

    def active(self) -> bool:
        return False

    def _step(self, dt: float) -> None:
        """One fixed step while active; `self.time` is already the step's end (events stamp there)."""

    def _coast(self, n_steps: int) -> None:
        """Skip n idle steps analytically (default: nothing evolves)."""

    def _emit(self, name: str, severity: str, message: str, data: EventData | None = None,
              at: float | None = None) -> None:
        self._events.append(DeviceEvent(self.time if at is None else at, name, severity, message,
                                        dict(data or {})))
