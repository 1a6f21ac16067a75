"""Finding or starting an MQTT broker.

Choice, in order (design guide section 5): a URL given by flag or environment variable (any broker); else
a private Mosquitto on a free loopback port when the binary is installed; else the embedded amqtt broker
(MQTT 3.1.1 only, the fallback). Every broker we start listens on 127.0.0.1 only.

`MosquittoProcess` and `EmbeddedBrokerProcess` are synchronous (a child process) so that pytest fixtures
need no event loop and tests can kill and restart the broker. `python -m lunar_gs.services.runtime.broker --port N`
runs the embedded broker until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from lunar_gs.services.runtime.bus import parse_mqtt_url
from lunar_gs.services.runtime.logging import get_logger, quiet_loggers

LOOPBACK = "127.0.0.1"
_MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"

log = get_logger(component="broker")


@dataclass
class BrokerHandle:
    """A broker to connect to, and how to stop it if we started it (`stop` is a no-op for external)."""

    url: str
    kind: str  # "external" | "mosquitto" | "embedded"
    _stop: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            await stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Try a TCP connect until it succeeds; TimeoutError naming host and port after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not _port_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepts TCP connections on {host}:{port} after {timeout:g} s")
        time.sleep(0.02)


def mosquitto_binary() -> str | None:
    """The mosquitto executable, if installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.access(_MOSQUITTO_FALLBACK, os.X_OK):
        return _MOSQUITTO_FALLBACK
    return None


class _ChildBroker:
    """A broker in a child process on a fixed loopback port: start, kill, stop, restart."""

    kind = "child"

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"mqtt://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    # subclasses say how to launch
    def _command(self, workdir: Path) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    @property
    def log_path(self) -> Path | None:
        return None if self._dir is None else self._dir / "broker.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> Self:
        if self.running:
            raise RuntimeError(f"{self.kind} broker on port {self.port} is already running")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"lgs-{self.kind}-{self.port}-"))
        log_file = open(self._dir / "broker.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                self._command(self._dir),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                cwd=self._dir,
            )
        finally:
            log_file.close()
        deadline = time.monotonic() + timeout
        while not _port_open(LOOPBACK, self.port):
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} broker exited with code {self._process.returncode} before listening on "
                    f"{LOOPBACK}:{self.port}; log:\n{self._read_log()}"
                )
            if time.monotonic() >= deadline:
                self._terminate(signal.SIGKILL)
                raise TimeoutError(
                    f"{self.kind} broker did not listen on {LOOPBACK}:{self.port} within {timeout:g} s; "
                    f"log:\n{self._read_log()}"
                )
            time.sleep(0.02)
        log.debug("broker_started", kind=self.kind, url=self.url, pid=self._process.pid)
        return self

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye (for failure tests). Keeps the port and temp dir."""
        self._terminate(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, wait, and remove the temp dir."""
        self._terminate(signal.SIGTERM)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self, timeout: float = 10.0) -> None:
        """Start again on the same port (after kill(), or stopping it first if it runs)."""
        if self.running:
            self._terminate(signal.SIGTERM)
        self.start(timeout)

    def _terminate(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _read_log(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return path.read_text(errors="replace")[-4000:]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class MosquittoProcess(_ChildBroker):
    """A private Mosquitto on 127.0.0.1:port, anonymous, no persistence, config and log in a temp dir."""

    kind = "mosquitto"

    def __init__(self, port: int | None = None, binary: str | None = None,
                 extra_config: Sequence[str] = ()) -> None:
        found = binary or mosquitto_binary()
        if found is None:
            raise FileNotFoundError("mosquitto is not installed (looked on PATH and at /usr/sbin/mosquitto)")
        self.binary = found
        self.extra_config = list(extra_config)
        """More mosquitto.conf lines, e.g. `set_tcp_nodelay true`."""
        super().__init__(port)

    def _command(self, workdir: Path) -> list[str]:
        config = workdir / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"listener {self.port} {LOOPBACK}",
                    "allow_anonymous true",
                    "persistence false",
                    # When started as root, mosquitto drops to user 'mosquitto', which cannot write our
                    # temp dir; naming the current user keeps it as is (ignored when not root).
                    f"user {pwd.getpwuid(os.getuid()).pw_name}",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                    "max_queued_messages 100000",
                    *self.extra_config,
                    "",
                ]
            )
        )
        return [self.binary, "-c", str(config)]


class EmbeddedBrokerProcess(_ChildBroker):
    """The embedded amqtt broker in a child Python process (`python -m lunar_gs.services.runtime.broker`)."""

    kind = "embedded"

    def _command(self, workdir: Path) -> list[str]:
        return [sys.executable, "-m", "lunar_gs.services.runtime.broker", "--port", str(self.port)]


def amqtt_config(port: int) -> dict[str, Any]:
    """amqtt 0.12 config: one TCP listener on loopback, anonymous clients, no $SYS or packet logging."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}", "max_connections": 1000}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """amqtt in this process. Create and start it inside a running event loop."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"mqtt://{LOOPBACK}:{self.port}"
        self._broker: Any = None

    async def start(self) -> Self:
        from amqtt.broker import Broker  # imported lazily: slow, and only needed for the fallback

        quiet_loggers()
        self._broker = Broker(amqtt_config(self.port))
        await self._broker.start()
        log.debug("broker_started", kind="embedded", url=self.url)
        return self

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def start_broker(choice: str | None, *, connect_timeout: float = 3.0) -> BrokerHandle:
    """Resolve the broker: a URL (external, checked reachable within `connect_timeout` s), "embedded", or
    None (a private mosquitto on a free loopback port, else embedded). Stop it with `await handle.stop()`."""
    if choice == "embedded":
        embedded = await EmbeddedBroker().start()
        return BrokerHandle(embedded.url, "embedded", embedded.stop)
    if choice is not None:
        host, port = parse_mqtt_url(choice)
        try:
            await asyncio.to_thread(wait_for_port, host, port, connect_timeout)
        except TimeoutError as exc:
            raise ConnectionError(f"broker {choice} is not reachable: {exc}") from None
        return BrokerHandle(choice, "external")
    if mosquitto_binary() is not None:
        mosquitto = await asyncio.to_thread(MosquittoProcess().start)
        return BrokerHandle(mosquitto.url, "mosquitto", lambda: asyncio.to_thread(mosquitto.stop))
    log.info("mosquitto_not_found", fallback="embedded")
    embedded = await EmbeddedBroker().start()
    return BrokerHandle(embedded.url, "embedded", embedded.stop)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = await EmbeddedBroker(port).start()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await broker.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the embedded amqtt broker on 127.0.0.1 until SIGTERM.")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    args = parser.parse_args(argv)
    from lunar_gs.services.runtime.logging import configure_logging

    configure_logging("warning")
    logging.getLogger("amqtt").setLevel(logging.ERROR)  # its shutdown noise is not ours to report
    asyncio.run(_serve(args.port if args.port is not None else free_port()))


if __name__ == "__main__":
    main()
