"""Rehearsals that survive a broker killed three times, and services killed with SIGKILL mid-phase."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lunar_gs.protocols.system import ScenarioProgress, ScenarioState
from lunar_gs.services.mission import SEEDS_DIR
from lunar_gs.services.runtime.broker import MosquittoProcess
from tests.integration.kit import Listener

pytestmark = pytest.mark.integration

KILL_SPACING_S = 5.0
"""Wall seconds between ground control being back on the broker and the next kill (a run lasts about 45 s)."""


def start_rehearsal(url: str, mission: str, report: Path, rate: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lunar_gs.services.cli", "rehearse", str(SEEDS_DIR / "nominal.yaml"), "--rate", rate,
         "--broker", url, "--mission", mission, "--report", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(rehearsal: subprocess.Popen[str], report: Path) -> tuple[str, dict]:
    output, _ = rehearsal.communicate(timeout=240)
    assert (report / "report.json").exists(), output[-4000:]
    return output, json.loads((report / "report.json").read_text())


def assert_every_reliable_stream_whole(result: dict, report: Path) -> None:
    """Every QoS-1 stream ground control follows arrived whole (from seq 0, no hole) and, in the archive,
    exactly once."""
    streams = result["delivery"]["streams"]
    assert {"lander-drill/ev", "lander-drill/ack", "lander-arm/ack", "ascent-vehicle/ack"} <= set(streams)
    for name, stream in streams.items():
        assert stream["first"] == 0, f"{name} started at {stream['first']}: its first messages were lost"
        assert stream["missing"] == 0, f"{name} has holes"
        assert stream["accepted"] == stream["upto"] + 1, f"{name}: {stream}"
    with sqlite3.connect(report / "archive.sqlite") as db:
        rows = db.execute("SELECT node, json_extract(body, '$.seq') FROM events WHERE kind != 'alarm'").fetchall()
    assert len(rows) == len(set(rows)), "an event was archived twice"


async def test_rehearsal_survives_three_broker_kills(mosquitto: MosquittoProcess, mission: str,
                                                    tmp_path: Path) -> None:
    """Each kill lands while ground control is connected: the first once the scenario runs, the next ones
    a few seconds after ground control has put its progress back on the restarted broker (a fixed wall
    delay from the launch missed the first outage when the services were slow to start)."""
    report = tmp_path / "report"
    kills = 0
    async with Listener(mosquitto.url, mission) as listener:
        rehearsal = start_rehearsal(mosquitto.url, mission, report, "500")
        try:
            since = 0.0
            for _ in range(3):
                await listener.wait_for(
                    lambda h, since=since: isinstance(h.message, ScenarioProgress) and h.at > since
                    and h.message.state is ScenarioState.RUNNING,
                    timeout=60, what="ground control's scenario progress on the (restarted) broker")
                await asyncio.sleep(KILL_SPACING_S)
                if rehearsal.poll() is not None:
                    break
                await asyncio.to_thread(mosquitto.kill)
                kills += 1
                await asyncio.sleep(0.5)
                await asyncio.to_thread(mosquitto.restart)
                since = time.monotonic()
        finally:
            output, result = await asyncio.to_thread(finish, rehearsal, report)
    assert kills == 3, output[-3000:]
    assert rehearsal.returncode == 0 and result["passed"], output[-3000:]
    broker_alarms = [a["state"] for a in result["alarms"] if a["alarm"] == "broker.link"]
    assert broker_alarms.count("raised") == 3 and broker_alarms.count("cleared") == 3
    assert result["broker_outage_mission_seconds"] > 0
    assert_every_reliable_stream_whole(result, report)
    gaps = result["tm_gaps"]
    assert gaps, "housekeeping lost with the broker should show as gaps"
    assert all(g["missing"] >= 1 and g["span_s"] > 0 for g in gaps)
    with sqlite3.connect(report / "archive.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM tm_gaps").fetchone()[0] == len(gaps)


def service_process(mission: str, node: str) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "run" in cmdline and node in cmdline and mission in cmdline:
            return process
    raise LookupError(f"no {node} process for {mission}")


KILLS = (
    ("send lander-drill DRILL_TO_DEPTH", "lander-drill", 2.0),  # drilling: about 10 min simulated in
    ("send lander-drill STOW_CORE", "ground-control", 0.3),  # a command in flight, the scenario mid-step
    ("send lander-arm SAMPLE_SITES", "lander-arm", 2.0),  # a few scoops done
    ("send ascent-vehicle IGNITE", "ascent-vehicle", 0.5),  # mid-burn (the burn lasts about 1.2 s here)
    ("send ascent-vehicle START_APPROACH", "relay-satellite", 1.0),  # closing on the orbiter
)
"""Which service is killed with SIGKILL, how many wall seconds after which step starts (rate 300)."""


async def test_services_killed_mid_phase_resume_from_their_state(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    async with Listener(mosquitto_session.url, mission) as listener:
        rehearsal = start_rehearsal(mosquitto_session.url, mission, report, "300")
        try:
            for step, node, delay in KILLS:
                await listener.wait_for(
                    lambda h, step=step: isinstance(h.message, ScenarioProgress)
                    and h.message.state is ScenarioState.RUNNING and h.message.step.startswith(step),
                    timeout=90, what=f"step {step}")
                await asyncio.sleep(delay)
                service_process(mission, node).send_signal(signal.SIGKILL)
        finally:
            output, result = await asyncio.to_thread(finish, rehearsal, report)
    for _, node, _ in KILLS:
        assert f"{node} exited with -9; restarting" in output
    assert rehearsal.returncode == 0 and result["passed"], output[-3000:]
    for _, node, _ in KILLS:
        if node == "ground-control":  # nobody alarms for ground control: it says where it took up again
            assert '"event": "scenario_resumed"' in (report / "logs" / "ground-control.log").read_text()
            # the command in flight when it died was waited for, not sent again
            assert [c["state"] for c in result["command_log"] if c["command"] == "STOW_CORE"] == ["completed"]
            continue
        states = [a["state"] for a in result["alarms"] if a["alarm"] == f"service.{node}"]
        assert states[:2] == ["raised", "cleared"], states
    assert_every_reliable_stream_whole(result, report)
    with sqlite3.connect(report / "archive.sqlite") as db:
        depth = [d for (d,) in db.execute(
            "SELECT json_extract(body, '$.depth_m') FROM tm WHERE node = 'lander-drill' ORDER BY sim_time")]
        scoops = [s for (s,) in db.execute(
            "SELECT json_extract(body, '$.scoops_done') FROM tm WHERE node = 'lander-arm' ORDER BY sim_time")]
    # resumed, not restarted: the drill never went back up, the arm never forgot a scoop
    assert all(b >= a - 1e-9 for a, b in zip(depth, depth[1:], strict=False)), "drill depth went back"
    assert all(b >= a for a, b in zip(scoops, scoops[1:], strict=False)), "scoop count went back"
    assert result["figures"]["drill_depth_m"] >= 1.45 and result["figures"]["sample_mass_g"] > 1000
