"""Broken scenario and mission files fail fast, naming the file, the line and what is wrong."""

from pathlib import Path

import pytest

from lunar_gs.services.ground_control.scenario import SendStep, WaitUntilStep, load_scenario
from lunar_gs.services.mission import DEFAULT_MISSION_FILE, load_mission
from lunar_gs.services.seeds import SeedError

SEEDS = Path(__file__).resolve().parents[2] / "seeds"

GOOD = """\
name: tiny
phases:
  - name: checkout
    start_at: "T+0:10:00"
    steps:
      - send: {node: lander-drill, command: CHECKOUT}
      - wait_until: "T+1:00:00"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_a_good_scenario_loads(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    steps = scenario.phases[0].steps
    assert scenario.phases[0].start_at == 600
    assert isinstance(steps[0], SendStep) and isinstance(steps[1], WaitUntilStep)
    assert steps[1].wait_until == 3600


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("CHECKOUT", "CHECKOUTT"), 6, "no command 'CHECKOUTT'"),
        (GOOD.replace("{node: lander-drill, command: CHECKOUT}",
                      "{node: lander-drill, command: DRILL_TO_DEPTH, args: {target_depth_m: 7}}"), 6,
         "target_depth_m"),
        (GOOD.replace("lander-drill", "lander-dril"), 6, "node"),
        (GOOD.replace('"T+1:00:00"', '"1 hour"'), 7, "not a mission time"),
        (GOOD.replace("wait_until", "wait_untill"), 7, "exactly one of"),
        (GOOD.replace("  - name: checkout\n", "  - nam: checkout\n"), 3, "name"),
        (GOOD + "\tbad: 1\n", 8, "not valid YAML"),
        ("- just a list\n", 1, "mapping"),
    ],
)
def test_broken_scenarios_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SeedError) as caught:
        load_scenario(path)
    assert caught.value.path == str(path)
    assert caught.value.line == line, str(caught.value)
    assert words in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_shipped_seeds_are_valid() -> None:
    profile = load_mission(DEFAULT_MISSION_FILE)
    assert profile.mission.epoch.isoformat() == "2024-06-01T22:23:16+00:00"
    for path in SEEDS.glob("*.yaml"):
        if path.name.startswith("mission"):
            assert load_mission(path).devices  # the profiles
        else:
            assert load_scenario(path).phases


def test_a_bad_device_parameter_fails_at_load_with_its_line(tmp_path: Path) -> None:
    text = DEFAULT_MISSION_FILE.read_text().replace("      max_rpm: 200.0", "      max_rmp: 200.0")
    path = tmp_path / "mission.yaml"
    path.write_text(text)
    with pytest.raises(SeedError) as caught:
        load_mission(path)
    assert "max_rmp" in caught.value.message and "drill" in caught.value.message
    assert caught.value.line == text.splitlines().index("  drill:") + 1
