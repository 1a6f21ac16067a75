"""The operator and instructor consoles in a real headless Chromium (the distribution's package, driven by
Playwright), against one running mission whose ground control serves them: the page loads with nothing
from outside the machine and no console errors, shows what the archive holds, back-fills its plots on a
reload without duplicates, sends commands and shows their verification stages in order, shows refusals
with their stage and reason, shares alarm acknowledgements between browsers, keeps instructor pages from
operators, shows a relay gap as loss of signal with stale parameters, and shows on the operator's page
the symptom of a fault the instructor injected from theirs.

Screenshots of both pages are kept in reports/test-artifacts/ (or $LUNAR_GS_ARTIFACTS).
The tests of this module share the mission and the browser, and run in file order.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lunar_gs.services.runtime.broker import MosquittoProcess
from tests.integration.console_mission import FAR_SIDE, ConsoleMission, console_mission

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(os.environ.get("LUNAR_GS_ARTIFACTS", "reports/test-artifacts"))
WAIT_MS = 30_000
BIT = "lander-drill.bit_temperature_c"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run installs it, so CI must have it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        _missing("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def console(mosquitto_session: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ConsoleMission]:
    with console_mission(mosquitto_session.url, tmp_path_factory.mktemp("console-browser")) as running:
        yield running


class Page:
    """One console page in its own browser context, with what it logged and asked for."""

    def __init__(self, browser: Any, console: ConsoleMission, role: str) -> None:
        self.context = browser.new_context(viewport={"width": 1600, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(console.login_url(role))
        self.page.wait_for_function("window.lgsConsole && window.lgsConsole.ready === true", timeout=WAIT_MS)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def operator(browser: Any, console: ConsoleMission) -> Iterator[Page]:
    page = Page(browser, console, "operator")
    yield page
    page.close()


@pytest.fixture(scope="module")
def instructor(browser: Any, console: ConsoleMission) -> Iterator[Page]:
    page = Page(browser, console, "instructor")
    yield page
    page.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_operator_page_loads_nothing_from_outside_and_logs_no_errors(operator: Page,
                                                                        console: ConsoleMission) -> None:
    from playwright.sync_api import expect

    page = operator.page
    assert page.url == f"{console.base}/operator"
    expect(page.locator('tr[data-key="lander-drill.torque_nm"] .value')).not_to_have_text("", timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # let the live stream run a while
    assert operator.errors == []
    ws_base = console.base.replace("http://", "ws://")
    outside = [u for u in operator.requests if not (u.startswith(console.base) or u.startswith(ws_base)
                                                    or u.startswith("data:"))]
    assert outside == [], outside
    assert any(u.startswith(f"{console.base}/static/vendor/uPlot") for u in operator.requests)
    expect(page.locator("#link")).to_have_attribute("data-state", "in_view", timeout=WAIT_MS)
    assert page.locator("#clock [data-field=utc]").inner_text().startswith("2024-06-")
    assert "T+" in page.locator("#clock [data-field=met]").inner_text()


def test_values_shown_for_a_mission_time_are_the_archives(operator: Page, console: ConsoleMission) -> None:
    shown = operator.page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-node="lander-drill"] tr[data-key]')).map(row => ({
            key: row.dataset.key, value: row.querySelector('.value').dataset.value,
            at: row.querySelector('.sim-time').dataset.simTime}))""")
    rows = [r for r in shown if r["at"]]
    assert len(rows) >= 10, shown
    at = float(rows[0]["at"])
    with console.archive() as db:
        body = console.wait("the packet in the archive", lambda: db.execute(
            "SELECT body FROM tm WHERE node = 'lander-drill' AND sim_time = ?", (at,)).fetchone())[0]
    packet = json.loads(body)
    compared = 0
    for row in rows:
        if float(row["at"]) != at:
            continue
        name = row["key"].removeprefix("lander-drill.")
        assert json.loads(row["value"]) == packet[name], (name, row["value"], packet[name])
        compared += 1
    assert compared >= 10


def test_a_reload_back_fills_the_plots_without_duplicates(operator: Page) -> None:
    page = operator.page
    key = "lander-drill.depth_m"
    page.wait_for_function(f"window.lgsConsole.plotData('{key}')[0].length >= 6", timeout=WAIT_MS)
    before = page.evaluate(f"window.lgsConsole.plotData('{key}')[0]")
    page.reload()
    page.wait_for_function("window.lgsConsole && window.lgsConsole.ready === true", timeout=WAIT_MS)
    page.wait_for_function(f"window.lgsConsole.plotData('{key}')[0].length >= {len(before)}", timeout=WAIT_MS)
    after = page.evaluate(f"window.lgsConsole.plotData('{key}')[0]")
    assert after[:len(before)] == before  # the history came back, from the archive
    assert all(a < b for a, b in zip(after, after[1:], strict=False)), "duplicate or unordered points"
    page.wait_for_timeout(2000)  # live points keep arriving after the back-fill, still without duplicates
    later, points = page.evaluate(f"""() => [window.lgsConsole.plotData('{key}')[0],
        document.querySelector('div.plot[data-key="{key}"]').dataset.points]""")  # one moment, both read
    assert len(later) > len(after) and all(a < b for a, b in zip(later, later[1:], strict=False))
    assert points == str(len(later))


def _send(page: Any, node: str, command: str, **args: str) -> dict:
    page.select_option("#cmd-node", node)
    page.select_option("#cmd-name", command)
    for name, value in args.items():
        page.fill(f'#cmd-args [name="{name}"]', value)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/commands") and r.request.method == "POST") as sent:
        page.click("#cmd-send")
    return sent.value.json()


def test_drill_to_depth_shows_acceptance_start_progress_and_completion_in_order(operator: Page) -> None:
    from playwright.sync_api import expect

    entry = _send(operator.page, "lander-drill", "DRILL_TO_DEPTH", target_depth_m="0.06")
    row = operator.page.locator(f'#commands tr[data-request-id="{entry["request_id"]}"]')
    expect(row).to_have_attribute("data-state", "completed", timeout=WAIT_MS)
    stages = row.locator(".stages span.stage").evaluate_all("spans => spans.map(s => s.dataset.stage)")
    assert stages == ["acceptance", "start", "progress", "completion"], stages
    assert row.locator(".stages span.stage.failed").count() == 0


def test_an_out_of_range_argument_shows_the_failure_stage_and_reason(operator: Page) -> None:
    from playwright.sync_api import expect

    entry = _send(operator.page, "lander-drill", "DRILL_TO_DEPTH", target_depth_m="9")
    row = operator.page.locator(f'#commands tr[data-request-id="{entry["request_id"]}"]')
    expect(row).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    reason = row.locator(".reason")
    assert reason.get_attribute("data-failed-stage") == "acceptance"
    assert "target_depth_m" in reason.inner_text() and "INVALID_ARGUMENTS" in reason.inner_text()
    assert row.locator('span.stage.failed[data-stage="acceptance"]').count() == 1


def test_a_hazardous_command_asks_for_confirmation_first(operator: Page, console: ConsoleMission) -> None:
    page = operator.page
    before = len(console.get("/api/v1/commands")["commands"])
    page.select_option("#cmd-node", "ascent-vehicle")
    page.select_option("#cmd-name", "IGNITE")
    page.click("#cmd-send")
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible", timeout=WAIT_MS)
    assert "IGNITE" in dialog.inner_text()
    page.click("#confirm-no")
    page.wait_for_timeout(500)
    assert len(console.get("/api/v1/commands")["commands"]) == before  # nothing was sent


def test_an_operator_gets_403_from_every_instructor_endpoint(browser: Any, console: ConsoleMission) -> None:
    probe = Page(browser, console, "operator")  # its own context: Chromium logs each 403 as a console error
    statuses = probe.page.evaluate("""async () => {
        const calls = [['GET', '/instructor'], ['GET', '/api/v1/instructor/faults/catalogue'],
            ['GET', '/api/v1/instructor/faults/active'], ['GET', '/api/v1/instructor/truth'],
            ['GET', '/api/v1/instructor/bookmarks'], ['GET', '/api/v1/audit'],
            ['POST', '/api/v1/instructor/faults'], ['POST', '/api/v1/instructor/clock'],
            ['POST', '/api/v1/instructor/bookmarks'], ['DELETE', '/api/v1/instructor/faults/F01']];
        const out = [];
        for (const [method, path] of calls) {
            const r = await fetch(path, {method, credentials: 'same-origin', headers: {'Content-Type': 'application/json'},
                                         body: method === 'GET' ? undefined : '{"action": "pause", "note": "x"}'});
            out.push([method, path, r.status]);
        }
        return out;
    }""")
    probe.close()
    assert [s for s in statuses if s[2] != 403] == []
    assert len(statuses) == 10
    assert not console.get("/api/v1/clock")["paused"]


def test_a_fault_injected_from_the_instructor_page_shows_on_the_operator_page_and_an_acknowledgement_is_shared(
        operator: Page, instructor: Page, browser: Any, console: ConsoleMission) -> None:
    from playwright.sync_api import expect

    page = instructor.page
    page.select_option("#fault-kind", "sensor.bias")
    page.select_option("#fault-target", BIT)
    page.fill('#fault-params [name="offset"]', "150")
    page.click("#fault-inject")
    expect(page.locator("#fault-result")).to_have_attribute("data-result", "accepted", timeout=WAIT_MS)
    fault_row = page.locator("#active-faults tr[data-fault-id]").first
    expect(fault_row).to_be_visible(timeout=WAIT_MS)

    expect(operator.page.locator(f'tr[data-key="{BIT}"]')).to_have_attribute("data-limit", "warning",
                                                                            timeout=WAIT_MS)
    alarm = operator.page.locator(f'#alarms tr[data-alarm="{BIT}"]')
    expect(alarm).to_have_attribute("data-state", "unacknowledged", timeout=WAIT_MS)
    second = Page(browser, console, "operator")
    try:
        other = second.page.locator(f'#alarms tr[data-alarm="{BIT}"]')
        expect(other).to_have_attribute("data-state", "unacknowledged", timeout=WAIT_MS)
        alarm.locator("input.alarm-comment").fill("bias seen, sensor suspected")
        alarm.locator("button.ack").click()
        expect(other).to_have_attribute("data-state", "acknowledged", timeout=WAIT_MS)
        assert "bias seen, sensor suspected" in other.inner_text()
        assert second.errors == []
    finally:
        second.close()
    _screenshot(operator, "console-operator.png")
    _screenshot(instructor, "console-instructor.png")
    assert page.locator("#truth tr").count() >= 2  # accepted, injected: the instructor sees the ground truth
    fault_row.locator("button.clear-fault").click()
    expect(operator.page.locator(f'tr[data-key="{BIT}"]')).to_have_attribute("data-limit", "ok", timeout=WAIT_MS)
    assert instructor.errors == [] and operator.errors == []


def test_a_relay_gap_shows_loss_of_signal_and_far_side_parameters_go_stale(operator: Page,
                                                                          console: ConsoleMission) -> None:
    from playwright.sync_api import expect

    page = operator.page
    fault_id = console.inject({"kind": "link.los", "target": "relay-satellite.down"})
    try:
        expect(page.locator("#link")).to_have_attribute("data-state", "los", timeout=WAIT_MS)
        for node in FAR_SIDE:
            expect(page.locator(f'tr[data-key="{node}.mode"]')).to_have_attribute("data-stale", "true",
                                                                                timeout=WAIT_MS)
        assert page.locator('tr[data-key="relay-satellite.stored_messages"]').get_attribute("data-stale") == "false"
    finally:
        console.clear(fault_id)
    expect(page.locator("#link")).to_have_attribute("data-state", "in_view", timeout=WAIT_MS)
    expect(page.locator('tr[data-key="lander-drill.mode"]')).to_have_attribute("data-stale", "false",
                                                                              timeout=WAIT_MS)
    assert operator.errors == []
