"""Start a mission for a test: its services as OS processes (as deployed) on a given broker, with the
scenario, rate, seed, faults and HAL backends the test chose.

    with LocalMission(broker_url, MissionSpec(scenario="drill-stall", rate=200), workdir) as mission:
        ...  # mission.url, mission.mission, mission.report_dir

Faults given in the spec go into the scenario's own `faults:` list (so their triggers are armed before the
scenario starts), or, for a mission with no scenario, are for the caller to inject once it is ready
(`MissionClient.inject_fault`; the pytest plugin does this). Backends and relay parameters are written into
a copy of the mission profile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lunar_gs.protocols.faults import FaultSpec
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.ground_control.scenario import load_scenario
from lunar_gs.services.emulator import EmulatorProcess, start_emulators
from lunar_gs.services.mission import DEFAULT_MISSION_FILE, SEEDS_DIR, load_mission, load_profile_data

__all__ = ["ALL_NODES", "MissionSpec", "LocalMission", "scenario_path"]

ALL_NODES: tuple[Node, ...] = (Node.INSTRUCTOR, Node.RELAY_SATELLITE, Node.LANDER_DRILL, Node.LANDER_ARM,
                               Node.ASCENT_VEHICLE, Node.GROUND_CONTROL)
"""Every service, in the order they start (the instructor first, ground control, which starts the clock,
last)."""


def scenario_path(scenario: str | Path) -> Path:
    """A shipped scenario by name (`nominal`, or a drill: `drill-stall`), or a path to a scenario file."""
    path = Path(scenario)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"no scenario file {path}")
        return path
    for candidate in (SEEDS_DIR / f"{scenario}.yaml", SEEDS_DIR / "drills" / f"{scenario}.yaml"):
        if candidate.exists():
            return candidate
    shipped = sorted(p.stem for p in [*SEEDS_DIR.glob("*.yaml"), *(SEEDS_DIR / "drills").glob("*.yaml")]
                     if p.stem != "mission")
    raise FileNotFoundError(f"no shipped scenario {scenario!r}; shipped: {', '.join(shipped)}")


@dataclass
class MissionSpec:
    """What mission a test wants."""

    scenario: str | Path | None = None
    """A shipped scenario's name, a scenario file, or None: the services idle, the clock runs."""
    rate: float = 100.0
    seed: int = 1
    faults: Sequence[FaultSpec | Mapping[str, Any]] = ()
    backends: Mapping[str, str] = field(default_factory=dict)
    """Device name (`drill`, `arm`, ...) to HAL backend name."""
    nodes: Sequence[Node | str] = ALL_NODES
    mission_file: Path | None = None
    autopilot: bool = False
    console: bool = False
    """Ground control serves the consoles on a free loopback port (`LocalMission.console_url`, tokens)."""
    keep_state: bool = False
    """Services keep their state in the work folder, so one killed and started again resumes."""

    @classmethod
    def from_marker(cls, kwargs: Mapping[str, Any]) -> MissionSpec:
        unknown = set(kwargs) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"lunar_mission marker: unknown argument(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**kwargs)

    def fault_specs(self) -> list[FaultSpec]:
        return [f if isinstance(f, FaultSpec) else FaultSpec.model_validate(dict(f)) for f in self.faults]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalMission:
    """The services of one mission as child processes; a context manager that stops them all."""

    def __init__(self, broker_url: str, spec: MissionSpec, workdir: Path, mission: str | None = None) -> None:
        self.url = broker_url
        self.spec = spec
        self.mission = mission or "kit" + uuid.uuid4().hex[:10]
        self.workdir = workdir
        self.report_dir = workdir / "report"
        self.nodes = tuple(Node(n) for n in spec.nodes)
        self.processes: dict[Node, subprocess.Popen[bytes]] = {}
        self.emulators: dict[str, EmulatorProcess] = {}
        """Device emulators the profile asks for (started first; the services read their addresses)."""
        self.faults = spec.fault_specs()
        self.scenario_file = self._scenario_file()
        self.mission_file = self._mission_file()
        self.services_profile = self.mission_file
        """What the services read: the mission file, or its copy with the emulators' addresses."""
        self.console_port = _free_port() if spec.console else None
        self.operator_token = "op-" + uuid.uuid4().hex
        self.instructor_token = "in-" + uuid.uuid4().hex

    @property
    def console_url(self) -> str:
        """The console server's base URL (a mission started with `MissionSpec(console=True)`)."""
        if self.console_port is None:
            raise RuntimeError("this mission has no console: MissionSpec(console=True)")
        return f"http://127.0.0.1:{self.console_port}"

    # -- files ------------------------------------------------------------------------------------------
    def _scenario_file(self) -> Path | None:
        if self.spec.scenario is None:
            return None
        path = scenario_path(self.spec.scenario)
        load_scenario(path)  # a broken scenario fails here, with its file and line, not in a service
        if not self.faults:
            return path
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["faults"] = [*data.get("faults", []),
                          *(f.model_dump(mode="json", exclude_none=True) for f in self.faults)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        merged = self.workdir / f"{path.stem}-with-faults.yaml"
        merged.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        load_scenario(merged)
        return merged

    def _mission_file(self) -> Path:
        base = self.spec.mission_file or DEFAULT_MISSION_FILE
        if not self.spec.backends:
            return base
        data = load_profile_data(base)
        for device, backend in self.spec.backends.items():
            if device not in data.get("devices", {}):
                raise ValueError(f"backends: no device {device!r} in {base}; devices: "
                                 f"{', '.join(data.get('devices', {}))}")
            data["devices"][device]["backend"] = backend
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "mission.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        load_mission(path)  # an unknown backend fails here, with the file and line
        return path

    @property
    def faults_to_inject(self) -> list[FaultSpec]:
        """Faults the caller injects once the mission is ready (only when there is no scenario to carry
        them)."""
        return self.faults if self.scenario_file is None else []

    # -- processes --------------------------------------------------------------------------------------
    def argv(self, node: Node) -> list[str]:
        argv = [sys.executable, "-m", "lunar_gs.services.cli", "run", str(node), "--mission", self.mission,
                "--broker", self.url, "--rate", str(self.spec.rate), "--seed", str(self.spec.seed),
                "--report", str(self.report_dir), "--mission-file", str(self.services_profile)]
        if self.scenario_file is not None:
            argv += ["--scenario", str(self.scenario_file)]
        if self.spec.autopilot and node is Node.GROUND_CONTROL:
            argv.append("--autopilot")
        if self.console_port is not None and node is Node.GROUND_CONTROL:
            argv += ["--console", str(self.console_port)]
        if self.spec.keep_state:
            argv += ["--state-dir", str(self.workdir / "state")]
        return argv

    def start(self) -> LocalMission:
        self.workdir.mkdir(parents=True, exist_ok=True)
        emulators, self.services_profile = start_emulators(self.mission_file, self.spec.seed,
                                                           self.workdir / "emulators")
        self.emulators = {emulator.kind: emulator for emulator in emulators}
        for node in ALL_NODES:
            if node in self.nodes:
                self.start_node(node)
        return self

    def start_node(self, node: Node) -> None:
        env = {**os.environ, "LUNAR_GS_OPERATOR_TOKEN": self.operator_token,
               "LUNAR_GS_INSTRUCTOR_TOKEN": self.instructor_token}
        with open(self.log_path(node), "ab") as log:
            self.processes[node] = subprocess.Popen(self.argv(node), stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True, env=env)

    def log_path(self, node: Node) -> Path:
        return self.workdir / f"{node}.log"

    def log(self, node: Node | str) -> str:
        path = self.log_path(Node(node))
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self, node: Node | str) -> bool:
        process = self.processes.get(Node(node))
        return process is not None and process.poll() is None

    def kill(self, node: Node | str) -> None:
        """SIGKILL one service (its Last Will fires), e.g. to test a handler's reaction to a lost node."""
        process = self.processes[Node(node)]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def kill_emulator(self, device: str) -> None:
        """SIGKILL a device's emulator, as a bench device losing power."""
        self.emulators[device].kill()

    def start_emulator(self, device: str) -> None:
        """Start a device's emulator again, at the address the services know (its power-on state)."""
        self.emulators[device].start()

    def stop(self, timeout_s: float = 10.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for emulator in self.emulators.values():
            emulator.stop()

    def __enter__(self) -> LocalMission:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
