"""Shared plumbing of the benchmarks: brokers, mission profiles, service processes, observers, clock."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
import yaml

from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.system import ClockState
from lunar_gs.services.runtime.broker import EmbeddedBrokerProcess, MosquittoProcess, mosquitto_binary
from lunar_gs.services.recording import percentile  # noqa: F401 - the one percentile, for the sections
from lunar_gs.services.runtime.bus import parse_mqtt_url

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
NOMINAL = SEEDS / "nominal.yaml"
FAR_SIDE = ("lander-drill", "lander-arm", "ascent-vehicle")
NODES = ("relay-satellite", *FAR_SIDE, "ground-control")
RELAY_LEG_S = 0.005  # the benchmark profiles fix the relay leg, so the configured light time is exact
EARTH_MOON_S = 1.28


def light_time_s() -> float:
    return EARTH_MOON_S + RELAY_LEG_S


def now_ms() -> float:
    return time.time() * 1000.0


# ---- brokers ----------------------------------------------------------------------------------------

@contextmanager
def private_broker(kind: str) -> Iterator[Any]:
    """A private broker in a child process on a free loopback port: 'mosquitto' or 'embedded'."""
    if kind == "mosquitto":
        if mosquitto_binary() is None:
            raise SystemExit("mosquitto is not installed; use --broker embedded")
        broker: Any = MosquittoProcess()
    elif kind == "embedded":
        broker = EmbeddedBrokerProcess()
    else:
        raise ValueError(kind)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# ---- mission profiles -------------------------------------------------------------------------------

def write_profile(path: Path, *, hk_period_s: float | None = None, idle_hk_period_s: float | None = None) -> Path:
    """A copy of seeds/mission.yaml with a fixed relay leg, no visibility gap, and optional HK periods."""
    data = yaml.safe_load((SEEDS / "mission.yaml").read_text())
    relay = data["devices"]["relay"]["params"]
    relay["earth_moon_delay_s"] = EARTH_MOON_S
    relay["relay_leg_min_s"] = RELAY_LEG_S
    relay["relay_leg_max_s"] = RELAY_LEG_S
    relay["gaps_s"] = []
    timing = data.setdefault("timing", {})
    if hk_period_s is not None:
        timing["hk_period_s"] = hk_period_s
    if idle_hk_period_s is not None:
        timing["idle_hk_period_s"] = idle_hk_period_s
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---- observing MQTT (paho, threaded: several times faster than aiomqtt, so never the bottleneck) ----

def paho_client(url: str, name: str) -> paho.Client:
    host, port = parse_mqtt_url(url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=30)
    return client


@dataclass
class Sample:
    recv: float
    wall: float
    topic: str
    source: str
    seq: int


class Observer:
    """Subscribes to topic filters and records (receive wall time, payload wall_time, seq) of each message.

    Also tracks retained service statuses and clocks per mission. Thread-safe enough for counting: the
    paho network thread appends, readers copy.
    """

    def __init__(self, url: str, filters: Iterable[tuple[str, int]], *, name: str = "observer",
                 record: bool = True) -> None:
        self.filters = list(filters)
        self.record = record
        self.samples: list[Sample] = []
        self.statuses: dict[tuple[str, str], str] = {}
        self.clocks: dict[str, ClockState] = {}
        self.received = 0
        self.undecodable = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho_client(url, name)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError(f"observer could not subscribe on {url}")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.filters)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        recv = time.time()
        topic = message.topic
        parts = topic.split("/")
        if len(parts) >= 5 and parts[3] == "sys":
            if not message.payload:
                return
            try:
                raw = json.loads(message.payload)
            except ValueError:
                return
            if parts[4] == "clock":
                self.clocks[parts[2]] = ClockState.model_validate(raw)
            elif len(parts) == 6 and parts[5] == "status":
                self.statuses[(parts[2], parts[4])] = raw.get("state", "")
            return
        self.received += 1
        if not self.record:
            return
        try:
            raw = json.loads(message.payload)
            sample = Sample(recv, float(raw["wall_time"]), topic, str(raw["source"]), int(raw["seq"]))
        except (ValueError, KeyError, TypeError):
            self.undecodable += 1
            return
        with self._lock:
            self.samples.append(sample)

    def take(self) -> list[Sample]:
        """Everything recorded since the last take()."""
        with self._lock:
            samples, self.samples = self.samples, []
        return samples

    def online(self, mission: str, nodes: Iterable[str]) -> bool:
        return all(self.statuses.get((mission, n)) == "online" for n in nodes)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def set_clock_rate(url: str, mission: str, current: ClockState, rate: float) -> ClockState:
    """Change a running mission's clock rate through its public, retained clock topic (as a warp does)."""
    wall = time.time()
    generation = current.generation + 1
    state = ClockState(source=Node.GROUND_CONTROL, seq=generation, sim_time=current.sim_at(wall), wall_time=wall,
                       epoch=current.epoch, sim_anchor=current.sim_at(wall), wall_anchor=wall, rate=rate,
                       paused=False, generation=generation)
    client = paho_client(url, "clock")
    client.loop_start()
    info = client.publish(f"lgs/v1/{mission}/sys/clock", state.model_dump_json().encode(), qos=1, retain=True)
    info.wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    return state


def clear_retained(url: str, missions: Iterable[str]) -> None:
    """Leave the broker as we found it (retained clocks, scenario progress and statuses are per run)."""
    client = paho_client(url, "clear")
    client.loop_start()
    infos = []
    for mission in missions:
        for topic in ("sys/clock", "sys/scenario", *(f"sys/{n}/status" for n in NODES)):
            infos.append(client.publish(f"lgs/v1/{mission}/{topic}", b"", qos=1, retain=True))
    for info in infos:
        info.wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


# ---- service processes --------------------------------------------------------------------------------

@dataclass
class ServiceSet:
    """The five services of one mission as OS processes, started through `python -m services.cli run`."""

    url: str
    mission: str
    mission_file: Path
    rate: float
    workdir: Path
    scenario: Path | None = None
    profile_dir: Path | None = None  # run each service under cProfile (benchmarks._profiled)
    nodes: tuple[str, ...] = NODES
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def report_dir(self) -> Path:
        return self.workdir / self.mission

    @property
    def archive(self) -> Path:
        return self.report_dir / "archive.sqlite"

    def _argv(self, node: str) -> list[str]:
        module = "lunar_gs.services.cli" if self.profile_dir is None else "benchmarks._profiled"
        argv = [sys.executable, "-m", module, "run", node, "--mission", self.mission, "--broker", self.url,
                "--rate", repr(self.rate), "--mission-file", str(self.mission_file),
                "--report", str(self.report_dir)]
        if node == "ground-control" and self.scenario is not None:
            argv += ["--scenario", str(self.scenario)]
        return argv

    def start(self, nodes: Iterable[str]) -> None:
        (self.report_dir / "logs").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        for node in nodes:
            if self.profile_dir is not None:
                env["LGS_BENCH_PROFILE_OUT"] = str(self.profile_dir / f"{self.mission}-{node}.prof")
            log = open(self.report_dir / "logs" / f"{node}.log", "ab")  # noqa: SIM115 - the child's
            try:
                self.processes[node] = subprocess.Popen(self._argv(node), stdout=log, stderr=subprocess.STDOUT,
                                                        stdin=subprocess.DEVNULL, cwd=ROOT, env=env,
                                                        start_new_session=True)
            finally:
                log.close()

    def start_all(self, observer: Observer, timeout: float = 60.0) -> None:
        """Far-side nodes and relay first; ground control (which starts the clock) once they are online."""
        others = [n for n in self.nodes if n != "ground-control"]
        self.start(others)
        wait_for(lambda: observer.online(self.mission, others) or self._dead(), timeout,
                 f"{self.mission}: services online")
        self._check_alive()
        self.start(["ground-control"])
        wait_for(lambda: self.mission in observer.clocks or self._dead(), timeout, f"{self.mission}: clock")
        self._check_alive()

    def _dead(self) -> bool:
        return any(p.poll() is not None for p in self.processes.values())

    def _check_alive(self) -> None:
        for node, process in self.processes.items():
            if process.poll() is not None and not (node == "ground-control" and self.scenario is not None):
                log = (self.report_dir / "logs" / f"{node}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.mission}/{node} exited with {process.returncode}:\n{log}")

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for node, process in self.processes.items():
            try:
                out[node] = psutil.Process(process.pid).memory_info().rss / 2**20
            except psutil.Error:
                pass
        return out

    def cpu_percent(self) -> dict[str, float]:
        """CPU seconds used so far by each process (cumulative)."""
        out = {}
        for node, process in self.processes.items():
            try:
                t = psutil.Process(process.pid).cpu_times()
                out[node] = t.user + t.system
            except psutil.Error:
                pass
        return out

    def stop(self, timeout: float = 8.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def archive_max_id(path: Path) -> int:
    """Rows in ground control's TM archive (id is an INTEGER PRIMARY KEY, so MAX(id) is cheap)."""
    if not path.exists():
        return 0
    for _ in range(20):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0) as db:
                row = db.execute("SELECT MAX(id) FROM tm").fetchone()
            return int(row[0] or 0)
        except sqlite3.OperationalError:
            time.sleep(0.05)
    return 0


# ---- statistics -------------------------------------------------------------------------------------


def sequence_losses(samples: Iterable[Sample]) -> tuple[int, int]:
    """(lost, duplicates) from gaps in each topic's sequence counts (one source per topic)."""
    seen: dict[str, set[int]] = defaultdict(set)
    dups = 0
    for s in samples:
        bucket = seen[s.topic]
        if s.seq in bucket:
            dups += 1
        bucket.add(s.seq)
    lost = sum(max(b) - min(b) + 1 - len(b) for b in seen.values() if b)
    return lost, dups
