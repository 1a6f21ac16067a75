"""The live feed of ground control to its consoles: one fan-out, one buffer per listener.

Ground control publishes items (a decoded packet, an event, an alarm or command that changed, the clock,
the relay link) as they happen; each listener (a console's WebSocket) takes everything buffered since it
last looked, as one batch, so a busy stream costs one frame per write rather than one per item. With no
listener, publishing costs one check. A listener that falls more than `max_buffered` items behind loses the
oldest and is told how many, so it can reload history instead of growing without bound.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

INSTRUCTOR_ONLY_KINDS = frozenset({"truth", "faults"})
"""Ground truth: never sent to an operator's console."""


@dataclass(eq=False)  # each listener is itself: kept in a set
class FeedListener:
    sees_truth: bool
    max_buffered: int
    buffer: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: dict[str, Any]) -> None:
        self.buffer.append(item)
        if len(self.buffer) > self.max_buffered:
            excess = len(self.buffer) - self.max_buffered
            del self.buffer[:excess]
            self.dropped += excess
        self._ready.set()

    async def next_batch(self) -> tuple[list[dict[str, Any]], int]:
        """Wait for something, then take all of it: (items, how many were dropped before them)."""
        await self._ready.wait()
        self._ready.clear()
        items, self.buffer = self.buffer, []
        dropped, self.dropped = self.dropped, 0
        return items, dropped


class ConsoleFeed:
    def __init__(self, max_buffered: int = 20_000) -> None:
        self.max_buffered = max_buffered
        self._listeners: set[FeedListener] = set()

    @property
    def active(self) -> bool:
        """Someone is listening: worth building the items."""
        return bool(self._listeners)

    def publish(self, item: dict[str, Any]) -> None:
        truth = item.get("kind") in INSTRUCTOR_ONLY_KINDS
        for listener in self._listeners:
            if listener.sees_truth or not truth:
                listener.put(item)

    @contextlib.contextmanager
    def listen(self, *, sees_truth: bool) -> Iterator[FeedListener]:
        listener = FeedListener(sees_truth, self.max_buffered)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
