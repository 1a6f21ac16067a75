"""The composition root of one device emulator process (`lunar-gs emulate`): our own simulated model
behind the real wire protocol, built from the same profile parameters and seed as the `sim` backend, so a
rehearsal with emulators gives the figures a simulated one gives.

A stepped emulator (the profile's link time `step`) moves only when its host steps it, so accelerated and
warped rehearsals stay exact; a wall-clock one runs its model on its own clock from the mission epoch, as
a bench device would.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
import yaml

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.remote.emulated import EmulatedDevice, build_emulated
from lunar_gs.services.composition import device_seed
from lunar_gs.services.mission import MissionProfile

WALL_CLOCK_TICK_S = 0.1


@dataclass(frozen=True)
class EmulatorOptions:
    kind: str
    profile: MissionProfile
    listen: str
    """HOST:PORT (port 0: a free one), or for the serial line also `pty` or a serial device path."""
    seed: int = 1
    url_file: Path | None = None
    """Where to write the address the host should use, once listening (a supervisor waits for it)."""
    announce: Callable[[str], None] | None = None


def build_emulator(options: EmulatorOptions) -> tuple[EmulatedDevice, str]:
    """The emulated device and its backend; ValueError when the profile gives no real backend for it."""
    config = options.profile.devices.get(options.kind)
    if config is None:
        raise ValueError(f"the profile has no device {options.kind!r}")
    if not config.remote:
        raise ValueError(f"device {options.kind!r} has backend {config.backend!r}: nothing to emulate "
                         "(give it backend modbus_tcp or serial_line)")
    link = config.effective_link()
    assert link is not None
    model = build_device(options.kind, "sim", config.params, device_seed(options.seed, options.kind),
                         options.profile.epoch)
    # the serial carries a boot id, as a device's boot counter: its host notices a power cycle
    emulated = build_emulated(options.kind, model, stepped=link.time == "step",
                              serial=f"EMU-{options.kind.upper()}-{options.seed}-{secrets.token_hex(3)}")
    return emulated, config.backend


async def run_emulator(options: EmulatorOptions) -> None:
    emulated, backend = build_emulator(options)
    config = options.profile.devices[options.kind]
    link = config.effective_link()
    assert link is not None
    log = structlog.get_logger(__name__).bind(device=options.kind, backend=backend)
    async with contextlib.AsyncExitStack() as stack:
        if backend == "modbus_tcp":
            from lunar_gs.hardware_sim.remote.modbus import ModbusEmulatorServer

            host, _, port = options.listen.rpartition(":")
            server = await stack.enter_async_context(ModbusEmulatorServer(
                emulated, host or "127.0.0.1", int(port or 0), unit_id=link.unit_id, word_order=link.word_order))
            url = f"tcp://{host or '127.0.0.1'}:{server.port}"
        else:
            from lunar_gs.hardware_sim.remote.serial_line import SerialLineServer

            listen = options.listen
            if listen != "pty" and not listen.startswith(("/", "serial:", "tcp:")):
                listen = f"tcp://{listen}"
            serial_server = await stack.enter_async_context(SerialLineServer(emulated, listen=listen))
            url = serial_server.device_path if listen == "pty" else (
                f"tcp://{listen.removeprefix('tcp://').rpartition(':')[0]}:{serial_server.port}"
                if listen.startswith("tcp:") else listen)
        log.info("emulator_listening", url=url, stepped=emulated.stepped)
        if options.url_file is not None:
            temporary = options.url_file.with_suffix(".tmp")
            temporary.write_text(url + "\n")
            temporary.replace(options.url_file)
        if options.announce is not None:
            options.announce(f"{options.kind} emulator ({backend}) listening on {url}")
        if emulated.stepped:
            await asyncio.Future()
        else:
            await _run_on_wall_clock(emulated, options.profile.epoch)


async def _run_on_wall_clock(emulated: EmulatedDevice, epoch: float) -> None:
    """A bench device's own clock: mission time from the epoch at one second per second."""
    started = time.monotonic()
    while True:
        emulated.advance_own_clock(epoch + time.monotonic() - started)
        await asyncio.sleep(WALL_CLOCK_TICK_S)


class EmulatorProcess:
    """One emulator as a child process, as the rehearsal and the test kit start them: it writes its
    address to a file once listening; a restart listens at the same address, where the services look."""

    def __init__(self, kind: str, profile: Path, seed: int, listen: str, folder: Path) -> None:
        self.kind = kind
        self.url_file = folder / f"{kind}.url"
        self.log_path = folder / f"emulator-{kind}.log"
        self.argv = [sys.executable, "-m", "lunar_gs.services.cli", "emulate", kind, "--profile", str(profile),
                     "--seed", str(seed), "--listen", listen, "--url-file", str(self.url_file)]
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 20.0) -> str:
        """Start it and wait until it listens; returns its address. RuntimeError if it does not come up."""
        self.url_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.url_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.kind} emulator did not start; see {self.log_path}")
            time.sleep(0.05)
        self.url = self.url_file.read_text().strip()
        if self.url.startswith("tcp://"):
            self.argv[self.argv.index("--listen") + 1] = self.url.removeprefix("tcp://")
        return self.url

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a device losing power."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_emulators(profile: Path, seed: int, folder: Path) -> tuple[list[EmulatorProcess], Path]:
    """Start an emulator for every device of `profile` with an `emulator:` section; returns them and the
    profile the services must read (a copy with each emulator's address as its device's link url)."""
    from lunar_gs.services.mission import load_mission, load_profile_data

    wanted = {kind: config for kind, config in load_mission(profile).devices.items() if config.emulator}
    if not wanted:
        return [], profile
    folder.mkdir(parents=True, exist_ok=True)
    started: list[EmulatorProcess] = []
    try:
        for kind, config in wanted.items():
            assert config.emulator is not None
            emulator = EmulatorProcess(kind, profile, seed, config.emulator.listen, folder)
            started.append(emulator)
            emulator.start()
    except RuntimeError:
        for emulator in started:
            emulator.stop()
        raise
    data = load_profile_data(profile)
    for emulator in started:
        device = data["devices"][emulator.kind]
        device["link"] = {**(device.get("link") or {}), "url": emulator.url}
    resolved = folder / "profile.yaml"
    resolved.write_text(f"# {profile} with the addresses of this run's emulators\n"
                        + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return started, resolved
