"""docker-compose.yml cannot run here (no Docker engine), so check what can be: it parses, it names
only services that exist, and each container runs a real `lunar-gs run` command."""

import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from lunar_gs.protocols.nodes import Node
from lunar_gs.services.cli import app

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_names_every_service_and_only_real_ones() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services.pop("broker")["image"].startswith("eclipse-mosquitto")
    assert set(services) == {str(node) for node in Node}
    for name, spec in services.items():
        command = spec["command"][-1]
        run = command[command.index("lunar-gs run"):]
        argv = shlex.split(run)[1:]
        assert argv[1] == name
        # the CLI itself must accept the command line (checked with --help so nothing starts)
        result = CliRunner().invoke(app, [*argv, "--help"])
        assert result.exit_code == 0, result.output
        assert spec["environment"]["LUNAR_GS_BROKER"] == "mqtt://broker:1883"


def test_compose_publishes_the_console_port_of_ground_control_on_loopback() -> None:
    ground = yaml.safe_load(COMPOSE.read_text())["services"]["ground-control"]
    argv = shlex.split(ground["command"][-1].split("&&")[-1])
    port = argv[argv.index("--console") + 1]
    assert argv[argv.index("--console-host") + 1] == "0.0.0.0"  # inside the container, so it can be published
    assert ground["ports"] == [f"127.0.0.1:{port}:{port}"]
