"""The operator console under load: from a TM packet reaching ground control to its value in the browser.

Ground control alone runs as its own process with its console (`run ground-control --console PORT`); a
paced publisher in another process offers it ground-side drill housekeeping at a steady rate (QoS 0), each
packet with its own `torque_nm` (seq-encoded), so a value on screen names the packet it came from.

1. without browsers (the baseline): ground control's CPU over a window;
2. with N headless Chromium pages on `/operator` (one browser context each, logged in through
   `/login?token=`), over a window of the same length: ground control's CPU again, and per drill packet
   that ground control decoded in the window, in every page (both clocks are this machine's wall clock):
   - latency, the headline: from `received_wall` (ground control decoded it) until the page's parameter
     table `tr[data-key="lander-drill.torque_nm"] .value` showed this packet's value or a newer one (a
     MutationObserver on that cell; the page may render less often than packets come, so most values are
     superseded before they are drawn: this is how old a packet is when the operator can first see it or
     something newer);
   - socket latency: until the page's own live-stream handler returned (an init script wraps the page's
     `WebSocket` and reads the time right after the page's handler);
   - frame latency: until the next animation frame after that table update (about when it is painted);
   - from publish: the headline's span measured from the publisher's `wall_time` instead, so including
     ground control's queue before it decodes (from the archive, after the fact);
   - each table update is checked against the newest packet the page had received then.

The CPU figures beside it (the browsers', the publisher's, the whole machine's) tell whether the machine
had cores to spare: on two cores, five renderers and ground control compete.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.harness import ROOT, clear_retained, paho_client, percentile, wait_for
from benchmarks.pipeline import archived_between

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # five consoles are five screens in view: no throttling of background pages' timers
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]
P99_GOAL_MS = 100.0
TORQUE_KEY = "lander-drill.torque_nm"
TORQUE_BASE = 1.0
TORQUE_SPAN = 20_000  # distinct values 1.000 .. 20.999 N·m: below the 25 N·m limit, three decimals as shown

# Runs in every page before its own scripts. Wraps the live stream's message handler (the page sets
# `ws.onmessage`; `addEventListener("message")` is covered too) to note, right after the page's handler
# returned, each drill TM item: its seq, `received_wall` and the time (the socket figure). A MutationObserver
# on the torque cell sees each time the page writes a value there (the page may render less often than
# packets come): the value names its packet, so every packet up to that one counts as shown then (the
# display figure: this value or a newer one is on screen), and the next animation frame as drawn then.
INIT_SCRIPT = r"""
(() => {
  const st = { record: true, key: %(key)s, node: "lander-drill",
               socket: [], shown: [], drawn: [], renders: 0, newest: 0, unknown: 0, overflows: 0,
               mismatches: [], pending: [], bySeqText: new Map(), lastSeq: null, cell: null };
  window.__lgsBench = st;
  const now = () => performance.timeOrigin + performance.now();
  const fmt = (v) => { const r = Number(v.toFixed(3)); return String(Object.is(r, -0) ? 0 : r); };
  const observer = new MutationObserver(() => {
    const t = now();
    const text = st.cell ? st.cell.textContent : "";
    const seq = st.bySeqText.get(text);
    if (!st.record || !st.pending.length) return;
    if (seq === undefined) { st.unknown += 1; return; }
    st.renders += 1;
    if (seq === st.lastSeq) st.newest += 1;
    else if (st.mismatches.length < 5) st.mismatches.push([text, seq, st.lastSeq]);
    const done = [];
    while (st.pending.length && st.pending[0][0] <= seq) {
      const [s, wall, text0] = st.pending.shift();
      st.bySeqText.delete(text0);
      st.shown.push([wall, t / 1000 - wall, s]);
      done.push([wall, s]);
    }
    requestAnimationFrame(() => {
      const f = now() / 1000;
      for (const [wall, s] of done) st.drawn.push([wall, f - wall, s]);
    });
  });
  function watchCell() {
    if (st.cell && st.cell.isConnected) return;
    st.cell = document.querySelector(`tr[data-key="${st.key}"] .value`);
    if (st.cell) observer.observe(st.cell, { childList: true, characterData: true, subtree: true });
  }
  function after(ev, t, parsed) {
    if (!st.record || typeof ev.data !== "string") return;
    let msg = parsed;
    if (msg === undefined) { try { msg = nativeParse(ev.data); } catch { return; } }
    if (!msg) return;
    if (msg.type === "overflow") { st.overflows += 1; return; }
    if (msg.type !== "batch" || !Array.isArray(msg.items)) return;
    watchCell();
    for (const it of msg.items) {
      if (!it || it.kind !== "tm" || it.node !== st.node || typeof it.received_wall !== "number") continue;
      st.socket.push([it.received_wall, t / 1000 - it.received_wall, it.seq]);
      st.lastSeq = it.seq;
      const v = it.values && it.values.torque_nm;
      if (typeof v === "number") {
        const text = fmt(v);
        st.pending.push([it.seq, it.received_wall, text]);
        st.bySeqText.set(text, it.seq);
      }
    }
  }
  // the page parses each frame itself: keep what it got rather than parse the frame twice
  const nativeParse = JSON.parse;
  let capture = null, captured;
  JSON.parse = function (text, reviver) {
    const value = nativeParse.call(this, text, reviver);
    if (capture !== null && text === capture) captured = value;
    return value;
  };
  const Native = window.WebSocket;
  const handler = Object.getOwnPropertyDescriptor(Native.prototype, "onmessage");
  const wrapped = new WeakMap();
  const wrap = (fn) => function (ev) {
    capture = st.record ? ev.data : null;
    captured = undefined;
    try { return fn.apply(this, arguments); } finally {
      const t = now(), parsed = captured;
      capture = null;
      captured = undefined;
      after(ev, t, parsed);
    }
  };
  class BenchWebSocket extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      this.__live = String(url).includes("/api/v1/live");
    }
    get onmessage() { return handler.get.call(this); }
    set onmessage(fn) { handler.set.call(this, this.__live && typeof fn === "function" ? wrap(fn) : fn); }
    addEventListener(type, fn, options) {
      if (this.__live && type === "message" && typeof fn === "function") {
        if (!wrapped.has(fn)) wrapped.set(fn, wrap(fn));
        return super.addEventListener(type, wrapped.get(fn), options);
      }
      return super.addEventListener(type, fn, options);
    }
    removeEventListener(type, fn, options) {
      return super.removeEventListener(type, (type === "message" && wrapped.get(fn)) || fn, options);
    }
  }
  window.WebSocket = BenchWebSocket;
})();
""" % {"key": json.dumps(TORQUE_KEY)}


def skip_reason() -> str | None:
    """Why the section cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is missing ({exc})"
    return None


def run(url: str, workdir: Path, *, offered: int, window_s: float, browsers: int, log: Any) -> dict[str, Any]:
    reason = skip_reason()
    if reason:
        log(f"  skipped: {reason}")
        return {"skipped": reason}
    from playwright.sync_api import sync_playwright

    mission = f"bench-console-{int(time.time()) % 100000}"
    report = workdir / mission
    report.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(18)
    result: dict[str, Any] = {"mission": mission, "offered_msgs_per_s": offered, "browsers": browsers,
                              "window_s": window_s, "p99_goal_ms": P99_GOAL_MS}
    gc: subprocess.Popen[bytes] | None = None
    publisher: subprocess.Popen[bytes] | None = None
    began = time.monotonic()
    marks: dict[str, float] = {}  # when each step ended, s from the start: where the section's time goes

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - began, 1)

    try:
        gc = _start_ground_control(url, mission, port, token, report)
        wait_for(lambda: _clock_ready(base, token) or gc.poll() is not None, 60, "ground control's clock")
        _check_alive(gc, report)
        mark("ground_control_ready")
        clock = _get(base, token, "/api/v1/clock")
        publisher = _start_publisher(url, mission, offered, float(clock["sim_time"]) - time.time(), report)
        gc_proc, pub_proc = psutil.Process(gc.pid), psutil.Process(publisher.pid)
        wait_for(lambda: _drill_seq(base, token) is not None or publisher.poll() is not None, 20, "first TM")
        if publisher.poll() is not None:
            err = (report / "publisher.err").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the publisher exited with {publisher.returncode}:\n{err}")
        time.sleep(SETTLE_S)

        # ---- phase A, the baseline: no browser -------------------------------------------------------------
        without = _window(gc_proc, pub_proc, window_s, base, token)
        log(f"  without browsers: ground control CPU {without['gc_cpu_pct']} % of a core")
        mark("without_browsers")

        # ---- phase B: N operator consoles, one browser context each ----------------------------------------
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            mark("browser_launched")
            try:
                pages, load_s = [], []
                for _ in range(browsers):
                    context = browser.new_context()
                    context.add_init_script(INIT_SCRIPT)
                    page = context.new_page()
                    opened = time.monotonic()
                    page.goto(f"{base}/login?token={token}", wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_function("window.lgsConsole && window.lgsConsole.ready",
                                           timeout=PAGE_TIMEOUT_MS)
                    load_s.append(round(time.monotonic() - opened, 2))
                    pages.append(page)
                table = all(page.query_selector(f'tr[data-key="{TORQUE_KEY}"] .value') for page in pages)
                if not table:
                    log(f"  note: /operator shows no {TORQUE_KEY} row: only the socket figure is measured")
                log(f"  {browsers} pages ready (load to ready {', '.join(f'{x:g}' for x in load_s)} s)")
                mark("pages_ready")
                time.sleep(SETTLE_S)  # the pages record from the start; the window picks its packets
                with_ = _window(gc_proc, pub_proc, window_s, base, token)
                mark("with_browsers")
                raw = _collect(pages, with_["t1"], wait=table)
                mark("collected")
            finally:
                browser.close()
        mark("browser_closed")
        _check_alive(gc, report)
        result["publisher"] = _stop_publisher(publisher)
        publisher = None
    finally:
        if publisher is not None:
            _stop_publisher(publisher)
        if gc is not None:
            _stop(gc)
        clear_retained(url, [mission])
        mark("stopped")

    # ---- figures: after the fact, from the pages' records and ground control's archive ---------------------
    archive = report / "archive.sqlite"
    sent = _published_walls(archive)
    for phase in (without, with_):
        # stream: how far ground control got through the stream in the window (the newest seq it held;
        # packets it dropped count too);
        # lag: how old the newest packet it had decoded was at the window's end (its queue, in time);
        # archived: packets published in the window that it archived, in the window or after
        seq0, asked0, seq1, asked1 = phase.pop("seq")
        if seq0 is not None and seq1 is not None:
            phase["gc_stream_per_s"] = round((seq1 - seq0) / (asked1 - asked0), 1)
            phase["gc_lag_ms"] = round(1000 * (asked1 - sent[seq1]), 1) if seq1 in sent else None
        phase["gc_tm_archived"], phase["tm_published"] = archived_between(archive, phase["t0"], phase["t1"])
    t0, t1 = with_.pop("t0"), with_.pop("t1")
    without.pop("t0"), without.pop("t1")
    result["gc_bus"] = _bus_summary(report, until=t1)
    with_.update(
        latency=_stats(_in(raw, "shown", t0, t1)), socket_latency=_stats(_in(raw, "socket", t0, t1)),
        frame_latency=_stats(_in(raw, "drawn", t0, t1)),
        from_publish=_stats(_from_publish(raw, "shown", t0, t1, sent)),
        not_shown=sum(r["not_shown"] for r in raw), renders=sum(r["renders"] for r in raw),
        renders_newest=sum(r["newest"] for r in raw), overflows=sum(r["overflows"] for r in raw),
        table_found=table, page_load_s=load_s, pages=[_page_figures(r, t0, t1) for r in raw])
    result.update(without=without, with_browsers=with_, steps_s=marks)
    result["gc_cpu_ratio"] = (round(with_["gc_cpu_pct"] / without["gc_cpu_pct"], 2)
                              if without["gc_cpu_pct"] else None)
    lat = with_["latency"] if table else with_["socket_latency"]
    result["p99_ms"] = lat["p99_ms"]
    # met only with every packet of the window shown, none dropped before it, and no queue building up in
    # front of ground control (a starved ground control passes on few packets, each of them quickly)
    pub99 = with_["from_publish"]["p99_ms"]
    result["p99_met"] = (lat["p99_ms"] is not None and lat["p99_ms"] <= P99_GOAL_MS and not with_["not_shown"]
                         and not result["gc_bus"]["incoming_overflow"] and pub99 is not None
                         and pub99 <= P99_GOAL_MS)
    sock = with_["socket_latency"]
    log(f"  with {browsers} pages: TM -> value shown p50 {lat['p50_ms']} p99 {lat['p99_ms']} max {lat['max_ms']} "
        f"ms ({lat['samples']:,} samples, {with_['not_shown']} not shown); -> page's socket handler p50 "
        f"{sock['p50_ms']} p99 {sock['p99_ms']} ms; ground control CPU {with_['gc_cpu_pct']} % "
        f"({result['gc_cpu_ratio']} x), its queue {with_.get('gc_lag_ms')} ms, dropped "
        f"{result['gc_bus']['incoming_overflow']:,}; browsers {with_['browsers_cpu_pct']} % CPU")
    return result


SETTLE_S = 3.0  # after the first packet, and after the pages are ready (history loaded, plots drawn)
PAGE_TIMEOUT_MS = 90_000
GRACE_S = 5.0  # after the window, for the packets of the window still on their way to a page's table


def _check_alive(gc: subprocess.Popen[bytes], report: Path) -> None:
    if gc.poll() is not None:
        raise RuntimeError(f"ground control exited with {gc.returncode}:\n{_tail(report)}")


def _collect(pages: list[Any], t1: float, *, wait: bool) -> list[dict[str, Any]]:
    """Each page's records, once every packet of the window is shown (or GRACE_S has passed). One string per
    page: Playwright's own serialisation of big arrays is slow on a busy renderer."""
    pending = "(t1) => window.__lgsBench.pending.filter((p) => p[1] < t1).length"
    deadline = time.monotonic() + GRACE_S
    time.sleep(0.3)
    while wait and time.monotonic() < deadline and any(page.evaluate(pending, t1) for page in pages):
        time.sleep(0.2)
    take = ("(t1) => { const s = window.__lgsBench; s.record = false; return JSON.stringify({"
            "socket: s.socket, shown: s.shown, drawn: s.drawn, renders: s.renders, newest: s.newest, "
            "unknown: s.unknown, mismatches: s.mismatches, overflows: s.overflows, "
            "not_shown: s.pending.filter((p) => p[1] < t1).length}); }")
    time.sleep(0.1)  # the last animation frame
    return [json.loads(page.evaluate(take, t1)) for page in pages]


def _in(raw: list[dict[str, Any]], name: str, t0: float, t1: float) -> list[float]:
    """Latencies (s) of the packets ground control decoded within [t0, t1), over every page."""
    return [x for r in raw for wall, x, _ in r[name] if t0 <= wall < t1]


def _from_publish(raw: list[dict[str, Any]], name: str, t0: float, t1: float,
                  sent: dict[int, float]) -> list[float]:
    """The same packets' latencies (s) from the publisher's wall_time: ground control's queue included."""
    return [wall + x - sent[seq] for r in raw for wall, x, seq in r[name] if t0 <= wall < t1 and seq in sent]


def _published_walls(archive: Path) -> dict[int, float]:
    """seq -> the publisher's wall_time of every drill packet ground control archived."""
    with sqlite3.connect(f"file:{archive}?mode=ro", uri=True, timeout=5.0) as db:
        return dict(db.execute("SELECT seq, wall_time FROM tm WHERE node = 'lander-drill'").fetchall())


# ---- the two processes -----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _start_ground_control(url: str, mission: str, port: int, token: str,
                          report: Path) -> subprocess.Popen[bytes]:
    env = _env()
    env["LUNAR_GS_OPERATOR_TOKEN"] = token
    env["LUNAR_GS_INSTRUCTOR_TOKEN"] = secrets.token_urlsafe(18)
    argv = [sys.executable, "-m", "lunar_gs.services.cli", "run", "ground-control", "--mission", mission,
            "--broker", url, "--rate", "1", "--console", str(port), "--report", str(report)]
    with open(report / "ground-control.log", "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=env, start_new_session=True)


def _start_publisher(url: str, mission: str, rate: int, sim_offset: float,
                     report: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "benchmarks.console", "publish", url, mission, str(rate), repr(sim_offset)]
    with open(report / "publisher.err", "ab") as err:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=_env(), start_new_session=True)


def _stop_publisher(publisher: subprocess.Popen[bytes]) -> dict[str, Any]:
    if publisher.poll() is None:
        publisher.send_signal(signal.SIGTERM)
    try:
        out, _ = publisher.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        publisher.kill()
        out, _ = publisher.communicate(timeout=5)
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"exit_code": publisher.returncode}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _tail(report: Path) -> str:
    path = report / "ground-control.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


# ---- the console API ---------------------------------------------------------------------------------------

def _get(base: str, token: str, path: str) -> Any:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def _clock_ready(base: str, token: str) -> bool:
    try:
        return bool(_get(base, token, "/api/v1/clock").get("ready"))
    except OSError:
        return False


def _drill_seq(base: str, token: str) -> int | None:
    try:
        seq = _get(base, token, "/api/v1/latest").get("lander-drill", {}).get("seq")
    except OSError:
        return None
    return None if seq is None else int(seq)


def _window(gc: psutil.Process, publisher: psutil.Process, seconds: float, base: str, token: str
            ) -> dict[str, Any]:
    """CPU over `seconds` of wall time (% of one core): ground control's, and to judge the figure beside it,
    the browsers' (every Chromium process we started), the publisher's and the whole machine's (all cores;
    the rest is other load); the drill seq ground control had decoded at each end, and when we asked."""
    load = round(os.getloadavg()[0], 2)
    seq0, asked0 = _drill_seq(base, token), time.time()
    machine0, chromium0, pub0 = _busy_s(), _cpu_s(_chromium()), _cpu_s([publisher])
    cpu0, start, t0 = _cpu_s([gc]), time.monotonic(), time.time()
    time.sleep(seconds)
    cpu1, end, t1 = _cpu_s([gc]), time.monotonic(), time.time()
    machine1, chromium1, pub1 = _busy_s(), _cpu_s(_chromium()), _cpu_s([publisher])
    seq1, asked1 = _drill_seq(base, token), time.time()
    wall = end - start
    return {"gc_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1),
            "browsers_cpu_pct": round(100 * (chromium1 - chromium0) / wall, 1),
            "publisher_cpu_pct": round(100 * (pub1 - pub0) / wall, 1),
            "machine_busy_pct": round(100 * (machine1 - machine0) / wall, 1), "cores": os.cpu_count(),
            "load_average_1m": load, "t0": t0, "t1": t1, "seq": (seq0, asked0, seq1, asked1)}


def _busy_s() -> float:
    """CPU seconds the machine spent busy, all cores (guest time is in user time already)."""
    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))


def _chromium() -> list[psutil.Process]:
    """The Chromium processes under this one (Playwright's driver starts them)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                out.append(child)
        except psutil.Error:
            pass
    return out


def _cpu_s(processes: list[psutil.Process]) -> float:
    """CPU seconds of the processes and of any children they started."""
    total = 0.0
    seen: set[int] = set()
    for root in processes:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in family:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


# ---- figures -----------------------------------------------------------------------------------------------

def _stats(seconds: list[float]) -> dict[str, Any]:
    ms = [1000 * x for x in seconds]
    return {"p50_ms": _r(percentile(ms, 0.5)), "p99_ms": _r(percentile(ms, 0.99)),
            "max_ms": _r(max(ms) if ms else None), "samples": len(ms)}


def _page_figures(raw: dict[str, Any], t0: float, t1: float) -> dict[str, Any]:
    figures = _stats([x for wall, x, _ in raw["shown"] if t0 <= wall < t1])
    in_window = [seq for wall, _, seq in raw["socket"] if t0 <= wall < t1]
    seqs = sorted(set(in_window))
    figures.update(socket=_stats([x for wall, x, _ in raw["socket"] if t0 <= wall < t1]),
                   tm_items=len(in_window), duplicates=len(in_window) - len(seqs),
                   # the items of one frame were all noted at one instant
                   frames=len({round(wall + x, 6) for wall, x, _ in raw["socket"] if t0 <= wall < t1}),
                   seq_gaps=(seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else None,
                   not_shown=raw["not_shown"], renders=raw["renders"], renders_newest=raw["newest"],
                   unknown_values=raw["unknown"], mismatches=raw["mismatches"], overflows=raw["overflows"])
    return figures


def _bus_summary(report: Path, until: float) -> dict[str, Any]:
    """What ground control's log says of its bus up to wall time `until` (the end of the measurements): how
    often it lost the broker, how many incoming messages it dropped (logged every 1,000); and its totals
    when it closed."""
    out: dict[str, Any] = {"broker_lost": 0, "incoming_overflow": 0}
    path = report / "ground-control.log"
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event")
        if event == "bus_closed":
            out["at_close"] = {k: entry.get(k) for k in ("received", "incoming_overflow", "reconnects",
                                                         "handler_errors")}
            continue
        try:
            wall = datetime.fromisoformat(str(entry.get("timestamp")).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if wall > until:
            continue
        if event == "broker_lost":
            out["broker_lost"] += 1
        elif event == "incoming_overflow":
            out["incoming_overflow"] = max(out["incoming_overflow"], int(entry.get("overflows") or 0))
    return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# ---- the paced publisher (its own process: `python -m benchmarks.console publish URL MISSION RATE OFFSET`) ---

def publish(url: str, mission: str, rate: float, sim_offset: float) -> None:
    """Ground-side drill housekeeping at `rate` packets/s, QoS 0, until SIGTERM; prints a JSON summary."""
    from lunar_gs.protocols.codec import JsonCodec
    from lunar_gs.protocols.nodes import Node, Side
    from lunar_gs.protocols.telemetry import DrillHousekeeping, DrillMode

    codec = JsonCodec()
    topic = f"lgs/v1/{mission}/{Side.GROUND}/{Node.LANDER_DRILL}/tm/hk"
    base = DrillHousekeeping(source=Node.LANDER_DRILL, mode=DrillMode.DRILLING, depth_m=0.5, target_depth_m=1.5,
                             rpm=120.0, torque_nm=TORQUE_BASE, motor_current_a=2.0, power_w=150.0,
                             penetration_rate_mm_min=5.0, percussion=False, bit_temperature_c=20.0,
                             core_mass_g=10.0, material="regolith", motor_temperature_c=25.0)
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    client = paho_client(url, "console-pub")
    client.loop_start()
    sent, max_lag = 0, 0.0
    start = time.monotonic()
    while not stop:
        elapsed = time.monotonic() - start
        due = int(elapsed * rate) + 1
        max_lag = max(max_lag, elapsed - sent / rate)  # behind the schedule by this much (catching up)
        while sent < due:
            wall = time.time()
            packet = base.model_copy(update={"seq": sent, "sim_time": wall + sim_offset, "wall_time": wall,
                                             "torque_nm": round(TORQUE_BASE + (sent % TORQUE_SPAN) / 1000, 3)})
            client.publish(topic, codec.encode(packet), qos=0)
            sent += 1
        delay = sent / rate - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
    seconds = time.monotonic() - start
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"sent": sent, "seconds": round(seconds, 1), "msgs_per_s": round(sent / seconds, 1),
                      "max_lag_ms": round(1000 * max_lag, 1)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit("usage: python -m benchmarks.console publish URL MISSION RATE SIM_OFFSET")
