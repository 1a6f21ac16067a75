"""Runs a scenario against the live system through ground control, phase by phase, in mission time.

Waits (`wait`, `wait_until`, a phase's `start_at`) warp the clock when nothing is in flight, so an
accelerated rehearsal skips idle hours; with a command pending it runs at the set rate, so nothing that
happens in flight is skipped. A phase fails at its first failed step; later phases are skipped.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from services.ground_control.commanding import CommandState
from services.ground_control.scenario import (
    COMPARISONS,
    ExpectEventStep,
    ExpectTmStep,
    Phase,
    Scenario,
    SendStep,
    Step,
    WaitStep,
    WaitUntilStep,
    describe_step,
)
from services.ground_control.service import GroundControl


class PhaseStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass
class StepResult:
    label: str
    ok: bool
    detail: str
    start: float
    end: float


@dataclass
class PhaseResult:
    name: str
    status: PhaseStatus
    start: float | None = None
    end: float | None = None
    steps: list[StepResult] = field(default_factory=list)


@dataclass
class ScenarioResult:
    name: str
    phases: list[PhaseResult]
    wall_seconds: float
    mission_start: float
    mission_end: float

    @property
    def passed(self) -> bool:
        return all(p.status is PhaseStatus.PASS for p in self.phases)


ProgressCallback = Callable[[int, Phase, str], Awaitable[None]]


@dataclass
class ScenarioPosition:
    """Where a scenario run stands: what a restarted ground control needs to carry on from there."""

    finished: list[PhaseResult] = field(default_factory=list)
    current: PhaseResult | None = None
    step_index: int = 0
    in_flight: str | None = None
    """Request id of the command the current step sent and waits for."""
    wall_seconds: float = 0.0
    """Wall time spent by earlier runs of ground control."""
    mission_start: float | None = None


class ScenarioRunner:
    """Runs the phases in order from `position`, which it keeps up to date (ground control saves it)."""

    def __init__(self, gc: GroundControl, scenario: Scenario, on_progress: ProgressCallback | None = None,
                 position: ScenarioPosition | None = None) -> None:
        self.gc = gc
        self.scenario = scenario
        self.on_progress = on_progress
        self.position = position or ScenarioPosition()
        self.clock = gc.runtime.clock
        self.log = gc.runtime.log.bind(scenario=scenario.name)

    async def run(self) -> ScenarioResult:
        self._wall_start, self._wall_before = time.monotonic(), self.position.wall_seconds
        position = self.position
        if position.mission_start is None:
            position.mission_start = self.clock.now()
        elif position.current is not None:
            self.log.info("scenario_resumed", phase=position.current.name, step=position.step_index)
        for index in range(len(position.finished), len(self.scenario.phases)):
            phase = self.scenario.phases[index]
            if any(p.status is not PhaseStatus.PASS for p in position.finished):
                position.finished.append(PhaseResult(phase.name, PhaseStatus.SKIP))
                continue
            position.finished.append(await self._run_phase(index, phase))
            position.current, position.step_index = None, 0
            self._save()
        return ScenarioResult(self.scenario.name, position.finished, self._wall_seconds(),
                              position.mission_start, self.clock.now())

    def _wall_seconds(self) -> float:
        return self._wall_before + time.monotonic() - self._wall_start

    async def _run_phase(self, index: int, phase: Phase) -> PhaseResult:
        position = self.position
        if position.current is None:
            if phase.start_at is not None:
                await self._progress(index, phase, f"waiting for T+{phase.start_at:.0f} s")
                await self._wait_until(self.clock.epoch + phase.start_at)
            position.current = PhaseResult(phase.name, PhaseStatus.PASS, start=self._met())
            position.step_index = 0
            self._save()
            self.log.info("phase_started", phase=phase.name)
        result = position.current
        assert result.start is not None
        for step in phase.steps[position.step_index:]:
            label = describe_step(step)
            await self._progress(index, phase, label)
            start = self._met()
            ok, detail = await self._run_step(step, phase_start=self.clock.epoch + result.start)
            result.steps.append(StepResult(label, ok, detail, start, self._met()))
            position.step_index += 1
            self._save()
            if not ok:
                result.status = PhaseStatus.FAIL
                self.log.warning("step_failed", phase=phase.name, step=label, detail=detail)
                break
        result.end = self._met()
        self.log.info("phase_ended", phase=phase.name, status=str(result.status))
        return result

    def _save(self) -> None:
        self.position.wall_seconds = self._wall_seconds()
        self.gc.scenario_position = self.position
        self.gc.save_state(force=True)

    async def _run_step(self, step: Step, phase_start: float) -> tuple[bool, str]:
        default_timeout = self.scenario.default_timeout
        match step:
            case SendStep(send=spec):
                # after a restart, wait for the command this step already sent rather than send it twice
                tracked = self.gc.book.commands.get(self.position.in_flight or "")
                if tracked is None:
                    tracked = await self.gc.send(
                        spec.node, spec.command, dict(spec.args),
                        timeout_s=spec.timeout or default_timeout, expires_after_s=spec.expires_after,
                    )
                    self.position.in_flight = tracked.request_id
                    self._save()
                await tracked.done.wait()
                self.position.in_flight = None
                wanted = CommandState.COMPLETED if spec.expect == "completed" else CommandState.FAILED
                detail = f"{tracked.request_id} {tracked.state}" + (f": {tracked.reason}" if tracked.reason else "")
                return tracked.state is wanted, detail
            case ExpectTmStep(expect_tm=spec):
                compare, node, name, expected = COMPARISONS[spec.op], str(spec.node), spec.field, spec.value

                def holds() -> bool:
                    value = self.gc.latest.get(node, {}).get(name)
                    try:
                        return value is not None and bool(compare(value, expected))
                    except TypeError:
                        return False

                ok = await self.gc.wait_for(holds, self.clock.now() + (spec.timeout or default_timeout))
                return ok, f"{name} = {self.gc.latest.get(node, {}).get(name)}"
            case ExpectEventStep(expect_event=spec):
                node = str(spec.node)

                def seen() -> bool:
                    return any(e.node == node and e.event.event == spec.event and e.event.sim_time >= phase_start
                               for e in self.gc.events)

                ok = await self.gc.wait_for(seen, self.clock.now() + (spec.timeout or default_timeout))
                return ok, "seen" if ok else f"no {spec.event} from {node}"
            case WaitStep(wait=seconds):
                await self._wait_until(self.clock.now() + seconds)
                return True, ""
            case WaitUntilStep(wait_until=offset):
                await self._wait_until(self.clock.epoch + offset)
                return True, ""
        return False, "unknown step"

    async def _wait_until(self, sim_time: float) -> None:
        if self.gc.idle:
            await self.gc.master.warp_to(sim_time)
        await self.clock.sleep_until(sim_time)

    def _met(self) -> float:
        return self.clock.now() - self.clock.epoch

    async def _progress(self, index: int, phase: Phase, step: str) -> None:
        if self.on_progress is not None:
            await self.on_progress(index, phase, step)


