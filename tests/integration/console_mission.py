"""A running mission whose ground control serves the consoles, for the console tests: six service
processes (the test kit's `LocalMission`) on the session's private Mosquitto, and a small HTTP client
for the console API (stdlib only, so sync browser tests can use it too).

The drill's top layer is 4 cm thin here, so a short DRILL_TO_DEPTH crosses into the next one and reports
a PUS progress stage (the drill reports one per material change) within seconds of wall time.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lunar_gs.services.mission import DEFAULT_MISSION_FILE
from lunar_gs.testing.mission import LocalMission, MissionSpec

SHALLOW_LAYERS = [[0.0, "regolith", 1.0], [0.04, "compacted_regolith", 2.0], [0.9, "rock", 6.0]]
FAR_SIDE = ("lander-drill", "lander-arm", "ascent-vehicle")


def shallow_mission_file(folder: Path) -> Path:
    data = yaml.safe_load(DEFAULT_MISSION_FILE.read_text(encoding="utf-8"))
    data["devices"]["drill"]["params"]["layers"] = SHALLOW_LAYERS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mission-shallow.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class ConsoleMission:
    mission: LocalMission

    @property
    def base(self) -> str:
        return self.mission.console_url

    def token(self, role: str) -> str:
        return {"operator": self.mission.operator_token, "instructor": self.mission.instructor_token}[role]

    def login_url(self, role: str) -> str:
        return f"{self.base}/login?token={self.token(role)}"

    def request(self, method: str, path: str, body: Any = None, *, role: str | None = "operator",
                raw: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON or text). `role=None` sends no credentials."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if role is not None:
            request.add_header("Authorization", f"Bearer {self.token(role)}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def get(self, path: str, role: str | None = "operator") -> Any:
        status, data = self.request("GET", path, role=role)
        assert status == 200, f"GET {path}: {status} {data}"
        return data

    def post(self, path: str, body: Any, role: str = "operator") -> tuple[int, Any]:
        return self.request("POST", path, body, role=role)

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        """Poll `check` (wall clock: the mission runs in its own processes) until it returns something true."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")

    def command(self, request_id: str) -> dict[str, Any]:
        return next(c for c in self.get("/api/v1/commands")["commands"] if c["request_id"] == request_id)

    def alarm(self, name: str) -> dict[str, Any] | None:
        return next((a for a in self.get("/api/v1/alarms")["alarms"] if a["name"] == name), None)

    def archive(self) -> sqlite3.Connection:
        return sqlite3.connect(self.mission.report_dir / "archive.sqlite")

    def inject(self, spec: dict[str, Any]) -> str:
        status, record = self.post("/api/v1/instructor/faults", spec, role="instructor")
        assert status == 201, (status, record)
        return str(record["fault_id"])

    def clear(self, fault_id: str) -> None:
        status, _ = self.request("DELETE", f"/api/v1/instructor/faults/{fault_id}", role="instructor")
        assert status == 202


def _ready(console: ConsoleMission) -> bool:
    with contextlib.suppress(OSError, AssertionError):
        if not console.get("/api/v1/clock").get("ready"):
            return False
        latest = console.get("/api/v1/latest")
        return all(node in latest for node in (*FAR_SIDE, "relay-satellite"))
    return False


@contextlib.contextmanager
def console_mission(broker_url: str, folder: Path, *, rate: float = 100.0, keep_state: bool = False
                    ) -> Iterator[ConsoleMission]:
    spec = MissionSpec(rate=rate, seed=7, console=True, keep_state=keep_state,
                       mission_file=shallow_mission_file(folder))
    with LocalMission(broker_url, spec, folder) as mission:
        console = ConsoleMission(mission)
        try:
            console.wait("the console and every node's first packet", lambda: _ready(console), timeout_s=60)
        except AssertionError:
            raise AssertionError(mission.log("ground-control")[-4000:]) from None
        yield console
