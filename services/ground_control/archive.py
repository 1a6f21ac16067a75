"""Ground control's archive: every TM packet, event and command, in SQLite, for reports and debriefs.

Writes are batched and committed by `flush()` (called on a short period), so archiving keeps up with the
telemetry rate instead of paying a commit per packet.
"""

import json
import sqlite3
from pathlib import Path
from typing import Any

from lunar_gs.protocols.codec import Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tm (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, packet TEXT NOT NULL, seq INTEGER NOT NULL,
    sim_time REAL NOT NULL, wall_time REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tm_node_time ON tm (node, sim_time);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    severity TEXT NOT NULL, sim_time REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tm_gaps (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, missing INTEGER NOT NULL, after_seq INTEGER NOT NULL,
    from_sim REAL NOT NULL, to_sim REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    request_id TEXT PRIMARY KEY, node TEXT NOT NULL, command TEXT NOT NULL, args TEXT NOT NULL,
    sent_sim REAL NOT NULL, state TEXT NOT NULL, final_sim REAL, failure_code TEXT, reason TEXT,
    origin TEXT NOT NULL DEFAULT 'scenario');
"""


class Archive:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(_SCHEMA)
        self._tm: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    def add_tm(self, node: str, packet: str, message: Message, body: str) -> None:
        """`body` is the packet as received (valid JSON already), so it is not serialised again."""
        self._tm.append((node, packet, message.seq, message.sim_time, message.wall_time, body))

    def add_event(self, node: str, kind: str, name: str, severity: str, message: Message) -> None:
        self._events.append((node, kind, name, severity, message.sim_time, message.model_dump_json()))

    def add_gap(self, gap: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO tm_gaps (node, missing, after_seq, from_sim, to_sim) VALUES (?,?,?,?,?)",
            (gap["node"], gap["missing"], gap["after_seq"], gap["from_sim"], gap["to_sim"]),
        )

    def record_command(
        self,
        request_id: str,
        node: str,
        command: str,
        args: dict[str, Any],
        sent_sim: float,
        state: str,
        final_sim: float | None = None,
        failure_code: str | None = None,
        reason: str | None = None,
        origin: str = "scenario",
    ) -> None:
        """`origin`: who sent it: the scenario script, an operator, or the drill's autopilot."""
        self._db.execute(
            "INSERT OR REPLACE INTO commands (request_id, node, command, args, sent_sim, state, final_sim, "
            "failure_code, reason, origin) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (request_id, node, command, json.dumps(args), sent_sim, state, final_sim, failure_code, reason,
             origin),
        )

    def flush(self) -> None:
        if self._tm:
            self._db.executemany(
                "INSERT INTO tm (node, packet, seq, sim_time, wall_time, body) VALUES (?,?,?,?,?,?)", self._tm
            )
            self._tm.clear()
        if self._events:
            self._db.executemany(
                "INSERT INTO events (node, kind, name, severity, sim_time, body) VALUES (?,?,?,?,?,?)",
                self._events,
            )
            self._events.clear()
        self._db.commit()

    def _node_tm(self, columns: str, node: str, since: float | None, until: float | None
                 ) -> tuple[str, list[Any]]:
        """The query, flushed first, for one node's housekeeping within a mission-time range."""
        self.flush()
        query = f"SELECT {columns} FROM tm WHERE node = ?"
        params: list[Any] = [node]
        if since is not None:
            query += " AND sim_time >= ?"
            params.append(since)
        if until is not None:
            query += " AND sim_time <= ?"
            params.append(until)
        return query, params

    def series(self, node: str, *fields: str, since: float | None = None, until: float | None = None
               ) -> list[tuple[float, ...]]:
        """(sim_time, field...) rows of one node's housekeeping, in time order."""
        columns = ", ".join(f"json_extract(body, '$.{f}')" for f in fields)
        query, params = self._node_tm(f"sim_time, {columns}", node, since, until)
        return list(self._db.execute(query + " ORDER BY sim_time", params))

    def packets(self, node: str, *, since: float | None = None, until: float | None = None, limit: int = 5000
                ) -> list[tuple[int, float, str]]:
        """(seq, sim_time, body) of one node's housekeeping, oldest first; the newest `limit` when more."""
        query, params = self._node_tm("seq, sim_time, body", node, since, until)
        rows = list(self._db.execute(query + " ORDER BY sim_time DESC, seq DESC LIMIT ?", [*params, limit]))
        rows.reverse()
        return rows

    def count_tm(self) -> int:
        self.flush()
        return int(self._db.execute("SELECT COUNT(*) FROM tm").fetchone()[0])

    def close(self) -> None:
        self.flush()
        self._db.close()
