"""`lunar-gs check` on drills: what would spoil one is found before it runs, with file and line."""

from pathlib import Path

from typer.testing import CliRunner

from lunar_gs.services.cli import app
from lunar_gs.services.mission import SEEDS_DIR

BROKEN = """\
name: broken drill
initial: {at: "T+1:00:00"}
faults:
  - label: nowhere
    kind: sensor.bias
    target: lander-drill.no_such_parameter
    params: {offset: 1.0}
  - label: never
    kind: drill.stall
    target: lander-drill
    trigger: {phase: no such phase}
  - label: first
    kind: sensor.stuck
    target: lander-drill.torque_nm
  - label: second
    kind: sensor.dropout
    target: lander-drill.torque_nm
  - label: too early
    kind: drill.feed_stuck
    target: lander-drill
    trigger: {at: 600}
  - label: zero chance
    kind: drill.bit_overheat
    target: lander-drill
    trigger: {probability: 0}
phases:
  - name: drilling
    steps:
      - send: {node: lander-drill, command: DRILL_TO_DEPTH, args: {target_depth_m: 1.0}, expect: any}
responses:
  - name: wait for an alarm nobody raises
    symptom: {alarm: lander-drill.no_such_alarm}
    within: 600
    send:
      - {node: lander-drill, command: STOP}
objectives:
  - {name: a phase that is not there, phase: sampling}
"""


def test_check_finds_what_would_spoil_a_drill_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"{path}:4:" in out and "no_such_parameter" in out and "could never show" in out
    assert f"{path}:8:" in out and "no such phase" in out
    assert f"{path}:12:" in out and "conflicts with second" in out
    assert "is before the drill starts" in out
    assert "probability 0" in out
    assert "no_such_alarm" in out and "nothing raises" in out
    assert "a phase that is not there" in out


def test_check_passes_every_shipped_drill() -> None:
    drills = sorted(str(p) for p in (SEEDS_DIR / "drills").glob("*.yaml"))
    assert len(drills) >= 7
    result = CliRunner().invoke(app, ["check", *drills, str(SEEDS_DIR / "nominal.yaml")])
    assert result.exit_code == 0, result.output


def test_a_fault_spec_with_bad_params_fails_at_load_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BROKEN.replace("params: {offset: 1.0}", "params: {offset: 1.0, gain: 2}"))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"{path}:4:" in out and "gain" in out


def test_the_documented_fault_request_schema_is_the_one_the_code_validates() -> None:
    import json

    from lunar_gs.protocols.faults import FaultRequest

    shipped = json.loads((SEEDS_DIR.parent / "docs" / "fault-request.schema.json").read_text())
    assert shipped == FaultRequest.model_json_schema(), "regenerate it: lunar-gs fault schema > docs/..."
