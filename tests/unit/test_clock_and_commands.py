"""The simulated clock (anchors, warps, sleeps) and ground control's command book, without a broker."""

import asyncio

import pytest

from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.system import ClockState
from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport
from lunar_gs.services.ground_control.commanding import CommandBook, CommandState
from lunar_gs.services.runtime.clock import ClockMaster, SimClock

EPOCH = 1_717_280_596.0


class FakeWall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_clock_follows_anchor_rate_and_pause() -> None:
    wall = FakeWall()
    clock = SimClock(wall)
    published: list[ClockState] = []

    async def publish(state: ClockState) -> None:
        published.append(state)

    master = ClockMaster(clock, publish, wall=wall)
    await master.start(epoch=EPOCH, rate=100.0)
    wall.now += 2.0
    assert clock.now() == pytest.approx(EPOCH + 200.0)
    await master.pause()
    wall.now += 5.0
    assert clock.now() == pytest.approx(EPOCH + 200.0)
    await master.resume()
    await master.warp_to(EPOCH + 10_000.0)
    assert clock.now() == pytest.approx(EPOCH + 10_000.0)
    await master.warp_to(EPOCH)  # never backwards
    assert clock.now() == pytest.approx(EPOCH + 10_000.0)
    assert [s.generation for s in published] == [1, 2, 3, 4]


async def test_followers_ignore_stale_generations_and_a_restarted_master_continues_the_count() -> None:
    wall = FakeWall()
    follower = SimClock(wall)
    newer = ClockState(source=Node.GROUND_CONTROL, epoch=EPOCH, sim_anchor=EPOCH + 50, wall_anchor=wall.now,
                       rate=10.0, generation=5)
    follower.update(newer)
    follower.update(newer.model_copy(update={"generation": 4, "sim_anchor": EPOCH}))
    assert follower.now() == pytest.approx(EPOCH + 50)

    async def publish(state: ClockState) -> None:
        follower.update(state)

    await ClockMaster(follower, publish, wall=wall).warp_to(EPOCH + 60)
    assert follower.state is not None and follower.state.generation == 6
    assert follower.now() == pytest.approx(EPOCH + 60)


async def test_sleep_until_wakes_early_on_a_warp() -> None:
    clock = SimClock()

    async def publish(state: ClockState) -> None:
        pass

    master = ClockMaster(clock, publish)
    await master.start(epoch=EPOCH, rate=1.0)
    sleeper = asyncio.create_task(clock.sleep_until(EPOCH + 3600))  # an hour at real time
    await asyncio.sleep(0.05)
    assert not sleeper.done()
    await master.warp_to(EPOCH + 3600)
    await asyncio.wait_for(sleeper, 1.0)


def report(request_id: str, stage: Stage, success: bool = True, at: float = 0.0, **extra: object) -> VerificationReport:
    return VerificationReport(source=Node.LANDER_DRILL, request_id=request_id, command="X", stage=stage,
                              success=success, sim_time=at, **extra)  # type: ignore[arg-type]


def test_command_book_tracks_stages_to_completion_and_ignores_late_reports() -> None:
    book = CommandBook("t")
    tracked = book.open("lander-drill", "X", {}, now=0.0, allowed_s=100.0)
    book.on_report(report(tracked.request_id, Stage.ACCEPTANCE, at=1))
    assert tracked.state is CommandState.ACCEPTED
    book.on_report(report(tracked.request_id, Stage.START, at=2))
    book.on_report(report(tracked.request_id, Stage.PROGRESS, at=3, progress_step=2))
    assert tracked.progress == 2 and tracked.state is CommandState.STARTED
    book.on_report(report(tracked.request_id, Stage.COMPLETION, at=4))
    assert tracked.state is CommandState.COMPLETED and tracked.done.is_set() and tracked.final_at == 4
    assert book.on_report(report(tracked.request_id, Stage.COMPLETION, success=False, at=5)) is None
    assert tracked.state is CommandState.COMPLETED
    assert book.counts()["completed"] == 1


def test_command_book_times_out_in_simulated_time_and_records_failures() -> None:
    book = CommandBook("t")
    slow = book.open("lander-arm", "SLOW", {}, now=0.0, allowed_s=100.0)
    bad = book.open("lander-arm", "BAD", {}, now=0.0, allowed_s=100.0)
    book.on_report(report(bad.request_id, Stage.ACCEPTANCE, success=False, at=3,
                          failure_code=FailureCode.INVALID_ARGUMENTS, reason="x: too big"))
    assert book.time_out(99.0) == []
    assert book.next_deadline() == 100.0
    assert book.time_out(100.0) == [slow]
    assert slow.state is CommandState.TIMED_OUT and slow.failure_code is FailureCode.TIMEOUT
    assert bad.state is CommandState.FAILED and bad.reason == "x: too big"
    assert book.pending == 0 and book.next_deadline() is None
    assert book.counts() == {"completed": 0, "failed": 1, "timed_out": 1, "expired": 0}
