"""Relay transponder (Queqiao-2 class): light-time delay and far-side visibility windows.

Why: nothing on the far side sees the Earth, so every packet pays Earth-Moon light time 1.28 s [53]
plus the relay leg, at most ~0.06 s for QQ2 [54], which varies smoothly with the 24 h relay orbit [1].
The lander was out of contact "some hours" during its surface stay [11]; exact QQ2 windows over the
Apollo basin are not public, so gaps are explicit parameters (offsets from the mission epoch). The
default gap, epoch+14 h..+18 h, sits in an idle stretch of the nominal scenario.
The relay is a pure function of time; `advance()` only emits the loss/regain events it crosses.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lunar_gs.hardware_sim.hal import DeviceEvent

Gap = tuple[float, float]


@dataclass(frozen=True)
class RelayParams:
    epoch_unix_s: float = 1717280596.0  # touchdown 2024-06-01T22:23:16Z [8][9][4]
    earth_moon_delay_s: float = 1.28  # [53]
    relay_leg_min_s: float = 0.005  # relay near perilune over the site (assumed)
    relay_leg_max_s: float = 0.06  # [54] QQ2 adds <= 0.06 s
    orbit_period_s: float = 86400.0  # [1] 24 h orbit
    orbit_phase_s: float = 0.0  # time after epoch of the shortest leg (assumed)
    # "some hours" out of contact [11]; placement (assumed)
    gaps_s: tuple[Gap, ...] = ((14 * 3600.0, 18 * 3600.0),)
    storage_capacity: int = 10000  # messages storable during a gap (assumed)


class SimRelayLink:
    kind = "relay"
    backend = "sim"

    def __init__(self, params: RelayParams, rng: random.Random, start_time: float) -> None:
        for start, end in params.gaps_s:
            if not end > start:
                raise ValueError(f"relay gap ({start}, {end}) must end after it starts")
        self.p = params
        self.storage_capacity = params.storage_capacity
        self._gaps = sorted((params.epoch_unix_s + s, params.epoch_unix_s + e) for s, e in params.gaps_s)
        self._now = float(start_time)
        self._events: list[DeviceEvent] = []

    def one_way_delay_s(self, now: float) -> float:
        p = self.p
        phase = 2.0 * math.pi * (now - p.epoch_unix_s - p.orbit_phase_s) / p.orbit_period_s
        leg = p.relay_leg_min_s + (p.relay_leg_max_s - p.relay_leg_min_s) * (1.0 - math.cos(phase)) / 2.0
        return p.earth_moon_delay_s + leg

    def far_side_visible(self, now: float) -> bool:
        return not any(start <= now < end for start, end in self._gaps)

    def next_window_start(self, now: float) -> float | None:
        if self.far_side_visible(now):
            return None
        end = now
        while not self.far_side_visible(end):  # overlapping gaps chain up
            end = max(e for s, e in self._gaps if s <= end < e)
        return end

    def next_loss_of_signal(self, now: float) -> float | None:
        """Start of the next scheduled visibility gap after `now` (None: no more gaps): what an
        instructor's "60 s before LOS" trigger is measured from."""
        starts = [start for start, _ in self._gaps if start > now]
        return min(starts) if starts else None

    def advance(self, now: float) -> None:
        if now <= self._now:
            return
        before = self._now
        for start, end in self._gaps:
            if before < start <= now:
                self._events.append(DeviceEvent(start, "far_side_lost", "warning",
                                                "far side out of relay contact",
                                                {"window_start": self.next_window_start(start) or end}))
            if before < end <= now and self.far_side_visible(end):
                self._events.append(DeviceEvent(end, "far_side_regained", "info",
                                                "far side back in relay contact", {}))
        self._events.sort(key=lambda e: e.time)
        self._now = now

    def drain_events(self) -> list[DeviceEvent]:
        events, self._events = self._events, []
        return events

    def active(self) -> bool:
        return False
