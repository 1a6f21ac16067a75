"""The mission profile (seeds/mission.yaml): epoch, site, device parameters, timing and limits."""

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lunar_gs.hardware_sim.backends import BackendConfigError, build_device
from lunar_gs.protocols.events import Severity
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.seeds import SeedError, line_of, load_yaml_model

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"
DEFAULT_MISSION_FILE = SEEDS_DIR / "mission.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MissionInfo(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # room for `source:` notes beside figures

    name: str
    epoch: datetime

    @field_validator("epoch")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("epoch needs a time zone, e.g. 2024-06-01T22:23:16Z")
        return value


class DeviceConfig(_Strict):
    backend: str = "sim"
    params: dict[str, Any] = {}


class Timing(_Strict):
    hk_period_s: float = Field(default=1.0, gt=0, description="housekeeping period while a device is active")
    idle_hk_period_s: float = Field(default=60.0, gt=0, description="housekeeping period while nothing moves")
    command_margin_s: float = Field(default=30.0, ge=0, description="added to every command timeout")


class Limit(_Strict):
    node: Node
    parameter: str
    low: float | None = None
    high: float | None = None
    severity: Severity = Severity.WARNING
    when_mode: list[str] | None = None
    """Check only in these device modes (e.g. bit temperature only while drilling)."""
    when_true: str | None = None
    """Check only while this boolean parameter is true (e.g. seal pressure once the container is sealed)."""


class MissionProfile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    mission: MissionInfo
    devices: dict[str, DeviceConfig]
    timing: Timing = Timing()
    limits: list[Limit] = []

    @property
    def epoch(self) -> float:
        return self.mission.epoch.timestamp()


def load_mission(path: Path | str = DEFAULT_MISSION_FILE) -> MissionProfile:
    """Load and check a mission profile, device parameters included (each device is built once, so a
    bad parameter fails here, with its line, rather than in a service at start-up)."""
    profile = load_yaml_model(path, MissionProfile)
    for kind, config in profile.devices.items():
        try:
            build_device(kind, config.backend, config.params, seed=0, start_time=profile.epoch)
        except BackendConfigError as exc:
            raise SeedError(path, line_of(path, ("devices", kind)), str(exc)) from None
    return profile
