"""The composition root of one service process: devices from the mission profile, runtime, service.

Everything below receives what it needs as arguments; only this module decides which HAL backend,
bus, clock and archive a service gets.
"""

import asyncio
import contextlib
import functools
import hashlib
import json
import signal
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.hal import Device, LinkedDevice
from lunar_gs.hardware_sim.remote.host import RemoteDevice
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ScenarioProgress, ScenarioState
from lunar_gs.protocols.topics import Topics
from lunar_gs.services.ascent_vehicle import AscentVehicleNode
from lunar_gs.services.debrief import BOOKMARKS_FILE
from lunar_gs.services.device_node import DeviceNode
from lunar_gs.services.ground_control.archive import Archive
from lunar_gs.services.ground_control.audit import AuditLog
from lunar_gs.services.ground_control.console.instructor_desk import InstructorDesk
from lunar_gs.services.ground_control.console.server import ConsoleServer, Role, RoleTokens
from lunar_gs.services.ground_control.feed import ConsoleFeed
from lunar_gs.services.ground_control.report import write_report
from lunar_gs.services.ground_control.scenario import Phase, Scenario, load_scenario
from lunar_gs.services.ground_control.scenario_runner import ScenarioRunner
from lunar_gs.services.ground_control.service import GroundControl
from lunar_gs.services.instructor import Instructor
from lunar_gs.services.lander_arm import LanderArmNode
from lunar_gs.services.lander_drill import LanderDrillNode
from lunar_gs.services.mission import MissionProfile
from lunar_gs.services.relay_satellite import RelaySatellite
from lunar_gs.services.runtime.persistence import StateFile
from lunar_gs.services.runtime.service import ServiceRuntime
from lunar_gs.services.scenario_setup import apply_initial_conditions

DEVICES_OF: dict[Node, tuple[str, ...]] = {
    Node.LANDER_DRILL: ("drill",),
    Node.LANDER_ARM: ("arm", "container", "flag", "power"),
    Node.ASCENT_VEHICLE: ("ascent",),
    Node.RELAY_SATELLITE: ("relay",),
    Node.GROUND_CONTROL: (),
    Node.INSTRUCTOR: (),
}


@dataclass(frozen=True)
class ServiceOptions:
    node: Node
    broker_url: str
    mission: str
    profile: MissionProfile
    seed: int = 1
    rate: float = 100.0
    codec: str = "json"
    scenario: Path | None = None
    report_dir: Path = Path("reports")
    broker_label: str = ""
    state_dir: Path | None = None
    """Where a device service keeps its state, to resume after a crash; None keeps nothing."""
    autopilot: bool = False
    """Ground control only: send a drill's expected responses as a trainee would."""
    console_port: int | None = None
    """Ground control only: serve the consoles on this loopback port (0: any free one); None: no console."""
    console_host: str = "127.0.0.1"
    """Loopback by default; a container publishes the port from 0.0.0.0 inside it."""
    console_tokens: RoleTokens | None = None
    """The consoles' credentials (None with a console: generated for this run)."""
    announce: Callable[[str], None] | None = None
    """Where ground control says, once, where its consoles are (the login URLs carry the tokens)."""


def build_devices(options: ServiceOptions, start_time: float, scenario: Scenario | None = None
                  ) -> dict[str, Device]:
    """The node's devices from the mission profile, brought to the scenario's initial conditions."""
    devices = {kind: build_one_device(options, kind, start_time) for kind in DEVICES_OF[options.node]}
    if scenario is not None and scenario.initial is not None:
        remote = [kind for kind, device in devices.items() if isinstance(device, LinkedDevice)]
        if remote:
            raise ValueError(f"a scenario's initial conditions cannot be applied to a real device "
                             f"({', '.join(remote)}): the device's state is its own")
        apply_initial_conditions(scenario.initial, options.node, devices, start_time)
    return devices


def device_seed(seed: int, kind: str) -> int:
    """Each device's own random stream: its emulator, built from the same seed, draws the same numbers."""
    return seed ^ zlib.crc32(kind.encode())


def build_one_device(options: ServiceOptions, kind: str, start_time: float) -> Device:
    config = options.profile.devices.get(kind)
    if config is None:
        raise ValueError(f"mission profile has no device '{kind}' (needed by {options.node})")
    return build_device(kind, config.backend, config.params, device_seed(options.seed, kind), start_time,
                        link=config.effective_link())


def device_config_digest(options: ServiceOptions, kind: str) -> str:
    """What a saved device state was built from: a resumed service notices an edited profile."""
    config = options.profile.devices[kind]
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True) + f"|seed={options.seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_devices(options: ServiceOptions, devices: Sequence[Device]) -> dict[str, Any]:
    """Each device's snapshot, tagged with the configuration it was built from. A remote device saves what
    its host knows (its own state lives in the device); a simulated model saves its fields."""
    return {device.kind: {"config": device_config_digest(options, device.kind), "backend": device.backend,
                          "state": device.snapshot() if isinstance(device, RemoteDevice) else device}
            for device in devices}


def resume_devices(options: ServiceOptions, saved: dict[str, Any], start_time: float) -> dict[str, Device]:
    """The devices as saved; one whose profile entry was edited since is built afresh from the profile."""
    log = structlog.get_logger(__name__)
    devices: dict[str, Device] = {}
    for kind in DEVICES_OF[options.node]:
        entry = saved.get(kind)
        if entry is not None and not isinstance(entry, dict):
            devices[kind] = entry  # saved as it is (the relay's link model)
        elif entry is None or entry["config"] != device_config_digest(options, kind):
            log.warning("device_config_changed", device=kind,
                        detail="the profile changed since the state was saved: the device starts afresh")
            devices[kind] = build_one_device(options, kind, start_time)
        elif isinstance(entry["state"], dict):
            device = build_one_device(options, kind, start_time)
            assert isinstance(device, RemoteDevice)
            device.restore(entry["state"])
            devices[kind] = device
        else:
            devices[kind] = entry["state"]
    return devices


async def run_service(options: ServiceOptions) -> int:
    """Run one service until SIGTERM/SIGINT (or, for ground control with a scenario, until it ends)."""
    node = options.node
    backends = {kind: options.profile.devices[kind].backend for kind in DEVICES_OF[node]}
    structlog.contextvars.bind_contextvars(mission=options.mission, node=str(node))
    runtime = ServiceRuntime(
        node,
        broker_url=options.broker_url,
        mission=options.mission,
        codec=options.codec,
        backends=backends,
        event_side=Side.GROUND if node in (Node.GROUND_CONTROL, Node.RELAY_SATELLITE) else Side.SPACE,
        event_topic=Topics(options.mission).sys_events(node) if node is Node.INSTRUCTOR else None,
    )
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    exit_code = 0
    # Nodes subscribe before the runtime connects, so they are listening by the time their retained
    # `online` tells ground control to start. Devices start at the mission epoch and are advanced to
    # the clock's time on the first tick (a cheap jump while nothing moves).
    state_file = StateFile(options.state_dir / f"{node}.json", node=str(node)) if options.state_dir else None
    saved = state_file.load() if state_file is not None else None
    scenario = load_scenario(options.scenario) if options.scenario is not None else None
    try:
        if node is Node.GROUND_CONTROL:
            # the archive and the audit log outlive the runtime: its handlers may write until it stops
            options.report_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(Archive(options.report_dir / "archive.sqlite")) as archive, \
                    contextlib.closing(AuditLog(options.report_dir / "audit.jsonl")) as audit:
                async with runtime:
                    exit_code = await _ground_control(runtime, options, state_file, saved, archive, audit)
        elif node is Node.INSTRUCTOR:
            instructor = Instructor(runtime, options.profile, seed=options.seed,
                                    truth_path=options.report_dir / "truth.jsonl",
                                    scenario_faults=list(scenario.faults) if scenario else [])
            instructor.state_file = state_file
            if saved:
                instructor.resume(saved)
            async with runtime:
                await instructor.run()
        else:
            devices = (resume_devices(options, saved["devices"], options.profile.epoch) if saved
                       else build_devices(options, options.profile.epoch, scenario))
            service = _build_node(runtime, options, devices)
            service.state_file = state_file
            if isinstance(service, DeviceNode):
                service.save_devices = functools.partial(save_devices, options)
            if saved:
                service.resume(saved)
            async with runtime:
                if isinstance(service, DeviceNode):
                    await service.open_devices()
                try:
                    await service.run()
                finally:
                    if isinstance(service, DeviceNode):
                        await service.close_devices()
    except asyncio.CancelledError:
        runtime.log.info("service_stopped")
    return exit_code


def _build_node(runtime: ServiceRuntime, options: ServiceOptions, devices: dict[str, Device]
                ) -> DeviceNode | RelaySatellite:
    timing = options.profile.timing
    match options.node:
        case Node.LANDER_DRILL:
            return LanderDrillNode(runtime, devices["drill"], timing)  # type: ignore[arg-type]
        case Node.LANDER_ARM:
            return LanderArmNode(runtime, devices["arm"], devices["container"],  # type: ignore[arg-type]
                                 devices["flag"], devices["power"], timing)  # type: ignore[arg-type]
        case Node.ASCENT_VEHICLE:
            return AscentVehicleNode(runtime, devices["ascent"], timing)  # type: ignore[arg-type]
        case Node.RELAY_SATELLITE:
            return RelaySatellite(runtime, devices["relay"], timing)  # type: ignore[arg-type]
    raise ValueError(f"{options.node} is not a device node")


async def _ground_control(runtime: ServiceRuntime, options: ServiceOptions, state_file: StateFile | None,
                          saved: dict[str, Any] | None, archive: Archive, audit: AuditLog) -> int:
    gc = GroundControl(runtime, options.profile, archive, feed=ConsoleFeed(), audit=audit)
    gc.state_file = state_file
    if saved:
        gc.resume(saved)
    async with contextlib.AsyncExitStack() as stack:
        if options.console_port is not None:
            await _serve_consoles(stack, gc, options)
        return await _ground_control_work(gc, options)


async def _serve_consoles(stack: contextlib.AsyncExitStack, gc: GroundControl, options: ServiceOptions) -> None:
    assert options.console_port is not None
    desk = InstructorDesk(gc, options.report_dir / BOOKMARKS_FILE)
    tokens = options.console_tokens or RoleTokens.generate()
    server = await stack.enter_async_context(ConsoleServer(gc, desk, tokens, port=options.console_port,
                                                                   host=options.console_host))
    if options.announce is not None:
        options.announce(f"operator console:   {server.login_url(Role.OPERATOR)}")
        options.announce(f"instructor console: {server.login_url(Role.INSTRUCTOR)}")


async def _ground_control_work(gc: GroundControl, options: ServiceOptions) -> int:
    async with asyncio.TaskGroup() as group:
        housekeeping = group.create_task(gc.run())
        if options.scenario is None:
            await gc.start_clock(options.rate)
            await asyncio.Future()  # serve until stopped
        code = await _run_scenario(gc, options)
        housekeeping.cancel()
        return code


async def _run_scenario(gc: GroundControl, options: ServiceOptions) -> int:
    assert options.scenario is not None
    scenario = load_scenario(options.scenario)
    runtime = gc.runtime
    await runtime.bus.wait_connected(timeout=30)
    with contextlib.suppress(TimeoutError):
        await gc.wait_until_services_online(timeout_s=60)
    at = options.profile.epoch + scenario.initial.at if scenario.initial is not None else None
    await gc.start_clock(options.rate, at=at)

    async def progress(index: int, phase: Phase, step: str) -> None:
        await gc.publish_progress(runtime.stamp(
            ScenarioProgress, runtime.topics.scenario, scenario=scenario.name, state=ScenarioState.RUNNING,
            phase=phase.name, phase_index=index, phase_count=len(scenario.phases), step=step[:300],
            alarms=len(gc.alarms),
        ))

    result = await ScenarioRunner(gc, scenario, progress, position=gc.scenario_position,
                                  autopilot=options.autopilot).run()
    report = write_report(gc, result, {"seed": options.seed, "rate": options.rate,
                                       "broker": options.broker_label or options.broker_url,
                                       "mission": options.mission, "autopilot": options.autopilot,
                                       "epoch": options.profile.epoch}, options.report_dir)
    await gc.publish_progress(runtime.stamp(
        ScenarioProgress, runtime.topics.scenario, scenario=scenario.name,
        state=ScenarioState.PASSED if report["passed"] else ScenarioState.FAILED,
        phase_count=len(scenario.phases), phase_index=len(scenario.phases), alarms=len(gc.alarms),
        report_path=str((options.report_dir / "report.json").resolve())[:1024],
    ))
    with contextlib.suppress(TimeoutError):
        await runtime.bus.flush(timeout=5)
    return 0 if report["passed"] else 1
