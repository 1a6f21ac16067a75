"""The mission's simulated clock: one master publishes it retained, every service follows it.

Time is shared between processes as an anchor (simulated time at a wall time, and a rate) rather than
as ticks, so a follower needs one message to know the time for as long as the rate holds, and a service
that starts late or restarts is in step at once. A warp republishes with a later anchor; followers wake
from their sleeps and see the jump.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.system import ClockState

WallClock = Callable[[], float]


class SimClock:
    """Follows the latest ClockState; `now()` is simulated Unix seconds."""

    def __init__(self, wall: WallClock = time.time) -> None:
        self._wall = wall
        self._state: ClockState | None = None
        self._sleepers: set[asyncio.Future[None]] = set()
        self._ready = asyncio.Event()

    @property
    def state(self) -> ClockState | None:
        return self._state

    @property
    def ready(self) -> bool:
        return self._state is not None

    @property
    def rate(self) -> float:
        return self._state.rate if self._state else 1.0

    @property
    def epoch(self) -> float:
        if self._state is None:
            raise RuntimeError("the clock has not been received yet")
        return self._state.epoch

    def update(self, state: ClockState) -> None:
        """Take a newer clock state; older generations (a stale retained copy) are ignored."""
        if self._state is not None and state.generation < self._state.generation:
            return
        self._state = state
        self._ready.set()
        for sleeper in self._sleepers:  # every sleeper re-checks against the new rate and anchor
            _resolve(sleeper)

    def now(self) -> float:
        if self._state is None:
            raise RuntimeError("the clock has not been received yet")
        return self._state.sim_at(self._wall())

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def sleep_until(self, sim_time: float, wakeup: "Wakeup | None" = None) -> None:
        """Sleep until simulated time reaches `sim_time`, or until `wakeup` is set (and then clear it).

        One future and one timer per wait, no tasks: service loops sleep once per message they pass on.
        A clock change (warp, rate, pause) wakes every sleeper to re-check.
        """
        await self.wait_ready()
        loop = asyncio.get_running_loop()
        while True:
            if wakeup is not None and wakeup.is_set():
                wakeup.clear()
                return
            state = self._state
            assert state is not None
            remaining = sim_time - self.now()
            if remaining <= 0:
                return
            sleeper: asyncio.Future[None] = loop.create_future()
            self._sleepers.add(sleeper)
            if wakeup is not None:
                wakeup.sleepers.add(sleeper)
            timer = None if state.paused else loop.call_later(remaining / state.rate, _resolve, sleeper)
            try:
                await sleeper
            finally:
                if timer is not None:
                    timer.cancel()
                self._sleepers.discard(sleeper)
                if wakeup is not None:
                    wakeup.sleepers.discard(sleeper)


class ClockMaster:
    """Owns the mission clock: starts it, changes its rate, pauses it and warps it forward."""

    def __init__(
        self,
        clock: SimClock,
        publish: Callable[[ClockState], Awaitable[None]],
        *,
        source: Node = Node.GROUND_CONTROL,
        wall: WallClock = time.time,
    ) -> None:
        self._clock = clock
        self._publish = publish
        self._source = source
        self._wall = wall
        self._generation = 0

    async def start(self, epoch: float, rate: float, at: float | None = None) -> None:
        await self._set(epoch=epoch, sim_anchor=epoch if at is None else at, rate=rate, paused=False)

    async def warp_to(self, sim_time: float) -> None:
        """Jump forward to `sim_time`; never backwards."""
        state = self._current()
        if sim_time > self._clock.now():
            await self._set(epoch=state.epoch, sim_anchor=sim_time, rate=state.rate, paused=state.paused)

    async def set_rate(self, rate: float) -> None:
        state = self._current()
        await self._set(epoch=state.epoch, sim_anchor=self._clock.now(), rate=rate, paused=state.paused)

    async def pause(self) -> None:
        state = self._current()
        await self._set(epoch=state.epoch, sim_anchor=self._clock.now(), rate=state.rate, paused=True)

    async def resume(self) -> None:
        state = self._current()
        await self._set(epoch=state.epoch, sim_anchor=self._clock.now(), rate=state.rate, paused=False)

    async def republish(self) -> None:
        if self._clock.state is not None:
            await self._publish(self._clock.state)

    def _current(self) -> ClockState:
        if self._clock.state is None:
            raise RuntimeError("start the clock first")
        return self._clock.state

    async def _set(self, *, epoch: float, sim_anchor: float, rate: float, paused: bool) -> None:
        wall = self._wall()
        # A restarted master continues the generation count of the retained state it found.
        known = self._clock.state.generation if self._clock.state else 0
        self._generation = max(self._generation, known) + 1
        state = ClockState(
            source=self._source,
            seq=self._generation,
            sim_time=sim_anchor,
            wall_time=wall,
            epoch=epoch,
            sim_anchor=sim_anchor,
            wall_anchor=wall,
            rate=rate,
            paused=paused,
            generation=self._generation,
        )
        self._clock.update(state)
        await self._publish(state)



def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Wakeup:
    """A flag that cuts short a simulated-time sleep: what a service loop waits on besides the clock.

    Like asyncio.Event, but it resolves the sleepers' own futures, so waiting on both the clock and the
    flag needs no extra tasks.
    """

    def __init__(self) -> None:
        self._set = False
        self.sleepers: set[asyncio.Future[None]] = set()

    def set(self) -> None:
        self._set = True
        for sleeper in self.sleepers:
            _resolve(sleeper)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        """Wait in wall time until set (for waits that come before the clock exists)."""
        while not self._set:
            sleeper: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.sleepers.add(sleeper)
            try:
                await sleeper
            finally:
                self.sleepers.discard(sleeper)
