"""The test kit tests itself: waits, windows and failure messages in mission time, over a real broker.

Synthetic streams (a clock and drill packets published by the test) give exact control of what is heard;
the live-mission tests use the plugin's own fixtures and marker, as a user's tests do.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.events import Event, RejectionCode
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState
from lunar_gs.protocols.telemetry import DrillHousekeeping, DrillMode
from lunar_gs.protocols.topics import Topics
from lunar_gs.protocols.verification import FailureCode, Stage
from lunar_gs.services.runtime.broker import MosquittoProcess
from lunar_gs.services.runtime.bus import Bus
from lunar_gs.testing import (
    CommandFailed,
    ConditionHappened,
    MissionClient,
    MissionTimeout,
    event,
    ge,
    gt,
    lt,
    rejection,
    tm,
    within_range,
)
from lunar_gs.testing.mission import LocalMission

pytestmark = pytest.mark.integration
CODEC = JsonCodec()
EPOCH = 1_717_280_596.0


class Feed:
    """Publishes a mission's clock and drill housekeeping, as the real services would."""

    def __init__(self, url: str, mission: str) -> None:
        self.topics = Topics(mission)
        self.bus = Bus(url, f"feed-{mission}")
        self.seq = 0

    async def __aenter__(self) -> Feed:
        await self.bus.__aenter__()
        await self.bus.wait_connected(10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus.__aexit__(*exc)

    async def clock(self, rate: float) -> ClockState:
        state = ClockState(source=Node.GROUND_CONTROL, epoch=EPOCH, sim_anchor=EPOCH + 3600, wall_anchor=time.time(),
                           rate=rate)
        await self.bus.publish(self.topics.clock, CODEC.encode(state), qos=1, retain=True)
        return state

    async def drill(self, torque_nm: float, sim_time: float) -> None:
        packet = DrillHousekeeping(source=Node.LANDER_DRILL, seq=self.seq, sim_time=sim_time, wall_time=time.time(),
                                   mode=DrillMode.DRILLING, depth_m=0.5, target_depth_m=1.5, rpm=120.0,
                                   torque_nm=torque_nm, motor_current_a=2.0, penetration_rate_mm_min=5.0,
                                   percussion=False, bit_temperature_c=20.0, core_mass_g=10.0, material="regolith",
                                   motor_temperature_c=25.0)
        self.seq += 1
        await self.bus.publish(self.topics.tm(Side.GROUND, Node.LANDER_DRILL), CODEC.encode(packet), qos=1)

    async def mark_end(self) -> None:
        end = Event(source=Node.LANDER_DRILL, event="end_of_feed", sim_time=EPOCH)
        await self.bus.publish(self.topics.ev(Side.GROUND, Node.LANDER_DRILL), CODEC.encode(end), qos=1)


async def test_never_catches_one_bad_packet_among_thousands(mosquitto_session: MosquittoProcess,
                                                            mission: str) -> None:
    torque_over_40 = tm("lander-drill", "torque_nm", gt(40))
    async with MissionClient(mosquitto_session.url, mission) as client, \
            Feed(mosquitto_session.url, mission) as feed:
        await feed.clock(rate=100)
        await client.ready()

        async def stream(bad_at: int | None) -> None:
            for i in range(3000):
                await feed.drill(45.0 if i == bad_at else 10.0 + (i % 200) * 0.1, client.now())
            await feed.mark_end()

        # a clean stream: every one of the 3,000 packets is watched, and none trips the window
        publisher = asyncio.create_task(stream(None))
        watched = await client.never(torque_over_40, during="10:00:00", until=event("end_of_feed"))
        await publisher
        assert watched == 3000

        # the same stream with one bad packet in the middle: the window fails on that packet
        publisher = asyncio.create_task(stream(bad_at=1789))
        with pytest.raises(ConditionHappened) as caught:
            await client.never(torque_over_40, during="10:00:00", until=event("end_of_feed"))
        await publisher
        assert "lander-drill.torque_nm > 40 happened at T+" in str(caught.value)
        assert "value 45" in str(caught.value)


async def test_a_timeout_names_the_condition_the_mission_time_and_the_closest_miss(
        mosquitto_session: MosquittoProcess, mission: str) -> None:
    async with MissionClient(mosquitto_session.url, mission) as client, \
            Feed(mosquitto_session.url, mission) as feed:
        await feed.clock(rate=100)
        await client.ready()

        async def stream() -> None:
            for torque in (12.0, 31.5, 20.0, 33.25, 18.0, 29.0):
                await feed.drill(torque, client.now())

        publisher = asyncio.create_task(stream())
        with pytest.raises(MissionTimeout) as caught:
            await client.wait_for(tm("lander-drill", "torque_nm", gt(35)), within=120)
        await publisher
        text = str(caught.value)
        assert text.startswith("timed out waiting for lander-drill.torque_nm > 35"), text
        assert "window: 120 s of mission time, T+01:00:" in text and "rate 100" in text, text
        assert "closest misses: 33.25 at T+01:0" in text and "(off by 1.75)" in text, text
        assert "31.5 at" in text.split("closest misses:")[1].split("\n")[0], text
        assert "last values seen: 33.25" in text and "29 at" in text, text
        assert "6 messages about it were checked" in text, text


async def test_sequence_count_always_and_history_over_one_stream(mosquitto_session: MosquittoProcess,
                                                                 mission: str) -> None:
    async with MissionClient(mosquitto_session.url, mission) as client, \
            Feed(mosquitto_session.url, mission) as feed:
        await feed.clock(rate=100)
        await client.ready()
        start = client.mark()
        torques = [5.0, 12.0, 18.0, 26.0, 31.0, 22.0, 9.0]
        for torque in torques:
            await feed.drill(torque, client.now())
        await feed.mark_end()
        # every wait can look back from a mark: the packets above are already in the history
        rise_and_fall = await client.sequence(tm("lander-drill", "torque_nm", gt(25)),
                                              tm("lander-drill", "torque_nm", lt(10)), within=60, since=start)
        assert [m.value for m in rise_and_fall] == [26.0, 9.0]
        assert await client.count(tm("lander-drill", "torque_nm", gt(15)), within=60, since=start, exactly=4) == 4
        assert await client.always(tm("lander-drill", "torque_nm", within_range(0, 40)), during=60, since=start,
                                   until=event("end_of_feed")) == len(torques)
        with pytest.raises(ConditionHappened, match=r"torque_nm < 30 broken at T\+.*value 31"):
            await client.always(tm("lander-drill", "torque_nm", lt(30)), during=60, since=start)
        with pytest.raises(ConditionHappened, match="happened 3 times, more than 2"):
            await client.count(tm("lander-drill", "torque_nm", gt(20)), within=60, since=start, at_most=2)
        history = client.samples("lander-drill", "torque_nm")
        assert [s.value for s in history] == torques
        assert all(s.elapsed >= 3600 for s in history)


@pytest.mark.lunar_mission(rate=200, nodes=["relay-satellite", "lander-drill", "ground-control", "instructor"])
async def test_commands_by_stage_and_faults_on_a_live_mission(lunar_tm: MissionClient,
                                                              lunar_mission: LocalMission) -> None:
    """The plugin's mission (no scenario: the services idle, the clock runs) commanded by the test."""
    checkout = await lunar_tm.send("lander-drill", "CHECKOUT")
    await checkout.completed(within="0:10:00")
    assert [r.stage for r in checkout.reports()][:2] == [Stage.ACCEPTANCE, Stage.START]

    too_deep = await lunar_tm.send("lander-drill", "DRILL_TO_DEPTH", {"target_depth_m": 9.0})
    failure = await too_deep.failed(within="0:05:00", stage="acceptance", code=FailureCode.INVALID_ARGUMENTS)
    assert "target_depth_m" in failure.reason
    with pytest.raises(CommandFailed, match="failed at stage acceptance with INVALID_ARGUMENTS"):
        await too_deep.completed(within="0:05:00")

    unknown = await lunar_tm.send("lander-drill", "FLY_TO_MARS")
    await unknown.failed(within="0:05:00", code=FailureCode.UNKNOWN_COMMAND)

    # a fault injected from the test shows its symptom in the telemetry ground receives
    drill = await lunar_tm.send("lander-drill", "DRILL_TO_DEPTH", {"target_depth_m": 1.2, "rpm": 120})
    await drill.stage("start", within="0:05:00")
    await lunar_tm.wait_for(tm("lander-drill", "depth_m", ge(0.05)), within="0:30:00")
    fault_id = await lunar_tm.inject_fault("sensor.stuck", "lander-drill.depth_m")
    await lunar_tm.sleep("0:01:00")  # packets sampled before the fault are still on their way (light time)
    stuck = await lunar_tm.wait_for(tm("lander-drill", "depth_m", gt(0)), within="0:05:00")
    await lunar_tm.always(tm("lander-drill", "depth_m", within_range(stuck.value - 1e-9, stuck.value + 1e-9)),
                          during="0:03:00")
    with pytest.raises(ValueError, match="refused sensor.stuck on lander-drill.depth_m"):
        await lunar_tm.inject_fault("sensor.stuck", "lander-drill.depth_m")  # one is there already
    await lunar_tm.clear_fault(fault_id)
    await lunar_tm.wait_for(tm("lander-drill", "depth_m", gt(stuck.value + 0.001)), within="0:30:00")
    assert lunar_mission.alive("lander-drill")


async def test_bad_input_to_a_live_mission_is_rejected_not_lost(lunar_tm: MissionClient) -> None:
    """The default marker-less mission: every service, rate 100, no scenario."""
    await lunar_tm.bus.publish(lunar_tm.topics.tm(Side.SPACE, Node.LANDER_DRILL), b"{not json", qos=1)
    await lunar_tm.wait_for(rejection(RejectionCode.MALFORMED, topic_contains="lander-drill/tm"), within="0:10:00")
