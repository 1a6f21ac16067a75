"""A small test kit for integration tests: services as real processes, and a listener on the real bus.

In the spirit of F Prime's ground test API: a history of everything heard, and awaitable predicates over
it, with wall-clock timeouts only as a safety net (the system's own timing is in simulated time).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lunar_gs.protocols.codec import DecodeError, JsonCodec, Message
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.mission import DEFAULT_MISSION_FILE
from lunar_gs.services.runtime.bus import Bus, IncomingMessage

CODEC = JsonCodec()


class ServiceProcess:
    """`lunar-gs run NODE` as its own OS process, as deployed."""

    def __init__(self, node: Node, url: str, mission: str, log_dir: Path, *extra: str) -> None:
        self.node = node
        self.argv = [sys.executable, "-m", "lunar_gs.services.cli", "run", str(node), "--mission", mission,
                     "--broker", url, *extra]
        self.log_path = log_dir / f"{node}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Heard:
    topic: str
    payload: bytes
    message: Message | None
    at: float


class Listener:
    """Hears everything of one mission and keeps it, decoded where it decodes."""

    def __init__(self, url: str, mission: str) -> None:
        self.history: list[Heard] = []
        self.started: list[ServiceProcess] = []
        """Service processes a test started alongside, for its teardown to stop."""
        self.bus = Bus(url, f"test-listener-{mission}-{time.monotonic_ns()}")
        self.bus.subscribe(f"lgs/v1/{mission}/#", self._on_message, qos=1)

    async def _on_message(self, message: IncomingMessage) -> None:
        try:
            decoded: Message | None = CODEC.decode(message.payload)
        except DecodeError:
            decoded = None
        self.history.append(Heard(message.topic, message.payload, decoded, time.monotonic()))

    async def __aenter__(self) -> Listener:
        await self.bus.__aenter__()
        await self.bus.wait_connected(10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus.__aexit__(*exc)

    def find(self, predicate: Callable[[Heard], bool]) -> list[Heard]:
        return [h for h in self.history if predicate(h)]

    async def wait_for(self, predicate: Callable[[Heard], bool], timeout: float = 20.0,
                       what: str = "a message") -> Heard:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for heard in self.history:
                if predicate(heard):
                    return heard
            await asyncio.sleep(0.02)
        topics = sorted({h.topic for h in self.history})
        raise AssertionError(f"no {what} within {timeout} s; topics heard: {topics}")

    async def publish(self, topic: str, payload: bytes | Message, qos: int = 1) -> None:
        data = payload if isinstance(payload, bytes) else CODEC.encode(payload)
        await self.bus.publish(topic, data, qos=qos)


def mission_file_with(tmp_path: Path, **relay_params: Any) -> Path:
    """The shipped mission profile with some relay parameters changed (e.g. a visibility gap)."""
    data = yaml.safe_load(DEFAULT_MISSION_FILE.read_text())
    data["devices"]["relay"]["params"].update(relay_params)
    path = tmp_path / "mission.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
