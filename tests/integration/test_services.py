"""The services as real processes over a real private Mosquitto: command verification, rejections,
liveness, and the relay's store-and-forward across a visibility gap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from lunar_gs.protocols.commands import Telecommand
from lunar_gs.protocols.events import Alarm, AlarmState, Event, Rejection, RejectionCode
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState, ServiceState, ServiceStatus
from lunar_gs.protocols.topics import Topics
from lunar_gs.protocols.verification import FailureCode, Stage, VerificationReport
from lunar_gs.services.runtime.broker import MosquittoProcess
from tests.integration.kit import Heard, Listener, ServiceProcess, mission_file_with

pytestmark = pytest.mark.integration
RATE = "100"


def command(request_id: str, name: str, **args: object) -> Telecommand:
    return Telecommand(source=Node.GROUND_CONTROL, request_id=request_id, target=Node.LANDER_DRILL,
                       command=name, args=args)  # type: ignore[arg-type]


def report_for(request_id: str, stage: Stage | None = None, success: bool | None = None
               ) -> Callable[[Heard], bool]:
    def matches(heard: Heard) -> bool:
        m = heard.message
        return (isinstance(m, VerificationReport) and m.request_id == request_id
                and (stage is None or m.stage is stage) and (success is None or m.success is success))
    return matches


def rejection(code: RejectionCode, topic_part: str) -> Callable[[Heard], bool]:
    return lambda h: isinstance(h.message, Rejection) and h.message.code is code and topic_part in h.topic


async def start_system(url: str, mission: str, tmp_path: Path, listener: Listener, *extra: str
                       ) -> dict[Node, ServiceProcess]:
    """Relay, drill and ground control as processes (stopped by the listener fixture's teardown)."""
    nodes = (Node.RELAY_SATELLITE, Node.LANDER_DRILL, Node.GROUND_CONTROL)
    processes = {n: ServiceProcess(n, url, mission, tmp_path, "--rate", RATE,
                                   "--report", str(tmp_path / "gc"), *extra).start() for n in nodes}
    listener.started.extend(processes.values())
    topics = Topics(mission)
    for node in nodes:
        await listener.wait_for(
            lambda h, node=node: h.topic == topics.status(node) and isinstance(h.message, ServiceStatus)
            and h.message.state is ServiceState.ONLINE, timeout=30, what=f"{node} online")
    await listener.wait_for(lambda h: isinstance(h.message, ClockState), what="the clock")
    return processes


async def test_bad_commands_are_refused_with_reasons_and_the_drill_keeps_working(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path, listener: Listener
) -> None:
    processes = await start_system(mosquitto_session.url, mission, tmp_path, listener)
    topics = Topics(mission)
    ground_tc = topics.tc(Side.GROUND, Node.LANDER_DRILL)
    # out of range: fails at acceptance, with the reason naming the argument
    await listener.publish(ground_tc, command("t-range", "DRILL_TO_DEPTH", target_depth_m=9.0))
    failed = (await listener.wait_for(report_for("t-range", Stage.ACCEPTANCE, False), what="nack")).message
    assert isinstance(failed, VerificationReport)
    assert failed.failure_code is FailureCode.INVALID_ARGUMENTS
    assert "target_depth_m" in failed.reason and "2.5" in failed.reason
    assert failed.pus_subtype == 2

    # unknown command: acceptance failure and a rejection event, relayed to the ground
    await listener.publish(ground_tc, command("t-unknown", "LAUNCH"))
    unknown = (await listener.wait_for(report_for("t-unknown", Stage.ACCEPTANCE, False))).message
    assert isinstance(unknown, VerificationReport) and unknown.failure_code is FailureCode.UNKNOWN_COMMAND
    relayed = await listener.wait_for(
        lambda h: isinstance(h.message, Rejection) and h.message.request_id == "t-unknown"
        and h.topic == topics.ev(Side.GROUND, Node.LANDER_DRILL), what="relayed rejection")
    assert isinstance(relayed.message, Rejection) and relayed.message.code is RejectionCode.UNKNOWN_COMMAND

    # malformed payloads: straight onto the drill's space-side TC topic, and onto the relay's input
    await listener.publish(topics.tc(Side.SPACE, Node.LANDER_DRILL), b"\x00\xff{garbage")
    await listener.wait_for(rejection(RejectionCode.MALFORMED, "/space/lander-drill/ev"), what="drill rejection")
    await listener.publish(ground_tc, b'{"schema_name": "tc", "request_id": 5}')
    await listener.wait_for(rejection(RejectionCode.INVALID, "/ground/relay-satellite/ev"),
                            what="relay rejection")

    # ... and the drill still executes a valid command to completion
    await listener.publish(ground_tc, command("t-ok", "CHECKOUT"))
    completed = report_for("t-ok", Stage.COMPLETION, True)
    await listener.wait_for(lambda h: completed(h) and "/ground/" in h.topic, timeout=30, what="completion")
    assert all(p.alive() for p in processes.values())
    stages = [h.message.stage for h in listener.find(report_for("t-ok"))
              if isinstance(h.message, VerificationReport) and "/ground/" in h.topic]
    assert stages == [Stage.ACCEPTANCE, Stage.START, Stage.COMPLETION]


async def test_a_killed_service_goes_offline_by_its_last_will_and_ground_alarms(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path, listener: Listener
) -> None:
    processes = await start_system(mosquitto_session.url, mission, tmp_path, listener)
    topics = Topics(mission)
    processes[Node.LANDER_DRILL].kill()
    offline = await listener.wait_for(
        lambda h: h.topic == topics.status(Node.LANDER_DRILL) and isinstance(h.message, ServiceStatus)
        and h.message.state is ServiceState.OFFLINE, timeout=30, what="the Last Will")
    assert isinstance(offline.message, ServiceStatus) and offline.message.backends == {"drill": "sim"}
    alarm = await listener.wait_for(
        lambda h: isinstance(h.message, Alarm) and h.message.alarm == "service.lander-drill"
        and h.message.state is AlarmState.RAISED, what="ground control's alarm")
    assert alarm.topic == topics.ev(Side.GROUND, Node.GROUND_CONTROL)
    assert processes[Node.RELAY_SATELLITE].alive() and processes[Node.GROUND_CONTROL].alive()


async def test_a_command_sent_during_a_relay_gap_is_delivered_after_it(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path, listener: Listener
) -> None:
    gap_end = 600.0  # seconds after the epoch: six wall seconds at rate 100
    mission_file = mission_file_with(tmp_path, gaps_s=[[0.0, gap_end]])
    await start_system(mosquitto_session.url, mission, tmp_path, listener, "--mission-file", str(mission_file))
    topics = Topics(mission)
    clock = next(h.message for h in listener.history if isinstance(h.message, ClockState))
    assert isinstance(clock, ClockState)
    await listener.publish(topics.tc(Side.GROUND, Node.LANDER_DRILL), command("t-gap", "CHECKOUT"))
    expiring = command("t-expire", "CHECKOUT").model_copy(update={"expires_at": clock.epoch + 60.0})
    await listener.publish(topics.tc(Side.GROUND, Node.LANDER_DRILL), expiring)

    expired = await listener.wait_for(
        lambda h: isinstance(h.message, Event) and h.message.event == "command_expired", timeout=30)
    assert isinstance(expired.message, Event) and expired.message.data["request_id"] == "t-expire"
    accepted = await listener.wait_for(report_for("t-gap", Stage.ACCEPTANCE, True), timeout=30)
    assert isinstance(accepted.message, VerificationReport)
    assert accepted.message.sim_time >= clock.epoch + gap_end, "the drill got it before the window opened"
    delivered = [h for h in listener.history if h.topic == topics.tc(Side.SPACE, Node.LANDER_DRILL)]
    assert [h.message.request_id for h in delivered if isinstance(h.message, Telecommand)] == ["t-gap"]
    await listener.wait_for(report_for("t-gap", Stage.COMPLETION, True), timeout=30)


async def test_reports_lost_while_the_relay_was_down_are_resent_end_to_end(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path, listener: Listener
) -> None:
    processes = await start_system(mosquitto_session.url, mission, tmp_path, listener)
    topics = Topics(mission)
    processes[Node.RELAY_SATELLITE].kill()  # nothing crosses to the ground now
    await listener.publish(topics.tc(Side.SPACE, Node.LANDER_DRILL), command("t-lost", "CHECKOUT"))
    await listener.wait_for(lambda h: report_for("t-lost", Stage.COMPLETION, True)(h) and "/space/" in h.topic,
                            what="the drill's completion on the space side")
    await asyncio.sleep(0.5)
    assert not listener.find(lambda h: report_for("t-lost")(h) and "/ground/" in h.topic)

    processes[Node.RELAY_SATELLITE].start()  # a fresh relay: it never saw those reports
    completed = report_for("t-lost", Stage.COMPLETION, True)
    await listener.wait_for(lambda h: completed(h) and "/ground/" in h.topic, timeout=30,
                            what="the re-sent completion on the ground side")
    space_copies = listener.find(lambda h: completed(h) and "/space/" in h.topic)
    assert len(space_copies) >= 2, "the drill should have re-sent its unconfirmed report"
    # once ground control confirms, the drill stops re-sending
    await listener.wait_for(lambda h: h.topic == topics.rx(Side.SPACE, Node.LANDER_DRILL), timeout=30,
                            what="a receipt reaching the drill")
    settled = len(listener.find(lambda h: completed(h) and "/space/" in h.topic))
    await asyncio.sleep(3.0)
    assert len(listener.find(lambda h: completed(h) and "/space/" in h.topic)) == settled
