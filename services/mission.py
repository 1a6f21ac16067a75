"""The mission profile (seeds/mission.yaml): epoch, site, device parameters, timing and limits."""

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lunar_gs.hardware_sim.backends import REMOTE_BACKENDS, BackendConfigError, build_device
from lunar_gs.hardware_sim.remote.settings import EmulatorSettings, LinkSettings
from lunar_gs.protocols.events import Severity
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.seeds import SeedError, YamlSource

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
    link: LinkSettings | None = None
    """How to reach a real device (backend modbus_tcp or serial_line)."""
    emulator: EmulatorSettings | None = None
    """Start an emulator of this device with the rehearsal (its model from `params` and the seed)."""

    @property
    def remote(self) -> bool:
        return self.backend in REMOTE_BACKENDS

    def effective_link(self) -> LinkSettings | None:
        """The link with its defaults filled: the clock follows the emulator, when there is one."""
        if not self.remote:
            return None
        link = self.link or LinkSettings()
        if link.time is None:
            link = link.model_copy(update={"time": "step" if self.emulator is not None else "wall"})
        return link

    @property
    def on_wall_clock(self) -> bool:
        """A device in the loop that runs on its own clock: the mission clock must then run at rate 1."""
        link = self.effective_link()
        return link is not None and link.time == "wall"


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
    """A profile may start with `extends: other.yaml` and give only what differs (merged key by key)."""
    timing: Timing = Timing()
    limits: list[Limit] = []

    @property
    def epoch(self) -> float:
        return self.mission.epoch.timestamp()


def load_mission(path: Path | str = DEFAULT_MISSION_FILE, *, rate: float | None = None) -> MissionProfile:
    """Load and check a mission profile, device parameters included (each device is built once, so a
    bad parameter fails here, with its line, rather than in a service at start-up). With `rate`, a real
    device on its own clock refuses any rate but 1: simulated time cannot run faster than a bench."""
    source = YamlSource(path, extends_key="extends")
    profile = source.validate(MissionProfile)
    for kind, config in profile.devices.items():
        _check_device(source, kind, config, profile.epoch)
        if rate is not None and rate != 1.0 and config.on_wall_clock:
            where = ("devices", kind, "link", "time") if config.link and config.link.time else ("devices", kind)
            raise source.error(where,
                            f"device {kind!r} is a real device on its own clock (backend {config.backend}, link "
                            f"time wall): the mission clock must run at rate 1, not {rate:g}; give it an "
                            "emulator section, or run at --rate 1")
    return profile


def _check_device(source: YamlSource, kind: str, config: DeviceConfig, epoch: float) -> None:
    where = ("devices", kind, "backend")
    if not config.remote and (config.link is not None or config.emulator is not None):
        raise source.error(where, f"device {kind!r}: link and emulator sections need a real backend "
                                    f"({', '.join(REMOTE_BACKENDS)}), not {config.backend!r}")
    link = config.effective_link()
    if link is not None and link.url is None:
        if config.emulator is None:
            raise source.error(where, f"device {kind!r} backend {config.backend!r}: the link needs a url "
                                        "(or an emulator section, whose address it then takes)")
        link = link.model_copy(update={"url": "tcp://127.0.0.1:1"})  # checked here, known at start
    try:
        build_device(kind, config.backend, config.params, seed=0, start_time=epoch, link=link)
    except BackendConfigError as exc:
        raise source.error(("devices", kind), str(exc)) from None


def load_profile_data(path: Path | str) -> dict[str, Any]:
    """The profile as plain data, with what it extends merged in (to write a resolved copy)."""
    return YamlSource(path, extends_key="extends").data
