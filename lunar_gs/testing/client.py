"""A test's view of one mission: it hears every message, keeps a history, and waits and asserts in
mission time.

Every wait is a window of *mission* time (`within=120` is two simulated minutes), so a test reads the same at
rate 1 and at rate 1000; a wall-clock limit is only a safety net against a stopped clock. Waits watch every
message as it arrives (no polling of a latest value), which is what lets `never` and `always` hold over a
window. A wait that fails raises `MissionTimeout` (an AssertionError) that says what was awaited, the window
in mission time, the wall time it took, the closest misses and the last values seen.

    async with MissionClient(url, mission) as mission_tm:
        await mission_tm.wait_for(tm("lander-drill", "depth_m", ge(1.0)), within="1:00:00")
        await mission_tm.never(alarm(parameter="torque_nm"), during=600)
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lunar_gs.protocols.codec import DecodeError, JsonCodec, Message
from lunar_gs.protocols.commands import ArgValue, Telecommand
from lunar_gs.protocols.faults import FaultAction, FaultRecord, FaultSpec, FaultVia, Trigger, TruthEntry
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState, ServiceState, ServiceStatus
from lunar_gs.protocols.telemetry import HousekeepingBase
from lunar_gs.protocols.topics import Topics, parse_node_topic
from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport
from lunar_gs.services.fault_client import send_request
from lunar_gs.services.ground_control.scenario import format_mission_elapsed, parse_duration
from lunar_gs.services.runtime.bus import Bus, IncomingMessage
from lunar_gs.services.runtime.clock import SimClock
from lunar_gs.services.runtime.logging import get_logger
from lunar_gs.testing.conditions import Condition, Heard, Sample, parameter_value, verification
from lunar_gs.testing.predicates import Predicate

__all__ = ["MissionClient", "MissionTimeout", "ConditionHappened", "CommandFailed", "CommandHandle",
           "Mark", "Match", "ParameterSample", "Span"]

Span = float | int | str
"""Mission time: seconds, or `[H]H:MM:SS`."""

WALL_SLACK_S = 30.0
"""Wall seconds a wait allows beyond its window at the current rate, against a stopped or stalled clock."""
MISSES_SHOWN = 3
# Functions that set `__tracebackhide__` keep their frames out of pytest's tracebacks: a failed wait shows
# the test's own line and the message, not the kit's machinery.


class MissionTimeout(AssertionError):
    """A wait whose window of mission time ended without its condition."""


class ConditionHappened(AssertionError):
    """`never` saw what must not happen, or `always` saw a value that broke its condition."""


class CommandFailed(AssertionError):
    """A telecommand failed at a verification stage (`stage`, `code`, `reason`)."""

    def __init__(self, message: str, report: VerificationReport) -> None:
        super().__init__(message)
        self.report = report
        self.stage = report.stage
        self.code = report.failure_code
        self.reason = report.reason


@dataclass(frozen=True)
class Mark:
    """A point in a client's history: a wait given `since=mark` also counts what was heard after it (its
    window of mission time still starts when the wait does)."""

    index: int
    sim_time: float | None


@dataclass(frozen=True)
class Match:
    """What satisfied a wait: the value, the message it came in, and when (mission elapsed seconds)."""

    value: Any
    heard: Heard
    elapsed: float | None

    @property
    def message(self) -> Message | None:
        return self.heard.message

    @property
    def mark(self) -> Mark:
        """A mark at this message, for a later wait to look from (`since=match.mark`)."""
        return Mark(self.heard.index, self.heard.stamp)


@dataclass(frozen=True)
class ParameterSample:
    node: Node
    packet: str
    parameter: str
    value: Any
    sim_time: float
    """When the node sampled it (its packet's stamp), simulated Unix seconds."""
    elapsed: float
    """The same as mission elapsed seconds."""


def span_seconds(span: Span) -> float:
    """Seconds of mission time in `span` (a number or `[H]H:MM:SS`)."""
    return parse_duration(span)


@dataclass
class _Watch:
    """One wait in progress: offered every message as it arrives."""

    condition: Condition
    on_sample: Callable[[Sample], bool]
    """Returns True when the wait is settled (the future then holds the outcome)."""
    done: asyncio.Future[Any]
    relevant: int = 0
    closest: list[tuple[float, int, Sample]] = field(default_factory=list)
    last: list[Sample] = field(default_factory=list)

    def offer(self, heard: Heard) -> None:
        __tracebackhide__ = True
        if self.done.done():
            return
        sample = self.condition.sample(heard)
        if sample is None:
            return
        self.relevant += 1
        if not sample.passed:
            self.last.append(sample)
            if len(self.last) > MISSES_SHOWN:
                del self.last[0]
            if sample.miss is not None:
                entry = (-sample.miss, heard.index, sample)
                if len(self.closest) < MISSES_SHOWN:
                    heapq.heappush(self.closest, entry)
                elif entry > self.closest[0]:
                    heapq.heapreplace(self.closest, entry)
        try:
            self.on_sample(sample)
        except BaseException as exc:  # noqa: BLE001 - the wait's own verdict, handed to its awaiter
            if not self.done.done():
                self.done.set_exception(exc)


class MissionClient:
    """Hears everything of one mission on a broker and answers questions about it in mission time."""

    def __init__(self, broker_url: str, mission: str, *, also: Iterable[str] = (), client_id: str | None = None,
                 keep: int | None = None) -> None:
        """`also`: more topic filters to hear beyond the mission's own (e.g. the output of the handler under
        test); `keep`: how many messages the history keeps (all by default)."""
        self.broker_url = broker_url
        self.mission = mission
        self.topics = Topics(mission)
        self.clock = SimClock()
        self.history: list[Heard] = []
        """Every message heard, in arrival order (bounded by `keep` when given)."""
        self._keep = keep
        self._dropped = 0
        self._codec = JsonCodec()
        self._watches: list[_Watch] = []
        self._statuses: dict[str, ServiceStatus] = {}
        self._request_ids = (f"kit-{uuid.uuid4().hex[:6]}-{n:05d}" for n in itertools.count(1))
        self._tc_seq = itertools.count()
        self.log = get_logger(component="test-kit").bind(mission=mission)
        self.bus = Bus(broker_url, client_id or f"lgs-test-{mission}-{uuid.uuid4().hex[:8]}")
        for topic_filter in (f"{self.topics.prefix}/#", *also):
            self.bus.subscribe(topic_filter, self._on_message, qos=1)

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def __aenter__(self) -> MissionClient:
        await self.bus.__aenter__()
        await self.bus.wait_connected(10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for watch in self._watches:
            if not watch.done.done():
                watch.done.cancel()
        await self.bus.__aexit__(*exc)

    async def ready(self, nodes: Iterable[Node | str] = (), timeout_s: float = 30.0) -> None:
        """Wait (wall time) until the mission clock is known and each of `nodes` reports online."""
        __tracebackhide__ = True
        wanted = {str(Node(n)) for n in nodes}
        deadline = time.monotonic() + timeout_s
        while not self.clock.ready or not all(self.online(n) for n in wanted):
            if time.monotonic() > deadline:
                missing = sorted(n for n in wanted if not self.online(n))
                raise MissionTimeout(f"mission {self.mission!r} not ready after {timeout_s:.0f} s: "
                                     f"{'no clock' if not self.clock.ready else 'clock known'}; "
                                     f"not online: {', '.join(missing) or 'none'}")
            await asyncio.sleep(0.02)

    def online(self, node: Node | str) -> bool:
        status = self._statuses.get(str(node))
        return status is not None and status.state is ServiceState.ONLINE

    # -- what was heard -------------------------------------------------------------------------------
    async def _on_message(self, message: IncomingMessage) -> None:
        try:
            decoded: Message | None = self._codec.decode(message.payload)
        except DecodeError:
            decoded = None
        if isinstance(decoded, ClockState) and message.topic == self.topics.clock:
            self.clock.update(decoded)
        elif isinstance(decoded, ServiceStatus):
            self._statuses[message.topic.split("/")[-2]] = decoded
        heard = Heard(message.topic, message.payload, message.qos, message.retain, decoded,
                      self.clock.now() if self.clock.ready else None, time.time(),
                      self._dropped + len(self.history))
        self.history.append(heard)
        if self._keep is not None and len(self.history) > self._keep:
            cut = len(self.history) - self._keep
            del self.history[:cut]
            self._dropped += cut
        for watch in list(self._watches):
            watch.offer(heard)

    def now(self) -> float:
        """Mission clock, simulated Unix seconds."""
        return self.clock.now()

    def elapsed(self, sim_time: float | None = None) -> float:
        """Mission elapsed seconds at `sim_time` (default: now)."""
        return (self.now() if sim_time is None else sim_time) - self.clock.epoch

    async def sleep(self, span: Span) -> None:
        """Let `span` of mission time pass."""
        if not self.clock.ready:  # (3.11's wait_for can swallow a cancel that meets a ready result)
            await self.clock.wait_ready(WALL_SLACK_S)
        await self.clock.sleep_until(self.now() + span_seconds(span))

    def mark(self) -> Mark:
        """The current end of the history, for a later wait to look back to (`since=`)."""
        return Mark(self._dropped + len(self.history), self.now() if self.clock.ready else None)

    def history_since(self, since: Mark | None = None) -> list[Heard]:
        start = 0 if since is None else max(0, since.index - self._dropped)
        return self.history[start:]

    def samples(self, node: Node | str | None = None, parameter: str | None = None, *, packet: str | None = None,
                since: float | None = None, until: float | None = None,
                side: Side | str = Side.GROUND) -> list[ParameterSample]:
        """Telemetry values heard, filtered by node, packet, parameter and the mission elapsed seconds of
        their stamp (`since` <= t <= `until`). Without a parameter, every top-level field of each packet."""
        out: list[ParameterSample] = []
        wanted_node = Node(node) if node is not None else None
        epoch = self.clock.epoch if self.clock.ready else 0.0
        for heard in self.history:
            message = heard.message
            if not isinstance(message, HousekeepingBase):
                continue
            where = parse_node_topic(heard.topic)
            if where.side != Side(side) or (wanted_node is not None and where.node != wanted_node):
                continue
            if packet is not None and where.packet != packet:
                continue
            elapsed = message.sim_time - epoch
            if (since is not None and elapsed < since) or (until is not None and elapsed > until):
                continue
            names = [parameter] if parameter else [n for n in type(message).model_fields
                                                  if n not in HousekeepingBase.model_fields]
            for name in names:
                if name.split(".", 1)[0] in message.missing:
                    continue
                try:
                    value = parameter_value(message, name)
                except KeyError:
                    continue
                out.append(ParameterSample(where.node, where.packet or "hk", name, value, message.sim_time,
                                           elapsed))
        return out

    # -- waits ------------------------------------------------------------------------------------------
    async def wait_for(self, condition: Condition, *, within: Span, since: Mark | None = None) -> Match:
        """The first message satisfying `condition`, waiting up to `within` of mission time from now; with
        `since` (a mark), what was heard after the mark counts too."""
        __tracebackhide__ = True
        condition = condition.fresh()

        def settle(sample: Sample) -> bool:
            __tracebackhide__ = True
            if sample.passed:
                watch.done.set_result(sample)
                return True
            return False

        watch = self._watch(condition, settle)
        sample = await self._run(watch, within, since, f"waiting for {condition.describe()}")
        return self._match(sample)

    async def sequence(self, *conditions: Condition, within: Span, since: Mark | None = None) -> list[Match]:
        """Each condition satisfied in turn, each by a message after the previous one's, all within one
        window of mission time."""
        __tracebackhide__ = True
        if not conditions:
            raise ValueError("sequence() needs at least one condition")
        steps = [c.fresh() for c in conditions]
        found: list[Sample] = []

        class _Next:
            def sample(self, heard: Heard) -> Sample | None:
                return steps[len(found)].sample(heard) if len(found) < len(steps) else None

            def describe(self) -> str:
                return steps[min(len(found), len(steps) - 1)].describe()

            def fresh(self) -> _Next:
                return self

        def settle(sample: Sample) -> bool:
            __tracebackhide__ = True
            if sample.passed:
                found.append(sample)
                if len(found) == len(steps):
                    watch.done.set_result(found)
                    return True
            return False

        watch = self._watch(_Next(), settle)
        names = " then ".join(c.describe() for c in steps)
        result = await self._run(watch, within, since, f"waiting for {names}",
                                 extra=lambda: f"step {len(found) + 1} of {len(steps)} not reached: "
                                               f"{steps[len(found)].describe()}")
        return [self._match(s) for s in result]

    async def count(self, condition: Condition, *, within: Span, at_least: int | None = None,
                    at_most: int | None = None, exactly: int | None = None, since: Mark | None = None) -> int:
        """How many messages satisfy `condition` in the window. With only `at_least`, returns as soon as it
        is reached; `at_most`/`exactly` watch the whole window (and fail as soon as they are exceeded)."""
        __tracebackhide__ = True
        if at_least is None and at_most is None and exactly is None:
            raise ValueError("count() needs at_least, at_most or exactly")
        low = exactly if exactly is not None else at_least
        high = exactly if exactly is not None else at_most
        condition = condition.fresh()
        hits: list[Sample] = []
        whole_window = high is not None

        def settle(sample: Sample) -> bool:
            __tracebackhide__ = True
            if not sample.passed:
                return False
            hits.append(sample)
            if high is not None and len(hits) > high:
                raise ConditionHappened(
                    f"{condition.describe()} happened {len(hits)} times, more than {high}; the last at "
                    f"{self._when(sample.heard)}")
            if not whole_window and low is not None and len(hits) >= low:
                watch.done.set_result(len(hits))
                return True
            return False

        watch = self._watch(condition, settle)
        what = f"counting {condition.describe()} ({self._bounds(low, high)})"
        try:
            return int(await self._run(watch, within, since, what,
                                       extra=lambda: f"counted {len(hits)}", window_ends_ok=whole_window))
        except _WindowEnded:
            if low is not None and len(hits) < low:
                raise MissionTimeout(self._timeout_text(watch, what, within, f"counted {len(hits)}")) from None
            return len(hits)

    async def never(self, condition: Condition, *, during: Span, until: Condition | None = None,
                    since: Mark | None = None) -> int:
        """Fails at once if any message satisfies `condition` during the window (which `until`, when
        given, ends early once it is satisfied); returns how many messages the condition was about (every
        one of them watched, not a polled latest value)."""
        __tracebackhide__ = True
        return await self._hold(condition, during, until, since, "never", lambda sample: sample.passed,
                                "happened", " (it must never happen in this window)")

    async def always(self, condition: Condition, *, during: Span, until: Condition | None = None,
                     since: Mark | None = None) -> int:
        """Every message the condition is about during the window (ended early by `until`) satisfies it,
        and there is at least one; returns how many there were."""
        __tracebackhide__ = True
        relevant = await self._hold(condition, during, until, since, "always", lambda sample: not sample.passed,
                                    "broken", "")
        if relevant == 0:
            raise MissionTimeout(f"always {condition.describe()}: no message about it arrived in "
                                 f"{span_seconds(during):g} s of mission time, so nothing was checked")
        return relevant

    async def _hold(self, condition: Condition, during: Span, until: Condition | None, since: Mark | None,
                    word: str, breaks: Callable[[Sample], bool], verb: str, note: str) -> int:
        """Watch a whole window; the first sample that `breaks` it fails the wait at once."""
        __tracebackhide__ = True
        condition = condition.fresh()

        def settle(sample: Sample) -> bool:
            __tracebackhide__ = True
            if breaks(sample):
                raise ConditionHappened(f"{condition.describe()} {verb} at {self._when(sample.heard)}: "
                                        f"value {_show(sample.value)}{note}")
            return False

        watch = self._watch(condition, settle)
        try:
            await self._run(watch, during, since, f"{word} {condition.describe()}", window_ends_ok=True,
                            until=until)
        except _WindowEnded:
            pass
        return watch.relevant

    # -- commands and faults -------------------------------------------------------------------------
    async def send(self, node: Node | str, command: str, args: dict[str, ArgValue] | None = None, *,
                   expires_after: Span | None = None) -> CommandHandle:
        """Send a telecommand to a far-side node the way ground control does (through the relay) and return
        a handle that follows its verification reports."""
        __tracebackhide__ = True
        await self.ready(())
        target = Node(node)
        request_id = next(self._request_ids)
        mark = self.mark()
        now = self.now()
        telecommand = Telecommand(source=Node.GROUND_CONTROL, seq=next(self._tc_seq), sim_time=now,
                                  wall_time=time.time(), request_id=request_id, target=target, command=command,
                                  args=args or {},
                                  expires_at=now + span_seconds(expires_after) if expires_after is not None
                                  else None)
        await self.bus.publish(self.topics.tc(Side.GROUND, target), self._codec.encode(telecommand), qos=1)
        self.log.info("command_sent", request_id=request_id, target=str(target), command=command)
        return CommandHandle(self, target, command, request_id, mark)

    async def inject_fault(self, kind: str, target: str, params: dict[str, Any] | None = None, *,
                           trigger: dict[str, Any] | Trigger | None = None, duration: Span | None = None,
                           label: str = "", timeout_s: float = 10.0) -> str:
        """Ask the mission's instructor service for a fault (see `lunar-gs fault list`); returns its id. A
        refused request raises ValueError with the instructor's reason."""
        __tracebackhide__ = True
        spec = FaultSpec.model_validate({
            "kind": kind, "target": target, "params": params or {}, "label": label,
            **({"trigger": trigger} if trigger is not None else {}),
            **({"duration": span_seconds(duration)} if duration is not None else {}),
        })
        return await self.inject(spec, timeout_s=timeout_s)

    async def inject(self, spec: FaultSpec, *, timeout_s: float = 10.0) -> str:
        """`inject_fault` with a ready-made FaultSpec."""
        __tracebackhide__ = True
        record = await send_request(self.broker_url, self.mission, FaultAction.INJECT, spec=spec,
                                    via=FaultVia.TEST, timeout_s=timeout_s)
        assert isinstance(record, FaultRecord)
        if record.entry is TruthEntry.REJECTED or not record.fault_id:
            raise ValueError(f"the instructor refused {spec.kind} on {spec.target}: {record.detail}")
        return record.fault_id

    async def clear_fault(self, fault_id: str, timeout_s: float = 10.0) -> None:
        await send_request(self.broker_url, self.mission, FaultAction.CLEAR, fault_id=fault_id, via=FaultVia.TEST,
                           timeout_s=timeout_s)

    # -- machinery ----------------------------------------------------------------------------------------
    def _watch(self, condition: Condition, settle: Callable[[Sample], bool]) -> _Watch:
        return _Watch(condition, settle, asyncio.get_running_loop().create_future())

    async def _run(self, watch: _Watch, window: Span, since: Mark | None, what: str, *,
                   extra: Callable[[], str] | None = None, window_ends_ok: bool = False,
                   until: Condition | None = None) -> Any:
        __tracebackhide__ = True
        seconds = span_seconds(window)
        if not self.clock.ready:  # (3.11's wait_for can swallow a cancel that meets a ready result)
            await self.clock.wait_ready(WALL_SLACK_S)
        start_sim = self.now()  # `within` is how long to wait from now; `since`, how far back to look
        deadline = start_sim + seconds
        wall_start = time.monotonic()
        watches = [watch]
        if until is not None:  # a second watch that ends the window when its condition is met
            def end_window(sample: Sample) -> bool:
                if sample.passed:
                    ender.done.set_result(None)
                    return True
                return False

            ender = self._watch(until.fresh(), end_window)
            watches.insert(0, ender)  # a message that meets `until` ends the window before it is judged
        if since is not None:
            for heard in self.history_since(since):
                for each in watches:
                    each.offer(heard)
        self._watches.extend(watches)
        sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
        ends = {w.done for w in watches[:-1]}
        try:
            while not watch.done.done():
                wall_left = max(0.0, deadline - self.now()) / self.clock.rate + WALL_SLACK_S
                finished, _ = await asyncio.wait({watch.done, sleeper, *ends}, timeout=wall_left,
                                                 return_when=asyncio.FIRST_COMPLETED)
                if watch.done in finished:
                    break
                if sleeper in finished or not finished or finished & ends:
                    if window_ends_ok:
                        raise _WindowEnded
                    raise MissionTimeout(self._timeout_text(watch, what, window, extra() if extra else "",
                                                            wall_waited=time.monotonic() - wall_start,
                                                            start_sim=start_sim))
            return watch.done.result()
        finally:
            sleeper.cancel()
            for each in watches:
                with contextlib.suppress(ValueError):
                    self._watches.remove(each)

    def _timeout_text(self, watch: _Watch, what: str, window: Span, extra: str = "", *,
                      wall_waited: float | None = None, start_sim: float | None = None) -> str:
        seconds = span_seconds(window)
        lines = [f"timed out {what}"]
        if start_sim is not None and self.clock.ready:
            lines.append(f"  window: {seconds:g} s of mission time, {self._at(start_sim)} to "
                         f"{self._at(start_sim + seconds)} (rate {self.clock.rate:g}"
                         + (f", {wall_waited:.2f} s of wall time waited)" if wall_waited is not None else ")"))
        if extra:
            lines.append(f"  {extra}")
        if watch.closest:
            misses = sorted(watch.closest, key=lambda e: (-e[0], e[1]))
            lines.append("  closest misses: " + "; ".join(
                f"{_show(s.value)} at {self._when(s.heard)} (off by {-m:g})" for m, _, s in misses))
        if watch.last:
            lines.append("  last values seen: " + "; ".join(
                f"{_show(s.value)} at {self._when(s.heard)}" for s in watch.last))
        if watch.relevant == 0:
            topics = sorted({h.topic.removeprefix(self.topics.prefix + "/") for h in self.history[-500:]})
            lines.append(f"  no message about it arrived; recent topics: {', '.join(topics[:15]) or 'none'}")
        else:
            lines.append(f"  {watch.relevant} messages about it were checked")
        return "\n".join(lines)

    def _when(self, heard: Heard) -> str:
        return self._at(heard.stamp) if heard.stamp is not None else "an unknown time"

    def _at(self, sim_time: float) -> str:
        if not self.clock.ready:
            return f"{sim_time:.1f}"
        return f"T+{format_mission_elapsed(sim_time - self.clock.epoch)}"

    def _match(self, sample: Sample) -> Match:
        stamp = sample.heard.stamp
        return Match(sample.value, sample.heard, stamp - self.clock.epoch if stamp is not None else None)

    @staticmethod
    def _bounds(low: int | None, high: int | None) -> str:
        if low is not None and low == high:
            return f"exactly {low}"
        return " and ".join(p for p in (f"at least {low}" if low is not None else "",
                                         f"at most {high}" if high is not None else "") if p)


class _WindowEnded(Exception):
    """The window of a whole-window watch (never, always, count with an upper bound) ended."""


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Message.__args__):  # type: ignore[attr-defined]
        return type(value).__name__
    return repr(value) if isinstance(value, str) else str(value)


class CommandHandle:
    """One telecommand sent by the test; follows its verification reports as ground receives them."""

    def __init__(self, client: MissionClient, node: Node, command: str, request_id: str, mark: Mark) -> None:
        self.client = client
        self.node = node
        self.command = command
        self.request_id = request_id
        self.mark = mark

    def reports(self) -> list[VerificationReport]:
        """The verification reports received so far, in arrival order."""
        condition = verification(self.request_id)
        return [h.message for h in self.client.history_since(self.mark)
                if isinstance(h.message, VerificationReport) and condition.sample(h) is not None]

    async def stage(self, stage: Stage | str, *, within: Span) -> VerificationReport:
        """The report of `stage`; raises CommandFailed if the command failed first."""
        __tracebackhide__ = True
        wanted = Stage(stage)
        result = await self._until(lambda r: r.stage is wanted or not r.success, within, f"stage {wanted}")
        self._raise_if_failed(result)
        return result

    async def completed(self, *, within: Span) -> VerificationReport:
        """The completion report; raises CommandFailed with the stage, code and reason if it failed."""
        __tracebackhide__ = True
        return await self.stage(Stage.COMPLETION, within=within)

    async def failed(self, *, within: Span, stage: Stage | str | None = None,
                     code: FailureCode | int | None = None) -> VerificationReport:
        """The failure report (optionally checking its stage and code); fails if the command completes."""
        __tracebackhide__ = True
        report = await self._until(lambda r: not r.success or r.stage is Stage.COMPLETION, within, "a failure")
        if report.success:
            raise AssertionError(f"{self.command} ({self.request_id}) completed; a failure was expected")
        if stage is not None and report.stage is not Stage(stage):
            raise AssertionError(f"{self.command} failed at {report.stage}, not {Stage(stage)}: {report.reason}")
        if code is not None and report.failure_code != FailureCode(code):
            raise AssertionError(f"{self.command} failed with {report.failure_code!r}, not "
                                 f"{FailureCode(code)!r}: {report.reason}")
        return report

    async def _until(self, test: Callable[[VerificationReport], bool], within: Span, what: str
                     ) -> VerificationReport:
        __tracebackhide__ = True
        condition = verification(self.request_id, Predicate(what, test))
        match = await self.client.wait_for(condition, within=within, since=self.mark)
        assert isinstance(match.value, VerificationReport)
        return match.value

    def _raise_if_failed(self, report: VerificationReport) -> None:
        __tracebackhide__ = True
        if not report.success:
            raise CommandFailed(f"{self.command} ({self.request_id}) failed at stage {report.stage} with "
                                f"{report.failure_code.name if report.failure_code else 'no code'}: "
                                f"{report.reason}", report)

