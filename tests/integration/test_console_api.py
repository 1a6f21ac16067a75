"""Ground control's console API over real HTTP and WebSocket, against one running mission (six service
processes on a private Mosquitto, ground control with `--console`), and `lunar-gs cmd` against the same
mission: roles, the dictionary, commands by hand tracked like a scenario's, refusals, the live stream,
history against the archive, the alarm lifecycle, the clock, bookmarks, and alarm state kept across a
ground-control restart. The tests of this module share the mission and run in file order.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from lunar_gs.protocols.events import Rejection, RejectionCode
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.topics import Topics
from lunar_gs.services.debrief import build_debrief
from lunar_gs.services.runtime.broker import MosquittoProcess
from tests.integration.console_mission import ConsoleMission, console_mission
from tests.integration.kit import Listener

pytestmark = pytest.mark.integration

INSTRUCTOR_ENDPOINTS = [
    ("GET", "/api/v1/instructor/faults/catalogue", None), ("GET", "/api/v1/instructor/faults/active", None),
    ("POST", "/api/v1/instructor/faults", {"kind": "drill.stall", "target": "lander-drill"}),
    ("DELETE", "/api/v1/instructor/faults/F01", None), ("GET", "/api/v1/instructor/truth", None),
    ("POST", "/api/v1/instructor/clock", {"action": "pause"}), ("GET", "/api/v1/instructor/bookmarks", None),
    ("POST", "/api/v1/instructor/bookmarks", {"note": "x"}), ("GET", "/api/v1/audit", None),
    ("GET", "/instructor", None),
]
HOT_BIT = {"kind": "sensor.bias", "target": "lander-drill.bit_temperature_c", "params": {"offset": 150.0}}
BIT_ALARM = "lander-drill.bit_temperature_c"


@pytest.fixture(scope="module")
def console(mosquitto_session: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ConsoleMission]:
    with console_mission(mosquitto_session.url, tmp_path_factory.mktemp("console-api"), keep_state=True) as c:
        yield c


def lunar_gs(console: ConsoleMission, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lunar_gs.services.cli", *args, "--mission",
                           console.mission.mission, "--broker", console.mission.url],
                          capture_output=True, text=True, timeout=timeout)


def test_no_token_is_401_and_an_operator_gets_403_on_every_instructor_endpoint(console: ConsoleMission) -> None:
    assert console.request("GET", "/api/v1/dictionary", role=None)[0] == 401
    status, body = console.request("GET", "/api/v1/dictionary", role=None)
    assert "Bearer" in body["error"]
    for method, path, body in INSTRUCTOR_ENDPOINTS:
        status, answer = console.request(method, path, body, role="operator")
        assert status == 403, (method, path, status, answer)
        assert console.request(method, path, body, role=None)[0] == 401, (method, path)
    assert console.request("GET", "/api/v1/instructor/faults/catalogue", role="instructor")[0] == 200
    assert console.request("GET", "/instructor", role="instructor")[0] == 200
    # nothing the operator asked for happened: no fault was requested, the clock was not paused
    assert not console.get("/api/v1/clock")["paused"]
    assert not [e for e in console.get("/api/v1/audit", role="instructor")["entries"]
                if e["action"].startswith(("fault.", "clock.", "bookmark"))]


def test_login_link_sets_a_session_cookie_for_the_role_page(console: ConsoleMission) -> None:
    import http.cookiejar
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(console.login_url("operator"), timeout=10) as page:
        assert page.url.endswith("/operator")
        assert "<html" in page.read().decode().lower()
    with opener.open(console.base + "/api/v1/clock", timeout=10) as clock:
        assert json.loads(clock.read())["ready"] is True
    cookie = next(iter(jar))
    assert cookie.name == f"lgs_session_{console.mission.console_port}"
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert console.request("GET", "/login?token=wrong", role=None)[0] == 401


def test_dictionary_lists_parameters_with_units_and_limits_and_commands_with_ranges(console: ConsoleMission) -> None:
    dictionary = console.get("/api/v1/dictionary")
    parameters = {p["key"]: p for p in dictionary["parameters"]}
    torque = parameters["lander-drill.torque_nm"]
    assert (torque["unit"], torque["type"]) == ("N·m", "number")
    assert torque["limits"][0]["high"] == 25.0
    assert parameters["lander-arm.elbow.angle_deg"]["unit"] == "°"
    assert "drilling" in parameters["lander-drill.mode"]["choices"]
    commands = {(c["node"], c["name"]): c for c in dictionary["commands"]}
    depth = {a["name"]: a for a in commands[("lander-drill", "DRILL_TO_DEPTH")]["args"]}["target_depth_m"]
    assert (depth["minimum"], depth["maximum"], depth["required"]) == (0.05, 2.5, True)
    assert commands[("ascent-vehicle", "IGNITE")]["hazardous"] is True
    assert commands[("lander-drill", "DRILL_TO_DEPTH")]["hazardous"] is False


def test_a_command_from_the_console_is_verified_archived_and_audited(console: ConsoleMission) -> None:
    status, entry = console.post("/api/v1/commands", {"node": "lander-drill", "command": "DRILL_TO_DEPTH",
                                                      "args": {"target_depth_m": 0.06}, "by": "flight"})
    assert status == 201, entry
    assert entry["origin"] == "operator"
    done = console.wait("DRILL_TO_DEPTH to complete",
                        lambda: (c := console.command(entry["request_id"]))["state"] in ("completed", "failed") and c)
    assert done["state"] == "completed", done
    order = [stage for stage, _ in sorted(done["stages"].items(), key=lambda kv: kv[1])]
    assert order == ["acceptance", "start", "progress", "completion"], done["stages"]
    assert done["progress"] >= 1
    def archived() -> tuple | None:  # the archive commits a few times a wall second
        with console.archive() as db:
            return db.execute("SELECT state, origin FROM commands WHERE request_id = ?",
                              (entry["request_id"],)).fetchone()

    assert console.wait("the archived command", lambda: archived() == ("completed", "operator") and archived())
    audit = [json.loads(line) for line in (console.mission.report_dir / "audit.jsonl").read_text().splitlines()]
    mine = [e for e in audit if e.get("request_id") == entry["request_id"]]
    assert mine and mine[0]["role"] == "operator" and mine[0]["by"] == "operator:flight"
    assert mine[0]["sim_time"] > 1.7e9 and mine[0]["wall_time"] > mine[0]["sim_time"]


def test_bad_commands_are_refused_with_a_reason_and_nothing_is_sent(console: ConsoleMission) -> None:
    before = len(console.get("/api/v1/commands")["commands"])
    status, entry = console.post("/api/v1/commands", {"node": "lander-drill", "command": "DRILL_TO_DEPTH",
                                                      "args": {"target_depth_m": 9}})
    assert status == 201
    assert (entry["state"], entry["failed_stage"], entry["failure_code"]) == ("failed", "acceptance",
                                                                               "INVALID_ARGUMENTS")
    assert "target_depth_m" in entry["reason"] and "2.5" in entry["reason"]
    status, entry = console.post("/api/v1/commands", {"node": "lander-drill", "command": "FLY"})
    assert (status, entry["failure_code"]) == (201, "UNKNOWN_COMMAND")
    assert "DRILL_TO_DEPTH" in entry["reason"]  # names what the node knows
    status, answer = console.post("/api/v1/commands", {"node": "ascent-vehicle", "command": "IGNITE"})
    assert (status, answer["field"]) == (409, "confirm")
    assert console.post("/api/v1/commands", {"node": "mars-rover", "command": "X"})[0] == 404
    assert console.post("/api/v1/commands", {"command": "STOP"})[1]["field"] == "node"
    assert console.post("/api/v1/commands", {"node": "lander-drill", "command": "STOP", "args": [1]})[0] == 400
    status, answer = console.request("POST", "/api/v1/commands", raw=b"{not json")
    assert (status, answer["error"]) == (400, "the body must be JSON")
    commands = console.get("/api/v1/commands")["commands"]
    assert len(commands) == before + 2  # the two refusals at acceptance are booked; the others are not
    assert all(c["stages"] == {"acceptance_failed": c["sent_at"]} for c in commands[before:])
    def refused() -> int:
        with console.archive() as db:
            return int(db.execute("SELECT COUNT(*) FROM commands WHERE state = 'failed' AND failure_code IN "
                                  "('INVALID_ARGUMENTS', 'UNKNOWN_COMMAND')").fetchone()[0])

    console.wait("the two refusals in the archive", lambda: refused() == 2)


def test_history_is_the_archive_in_time_order_without_duplicates(console: ConsoleMission) -> None:
    history = console.get("/api/v1/history?node=lander-drill&parameters=depth_m,torque_nm")
    rows = history["rows"]
    assert len(rows) >= 3
    times = [r["sim_time"] for r in rows]
    assert times == sorted(times) and len(set(r["seq"] for r in rows)) == len(rows)
    with console.archive() as db:
        archived = db.execute("SELECT seq, sim_time, json_extract(body, '$.depth_m') FROM tm "
                              "WHERE node = 'lander-drill' ORDER BY sim_time").fetchall()
    by_seq = {seq: (t, depth) for seq, t, depth in archived}
    for row in rows:
        assert by_seq[row["seq"]] == (row["sim_time"], row["values"]["depth_m"])
    assert set(rows[0]["values"]) == {"depth_m", "torque_nm"}
    last_two = console.get(f"/api/v1/history?node=lander-drill&since={times[-2]}&until={times[-1]}&limit=2")["rows"]
    assert [r["sim_time"] for r in last_two] == times[-2:]
    assert console.request("GET", "/api/v1/history?node=pluto")[0] == 404
    assert console.request("GET", "/api/v1/history?node=lander-drill&since=yesterday")[0] == 400
    assert console.request("GET", "/api/v1/history?node=lander-drill&limit=0")[0] == 400


async def _collect(session: aiohttp.ClientSession, url: str, token: str, seconds: float) -> list[dict]:
    items: list[dict] = []
    async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
        hello = json.loads((await ws.receive(timeout=5)).data)
        items.append(hello)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = await ws.receive(timeout=max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            if message.type is aiohttp.WSMsgType.TEXT:
                items.extend(json.loads(message.data).get("items", []))
    return items


async def test_the_live_stream_carries_tm_alarms_and_truth_only_to_the_instructor(console: ConsoleMission) -> None:
    url = console.base.replace("http", "ws") + "/api/v1/live"
    async with aiohttp.ClientSession() as session:
        operator = asyncio.create_task(_collect(session, url, console.token("operator"), 6.0))
        instructor = asyncio.create_task(_collect(session, url, console.token("instructor"), 6.0))
        await asyncio.sleep(1.0)
        fault_id = await asyncio.to_thread(console.inject, HOT_BIT)
        seen_operator, seen_instructor = await operator, await instructor
    await asyncio.to_thread(console.clear, fault_id)
    assert seen_operator[0]["type"] == "hello" and seen_operator[0]["role"] == "operator"
    for seen in (seen_operator, seen_instructor):
        kinds = {item.get("kind") for item in seen[1:]}
        assert "tm" in kinds
        tm = next(i for i in seen if i.get("kind") == "tm" and i["node"] == "lander-drill")
        assert tm["received_sim"] >= tm["sim_time"] and "torque_nm" in tm["values"]
        alarms = [i for i in seen if i.get("kind") == "alarm" and i["name"] == BIT_ALARM]
        assert alarms and alarms[0]["state"] == "unacknowledged"
    assert not [i for i in seen_operator if i.get("kind") in ("truth", "faults")]
    truth = [i["record"] for i in seen_instructor if i.get("kind") == "truth" and i["record"]["fault_id"] == fault_id]
    assert {t["entry"] for t in truth} >= {"accepted", "injected"}
    assert any(i.get("kind") == "faults" for i in seen_instructor)
    assert console.request("GET", "/api/v1/live", role=None)[0] == 401


def test_an_alarm_is_latched_acknowledged_with_a_comment_shelved_and_cleared(console: ConsoleMission) -> None:
    console.wait("the hot-bit alarm to clear after its fault", lambda: (a := console.alarm(BIT_ALARM))
                 and not a["active"] and a)
    latched = console.alarm(BIT_ALARM)
    assert latched is not None and latched["state"] == "unacknowledged"  # latched after its value came back
    path = f"/api/v1/alarms/{BIT_ALARM}"
    status, answer = console.post(f"{path}/acknowledge", {})
    assert (status, answer["field"]) == (400, "comment")
    status, acked = console.post(f"{path}/acknowledge", {"comment": "sensor check", "by": "gnc"})
    assert status == 200 and acked["state"] == "cleared" and acked["acknowledged"]["comment"] == "sensor check"
    assert console.alarm(BIT_ALARM) is None  # acknowledged and over: off the list

    fault_id = console.inject(HOT_BIT)
    raised = console.wait("the alarm raised again", lambda: (a := console.alarm(BIT_ALARM)) and a["active"] and a)
    assert raised["state"] == "unacknowledged" and raised["acknowledged"] is None
    assert console.post(f"{path}/clear", {"comment": "x"})[0] == 409  # still active
    assert console.post(f"{path}/shelve", {"comment": "known", "duration_s": 0})[1]["field"] == "duration_s"
    status, shelved = console.post(f"{path}/shelve", {"comment": "known", "duration_s": 3600})
    assert status == 200 and shelved["state"] == "shelved"
    status, back = console.post(f"{path}/unshelve", {})
    assert status == 200 and back["state"] == "unacknowledged"
    status, acked = console.post(f"{path}/acknowledge", {"comment": "bias injected on purpose"})
    assert acked["state"] == "acknowledged" and acked["acknowledged"]["by"] == "operator"
    assert console.post("/api/v1/alarms/no.such.alarm/acknowledge", {"comment": "x"})[0] == 404
    assert console.post(f"{path}/dance", {"comment": "x"})[0] == 404
    console.clear(fault_id)
    entries = console.get("/api/v1/audit", role="instructor")["entries"]
    done = [e["action"] for e in entries if e.get("alarm") == BIT_ALARM and e["result"] == "ok"]
    assert done[-3:] == ["alarm.shelve", "alarm.unshelve", "alarm.acknowledge"]
    refused = [e for e in entries if e["action"] == "alarm.dance"]
    assert refused and refused[-1]["result"] == "refused"


def test_lunar_gs_cmd_sends_through_ground_control_and_prints_each_stage(console: ConsoleMission) -> None:
    done = lunar_gs(console, "cmd", "lander-drill", "DRILL_TO_DEPTH", "target_depth_m=0.08", "--operator", "ops1")
    assert done.returncode == 0, done.stdout + done.stderr
    words = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("T+")]
    assert words[0] == "sent" and words[-1] == "completed"
    assert words.index("accepted") < words.index("started") < words.index("completed")
    request_id = done.stdout.split()[2]
    tracked = console.command(request_id)
    assert (tracked["state"], tracked["origin"]) == ("completed", "operator")

    before = len(console.get("/api/v1/commands")["commands"])
    bad = lunar_gs(console, "cmd", "lander-drill", "DRILL_TO_DEPTH", "target_depth_m=9")
    assert bad.returncode == 2 and "target_depth_m" in bad.stderr and not bad.stdout
    hazardous = lunar_gs(console, "cmd", "ascent-vehicle", "IGNITE")
    assert hazardous.returncode == 2 and "--confirm" in hazardous.stderr
    assert lunar_gs(console, "cmd", "lander-drill", "DRILL_TO_DEPTH", "depth").returncode == 2
    assert len(console.get("/api/v1/commands")["commands"]) == before  # nothing was sent

    failed = lunar_gs(console, "cmd", "ascent-vehicle", "RETARGET")  # on the lander: the vehicle refuses
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED" in failed.stdout and "retarget needs mode powered_ascent" in failed.stdout
    nobody = subprocess.run([sys.executable, "-m", "lunar_gs.services.cli", "cmd", "lander-drill", "CHECKOUT",
                             "--mission", "nobody" + uuid.uuid4().hex[:6], "--broker", console.mission.url],
                            capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 4 and "no answer from ground control" in nobody.stderr


async def test_a_malformed_command_request_gets_a_rejection_and_ground_control_goes_on(
        console: ConsoleMission) -> None:
    topics = Topics(console.mission.mission)
    async with Listener(console.mission.url, console.mission.mission) as heard:
        await heard.publish(topics.command_request, b'{"schema_name": "command_request", "target": 7}')
        rejection = await heard.wait_for(lambda h: isinstance(h.message, Rejection)
                                         and h.message.topic == topics.command_request, timeout=10,
                                         what="a rejection of the bad request")
    assert rejection.message.code in (RejectionCode.INVALID, RejectionCode.MALFORMED)
    assert rejection.topic == topics.ev(Side.GROUND, Node.GROUND_CONTROL)
    assert console.get("/api/v1/clock")["ready"]


def test_the_instructor_pauses_resumes_sets_the_rate_and_runs_until_a_mission_time(console: ConsoleMission) -> None:
    def clock(body: dict) -> dict:
        status, answer = console.post("/api/v1/instructor/clock", body, role="instructor")
        assert status == 200, answer
        return answer

    paused = clock({"action": "pause"})
    assert paused["paused"] is True
    time.sleep(0.5)
    assert console.get("/api/v1/clock")["sim_time"] == pytest.approx(paused["sim_time"], abs=1e-6)
    clock({"action": "resume"})
    assert clock({"action": "rate", "rate": 200})["rate"] == 200
    now = console.get("/api/v1/clock")["sim_time"]
    clock({"action": "run_until", "until": now + 300})
    stopped = console.wait("the clock to pause at the mark", lambda: (c := console.get("/api/v1/clock"))["paused"] and c)
    assert stopped["sim_time"] == pytest.approx(now + 300, abs=30)
    clock({"action": "rate", "rate": 100})
    clock({"action": "resume"})
    for bad in ({"action": "rate", "rate": 0}, {"action": "rate", "rate": True}, {"action": "run_until", "until": 1},
                {"action": "rewind"}, {}):
        assert console.post("/api/v1/instructor/clock", bad, role="instructor")[0] == 400, bad


def test_bookmarks_become_the_debriefs_agenda(console: ConsoleMission) -> None:
    status, mark = console.post("/api/v1/instructor/bookmarks", {"note": "trainee missed the bit alarm"},
                                role="instructor")
    assert status == 201 and mark["by"] == "instructor"
    assert console.post("/api/v1/instructor/bookmarks", {"note": "  "}, role="instructor")[0] == 400
    assert console.get("/api/v1/instructor/bookmarks", role="instructor")["bookmarks"][-1]["id"] == mark["id"]
    report_dir = console.mission.report_dir
    (report_dir / "report.json").write_text(json.dumps({"scenario": "console", "phases": []}))
    agenda = build_debrief(report_dir)["agenda"]
    assert [m["note"] for m in agenda] == ["trainee missed the bit alarm"]
    assert agenda[0]["met"].startswith("T+")


def test_alarm_state_survives_a_ground_control_restart(console: ConsoleMission) -> None:
    fault_id = console.inject(HOT_BIT)
    console.wait("the alarm", lambda: (a := console.alarm(BIT_ALARM)) and a["active"] and a)
    assert console.post(f"/api/v1/alarms/{BIT_ALARM}/acknowledge", {"comment": "before the restart"})[0] == 200
    mission = console.mission
    mission.kill(Node.GROUND_CONTROL)
    mission.start_node(Node.GROUND_CONTROL)
    console.wait("ground control back", lambda: _up(console), timeout_s=30)
    entry = console.alarm(BIT_ALARM)
    assert entry is not None and entry["acknowledged"]["comment"] == "before the restart"
    assert entry["state"] == "acknowledged"
    console.clear(fault_id)


def _up(console: ConsoleMission) -> bool:
    try:
        return bool(console.get("/api/v1/clock").get("ready"))
    except (OSError, AssertionError):
        return False


def test_the_instructor_catalogue_names_targets_and_injects_through_the_instructor_service(
        console: ConsoleMission) -> None:
    catalogue = console.get("/api/v1/instructor/faults/catalogue", role="instructor")
    kinds = {k["kind"]: k for k in catalogue["kinds"]}
    assert "lander-arm.elbow" in kinds["arm.encoder_stuck"]["targets"]
    assert "relay-satellite.down" in kinds["link.los"]["targets"]
    status, record = console.post("/api/v1/instructor/faults", {"kind": "drill.stall", "target": "lander-arm"},
                                  role="instructor")
    assert status == 400 and "lander-arm" in record["error"]
    status, record = console.post("/api/v1/instructor/faults", {"kind": "sensor.bias", "target":
                                  "lander-drill.torque_nm", "params": {"offset": 1.0}, "trigger": {"phase": "x"},
                                  "label": "never"}, role="instructor")
    assert status == 201 and record["via"] == "console"
    truth = console.get("/api/v1/instructor/truth", role="instructor")["records"]
    assert any(r["fault_id"] == record["fault_id"] and r["entry"] == "accepted" for r in truth)
    console.clear(record["fault_id"])


@pytest.mark.parametrize("path", ["/api/v1/alarms/x/acknowledge", "/api/v1/instructor/bookmarks"])
def test_bodies_that_are_not_json_objects_get_400(console: ConsoleMission, path: str) -> None:
    for raw in (b"[]", b"\xff\xfe", b"42"):
        status, answer = console.request("POST", path, raw=raw, role="instructor")
        assert status == 400, (raw, status, answer)

