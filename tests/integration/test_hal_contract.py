"""One HAL contract, three backends: the same script run against the `sim` model and against the same
model behind Modbus TCP (drill, arm) and the framed serial line (container, over TCP and over a
pseudo-terminal), each through its real wire to an emulator. Every backend must give the same trace:
events (name, time, data), refusals (code) and readings, value for value."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.hal import DeviceCommandError, settle
from lunar_gs.hardware_sim.remote.emulated import build_emulated
from lunar_gs.hardware_sim.remote.settings import LinkSettings
from lunar_gs.services.mission import load_mission

PROFILE = load_mission()
SEED = 11
START = 1000.0


@dataclass
class Harness:
    device: Any
    step: Callable[[float], Awaitable[None]]
    trace: list[Any]

    async def at(self, t: float) -> None:
        await self.step(START + t)
        for event in self.device.drain_events():
            self.trace.append(("event", event.name, round(event.time - START, 6), str(event.severity),
                               event.message, dict(event.data)))

    async def do(self, name: str, *args: Any) -> Any:
        try:
            result = await settle(getattr(self.device, name)(*args))
        except DeviceCommandError as exc:
            self.trace.append(("refused", name, exc.code))
            return None
        self.trace.append(("ok", name, result))
        return result

    def reading(self) -> None:
        self.trace.append(("state", self.device.state(), self.device.active()))


def _model(kind: str) -> Any:
    return build_device(kind, "sim", PROFILE.devices[kind].params, SEED, START)


@contextlib.asynccontextmanager
async def harness(kind: str, backend: str) -> AsyncIterator[Harness]:
    if backend == "sim":
        model = _model(kind)

        async def step(t: float) -> None:
            model.advance(t)
        yield Harness(model, step, [])
        return
    emulated = build_emulated(kind, _model(kind))
    async with contextlib.AsyncExitStack() as stack:
        if backend == "modbus_tcp":
            from lunar_gs.hardware_sim.remote.modbus import ModbusEmulatorServer
            server = await stack.enter_async_context(ModbusEmulatorServer(emulated, "127.0.0.1", 0))
            url = f"tcp://127.0.0.1:{server.port}"
            wire = "modbus_tcp"
        else:
            from lunar_gs.hardware_sim.remote.serial_line import SerialLineServer
            listen = "pty" if backend == "serial_line/pty" else "tcp://127.0.0.1:0"
            serial = await stack.enter_async_context(SerialLineServer(emulated, listen=listen))
            url = serial.device_path if listen == "pty" else f"tcp://127.0.0.1:{serial.port}"
            wire = "serial_line"
        link = LinkSettings(url=url, time="step", timeout_s=2.0)
        device = build_device(kind, wire, PROFILE.devices[kind].params, SEED, START, link=link)
        await device.open()  # type: ignore[attr-defined]
        stack.push_async_callback(device.close)  # type: ignore[attr-defined]
        assert device.link_status().up  # type: ignore[attr-defined]

        async def step_remote(t: float) -> None:
            await device.advance(t)  # type: ignore[misc]
        yield Harness(device, step_remote, [])


async def drill_script(h: Harness) -> None:
    await h.at(0)
    h.reading()
    await h.do("reset_protection")               # refused: nothing tripped
    await h.do("self_test")
    await h.at(5)
    await h.do("start", 0.06, 120.0, False)
    await h.do("start", 0.06, 120.0, False)      # refused: busy
    await h.do("stow_core")                      # refused: drilling
    for t in range(10, 900, 60):
        await h.at(t)
        h.reading()
    await h.do("set_percussion", True)
    await h.do("retract", 0.01)
    await h.at(1200)
    h.reading()
    await h.do("stow_core")
    await h.at(2000)
    h.reading()


async def arm_script(h: Harness) -> None:
    await h.at(0)
    h.reading()
    await h.do("self_test")
    await h.do("switch_encoder", "elbow", "sideways")   # refused: no such unit
    await h.do("reset_joint", "elbow")                   # refused: nothing tripped
    await h.do("start_sampling", 2, 3.0)
    await h.do("stow")                                    # refused: moving
    for t in range(30, 2400, 90):
        await h.at(t)
        h.reading()
    await h.do("switch_encoder", "elbow", "redundant")
    await h.do("stow")
    await h.at(3600)
    h.reading()


async def container_script(h: Harness) -> None:
    await h.at(0)
    h.reading()
    await h.do("transfer_to_ascender")         # refused: not sealed
    await h.do("receive", 150.0)
    await h.do("receive", 1900.0)              # only what fits
    await h.do("seal")
    await h.do("seal")                         # refused: busy
    for t in range(10, 400, 45):
        await h.at(t)
        h.reading()
    await h.do("receive", 5.0)                 # refused: sealed
    await h.do("transfer_to_ascender")
    await h.at(420)
    h.reading()


SCRIPTS = {"drill": drill_script, "arm": arm_script, "container": container_script}
REMOTE = [("drill", "modbus_tcp"), ("arm", "modbus_tcp"), ("container", "serial_line"),
          ("container", "serial_line/pty")]


async def _trace(kind: str, backend: str) -> list[Any]:
    async with harness(kind, backend) as h:
        await SCRIPTS[kind](h)
        return h.trace


@pytest.mark.parametrize(("kind", "backend"), REMOTE, ids=[f"{k}-{b}" for k, b in REMOTE])
async def test_a_remote_backend_keeps_the_contract_of_the_sim_model(kind: str, backend: str) -> None:
    if backend.endswith("/pty") and not hasattr(os, "openpty"):
        pytest.skip("no pseudo-terminals on this platform")
    expected = await _trace(kind, "sim")
    assert any(step[0] == "refused" for step in expected) and any(step[0] == "event" for step in expected)
    got = await _trace(kind, backend)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs


async def test_the_sim_script_sees_what_the_contract_promises() -> None:
    """The scripts themselves must exercise something: a trace that proves nothing would pass above."""
    drill = await _trace("drill", "sim")
    names = [step[1] for step in drill if step[0] == "event"]
    assert "self_test_passed" in names and "target_depth_reached" in names and "core_stowed" in names
    assert ("refused", "start", "busy") in drill
    container = await _trace("container", "sim")
    assert ("ok", "receive", 1850.0) in container and ("refused", "receive", "wrong_mode") in container
    arm = await _trace("arm", "sim")
    assert [s[1] for s in arm if s[0] == "event"].count("scoop_deposited") == 2


async def test_a_device_on_its_own_clock_is_read_not_stepped_and_a_stepping_host_is_refused() -> None:
    """A bench device runs on wall time: the host only reads it, and polls it to notice its events; a
    host configured to step it is told the device cannot be stepped (and reports the link down)."""
    from lunar_gs.hardware_sim.remote.modbus import ModbusEmulatorServer

    emulated = build_emulated("drill", _model("drill"), stepped=False)
    async with ModbusEmulatorServer(emulated, "127.0.0.1", 0) as server:
        url = f"tcp://127.0.0.1:{server.port}"
        stepping = build_device("drill", "modbus_tcp", {}, SEED, START,
                                link=LinkSettings(url=url, time="step", timeout_s=1.0, reconnect_max_s=0.5))
        await stepping.open(first_connect_timeout_s=0.5)  # type: ignore[attr-defined]
        try:
            assert not stepping.link_status().up  # type: ignore[attr-defined]
            lost = stepping.drain_events()
            assert [e.name for e in lost] == ["link_lost"] and "cannot be stepped" in lost[0].message
        finally:
            await stepping.close()  # type: ignore[attr-defined]

        woken = asyncio.Event()
        bench = build_device("drill", "modbus_tcp", {}, SEED, START,
                             link=LinkSettings(url=url, time="wall", timeout_s=1.0, poll_period_s=0.05))
        bench.notify = woken.set  # type: ignore[attr-defined]
        await bench.open()  # type: ignore[attr-defined]
        try:
            await settle(bench.self_test())  # type: ignore[attr-defined]
            woken.clear()
            emulated.advance_own_clock(START + 5.0)  # the bench's own clock moves on
            await asyncio.wait_for(woken.wait(), 5.0)  # its poll noticed the new event
            await bench.advance(START + 1.0)  # type: ignore[misc]
            assert [e.name for e in bench.drain_events()] == ["self_test_passed"]
            assert emulated.model.time == START + 5.0  # never stepped by the host
        finally:
            await bench.close()  # type: ignore[attr-defined]
