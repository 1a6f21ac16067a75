"""A service's state on disk, so that one killed with SIGKILL resumes where it was.

Written atomically (a temporary file renamed over the old one), so a kill mid-write leaves the previous
state whole. Pickle, because device models are plain Python objects with their random generators: it
restores them exactly. The file is the service's own, in its own data folder; never load one from
elsewhere.
"""

import os
import pickle
import time
from pathlib import Path
from typing import Any


class StateFile:
    def __init__(self, path: Path, min_interval_s: float = 0.2) -> None:
        self.path = path
        self.min_interval_s = min_interval_s
        self._last_save = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> Any | None:
        try:
            with self.path.open("rb") as handle:
                return pickle.load(handle)
        except FileNotFoundError:
            return None

    def save(self, state: Any, *, force: bool = False) -> bool:
        """Write `state` unless the last write was under `min_interval_s` ago (wall); `force` writes anyway."""
        now = time.monotonic()
        if not force and now - self._last_save < self.min_interval_s:
            return False
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, self.path)
        self._last_save = now
        return True
