"""Runs a scenario against the live system through ground control, phase by phase, in mission time.

Waits (`wait`, `wait_until`, a phase's `start_at`) warp the clock when nothing is in flight, so an
accelerated rehearsal skips idle hours; with a command pending it runs at the set rate, so nothing that
happens in flight is skipped. A phase fails at its first failed step; later phases are skipped.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from lunar_gs.protocols.events import AlarmState
from lunar_gs.protocols.faults import FaultAction, FaultRequest, FaultSpec, FaultVia
from lunar_gs.services.ground_control.commanding import CommandState, TrackedCommand
from lunar_gs.services.ground_control.scenario import (
    ClearFaultStep,
    ExpectEventSpec,
    ExpectEventStep,
    ExpectTmSpec,
    ExpectTmStep,
    InjectFaultStep,
    ObjectiveSpec,
    Phase,
    ResponseSpec,
    Scenario,
    SendSpec,
    SendStep,
    Step,
    SymptomSpec,
    WaitStep,
    WaitUntilStep,
    compare,
    describe_step,
    format_mission_elapsed,
)
from lunar_gs.services.ground_control.service import GroundControl

RESPONSE_WATCH_S = 30 * 86400.0
"""How far ahead (simulated) a response watcher waits for its symptom: longer than any scenario."""


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
class ObjectiveResult:
    name: str
    passed: bool
    detail: str


@dataclass
class ResponseResult:
    """What became of one expected trainee response."""

    name: str
    symptom: str
    symptom_at: float | None = None
    """Mission seconds at which ground control could first see the symptom."""
    deadline: float | None = None
    responded_at: float | None = None
    request_id: str | None = None
    contingency: bool = False

    @property
    def in_time(self) -> bool:
        return (self.responded_at is not None and self.deadline is not None
                and self.responded_at <= self.deadline + 1e-6)


@dataclass
class ScenarioResult:
    name: str
    phases: list[PhaseResult]
    wall_seconds: float
    mission_start: float
    mission_end: float
    objectives: list[ObjectiveResult] = field(default_factory=list)
    responses: list[ResponseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (all(p.status is PhaseStatus.PASS for p in self.phases)
                and all(o.passed for o in self.objectives))


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
                 position: ScenarioPosition | None = None, autopilot: bool = False) -> None:
        self.gc = gc
        self.scenario = scenario
        self.on_progress = on_progress
        self.position = position or ScenarioPosition()
        self.autopilot = autopilot
        """Send each expected response as a trainee would, `reaction` seconds after its symptom."""
        self.clock = gc.runtime.clock
        self.log = gc.runtime.log.bind(scenario=scenario.name)
        self.responses = [ResponseResult(r.name, r.symptom.describe()) for r in scenario.responses]

    async def run(self) -> ScenarioResult:
        self._wall_start, self._wall_before = time.monotonic(), self.position.wall_seconds
        position = self.position
        if position.mission_start is None:
            position.mission_start = self.clock.now()
        elif position.current is not None:
            self.log.info("scenario_resumed", phase=position.current.name, step=position.step_index)
        watchers = [asyncio.create_task(self._watch(spec, result), name=f"response-{spec.name}")
                    for spec, result in zip(self.scenario.responses, self.responses, strict=True)]
        try:
            for index in range(len(position.finished), len(self.scenario.phases)):
                phase = self.scenario.phases[index]
                if any(p.status is not PhaseStatus.PASS for p in position.finished):
                    position.finished.append(PhaseResult(phase.name, PhaseStatus.SKIP))
                    continue
                position.finished.append(await self._run_phase(index, phase))
                position.current, position.step_index = None, 0
                self._save()
        finally:
            for task in watchers:
                task.cancel()
            for task in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        objectives = self._judge_objectives()
        for response in self.responses:
            if response.symptom_at is not None:
                objectives.append(ObjectiveResult(
                    f"respond: {response.name}", response.in_time,
                    f"symptom ({response.symptom}) at T+{format_mission_elapsed(response.symptom_at)}; "
                    + (f"response at T+{format_mission_elapsed(response.responded_at)}"
                       if response.responded_at is not None else "no response")
                    + f" (deadline T+{format_mission_elapsed(response.deadline or 0.0)})"))
        return ScenarioResult(self.scenario.name, position.finished, self._wall_seconds(),
                              position.mission_start, self.clock.now(), objectives, self.responses)

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
                    tracked = await self._send(spec, "scenario")
                    self.position.in_flight = tracked.request_id
                    self._save()
                await tracked.done.wait()
                self.position.in_flight = None
                detail = f"{tracked.request_id} {tracked.state}" + (f": {tracked.reason}" if tracked.reason else "")
                return _outcome_matches(tracked, spec.expect), detail
            case ExpectTmStep(expect_tm=spec):
                holds = self._tm_holds(spec)
                ok = await self.gc.wait_for(holds, self.clock.now() + (spec.timeout or default_timeout))
                return ok, f"{spec.field} = {self.gc.latest.get(str(spec.node), {}).get(spec.field)}"
            case ExpectEventStep(expect_event=spec):
                seen = self._event_seen(spec, since=phase_start)
                ok = await self.gc.wait_for(seen, self.clock.now() + (spec.timeout or default_timeout))
                return ok, "seen" if ok else f"no {spec.event} from {spec.node}"
            case InjectFaultStep(inject_fault=fault):
                request_id = await self._request_fault(FaultAction.INJECT, spec=fault)
                return True, f"requested ({request_id})"
            case ClearFaultStep(clear_fault=label):
                request_id = await self._request_fault(FaultAction.CLEAR, fault_id=label)
                return True, f"requested ({request_id})"
            case WaitStep(wait=seconds):
                await self._wait_until(self.clock.now() + seconds)
                return True, ""
            case WaitUntilStep(wait_until=offset):
                await self._wait_until(self.clock.epoch + offset)
                return True, ""
        return False, "unknown step"

    async def _send(self, spec: SendSpec, origin: str) -> TrackedCommand:
        return await self.gc.send(spec.node, spec.command, dict(spec.args),
                                  timeout_s=spec.timeout or self.scenario.default_timeout,
                                  expires_after_s=spec.expires_after, origin=origin)

    async def _request_fault(self, action: FaultAction, *, spec: FaultSpec | None = None,
                             fault_id: str | None = None, via: FaultVia = FaultVia.SCENARIO) -> str:
        """Ask the instructor service, as an instructor would; its answer goes to the ground truth, which
        ground control does not read."""
        request_id = f"{via}-{uuid.uuid4().hex[:8]}"
        runtime = self.gc.runtime
        await runtime.publish(runtime.topics.fault_request, FaultRequest, qos=1, request_id=request_id,
                              action=action, spec=spec, fault_id=fault_id, via=via)
        self.log.info("fault_requested", request_id=request_id, action=str(action), via=str(via))
        return request_id

    def _tm_holds(self, spec: ExpectTmSpec) -> Callable[[], bool]:
        node = str(spec.node)
        return lambda: compare(self.gc.latest.get(node, {}).get(spec.field), spec.op, spec.value)

    def _event_seen(self, spec: ExpectEventSpec, since: float) -> Callable[[], bool]:
        node = str(spec.node)
        return lambda: any(e.node == node and e.event.event == spec.event and e.event.sim_time >= since
                           for e in self.gc.events)

    def _symptom_seen(self, spec: SymptomSpec, since: float) -> Callable[[], bool]:
        if spec.alarm is not None:
            name = spec.alarm
            return lambda: any(a.alarm == name and a.state is AlarmState.RAISED and a.sim_time >= since
                               for a in self.gc.alarms)
        if spec.event is not None:
            return self._event_seen(spec.event, since)
        assert spec.tm is not None
        return self._tm_holds(spec.tm)

    async def _watch(self, spec: ResponseSpec, result: ResponseResult) -> None:
        """Wait until the symptom is visible at ground control; then (autopilot) respond as a trainee
        would, or see whether someone did in time, and inject the contingency if not."""
        start = self.clock.now()
        if not await self.gc.wait_for(self._symptom_seen(spec.symptom, start), start + RESPONSE_WATCH_S):
            return
        seen_at = self.clock.now()
        result.symptom_at = seen_at - self.clock.epoch
        result.deadline = result.symptom_at + spec.within
        first = spec.send[0]
        self.log.info("response_symptom", response=spec.name, symptom=spec.symptom.describe())

        def answered() -> TrackedCommand | None:
            return next((c for c in self.gc.book.commands.values()
                         if c.origin != "scenario" and c.sent_at >= seen_at - 1e-6
                         and c.node == str(first.node) and c.command == first.command), None)

        try:
            if self.autopilot:
                await self.clock.sleep_until(seen_at + spec.reaction)
                if spec.when is not None:
                    await self.gc.wait_for(self._symptom_seen(spec.when, start), seen_at + RESPONSE_WATCH_S)
                for command in spec.send:
                    tracked = await self._send(command, "autopilot")
                    await tracked.done.wait()
                    if not _outcome_matches(tracked, command.expect):
                        self.log.warning("autopilot_step_failed", response=spec.name, command=command.command,
                                         state=str(tracked.state), reason=tracked.reason)
                        break
            else:
                await self.gc.wait_for(lambda: answered() is not None, seen_at + spec.within)
        finally:  # also when the scenario ends first: what was sent by then counts
            response = answered()
            if response is not None:
                result.responded_at = response.sent_at - self.clock.epoch
                result.request_id = response.request_id
        if not result.in_time and spec.contingency is not None:
            result.contingency = True
            await self._request_fault(FaultAction.INJECT, spec=spec.contingency, via=FaultVia.CONTINGENCY)

    def _judge_objectives(self) -> list[ObjectiveResult]:
        return [self._judge(spec) for spec in self.scenario.objectives]

    def _judge(self, spec: ObjectiveSpec) -> ObjectiveResult:
        epoch = self.clock.epoch
        deadline = epoch + spec.by if spec.by is not None else float("inf")
        if spec.tm is not None:
            value = self.gc.latest.get(str(spec.tm.node), {}).get(spec.tm.field)
            ok = self._tm_holds(spec.tm)()
            return ObjectiveResult(spec.name, ok, f"{spec.tm.node} {spec.tm.field} = {value} "
                                                  f"(wanted {spec.tm.op} {spec.tm.value})")
        if spec.event is not None:
            seen = [e.event for e in self.gc.events
                    if e.node == str(spec.event.node) and e.event.event == spec.event.event]
            ok = any(e.sim_time <= deadline for e in seen)
            when = f" at T+{format_mission_elapsed(seen[0].sim_time - epoch)}" if seen else ""
            return ObjectiveResult(spec.name, ok, f"{spec.event.event} from {spec.event.node}: "
                                                  + ("seen" + when if seen else "not seen"))
        if spec.command is not None:
            wanted = spec.command
            matches = [c for c in self.gc.book.commands.values()
                       if c.node == str(wanted.node) and c.command == wanted.command]
            ok = any(c.state.value == wanted.state and (c.final_at or 0.0) <= deadline for c in matches)
            states = ", ".join(f"{c.request_id} {c.state}" for c in matches) or "never sent"
            return ObjectiveResult(spec.name, ok, f"{wanted.node} {wanted.command}: {states}")
        assert spec.phase is not None
        phase = next((p for p in self.position.finished if p.name == spec.phase), None)
        ok = phase is not None and phase.status is PhaseStatus.PASS and (
            phase.end is None or epoch + phase.end <= deadline)
        return ObjectiveResult(spec.name, ok, f"phase {spec.phase}: {phase.status if phase else 'not run'}")

    async def _wait_until(self, sim_time: float) -> None:
        # a drill (one with expected responses) runs at its rate: a warp would skip what trainees must see
        if self.gc.idle and not self.scenario.responses:
            await self.gc.master.warp_to(sim_time)
        await self.clock.sleep_until(sim_time)

    def _met(self) -> float:
        return self.clock.now() - self.clock.epoch

    async def _progress(self, index: int, phase: Phase, step: str) -> None:
        if self.on_progress is not None:
            await self.on_progress(index, phase, step)




def _outcome_matches(tracked: TrackedCommand, expect: str) -> bool:
    if expect == "any":
        return True
    wanted = CommandState.COMPLETED if expect == "completed" else CommandState.FAILED
    return tracked.state is wanted
