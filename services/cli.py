"""The `lunar-gs` command line: run one service, run a whole rehearsal, check seed files, send a command by
hand, inject faults, debrief a rehearsal, record a mission's MQTT traffic and replay it."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.topics import TopicError, validate_mission
from lunar_gs.services.mission import DEFAULT_MISSION_FILE, SEEDS_DIR, load_mission
from lunar_gs.services.runtime.logging import configure_logging
from lunar_gs.services.runtime.settings import RuntimeSettings
from lunar_gs.services.seeds import SeedError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
fault_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Inject and clear faults while a rehearsal runs (through the instructor service).")
app.add_typer(fault_app, name="fault")
console = Console(stderr=True)

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def _fail(message: str, code: int = 2) -> None:
    # escaped: a message quoting a file name or JSON may hold [brackets]; soft_wrap: one line, however long
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def run(
    service: Annotated[Node, typer.Argument(help="which service to run")],
    mission: Annotated[str | None, typer.Option(help="mission name (topic namespace) [env LUNAR_GS_MISSION]")] = None,
    broker: Annotated[str | None, typer.Option(help="broker URL mqtt://host:port [env LUNAR_GS_BROKER]")] = None,
    seed: Annotated[int, typer.Option(help="seed of the device models' randomness")] = 1,
    rate: Annotated[float, typer.Option(min=0.001, help="clock rate (ground control starts the clock)")] = 100.0,
    scenario: Annotated[Path | None, typer.Option(help="ground control only: run this scenario, then exit")] = None,
    report: Annotated[Path | None, typer.Option(help="ground control only: report and archive folder")] = None,
    mission_file: Annotated[Path, typer.Option(help="mission profile")] = DEFAULT_MISSION_FILE,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
    broker_label: Annotated[str, typer.Option(hidden=True, help="how the report names the broker")] = "",
    state_dir: Annotated[Path | None, typer.Option(
        help="keep device state here and resume from it after a crash (use a fresh folder per run)")] = None,
    autopilot: Annotated[bool, typer.Option(
        help="ground control only: send the drill's expected responses as a trainee would")] = False,
    console_port: Annotated[int | None, typer.Option(
        "--console", min=0, max=65535,
        help="ground control only: serve the operator and instructor consoles on this loopback port")] = None,
    console_host: Annotated[str, typer.Option(
        help="address the console listens on (a container needs 0.0.0.0 to publish its port)")] = "127.0.0.1",
    operator_token: Annotated[str | None, typer.Option(
        help="console operator credential [env LUNAR_GS_OPERATOR_TOKEN]; default: generated")] = None,
    instructor_token: Annotated[str | None, typer.Option(
        help="console instructor credential [env LUNAR_GS_INSTRUCTOR_TOKEN]; default: generated")] = None,
) -> None:
    """Run one service as its own process against any broker."""
    from lunar_gs.services.composition import ServiceOptions, run_service
    from lunar_gs.services.ground_control.console.server import RoleTokens

    settings = RuntimeSettings()
    configure_logging(log_level or settings.log_level, json=settings.log_json)
    try:
        mission_name = validate_mission(mission or settings.mission)
        profile = load_mission(mission_file, rate=rate)
        if scenario is not None:
            from lunar_gs.services.ground_control.scenario import load_scenario

            load_scenario(scenario)
    except (SeedError, TopicError) as exc:
        _fail(str(exc))
    broker_url = broker or settings.broker or DEFAULT_BROKER
    if broker_url == "embedded":
        _fail("a single service needs a broker URL; `lunar-gs rehearse --broker embedded` starts one")
    if console_port is not None and service is not Node.GROUND_CONTROL:
        _fail("--console is for ground control: it serves the consoles")
    try:
        tokens = RoleTokens.generate(operator_token or settings.operator_token,
                                     instructor_token or settings.instructor_token)
    except ValueError as exc:
        _fail(str(exc))
    options = ServiceOptions(
        node=service, broker_url=broker_url, mission=mission_name, profile=profile, seed=seed, rate=rate,
        codec=settings.codec, scenario=scenario,
        report_dir=report or settings.data_dir / mission_name, broker_label=broker_label, state_dir=state_dir,
        autopilot=autopilot, console_port=console_port, console_host=console_host, console_tokens=tokens,
        announce=lambda line: print(line, file=sys.stderr, flush=True),
    )
    raise typer.Exit(asyncio.run(run_service(options)))


@app.command()
def rehearse(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML")] = SEEDS_DIR / "nominal.yaml",
    rate: Annotated[float, typer.Option(min=0.001, help="simulated seconds per wall second while active")] = 500.0,
    seed: Annotated[int, typer.Option(help="seed of the device models' randomness")] = 1,
    broker: Annotated[str | None, typer.Option(
        help="URL of a broker to use, or 'embedded'; default: a private mosquitto, else embedded")] = None,
    report: Annotated[Path | None, typer.Option(help="report folder (default reports/<mission>)")] = None,
    mission: Annotated[str | None, typer.Option(help="mission name (default: unique per rehearsal)")] = None,
    mission_file: Annotated[Path, typer.Option(
        "--profile", "--mission-file", help="mission profile (it may put real devices or emulators in the loop)")
                            ] = DEFAULT_MISSION_FILE,
    autopilot: Annotated[bool, typer.Option(
        help="send a drill's expected responses as a trainee would (symptom + reaction time)")] = False,
    console_port: Annotated[int | None, typer.Option(
        "--console", min=1, max=65535,
        help="serve the operator and instructor consoles on this loopback port (prints their URLs)")] = None,
) -> None:
    """Run a whole rehearsal: broker, the services as processes, the scenario, the report and debrief."""
    from lunar_gs.services.rehearsal import Rehearsal

    configure_logging("warning", json=False)

    settings = RuntimeSettings()
    try:
        rehearsal = Rehearsal.prepare(
            scenario=scenario, mission_file=mission_file, rate=rate, seed=seed,
            broker=broker or settings.broker, mission=mission, report_dir=report, autopilot=autopilot,
            console_port=console_port, operator_token=settings.operator_token,
            instructor_token=settings.instructor_token,
        )
    except (SeedError, TopicError, ValueError) as exc:
        _fail(str(exc))
    raise typer.Exit(asyncio.run(rehearsal.run(Console())))


@app.command()
def emulate(
    device: Annotated[str, typer.Argument(help="the device to emulate: drill, arm or container")],
    profile: Annotated[Path, typer.Option("--profile", "--mission-file", help="mission profile")
                       ] = DEFAULT_MISSION_FILE,
    listen: Annotated[str, typer.Option(
        help="HOST:PORT (port 0: any free one); for the serial line also `pty` or a serial device")
                      ] = "127.0.0.1:0",
    seed: Annotated[int, typer.Option(help="seed of the model's randomness (as the rehearsal's)")] = 1,
    url_file: Annotated[Path | None, typer.Option(help="write the address to connect to here")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
) -> None:
    """Run a device emulator: our simulated model behind the device's real wire protocol."""
    from lunar_gs.services.emulator import EmulatorOptions, build_emulator, run_emulator

    configure_logging(log_level or RuntimeSettings().log_level, json=RuntimeSettings().log_json)
    try:
        options = EmulatorOptions(device, load_mission(profile), listen, seed, url_file,
                                  announce=lambda line: print(line, flush=True))
        build_emulator(options)
    except (SeedError, ValueError) as exc:
        _fail(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_until_signalled(run_emulator(options)))


async def _until_signalled(work: "asyncio.Future[object] | object") -> None:
    task = asyncio.ensure_future(work)  # type: ignore[arg-type]
    _stop_on_signals(task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="scenario or mission YAML files")],
    mission_file: Annotated[Path, typer.Option(help="mission profile drills are checked against")] = DEFAULT_MISSION_FILE,
) -> None:
    """Validate seed files; errors name the file and line. Drills are also checked for what would spoil
    them: a fault nothing could reveal, a trigger that can never fire, faults that conflict."""
    from lunar_gs.services.drill_check import check_drill
    from lunar_gs.services.ground_control.scenario import load_scenario

    failed = False
    profile = load_mission(mission_file)
    for path in files:
        try:
            if "phases" in path.read_text(encoding="utf-8", errors="replace"):
                problems = check_drill(path, load_scenario(path), profile)
                for problem in problems:
                    console.print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
                if problems:
                    failed = True
                    continue
            else:
                load_mission(path)
            console.print(f"[green]ok[/] {escape(str(path))}", soft_wrap=True)
        except (SeedError, OSError) as exc:
            failed = True
            console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line: file:line stays whole
    raise typer.Exit(1 if failed else 0)


@app.command()
def debrief(report_dir: Annotated[Path, typer.Argument(help="a rehearsal's report folder")]) -> None:
    """Debrief a rehearsal: each fault's ground truth beside what operators saw and did, objectives, and a
    timeline plot (writes debrief.md, timeline.png and the `faults` key of report.json)."""
    from lunar_gs.services.debrief import debrief_command

    raise typer.Exit(debrief_command(report_dir, Console()))


# -- faults ---------------------------------------------------------------------------------------------

MissionOption = Annotated[str | None, typer.Option(help="mission name [env LUNAR_GS_MISSION]")]
BrokerOption = Annotated[str | None, typer.Option(help="broker URL mqtt://host:port [env LUNAR_GS_BROKER]")]


def _where(mission: str | None, broker: str | None) -> tuple[str, str]:
    settings = RuntimeSettings()
    configure_logging("warning", json=False)  # stdout carries the answer (a fault id) and nothing else
    try:
        name = validate_mission(mission or settings.mission)
    except TopicError as exc:
        _fail(str(exc))
    url = broker or settings.broker or DEFAULT_BROKER
    if url == "embedded":
        _fail("give the URL of the rehearsal's broker (`lunar-gs rehearse` prints it)")
    return name, url


@app.command("cmd")
def cmd(
    node: Annotated[Node, typer.Argument(help="the node to command, e.g. lander-drill")],
    command: Annotated[str, typer.Argument(help="a command of that node, e.g. DRILL_TO_DEPTH")],
    args: Annotated[list[str] | None, typer.Argument(help="arguments as name=value, e.g. target_depth_m=0.3")] = None,
    confirm: Annotated[bool, typer.Option(help="send a hazardous command (IGNITE, TRANSFER_SAMPLE, ...)")] = False,
    timeout: Annotated[str | None, typer.Option(
        help="mission time it may take to complete (seconds or H:MM:SS); default 4 h")] = None,
    wall_timeout: Annotated[float | None, typer.Option(min=0.1, help="give up after this many wall seconds")] = None,
    operator: Annotated[str, typer.Option(help="who sends it, for the audit log")] = "cli",
    mission: MissionOption = None,
    broker: BrokerOption = None,
) -> None:
    """Send one telecommand through ground control and follow its verification. Exit 0 when it completes;
    1 when it fails (the stage and reason are printed); 3 when it times out or expires; 4 when ground control
    does not answer; 2 for a command the catalogue refuses (nothing is sent)."""
    from lunar_gs.protocols.commands import CommandUpdate
    from lunar_gs.services.assignments import AssignmentError, cli_value, parse_assignments
    from lunar_gs.services.command_client import CommandCheckError, NoGroundControl, check_command, send_command
    from lunar_gs.services.ground_control.scenario import format_mission_elapsed, parse_duration

    name, url = _where(mission, broker)
    try:
        values = parse_assignments(args or [], "argument")
        check_command(node, command, values, confirm=confirm)
        timeout_s = parse_duration(cli_value(timeout)) if timeout is not None else None
    except (AssignmentError, CommandCheckError, ValueError) as exc:
        _fail(str(exc))
    out = Console(highlight=False, soft_wrap=True)

    def show(update: CommandUpdate, epoch: float | None) -> None:
        when = f"T+{format_mission_elapsed(update.sim_time - epoch)}" if epoch is not None else "T+--:--:--"
        if update.state == "sent":
            out.print(f"{when}  sent      {update.request_id} {update.command} to {update.target}")
        elif update.failed_stage or update.state in ("failed", "timed_out", "expired", "refused"):
            stage = update.failed_stage or update.stage or "-"
            out.print(f"{when}  {update.state.upper():9} at {stage}: {update.failure_code or ''} {escape(update.reason)}")
        elif update.stage == "progress":
            out.print(f"{when}  progress  step {update.progress}")
        else:
            out.print(f"{when}  {update.state}")

    try:
        final = asyncio.run(send_command(url, name, node, command, values, confirm=confirm, timeout_s=timeout_s,
                                         operator=operator, on_update=show, wall_timeout_s=wall_timeout))
    except NoGroundControl as exc:
        _fail(str(exc), code=4)
    except TimeoutError:
        _fail(f"not final after {wall_timeout} wall seconds", code=3)
    codes = {"completed": 0, "failed": 1, "refused": 2, "timed_out": 3, "expired": 3}
    raise typer.Exit(codes.get(final.state, 1))


@fault_app.command("list")
def fault_list() -> None:
    """The fault catalogue: kinds, targets, parameters with their ranges, and the responses that help."""
    from rich.table import Table

    from lunar_gs.protocols.faults import CATALOGUE, describe_params, target_form

    table = Table(title="fault catalogue", show_lines=True)
    for column in ("kind", "layer", "target", "parameters", "recovered by", "made worse by"):
        table.add_column(column, overflow="fold")
    for kind, entry in CATALOGUE.items():
        table.add_row(str(kind), str(entry.layer) + (" (permanent)" if entry.permanent else ""),
                      target_form(kind), describe_params(kind) or "-", ", ".join(entry.recovers) or "-",
                      ", ".join(entry.worsens) or "-")
    Console(width=max(Console().width, 160)).print(table)


@fault_app.command("inject")
def fault_inject(
    kind: Annotated[str, typer.Argument(help="a kind from `lunar-gs fault list`, e.g. drill.stall")],
    target: Annotated[str, typer.Option(help="NODE or NODE.ITEM, e.g. lander-arm.elbow")],
    param: Annotated[list[str] | None, typer.Option(help="a parameter as k=v (repeatable)")] = None,
    duration: Annotated[str | None, typer.Option(help="clears itself after this long (seconds or H:MM:SS)")] = None,
    at: Annotated[str | None, typer.Option(help="mission time T+H:MM:SS")] = None,
    after: Annotated[str | None, typer.Option(help="this long after now (seconds or H:MM:SS)")] = None,
    when: Annotated[str | None, typer.Option(help="a TM condition, e.g. 'lander-drill.depth_m>=0.9'")] = None,
    when_event: Annotated[str | None, typer.Option(help="an event, e.g. 'lander-drill:over_torque'")] = None,
    phase: Annotated[str | None, typer.Option(help="at the start of this scenario phase")] = None,
    before_los: Annotated[str | None, typer.Option(help="this long before the next relay loss of signal")] = None,
    probability: Annotated[float | None, typer.Option(help="chance it goes in, drawn from the run's seed")] = None,
    label: Annotated[str, typer.Option(help="a name for clearing it and for the debrief")] = "",
    mission: MissionOption = None,
    broker: BrokerOption = None,
) -> None:
    """Inject a fault into a running rehearsal; prints its id."""
    from lunar_gs.protocols.faults import FaultAction
    from lunar_gs.services.fault_client import NoAnswer, send_request
    from lunar_gs.services.fault_options import FaultOptionError, spec_from_options

    name, url = _where(mission, broker)
    try:
        spec = spec_from_options(kind, target, param or [], duration=duration, at=at, after=after, when=when,
                                 when_event=when_event, phase=phase, before_los=before_los,
                                 probability=probability, label=label)
    except FaultOptionError as exc:
        _fail(str(exc))
    try:
        record = asyncio.run(send_request(url, name, FaultAction.INJECT, spec=spec))
    except (NoAnswer, TimeoutError, ValueError) as exc:
        _fail(str(exc), code=3)
    assert record is not None
    if record.entry != "accepted":
        _fail(f"rejected: {record.detail}", code=1)
    print(record.fault_id)


@fault_app.command("clear")
def fault_clear(
    fault_id: Annotated[str, typer.Argument(help="a fault id (or label), or 'all'")],
    mission: MissionOption = None,
    broker: BrokerOption = None,
) -> None:
    """Clear an armed or active fault (or all of them)."""
    from lunar_gs.protocols.faults import FaultAction
    from lunar_gs.services.fault_client import NoAnswer, read_active, send_request

    name, url = _where(mission, broker)
    try:
        if fault_id != "all":
            known = asyncio.run(read_active(url, name))
            if not any(fault_id in (f.fault_id, f.label) for f in known.faults):
                _fail(f"no armed or active fault {fault_id!r} in mission {name}", code=1)
        action = FaultAction.CLEAR_ALL if fault_id == "all" else FaultAction.CLEAR
        asyncio.run(send_request(url, name, action, fault_id=None if fault_id == "all" else fault_id))
    except (NoAnswer, TimeoutError, ValueError) as exc:
        _fail(str(exc), code=3)
    console.print(f"clear of {fault_id} sent")


@fault_app.command("active")
def fault_active(mission: MissionOption = None, broker: BrokerOption = None) -> None:
    """Faults armed and active now (the instructor's view)."""
    from rich.table import Table

    from lunar_gs.services.fault_client import NoAnswer, read_active

    name, url = _where(mission, broker)
    try:
        active = asyncio.run(read_active(url, name))
    except (NoAnswer, TimeoutError, ValueError) as exc:
        _fail(str(exc), code=3)
    table = Table(title=f"faults of {name}")
    for column in ("id", "label", "kind", "target", "state", "trigger", "params"):
        table.add_column(column)
    for f in active.faults:
        table.add_row(f.fault_id, f.label, str(f.kind), f.target, f.state, f.trigger,
                      ", ".join(f"{k}={v}" for k, v in f.params.items()))
    Console().print(table)


@fault_app.command("schema")
def fault_schema() -> None:
    """The JSON schema of a fault request (what any MQTT client publishes on sys/fault/request)."""
    import json

    from lunar_gs.protocols.faults import FaultRequest

    print(json.dumps(FaultRequest.model_json_schema(), indent=2))


# -- record and replay ----------------------------------------------------------------------------------

def _stop_on_signals(stop: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


@app.command()
def record(
    out: Annotated[Path, typer.Option(help="recording file to write (must not exist yet)")],
    mission: MissionOption = None,
    broker: BrokerOption = None,
    duration: Annotated[float | None, typer.Option(
        min=0.0, help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")] = None,
) -> None:
    """Record everything of one mission (lgs/v1/MISSION/#), retained messages included, with each message's
    bytes, QoS, retain flag, mission time and wall time; prints a summary when stopped."""
    from lunar_gs.services.recording import Recorder, RecordingSummary
    from lunar_gs.services.runtime.bus import parse_mqtt_url

    name, url = _where(mission, broker)
    try:
        parse_mqtt_url(url)
    except ValueError as exc:
        _fail(str(exc))
    if out.exists():
        _fail(f"{out} exists: a recording never overwrites a file; choose another --out")
    if not out.parent.is_dir():
        _fail(f"folder {out.parent} does not exist")

    async def session() -> RecordingSummary:
        stop = asyncio.Event()
        _stop_on_signals(stop.set)
        async with Recorder(url, name, out) as recorder:
            try:
                await recorder.wait_connected(10)
            except TimeoutError:
                raise ConnectionError(f"cannot subscribe at the broker at {url}") from None
            how = "" if recorder.summary.retain_as_published else " (MQTT 3.1.1: live retain flags are lost)"
            console.print(f"recording {recorder.topic_filter} from {url} to {out}{how}; Ctrl-C to stop",
                          soft_wrap=True, markup=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        return recorder.summary

    try:
        summary = asyncio.run(session())
    except (ConnectionError, OSError) as exc:
        _fail(str(exc), code=3)
    mission_span = ""
    if summary.first_mission_time is not None and summary.last_mission_time is not None:
        mission_span = f", {summary.last_mission_time - summary.first_mission_time:,.1f} s of mission time"
    Console().print(
        f"recorded {summary.messages} messages ({summary.retained} retained, {summary.topics} topics, "
        f"{summary.payload_bytes:,} payload bytes) of mission {name} over {summary.duration_s:.1f} s"
        f"{mission_span} to {out}"
        + (f"; {summary.lost} lost (recorder overloaded)" if summary.lost else "")
        + (f"; {summary.write_errors} not written (write errors)" if summary.write_errors else ""),
        soft_wrap=True, markup=False,
    )
    raise typer.Exit(1 if summary.lost or summary.write_errors else 0)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="a recording made by `lunar-gs record`")],
    broker: BrokerOption = None,
    rate: Annotated[float, typer.Option(
        help="speed: 2 replays twice as fast, 0.5 half as fast, inf as fast as possible")] = 1.0,
    topics: Annotated[list[str] | None, typer.Option(
        help="replay only topics matching this MQTT filter (+, #; repeatable; matched as recorded or as "
             "published)")] = None,
    mission: Annotated[str | None, typer.Option(help="publish under this mission instead of the recorded one")
                       ] = None,
) -> None:
    """Replay a recording: each message with its topic, bytes, QoS and retain flag, in recorded order and
    at its recorded time (divided by --rate). Retained state the recording did not contain is left alone."""
    from lunar_gs.services.recording import RecordingError, Replayer, ReplayReport, read_recording
    from lunar_gs.services.runtime.bus import Bus, broker_speaks_mqtt5

    configure_logging("warning", json=False)
    url = broker or RuntimeSettings().broker or DEFAULT_BROKER
    try:
        # no Nagle delay: a message is on the wire when it is due, not when the next one fills a segment
        bus = Bus(url, f"lgs-replay-{os.getpid()}", tcp_nodelay=True)
        replayer = Replayer(bus, rate=rate, topics=topics or [], mission=mission)
        recording = read_recording(file)
    except (RecordingError, TopicError, ValueError) as exc:
        _fail(str(exc))
    if recording.truncated:
        console.print(f"note: the last line of {file} was cut short and is left out",
                      soft_wrap=True, markup=False)

    async def session() -> ReplayReport:
        main = asyncio.current_task()
        assert main is not None
        _stop_on_signals(main.cancel)
        await broker_speaks_mqtt5(url)  # a broker that is not there: ConnectionError now, not a silent retry
        async with bus:
            try:
                await bus.wait_connected(10)
            except TimeoutError:
                raise ConnectionError(f"cannot connect to the broker at {url}") from None
            return await replayer.replay(recording)

    interrupted = False
    try:
        report = asyncio.run(session())
    except ConnectionError as exc:
        _fail(str(exc), code=3)
    except asyncio.CancelledError:
        interrupted, report = True, replayer.progress
    late = ("" if report.max_late_ms is None else
            f"; lateness max {report.max_late_ms:.1f} ms, p99 {report.p99_late_ms:.1f} ms")
    dropped = f"; {report.dropped} dropped by the bus" if report.dropped else ""
    Console().print(
        f"{'interrupted after' if interrupted else 'replayed'} {report.published} of {report.selected} "
        f"selected messages ({report.recorded} recorded; {report.retained} retained; QoS 0/1/2: "
        f"{report.by_qos[0]}/{report.by_qos[1]}/{report.by_qos[2]}) to "
        f"mission {report.mission or recording.header.mission} at rate {report.rate:g} "
        f"in {report.duration_s:.2f} s{late}{dropped}",
        soft_wrap=True, markup=False,
    )
    raise typer.Exit(130 if interrupted else 1 if report.dropped else 0)


if __name__ == "__main__":
    sys.exit(app())
