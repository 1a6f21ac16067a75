"""The test kit's labels hold on the real bus: invalid payloads from `lunar_gs.testing.strategies`, published
on ground-side TM topics, each get one rejection from a running ground control with the labelled code,
while valid packets sent between them are all archived; telecommands the strategies label as refused by
the node are refused by a running lander-drill, through the relay, with the labelled codes.

Samples are drawn by hypothesis with a fixed seed (the same ones every run): a few of every defect, of every
refusal and of every node's housekeeping, so each label is checked on the bus every run.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.events import Rejection
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState, ServiceState, ServiceStatus
from lunar_gs.protocols.topics import Topics
from lunar_gs.protocols.verification import Stage, VerificationReport
from lunar_gs.services.runtime.broker import MosquittoProcess

from lunar_gs.testing import strategies
from lunar_gs.testing.strategies import Defect, InvalidPayload, Refusal, RefusedCommand
from tests.integration.kit import Heard, Listener, ServiceProcess

pytestmark = pytest.mark.integration

CODEC = JsonCodec()
SEED = 20240601
NODES = (Node.GROUND_CONTROL, Node.RELAY_SATELLITE, Node.LANDER_DRILL)
PER_DEFECT, PER_NODE, PER_REFUSAL = 4, 5, 2  # 44 invalid payloads, 20 valid packets, 12 telecommands
HOUSEKEEPING_NODES = (Node.LANDER_DRILL, Node.LANDER_ARM, Node.ASCENT_VEHICLE, Node.RELAY_SATELLITE)
WAIT_S = 15.0  # a safety net: on an idle machine everything is answered within a second
T = TypeVar("T")


def drawn(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` examples of a strategy, the same every run (hypothesis with a fixed seed)."""
    found: list[T] = []

    @hypothesis_seed(SEED)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: T) -> None:
        found.append(example)

    collect()
    return found[:count]


@dataclass
class Mission:
    url: str
    name: str
    archive: Path

    @property
    def topics(self) -> Topics:
        return Topics(self.name)

    def archived(self, query: str) -> list[tuple[Any, ...]]:
        """Rows of ground control's archive (it commits about four times a wall second)."""
        if not self.archive.exists():
            return []
        with sqlite3.connect(self.archive, timeout=5) as db:
            return list(db.execute(query))


@pytest.fixture(scope="module")
def mission_running(mosquitto_session: MosquittoProcess, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Mission]:
    """Ground control, the relay and the lander drill of one mission, shared by this module's tests."""
    name = "ts" + uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("strategies")
    processes = [ServiceProcess(node, mosquitto_session.url, name, folder, "--rate", "100",
                                "--report", str(folder / "report")).start() for node in NODES]
    try:
        yield Mission(mosquitto_session.url, name, folder / "report" / "archive.sqlite")
    finally:
        for process in processes:
            process.stop()


def online(topic: str) -> Callable[[Heard], bool]:
    return lambda h: (h.topic == topic and isinstance(h.message, ServiceStatus)
                      and h.message.state is ServiceState.ONLINE)


async def ready(listener: Listener, mission: Mission) -> None:
    for node in NODES:
        await listener.wait_for(online(mission.topics.status(node)), timeout=30, what=f"{node} online")
    await listener.wait_for(lambda h: isinstance(h.message, ClockState), timeout=30, what="the clock")


async def until(check: Callable[[], list[str]], what: str) -> None:
    """Wait until `check()` finds nothing missing; fail with what is still missing."""
    deadline = time.monotonic() + WAIT_S
    while missing := check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} {what} missing after {WAIT_S} s, e.g. {missing[:5]}")
        await asyncio.sleep(0.05)


def rejections_by(listener: Listener, source: Node) -> list[Rejection]:
    return [h.message for h in listener.history
            if isinstance(h.message, Rejection) and h.message.source is source]


async def test_invalid_payloads_get_their_labelled_code_from_ground_control_and_valid_packets_are_archived(
    mission_running: Mission,
) -> None:
    topics = mission_running.topics
    run = uuid.uuid4().hex[:6]
    bad = [p for defect in Defect for p in drawn(strategies.invalid_payloads([defect]), PER_DEFECT)]
    good = [p for node in HOUSEKEEPING_NODES for p in drawn(strategies.housekeeping(node), PER_NODE)]
    assert len(bad) == PER_DEFECT * len(Defect) and len(good) == PER_NODE * len(HOUSEKEEPING_NODES)
    # each invalid payload on a TM topic of its own (any packet name is ground control's), so its
    # rejection, which names the topic, is told apart even from one with the same first bytes
    sent_bad: dict[str, InvalidPayload] = {
        topics.tm(Side.GROUND, HOUSEKEEPING_NODES[i % 4], f"probe-{run}-{i}"): p for i, p in enumerate(bad)}
    # valid packets on their own node's housekeeping topic (ground control checks the source against it)
    sent_good = [(topics.tm(Side.GROUND, packet.source), CODEC.encode(packet)) for packet in good]
    bad_in_order = [(topic, payload.payload) for topic, payload in sent_bad.items()]
    bad_in_order = bad_in_order[::3] + bad_in_order[1::3] + bad_in_order[2::3]  # defects mixed
    per_good = len(bad) // len(good)
    schedule = [message for i, valid in enumerate(sent_good)  # interleaved: a few bad, then a good one
                for message in (*bad_in_order[i * per_good:(i + 1) * per_good], valid)]
    schedule += bad_in_order[len(good) * per_good:]
    async with Listener(mission_running.url, mission_running.name) as listener:
        await ready(listener, mission_running)
        for topic, payload in schedule:
            await listener.publish(topic, payload, qos=1)
        await listener.bus.flush(10)

        def unanswered() -> list[str]:
            answered = {r.topic for r in rejections_by(listener, Node.GROUND_CONTROL)}
            return [f"{p.defect} {p.label}" for topic, p in sent_bad.items() if topic not in answered]

        def not_archived() -> list[str]:
            archived = {row[0].encode() for row in mission_running.archived("SELECT body FROM tm")}
            return [body[:80].decode() for _, body in sent_good if body not in archived]

        await until(unanswered, "rejections")
        await until(not_archived, "valid packets in the archive")
        await asyncio.sleep(0.3)  # time for a second (wrong) rejection of any of them to show

        problems = []
        by_topic: dict[str, list[Rejection]] = {}
        for rejection in rejections_by(listener, Node.GROUND_CONTROL):
            by_topic.setdefault(rejection.topic, []).append(rejection)
        for topic, payload in sent_bad.items():
            got = by_topic.get(topic, [])
            if [r.code for r in got] != [payload.code]:
                problems.append(f"{payload}: rejected with {[r.code.name for r in got]}")
            elif got[0].request_id != (payload.request_id[:64] if payload.request_id else None):
                problems.append(f"{payload}: rejection carries request id {got[0].request_id!r}")
        stray = [(r.topic, r.code.name, r.reason[:80]) for rs in by_topic.values() for r in rs
                 if r.topic not in sent_bad]
        if stray:
            problems.append(f"rejections of messages we did not label invalid: {stray[:5]}")
        assert not problems, "\n".join(problems)


async def test_refused_telecommands_are_refused_by_the_node_with_their_labelled_codes(
    mission_running: Mission,
) -> None:
    """Sent as ground control sends them (ground side, through the relay) to a running lander-drill: each
    gets the node's rejection with the labelled code and a failed acceptance report with the labelled
    failure code, and ground control archives the rejection."""
    topics = mission_running.topics
    run = uuid.uuid4().hex[:6]
    drawn_refused = [each for refusal in Refusal for each in
                     drawn(strategies.refused_telecommands(Node.LANDER_DRILL, [refusal]), PER_REFUSAL)]
    refused: dict[str, RefusedCommand] = {  # fresh request ids: a node ignores one it has seen
        f"st-{run}-{i}": each.with_request_id(f"st-{run}-{i}") for i, each in enumerate(drawn_refused)}
    assert len(refused) == PER_REFUSAL * len(Refusal)
    async with Listener(mission_running.url, mission_running.name) as listener:
        await ready(listener, mission_running)
        for each in refused.values():
            await listener.publish(topics.tc(Side.GROUND, each.node), each.payload, qos=1)
        await listener.bus.flush(10)

        def heard_on_ground(kind: type[T]) -> dict[str, T]:
            """What reached ground control's side of the relay, by request id."""
            return {h.message.request_id: h.message for h in listener.history  # type: ignore[attr-defined]
                    if h.topic.startswith(f"{topics.prefix}/ground/") and isinstance(h.message, kind)
                    and h.message.request_id in refused}  # type: ignore[attr-defined]

        def archived_rejections() -> dict[str, str]:
            rows = mission_running.archived("SELECT name, body FROM events WHERE kind = 'rejection'")
            return {json.loads(body).get("request_id"): name for name, body in rows}

        await until(lambda: [r for r in refused if r not in heard_on_ground(Rejection)], "rejections")
        await until(lambda: [r for r in refused if r not in heard_on_ground(VerificationReport)], "reports")
        await until(lambda: [r for r in refused if r not in archived_rejections()], "archived rejections")

        rejected, reported, archived = (heard_on_ground(Rejection), heard_on_ground(VerificationReport),
                                        archived_rejections())
        problems = []
        for request_id, each in refused.items():
            rejection, report = rejected[request_id], reported[request_id]
            if rejection.source is not each.node or rejection.code is not each.code:
                problems.append(f"{each.refusal} ({each.label}): {rejection.source} rejected it with "
                                f"{rejection.code.name}, not {each.code.name}")
            if (report.stage, report.success, report.failure_code) != (Stage.ACCEPTANCE, False, each.failure):
                problems.append(f"{each.refusal} ({each.label}): report {report.stage} "
                                f"success={report.success} {report.failure_code}, "
                                f"not a failed acceptance with {each.failure.name}")
            if archived[request_id] != each.code.name:
                problems.append(f"{each.refusal}: ground control archived {archived[request_id]}")
        assert not problems, "\n".join(problems)
