"""Devices behind real links against the `sim` backend, measured in one run.

Per device: the cost of one command round trip (a command the device refuses: the whole request and
answer, with nothing changing) and of one poll (`advance` by one simulated second: for a remote device,
step + one snapshot read), through each backend's wire to its emulator in this process; the cost of a
service's JSON state snapshot against the pickle it replaced (the price of a readable format); then the nominal
rehearsal's wall time with the bench profile (three devices on Modbus TCP and the serial line, emulator
processes) against the sim profile, same seed and rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import NOMINAL, ROOT, SEEDS
from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.hal import DeviceCommandError, settle
from lunar_gs.hardware_sim.remote.emulated import build_emulated
from lunar_gs.hardware_sim.remote.settings import LinkSettings
from lunar_gs.services.mission import load_mission
from lunar_gs.services.runtime.delivery import DeliveryOutbox
from lunar_gs.services.runtime.snapshot import dumps, loads

START = 1000.0
REFUSED: dict[str, tuple[str, tuple[Any, ...]]] = {
    "drill": ("reset_protection", ()),         # nothing tripped: refused every time
    "arm": ("reset_joint", ("elbow",)),
    "container": ("transfer_to_ascender", ()),  # not sealed
}
CASES = (("drill", "modbus_tcp"), ("arm", "modbus_tcp"), ("container", "serial_line"),
         ("container", "serial_line/pty"))


@contextlib.asynccontextmanager
async def _device(kind: str, backend: str) -> AsyncIterator[Any]:
    profile = load_mission()
    params = profile.devices[kind].params
    if backend == "sim":
        yield build_device(kind, "sim", params, 1, START)
        return
    emulated = build_emulated(kind, build_device(kind, "sim", params, 1, START))
    async with contextlib.AsyncExitStack() as stack:
        if backend == "modbus_tcp":
            from lunar_gs.hardware_sim.remote.modbus import ModbusEmulatorServer
            server = await stack.enter_async_context(ModbusEmulatorServer(emulated, "127.0.0.1", 0))
            url, wire = f"tcp://127.0.0.1:{server.port}", "modbus_tcp"
        else:
            from lunar_gs.hardware_sim.remote.serial_line import SerialLineServer
            listen = "pty" if backend.endswith("/pty") else "tcp://127.0.0.1:0"
            line = await stack.enter_async_context(SerialLineServer(emulated, listen=listen))
            url = line.device_path if listen == "pty" else f"tcp://127.0.0.1:{line.port}"
            wire = "serial_line"
        device = build_device(kind, wire, params, 1, START, link=LinkSettings(url=url, time="step", timeout_s=2))
        await device.open()  # type: ignore[attr-defined]
        stack.push_async_callback(device.close)  # type: ignore[attr-defined]
        yield device


async def _time_each(count: int, call: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {"p50_us": round(statistics.median(samples), 1), "p99_us": round(samples[int(0.99 * len(samples))], 1),
            "mean_us": round(statistics.fmean(samples), 1)}


async def _measure(kind: str, backend: str, count: int) -> dict[str, Any]:
    name, args = REFUSED[kind]
    async with _device(kind, backend) as device:
        async def command(_: int) -> None:
            with contextlib.suppress(DeviceCommandError):
                await settle(getattr(device, name)(*args))

        async def poll(i: int) -> None:
            await settle(device.advance(START + 1.0 + i))

        return {"command": await _time_each(count, command), "poll": await _time_each(count, poll)}


def _rehearse(workdir: Path, url: str, profile: Path, rate: int, label: str, timeout_s: float) -> dict[str, Any]:
    mission = f"bench-dev-{label}-{int(time.time()) % 100000}"
    report = workdir / mission
    argv = [sys.executable, "-m", "lunar_gs.services.cli", "rehearse", str(NOMINAL), "--rate", str(rate),
            "--seed", "7", "--report", str(report), "--broker", url, "--mission", mission, "--profile", str(profile)]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          timeout=timeout_s)
    entry: dict[str, Any] = {"exit_code": done.returncode, "process_seconds": round(time.monotonic() - started, 1)}
    path = report / "report.json"
    if path.exists():
        data = json.loads(path.read_text())
        entry.update(passed=bool(data["passed"]), wall_seconds=round(float(data["wall_seconds"]), 2),
                     figures={k: data["figures"][k] for k in ("drill_depth_m", "sample_mass_g")})
    return entry


def _snapshot_cost(backlog: int, repeats: int = 50) -> dict[str, Any]:
    """One save and one load of the drill service's state (the model, and `backlog` unconfirmed 400-byte
    events such as a fuzzed or cut-off service keeps) as the JSON snapshot, against the pickle it replaced."""
    profile = load_mission()
    outbox = DeliveryOutbox()
    for seq in range(backlog):
        outbox.track("ev", "lgs/v1/m/space/lander-drill/ev", frozenset(), seq, b"{%08d" % seq + b"x" * 390 + b"}")
    state = {"devices": {"drill": build_device("drill", "sim", profile.devices["drill"].params, 1, START)},
             "runtime": {"seq": {"ev": backlog}, "outbox": outbox.snapshot()}, "seen": [f"r{i}" for i in range(200)]}

    def per_call_us(call: Callable[[], object]) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        return round((time.perf_counter() - started) / repeats * 1e6, 1)

    text, blob = dumps("lander-drill", state, 0.0), pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    entry = {"backlog": backlog, "json_bytes": len(text), "pickle_bytes": len(blob),
             "json_save_us": per_call_us(lambda: dumps("lander-drill", state, 0.0)),
             "pickle_save_us": per_call_us(lambda: pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)),
             "json_load_us": per_call_us(lambda: loads(text)),
             "pickle_load_us": per_call_us(lambda: pickle.loads(blob))}  # noqa: S301 - our own bytes
    entry["save_ratio"] = round(entry["json_save_us"] / max(entry["pickle_save_us"], 0.1), 1)
    entry["load_ratio"] = round(entry["json_load_us"] / max(entry["pickle_load_us"], 0.1), 1)
    return entry


def run(url: str, workdir: Path, *, count: int, rate: int, rehearsals: bool, log: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"count": count, "devices": {}, "snapshots": []}
    for backlog in (0, 1000):
        cost = _snapshot_cost(backlog)
        out["snapshots"].append(cost)
        log(f"  drill state with {backlog} unconfirmed events: JSON save {cost['json_save_us']:,.0f} us, load "
            f"{cost['json_load_us']:,.0f} us ({cost['json_bytes']:,} bytes); "
            f"pickle {cost['pickle_save_us']:,.0f} / {cost['pickle_load_us']:,.0f} us ({cost['pickle_bytes']:,} bytes)")
    for kind, backend in CASES:
        sim = asyncio.run(_measure(kind, "sim", count))
        remote = asyncio.run(_measure(kind, backend, count))
        entry = {"sim": sim, "remote": remote,
                 "command_ratio": round(remote["command"]["p50_us"] / max(sim["command"]["p50_us"], 0.1), 1),
                 "poll_ratio": round(remote["poll"]["p50_us"] / max(sim["poll"]["p50_us"], 0.1), 1)}
        out["devices"][f"{kind}/{backend}"] = entry
        log(f"  {kind} over {backend}: command p50 {remote['command']['p50_us']:,.0f} us "
            f"(sim {sim['command']['p50_us']:,.1f} us), poll p50 {remote['poll']['p50_us']:,.0f} us "
            f"(sim {sim['poll']['p50_us']:,.1f} us)")
    if rehearsals:
        sim_run = _rehearse(workdir, url, SEEDS / "mission.yaml", rate, "sim", 300)
        bench_run = _rehearse(workdir, url, SEEDS / "mission-bench.yaml", rate, "bench", 300)
        out["rehearsal"] = {"rate": rate, "sim": sim_run, "bench": bench_run}
        if sim_run.get("wall_seconds") and bench_run.get("wall_seconds"):
            out["rehearsal"]["wall_ratio"] = round(bench_run["wall_seconds"] / sim_run["wall_seconds"], 2)
        log(f"  nominal rehearsal at rate {rate}: bench {bench_run.get('wall_seconds')} s, "
            f"sim {sim_run.get('wall_seconds')} s")
    return out
