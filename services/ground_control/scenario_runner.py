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


class ScenarioRunner:
    def __init__(self, gc: GroundControl, scenario: Scenario, on_progress: ProgressCallback | None = None) -> None:
        self.gc = gc
        self.scenario = scenario
        self.on_progress = on_progress
        self.clock = gc.runtime.clock
        self.log = gc.runtime.log.bind(scenario=scenario.name)

    async def run(self) -> ScenarioResult:
        wall_start = time.monotonic()
        mission_start = self.clock.now()
        results: list[PhaseResult] = []
        failed = False
        for index, phase in enumerate(self.scenario.phases):
            if failed:
                results.append(PhaseResult(phase.name, PhaseStatus.SKIP))
                continue
            result = await self._run_phase(index, phase)
            results.append(result)
            failed = result.status is PhaseStatus.FAIL
        return ScenarioResult(self.scenario.name, results, time.monotonic() - wall_start, mission_start,
                              self.clock.now())

    async def _run_phase(self, index: int, phase: Phase) -> PhaseResult:
        if phase.start_at is not None:
            await self._progress(index, phase, f"waiting for T+{phase.start_at:.0f} s")
            await self._wait_until(self.clock.epoch + phase.start_at)
        started = self._met()
        result = PhaseResult(phase.name, PhaseStatus.PASS, start=started)
        self.log.info("phase_started", phase=phase.name)
        for step in phase.steps:
            label = describe_step(step)
            await self._progress(index, phase, label)
            start = self._met()
            ok, detail = await self._run_step(step, phase_start=self.clock.epoch + started)
            result.steps.append(StepResult(label, ok, detail, start, self._met()))
            if not ok:
                result.status = PhaseStatus.FAIL
                self.log.warning("step_failed", phase=phase.name, step=label, detail=detail)
                break
        result.end = self._met()
        self.log.info("phase_ended", phase=phase.name, status=str(result.status))
        return result

    async def _run_step(self, step: Step, phase_start: float) -> tuple[bool, str]:
        default_timeout = self.scenario.default_timeout
        match step:
            case SendStep(send=spec):
                tracked = await self.gc.send(
                    spec.node, spec.command, dict(spec.args),
                    timeout_s=spec.timeout or default_timeout, expires_after_s=spec.expires_after,
                )
                await tracked.done.wait()
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


