"""The `lunar-gs` command line: run one service, run a whole rehearsal, check seed files."""

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from protocols.nodes import Node
from protocols.topics import TopicError, validate_mission
from services.mission import DEFAULT_MISSION_FILE, SEEDS_DIR, load_mission
from services.runtime.logging import configure_logging
from services.runtime.settings import RuntimeSettings
from services.seeds import SeedError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
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
) -> None:
    """Run one service as its own process against any broker."""
    from services.composition import ServiceOptions, run_service

    settings = RuntimeSettings()
    configure_logging(log_level or settings.log_level, json=settings.log_json)
    try:
        mission_name = validate_mission(mission or settings.mission)
        profile = load_mission(mission_file)
        if scenario is not None:
            from services.ground_control.scenario import load_scenario

            load_scenario(scenario)
    except (SeedError, TopicError) as exc:
        _fail(str(exc))
    broker_url = broker or settings.broker or DEFAULT_BROKER
    if broker_url == "embedded":
        _fail("a single service needs a broker URL; `lunar-gs rehearse --broker embedded` starts one")
    options = ServiceOptions(
        node=service, broker_url=broker_url, mission=mission_name, profile=profile, seed=seed, rate=rate,
        codec=settings.codec, scenario=scenario,
        report_dir=report or settings.data_dir / mission_name, broker_label=broker_label, state_dir=state_dir,
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
    mission_file: Annotated[Path, typer.Option(help="mission profile")] = DEFAULT_MISSION_FILE,
) -> None:
    """Run a whole rehearsal: broker, five services as processes, the scenario, and the report."""
    from services.rehearsal import Rehearsal

    configure_logging("warning", json=False)

    settings = RuntimeSettings()
    try:
        rehearsal = Rehearsal.prepare(
            scenario=scenario, mission_file=mission_file, rate=rate, seed=seed,
            broker=broker or settings.broker, mission=mission, report_dir=report,
        )
    except (SeedError, TopicError, ValueError) as exc:
        _fail(str(exc))
    raise typer.Exit(asyncio.run(rehearsal.run(Console())))


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="scenario or mission YAML files")],
) -> None:
    """Validate seed files; errors name the file and line."""
    from services.ground_control.scenario import load_scenario

    failed = False
    for path in files:
        try:
            if "phases" in path.read_text(encoding="utf-8", errors="replace"):
                load_scenario(path)
            else:
                load_mission(path)
            console.print(f"[green]ok[/] {path}")
        except (SeedError, OSError) as exc:
            failed = True
            console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(app())
