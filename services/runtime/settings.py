"""Runtime settings shared by every Lunar GS process.

Read from the environment with the prefix `LUNAR_GS_` (e.g. `LUNAR_GS_BROKER=mqtt://host:1883`,
`LUNAR_GS_MISSION=ce6`, `LUNAR_GS_LOG_JSON=false`). Command-line flags take precedence: the CLI passes
the flags it was given as keyword arguments, which pydantic-settings ranks above the environment::

    settings = RuntimeSettings(**{k: v for k, v in flags.items() if v is not None})
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lunar_gs.protocols.codec import get_codec
from lunar_gs.protocols.topics import validate_mission
from lunar_gs.services.runtime.bus import parse_mqtt_url

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class RuntimeSettings(BaseSettings):
    """Where the broker is, which mission, how to log, where data lives."""

    model_config = SettingsConfigDict(env_prefix="LUNAR_GS_", extra="ignore")

    broker: str | None = None
    """A broker URL (`mqtt://host[:port]`), "embedded", or None (private mosquitto, else embedded)."""
    mission: str = "ce6"
    log_level: str = "info"
    log_json: bool = True
    data_dir: Path = Path("var")
    codec: str = "json"
    operator_token: str | None = None
    """The console's operator credential (ground control with `--console`); None: one generated per run."""
    instructor_token: str | None = None
    seeds_dir: Path = Path("seeds")

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str | None) -> str | None:
        if value is None or value == "embedded":
            return value
        if not value.strip():
            return None
        parse_mqtt_url(value)
        return value

    @field_validator("mission")
    @classmethod
    def _check_mission(cls, value: str) -> str:
        return validate_mission(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {value!r} is not one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("codec")
    @classmethod
    def _check_codec(cls, value: str) -> str:
        get_codec(value)
        return value
