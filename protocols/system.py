"""System messages: service liveness, the simulation clock, scenario progress."""

from enum import StrEnum
from typing import Annotated, Literal

from annotated_types import Ge, Gt, MaxLen

from lunar_gs.protocols.envelope import Envelope


class ServiceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class ServiceStatus(Envelope):
    """Retained on the status topic; the Last Will publishes the same with state `offline`."""

    schema_name: Literal["status"] = "status"
    state: ServiceState
    version: Annotated[str, MaxLen(32)] = ""
    pid: Annotated[int, Ge(0)] = 0
    backends: dict[str, str] = {}
    """HAL backend of each device, e.g. {"drill": "sim"}."""
    links: dict[str, str] = {}
    """Link state of each device behind a link ("up" or "down"), e.g. {"drill": "up"}; none for sim."""
    counters: dict[str, int] = {}
    """Health counters: messages published and received, queue overflows, re-sends, rejections."""


class ClockState(Envelope):
    """The mission's simulated clock, retained so that a service started late follows it at once.

    Simulated time at wall time w is `sim_anchor + (w - wall_anchor) * rate`, or `sim_anchor` while
    paused. A warp republishes with a later `sim_anchor`; `generation` counts the republications.
    """

    schema_name: Literal["clock"] = "clock"
    epoch: float
    sim_anchor: float
    wall_anchor: float
    rate: Annotated[float, Gt(0.0)]
    paused: bool = False
    generation: Annotated[int, Ge(0)] = 0

    def sim_at(self, wall: float) -> float:
        if self.paused:
            return self.sim_anchor
        return self.sim_anchor + (wall - self.wall_anchor) * self.rate


class ScenarioState(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


class ScenarioProgress(Envelope):
    """Published retained by whoever runs the scenario, so a runner or console can follow it."""

    schema_name: Literal["scenario"] = "scenario"
    scenario: Annotated[str, MaxLen(128)]
    state: ScenarioState
    phase: Annotated[str, MaxLen(128)] = ""
    phase_index: Annotated[int, Ge(0)] = 0
    phase_count: Annotated[int, Ge(0)] = 0
    step: Annotated[str, MaxLen(300)] = ""
    alarms: Annotated[int, Ge(0)] = 0
    report_path: Annotated[str, MaxLen(1024)] = ""
