"""The audit log: every action a person took through ground control (a command by hand, an alarm
acknowledged, a fault injected, the clock changed, a bookmark), with role, mission time and wall time.

One JSON object a line in `audit.jsonl` beside the archive, flushed per entry so a crash loses nothing;
the newest entries stay in memory for the consoles.
"""

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

MEMORY = 2000


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.recent: deque[dict[str, Any]] = deque(maxlen=MEMORY)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():  # a restarted ground control goes on with the same log
                for line in path.read_text().splitlines()[-MEMORY:]:
                    try:
                        self.recent.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut by a crash
        self._file = path.open("a") if path is not None else None

    def record(self, role: str, action: str, sim_time: float | None, result: str = "ok",
               **detail: Any) -> dict[str, Any]:
        entry = {"wall_time": time.time(), "sim_time": sim_time, "role": role, "action": action,
                 "result": result, **detail}
        self.recent.append(entry)
        if self._file is not None:
            self._file.write(json.dumps(entry, default=str) + "\n")
            self._file.flush()
        return entry

    def tail(self, limit: int) -> list[dict[str, Any]]:
        return list(self.recent)[-limit:]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
