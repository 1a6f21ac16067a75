"""A service's state on disk, so that one killed with SIGKILL resumes where it was.

Written atomically (a temporary file renamed over the old one), so a kill mid-write leaves the previous
state whole. The format is versioned JSON (`snapshot`): readable by other tools, and rebuilding only
classes of this package. A file that cannot be read back (another version, a damaged file) is set aside
as `*.unreadable` and the service starts afresh, saying so, rather than crashing at every restart.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from lunar_gs.services.runtime.snapshot import SnapshotError, dumps, loads


class StateFile:
    """One service's state file, rewritten whole at most every `min_interval_s`, or less often when large.

    A state that grows (ground control's events and rejections under a flood of bad input) costs more to
    write each time; the interval stretches to `cost_factor` times the last write, so that saving never
    takes more than about a tenth of the service's time. Forced saves (a command accepted, a scenario step)
    are always written.
    """

    def __init__(self, path: Path, min_interval_s: float = 0.2, node: str = "", *, cost_factor: float = 10.0,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.node = node or path.stem
        self.min_interval_s = min_interval_s
        self.cost_factor = cost_factor
        self._wall = wall
        self._last_save = -float("inf")
        self.last_write_s = 0.0
        """How long the last write took (wall seconds)."""
        path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def interval_s(self) -> float:
        """The least time between two unforced writes, now."""
        return max(self.min_interval_s, self.cost_factor * self.last_write_s)

    def load(self) -> Any | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return loads(data.decode("utf-8"))
        except (SnapshotError, UnicodeDecodeError) as exc:
            aside = self.path.with_suffix(".unreadable")
            os.replace(self.path, aside)
            structlog.get_logger(__name__).error("state_unreadable", path=str(self.path), reason=str(exc),
                                                 set_aside=str(aside))
            return None

    def save(self, state: Any, *, force: bool = False) -> bool:
        """Write `state` unless the last write was under `interval_s` ago (wall); `force` writes anyway."""
        now = self._wall()
        if not force and now - self._last_save < self.interval_s:
            return False
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(dumps(self.node, state, time.time()), encoding="utf-8")
        os.replace(temporary, self.path)
        done = self._wall()
        self._last_save, self.last_write_s = done, done - now
        return True
