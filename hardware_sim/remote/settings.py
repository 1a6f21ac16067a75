"""The `link:` and `emulator:` sections of a real device in the mission profile, validated strictly.

Pydantic models, so that the mission loader reports a bad value with its file and line; the HAL's remote
backends take them as they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LinkSettings(BaseModel):
    """How the host reaches one device and how it keeps the link alive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    """`tcp://HOST:PORT` (Modbus TCP, or the serial protocol over TCP), `serial:///dev/ttyUSB0?baud=115200`
    or a device path. May be left out when the profile starts an emulator: the emulator's address then."""
    unit_id: int = Field(default=1, ge=0, le=247, description="Modbus unit (slave) id")
    word_order: Literal["big", "little"] = "big"
    """Order of the 16-bit words of a 32- or 64-bit value (bytes within a word are always big-endian)."""
    timeout_s: float = Field(default=1.0, gt=0, le=60, description="wall seconds one request may take")
    retries: int = Field(default=1, ge=0, le=10, description="re-sends of a request that timed out")
    poll_period_s: float = Field(default=0.5, gt=0, le=60,
                                 description="wall seconds between reads of a device on its own clock")
    reconnect_min_s: float = Field(default=0.2, gt=0, le=60, description="first reconnect delay")
    reconnect_max_s: float = Field(default=5.0, gt=0, le=600, description="the backoff doubles up to this")
    watchdog_s: float = Field(default=5.0, ge=0, le=600,
                              description="the device makes itself safe after this long unheard (0: off)")
    time: Literal["step", "wall"] | None = None
    """`step`: the host steps the device in simulated time (an emulator: exact at any clock rate);
    `wall`: the device runs on its own clock (a real bench: the mission clock must run at rate 1).
    Default: `step` when the profile starts an emulator, else `wall`."""

    @model_validator(mode="after")
    def _backoff(self) -> LinkSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self


class EmulatorSettings(BaseModel):
    """An emulator the rehearsal starts for this device, as a supervised process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:0"
    """HOST:PORT (port 0: a free one, told to the services), or `pty` for a serial line on a
    pseudo-terminal pair."""
