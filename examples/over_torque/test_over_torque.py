"""Tests of the jammed-bit alarm, written with the Lunar GS test kit: against the nominal rehearsal (no
alarm while the drill works through the rock layer) and against the drill-stall training drill (the alarm
rises before the drill's own over-torque protection trips, and clears once the drill has stopped)."""

import asyncio
import contextlib
import json

import pytest
from lunar_gs.testing import MissionClient, event, on_topic, tm, gt

from over_torque import HIGH_NM, alarm_topic, run


@pytest.fixture
async def alarms(lunar_mission):
    """The handler under test, running beside the mission, and a client that also hears its alarms."""
    handler = asyncio.create_task(run(lunar_mission.url, lunar_mission.mission))
    async with MissionClient(lunar_mission.url, lunar_mission.mission,
                             also=[alarm_topic(lunar_mission.mission)]) as client:
        await client.ready(lunar_mission.nodes, timeout_s=60)
        yield client
    handler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await handler


def says(state):
    """A predicate on the handler's output (payload bytes): its JSON has this state."""
    def test(payload):
        return json.loads(payload)["state"] == state
    test.__name__ = f"saying {state!r}"
    return test


@pytest.mark.lunar_mission(scenario="nominal", rate=1000)
async def test_no_alarm_while_drilling_nominally(alarms):
    # the whole drilling phase, rock layer and percussion included, until the core is stowed
    await alarms.never(on_topic(alarm_topic(alarms.mission)), during="6:00:00",
                       until=event("core_stowed", node="lander-drill"))
    # the drill did work hard in that time: its torque went above the alarm's threshold
    assert max(s.value for s in alarms.samples("lander-drill", "torque_nm")) > HIGH_NM


@pytest.mark.lunar_mission(scenario="drill-stall", rate=200)
async def test_alarm_on_a_jammed_bit_before_the_protection_trips(alarms):
    topic = alarm_topic(alarms.mission)
    start = alarms.mark()
    tripped = await alarms.wait_for(event("over_torque", node="lander-drill"), within="2:00:00")
    raised = await alarms.wait_for(on_topic(topic, says("raised")), within="0:05:00", since=start)
    # our alarm came from a sample taken before the protection tripped: there was time to act. (Compare
    # mission times, the stamps, not arrival order: events and TM reach ground by different paths.)
    assert json.loads(raised.value)["sim_time"] < tripped.message.sim_time
    # the tripped drill stops turning; the torque falls and the alarm clears
    await alarms.wait_for(on_topic(topic, says("cleared")), within="0:10:00", since=start)
