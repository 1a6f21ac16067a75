"""The rehearsal runner: a broker, the five services as OS processes, live progress, the report.

Each service runs as its own process, as in a real deployment, so one can be killed and restarted; the
runner supervises them (a service that dies is restarted, up to a limit) and stops them all at the end
or on Ctrl-C. It follows the run over MQTT like any console would: scenario progress, clock, ground TM.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from lunar_gs.protocols.codec import DecodeError, get_codec
from lunar_gs.protocols.events import Alarm, AlarmState
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState, ScenarioProgress, ScenarioState
from lunar_gs.protocols.topics import Channel, Topics, validate_mission
from lunar_gs.services.debrief import write_debrief
from lunar_gs.services.drill_check import check_drill
from lunar_gs.services.ground_control.console.server import RoleTokens
from lunar_gs.services.ground_control.scenario import format_mission_elapsed, load_scenario
from lunar_gs.services.emulator import start_emulators
from lunar_gs.services.mission import load_mission
from lunar_gs.services.runtime.broker import start_broker
from lunar_gs.services.runtime.bus import Bus, IncomingMessage

START_ORDER = (Node.INSTRUCTOR, Node.RELAY_SATELLITE, Node.LANDER_DRILL, Node.LANDER_ARM, Node.ASCENT_VEHICLE,
               Node.GROUND_CONTROL)
MAX_RESTARTS = 3


@dataclass
class _Child:
    node: Node
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    log_file: IO[bytes] | None = None
    env: dict[str, str] | None = None
    """Extra environment (the console tokens: kept off the command line, where `ps` shows them)."""
    url: str = ""
    """An emulator's address."""

    def start(self) -> None:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        env = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=env)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; waits without blocking the loop (which may be serving
        the embedded broker that the child needs in order to say goodbye)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                process.kill()
                process.wait()
        if self.log_file is not None:
            self.log_file.close()


@dataclass
class _Progress:
    scenario: ScenarioProgress | None = None
    clock: ClockState | None = None
    tm_count: int = 0
    alarms_raised: int = 0
    tm_rate: float = 0.0
    epoch: float = 0.0
    started: float = field(default_factory=time.monotonic)


@dataclass
class Rehearsal:
    scenario: Path
    mission_file: Path
    rate: float
    seed: int
    broker: str | None
    mission: str
    report_dir: Path
    autopilot: bool = False
    console_port: int | None = None
    console_tokens: RoleTokens | None = None
    profile_for_services: Path | None = None
    """The profile the services read: the mission file, or its copy with the emulators' addresses."""

    @classmethod
    def prepare(cls, *, scenario: Path, mission_file: Path, rate: float, seed: int, broker: str | None,
                mission: str | None, report_dir: Path | None, autopilot: bool = False,
                console_port: int | None = None, operator_token: str | None = None,
                instructor_token: str | None = None) -> "Rehearsal":
        """Check the seed files before anything starts; errors carry file and line."""
        profile = load_mission(mission_file, rate=rate)
        problems = check_drill(scenario, load_scenario(scenario), profile)
        if problems:
            raise ValueError("\n".join(problems))
        name = validate_mission(mission or f"{profile.mission.name}-{uuid.uuid4().hex[:6]}")
        tokens = RoleTokens.generate(operator_token, instructor_token) if console_port is not None else None
        return cls(scenario.resolve(), mission_file.resolve(), rate, seed, broker, name,
                   (report_dir or Path("reports") / name).resolve(), autopilot, console_port, tokens)

    async def run(self, console: Console) -> int:
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / "logs").mkdir(exist_ok=True)
        handle = await start_broker(self.broker)
        console.print(f"broker: {handle.kind} at {handle.url}; mission {self.mission}; rate {self.rate}")
        if self.console_port is not None and self.console_tokens is not None:
            base = f"http://127.0.0.1:{self.console_port}/login?token="
            console.print(f"operator console:   {base}{self.console_tokens.operator}", soft_wrap=True)
            console.print(f"instructor console: {base}{self.console_tokens.instructor}", soft_wrap=True)
        emulators: list[_Child] = []
        try:
            self._start_emulators(emulators)
        except (OSError, RuntimeError) as exc:
            await asyncio.gather(*(e.stop() for e in emulators))
            await handle.stop()
            console.print(f"[red]emulators did not start[/]: {exc}")
            return 2
        for emulator in emulators:
            console.print(f"{emulator.node} emulator at {emulator.url}")
        children = emulators + [self._child(node, handle.url, handle.kind) for node in START_ORDER]
        progress = _Progress()
        topics = Topics(self.mission)
        bus = Bus(handle.url, f"lgs-{self.mission}-rehearsal")
        self._follow(bus, topics, progress)
        main = asyncio.current_task()
        assert main is not None
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            main.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, interrupt)
        try:
            async with bus:
                for child in children[len(emulators):]:  # the emulators are running already
                    child.start()
                outcome = await self._supervise(children, progress, console)
                await self._clear_retained(bus, topics)
        except asyncio.CancelledError:
            outcome = None
        finally:
            await asyncio.gather(*(child.stop() for child in children))
            await handle.stop()
        if interrupted:
            console.print(f"[yellow]interrupted[/]: services stopped; logs in {self.report_dir / 'logs'}")
            return 130
        return self._finish(outcome, console)

    def _start_emulators(self, started: list["_Child"]) -> None:
        """One supervised process per device the profile emulates; the services read a copy of the profile
        with each emulator's address (a restarted emulator keeps its port)."""
        emulators, self.profile_for_services = start_emulators(self.mission_file, self.seed,
                                                               self.report_dir / "emulators")
        for emulator in emulators:
            child = _Child(emulator.kind, emulator.argv, emulator.log_path,  # type: ignore[arg-type]
                           process=emulator.process, url=emulator.url)
            started.append(child)

    def _child(self, node: Node, url: str, broker_kind: str) -> _Child:
        # every service reads the scenario: nodes for a drill's initial conditions, the instructor for its
        # fault script, ground control to run it
        argv = [sys.executable, "-m", "lunar_gs.services.cli", "run", str(node), "--mission", self.mission,
                "--broker", url, "--seed", str(self.seed), "--rate", str(self.rate),
                "--mission-file", str(self.profile_for_services or self.mission_file),
                "--state-dir", str(self.report_dir / "state"),
                "--scenario", str(self.scenario), "--report", str(self.report_dir)]
        env = None
        if node is Node.GROUND_CONTROL:
            argv += ["--broker-label", f"{broker_kind} {url}"]
            if self.autopilot:
                argv.append("--autopilot")
            if self.console_port is not None and self.console_tokens is not None:
                argv += ["--console", str(self.console_port)]
                env = {"LUNAR_GS_OPERATOR_TOKEN": self.console_tokens.operator,
                       "LUNAR_GS_INSTRUCTOR_TOKEN": self.console_tokens.instructor}
        return _Child(node, argv, self.report_dir / "logs" / f"{node}.log", env=env)

    def _follow(self, bus: Bus, topics: Topics, progress: _Progress) -> None:
        codec = get_codec("json")

        def decode(message: IncomingMessage) -> Any:
            with contextlib.suppress(DecodeError):
                return codec.decode(message.payload)
            return None

        async def on_scenario(message: IncomingMessage) -> None:
            if isinstance(decoded := decode(message), ScenarioProgress):
                progress.scenario = decoded

        async def on_clock(message: IncomingMessage) -> None:
            if isinstance(decoded := decode(message), ClockState):
                progress.clock = decoded

        async def on_tm(message: IncomingMessage) -> None:
            progress.tm_count += 1

        async def on_event(message: IncomingMessage) -> None:
            if isinstance(decoded := decode(message), Alarm) and decoded.state is AlarmState.RAISED:
                progress.alarms_raised += 1

        bus.subscribe(topics.scenario, on_scenario, qos=1)
        bus.subscribe(topics.clock, on_clock, qos=1)
        bus.subscribe(topics.side_filter(Side.GROUND, Channel.TM), on_tm, qos=0)
        bus.subscribe(topics.ev(Side.GROUND, Node.GROUND_CONTROL), on_event, qos=1)

    async def _supervise(self, children: list[_Child], progress: _Progress, console: Console) -> ScenarioProgress | None:
        ground = next(c for c in children if c.node is Node.GROUND_CONTROL)
        last_count, last_time = 0, time.monotonic()
        with Live(self._render(progress), console=console, refresh_per_second=4, transient=False) as live:
            while True:
                await asyncio.sleep(0.25)
                now = time.monotonic()
                progress.tm_rate = (progress.tm_count - last_count) / max(now - last_time, 1e-6)
                last_count, last_time = progress.tm_count, now
                live.update(self._render(progress))
                final = progress.scenario
                if final is not None and final.state is not ScenarioState.RUNNING and final.report_path:
                    return final
                for child in children:
                    assert child.process is not None
                    code = child.process.poll()
                    if code is None:
                        continue
                    if child is ground and code >= 0:  # it ran the scenario to its end
                        await asyncio.sleep(1.0)  # its last retained progress may still be on the way
                        return progress.scenario
                    if child.restarts >= MAX_RESTARTS:
                        console.print(f"[red]{child.node} died {child.restarts + 1} times; giving up[/]")
                        return None
                    child.restarts += 1
                    console.print(f"[yellow]{child.node} exited with {code}; restarting[/]")
                    child.start()

    def _render(self, progress: _Progress) -> Table:
        table = Table(show_header=False, box=None)
        scenario = progress.scenario
        if scenario is None:
            phase = "starting"
        elif scenario.state is not ScenarioState.RUNNING:
            phase = f"{scenario.state.value}: all {scenario.phase_count} phases run"
        else:
            phase = f"{scenario.phase_index + 1}/{scenario.phase_count} {scenario.phase}"
        mission_time = "-"
        if progress.clock is not None:
            elapsed = progress.clock.sim_at(time.time()) - progress.clock.epoch
            mission_time = f"T+{format_mission_elapsed(max(elapsed, 0.0))}"
        table.add_row("phase", phase)
        table.add_row("step", scenario.step if scenario else "")
        table.add_row("mission time", mission_time)
        table.add_row("TM rate", f"{progress.tm_rate:,.0f} packets/s ({progress.tm_count:,} in all)")
        table.add_row("alarms", str(progress.alarms_raised))
        table.add_row("wall time", f"{time.monotonic() - progress.started:.1f} s")
        return table

    async def _clear_retained(self, bus: Bus, topics: Topics) -> None:
        """Leave the broker as we found it: retained clock, scenario and statuses are per-run state."""
        for topic in (topics.clock, topics.scenario, *(topics.status(n) for n in Node)):
            await bus.publish(topic, b"", qos=1, retain=True)
        with contextlib.suppress(TimeoutError):
            await bus.flush(timeout=2.0)

    def _finish(self, final: ScenarioProgress | None, console: Console) -> int:
        report_path = self.report_dir / "report.json"
        if final is None or not report_path.exists():
            console.print(f"[bold red]rehearsal did not finish[/]; logs in {self.report_dir / 'logs'}")
            return 1
        debrief = write_debrief(self.report_dir)
        report = json.loads(report_path.read_text())
        table = Table(title=f"{report['scenario']}: {'PASSED' if report['passed'] else 'FAILED'}")
        for column in ("phase", "status", "start", "end"):
            table.add_column(column)
        for phase in report["phases"]:
            colour = {"PASS": "green", "FAIL": "red"}.get(phase["status"], "yellow")
            table.add_row(phase["name"], f"[{colour}]{phase['status']}[/]", phase["start_met"] or "",
                          phase["end_met"] or "")
        console.print(table)
        for key, value in report["figures"].items():
            console.print(f"  {key}: {value}")
        console.print(f"  commands: {report['commands']}; alarms: {len(report['alarms'])}; "
                      f"rejections: {report['rejections']}")
        for objective in report.get("objectives", []):
            mark = "[green]met[/]" if objective["passed"] else "[red]missed[/]"
            console.print(f"  objective {mark}: {objective['name']} ({objective['detail']})")
        for fault in debrief["faults"]:
            console.print(f"  fault {fault['fault_id']} {fault['kind']} on {fault['target']}: {fault['outcome']}; "
                          f"detect {fault['time_to_detect_s']} s, respond {fault['time_to_respond_s']} s, "
                          f"recover {fault['time_to_recover_s']} s")
        console.print(f"  wall time {report['wall_seconds']} s for {report['mission_seconds'] / 3600:.1f} "
                      f"mission hours at rate {report['rate']}")
        console.print(f"report: {self.report_dir / 'report.md'} and {report_path}; "
                      f"debrief: {self.report_dir / 'debrief.md'}")
        return 0 if report["passed"] else 1


