"""Record and replay against a real private broker: a recorded run of real service processes replayed
message for message, replay timing over a minute of recorded time, mission rewriting and topic filters
that leave other retained state alone, and the `record` command stopped every way there is."""

from __future__ import annotations

import asyncio
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from lunar_gs.protocols.codec import JsonCodec
from lunar_gs.protocols.commands import Telecommand
from lunar_gs.protocols.nodes import Node, Side
from lunar_gs.protocols.system import ClockState
from lunar_gs.protocols.topics import Topics
from lunar_gs.services.recording import (
    RecordedMessage,
    Recorder,
    RecordingHeader,
    Replayer,
    encode_header,
    encode_message,
    read_recording,
    rewrite_mission,
)
from lunar_gs.services.runtime.broker import EmbeddedBrokerProcess, MosquittoProcess, mosquitto_binary
from lunar_gs.services.runtime.bus import Bus, IncomingMessage
from tests.integration.kit import ServiceProcess

pytestmark = pytest.mark.integration

Essence = tuple[str, bytes, int, bool]


def essence(messages: Sequence[RecordedMessage | IncomingMessage], mission: str | None = None
            ) -> list[Essence]:
    """What a replay must reproduce: topic (under `mission` if given), bytes, QoS and retain flag."""
    return [(m.topic if mission is None else rewrite_mission(m.topic, mission), m.payload, m.qos, m.retain)
            for m in messages]


def assert_same_per_qos(got: list[Essence], expected: list[Essence]) -> None:
    """The same messages, in the same order within each QoS level (what MQTT orders: a QoS 2 message is
    passed on a round trip or two late, so messages of other levels may overtake it)."""
    assert sorted(got) == sorted(expected)
    for qos in (0, 1, 2):
        assert [e for e in got if e[2] == qos] == [e for e in expected if e[2] == qos], f"QoS {qos} order"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lunar_gs.services.cli", *args]


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Collector:
    """A bus handler that keeps what it hears, with the monotonic time of arrival."""

    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []
        self.arrivals: list[float] = []

    async def __call__(self, message: IncomingMessage) -> None:
        self.arrivals.append(time.monotonic())
        self.messages.append(message)


async def retained_state(url: str, mission: str, settle_s: float = 0.3) -> dict[str, bytes]:
    """The retained messages the broker holds for `mission`, as a fresh subscriber receives them."""
    heard = Collector()
    bus = Bus(url, f"{mission}-retained-{time.monotonic_ns()}")
    bus.subscribe(f"lgs/v1/{mission}/#", heard, qos=1)
    async with bus:
        await bus.wait_connected(5)
        await asyncio.sleep(settle_s)
    assert all(m.retain for m in heard.messages)
    return {m.topic: m.payload for m in heard.messages}


async def test_replaying_a_recorded_run_gives_the_same_messages(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path
) -> None:
    """Relay, drill and ground control run for a few seconds while recorded; the recording replayed under
    another mission, itself recorded, is the same messages in the same order, byte for byte, with the same
    QoS and retain flags."""
    url = mosquitto_session.url
    topics = Topics(mission)
    run_path = tmp_path / "run.lgsrec"
    async with Recorder(url, mission, run_path) as recorder:
        await recorder.wait_connected(5)
        processes = [ServiceProcess(node, url, mission, tmp_path, "--rate", "100", "--report", str(tmp_path))
                     .start() for node in (Node.RELAY_SATELLITE, Node.LANDER_DRILL, Node.GROUND_CONTROL)]
        try:
            await wait_until(lambda: recorder.summary.first_mission_time is not None, 30, "the mission clock")
            # a command, so the run has traffic of every kind: TC, verification, events, receipts, fast TM
            command = Telecommand(source=Node.GROUND_CONTROL, request_id="rec-1", target=Node.LANDER_DRILL,
                                  command="DRILL_TO_DEPTH", args={"target_depth_m": 1.0})
            async with Bus(url, f"{mission}-operator") as operator:
                await operator.wait_connected(5)
                await operator.publish(topics.tc(Side.GROUND, Node.LANDER_DRILL), JsonCodec().encode(command),
                                       qos=1)
                await asyncio.sleep(1.5)
        finally:
            for process in processes:  # SIGTERM all, then wait without blocking the recorder's loop
                if process.process is not None and process.alive():
                    process.process.terminate()
            await wait_until(lambda: not any(p.alive() for p in processes), 15, "the services to stop")
        await asyncio.sleep(0.2)  # their last words (offline statuses) reach the recorder
    assert recorder.summary.lost == 0
    run = read_recording(run_path)
    assert run.header.retain_as_published and run.header.mission == mission
    assert len(run.messages) == recorder.summary.messages >= 100
    kinds = {m.topic.split("/")[-1] for m in run.messages}
    assert {"clock", "status", "hk", "tc", "ack", "rx"} <= kinds, kinds
    assert {m.qos for m in run.messages} == {0, 1}
    clocks = [m for m in run.messages if m.topic == topics.clock]
    assert clocks and all(m.retain for m in clocks)
    # live retained publishes keep their flag (MQTT 5 retain as published): each service's online and
    # offline status, published while the recording ran
    statuses = [m for m in run.messages if m.topic.endswith("/status")]
    assert len(statuses) >= 6 and all(m.retain for m in statuses)
    # mission time is known from the first clock message on, and follows the mission clock
    first_clock = run.messages.index(clocks[0])
    assert all(m.mission_time is None for m in run.messages[:first_clock])
    assert all(m.mission_time is not None for m in run.messages[first_clock:])
    clock = JsonCodec().decode(clocks[0].payload)
    assert isinstance(clock, ClockState)
    at_clock = run.messages[first_clock]
    assert at_clock.mission_time == pytest.approx(clock.sim_at(at_clock.wall), abs=1.0)

    # replay it (four times faster) under another mission, and record that
    target = f"{mission}-replay"
    replay_path = tmp_path / "replay.lgsrec"
    async with Recorder(url, target, replay_path) as again, Bus(url, f"{mission}-replayer") as bus:
        await again.wait_connected(5)
        report = await Replayer(bus, rate=4.0, mission=target).replay(run)
        await wait_until(lambda: again.summary.messages >= len(run.messages), 10, "the replayed messages")
        await asyncio.sleep(0.2)  # nothing more arrives
    assert report.published == report.selected == report.recorded == len(run.messages)
    assert report.retained == sum(m.retain for m in run.messages)
    # lateness is reported; how small it stays is test_replay_keeps_to_its_schedule_without_drift's job,
    # on a broker of its own (here the shared broker and the other xdist worker can stall it 150 ms)
    assert report.p99_late_ms is not None and report.max_late_ms is not None
    assert 0.0 <= report.p99_late_ms <= report.max_late_ms
    replayed = read_recording(replay_path)
    assert essence(replayed.messages) == essence(run.messages, mission=target)


RATE = 6.0


async def test_replay_keeps_to_its_schedule_without_drift(mission: str, tmp_path: Path) -> None:
    """A minute of recorded time (a message every 50 ms, bursts every 5 s) replayed six times faster by the
    CLI: each arrival, measured at a subscriber, is within a few milliseconds of its schedule, and the error
    does not grow from the start to the end."""
    topic = Topics(mission).tm(Side.SPACE, Node.LANDER_DRILL)
    messages: list[RecordedMessage] = []
    for step in range(1201):  # 0 .. 60 s
        t = step * 0.05
        for _ in range(5 if step % 100 == 0 else 1):
            index = len(messages)
            payload = b"%06d" % index + bytes(200)
            messages.append(RecordedMessage(t=t, wall=1e9 + t, mission_time=None, topic=topic,
                                            payload=payload, qos=index % 2, retain=False))
    header = RecordingHeader(mission=mission, topic_filter=f"lgs/v1/{mission}/#", broker="synthetic",
                             started_wall=1e9, retain_as_published=True)
    path = tmp_path / "minute.lgsrec"
    path.write_bytes(encode_header(header) + b"".join(encode_message(m) for m in messages))

    # A broker of its own that delivers without Nagle's algorithm: otherwise Mosquitto holds a small message
    # for the subscriber's delayed ACK (up to 40 ms), which is the broker's timing, not the replay's.
    # (`lunar-gs replay` turns Nagle off on its own connection.)
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    broker = MosquittoProcess(extra_config=["set_tcp_nodelay true"]).start()
    try:
        heard = Collector()
        subscriber = Bus(broker.url, f"{mission}-timing")
        subscriber.subscribe(topic, heard, qos=1)
        async with subscriber:
            await subscriber.wait_connected(5)
            replay = await asyncio.create_subprocess_exec(
                *cli("replay", str(path), "--broker", broker.url, "--rate", str(RATE)),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(replay.communicate(), 60)
            await wait_until(lambda: len(heard.messages) >= len(messages), 5, "every message")
    finally:
        broker.stop()
    assert replay.returncode == 0, err.decode()
    assert [m.payload for m in heard.messages] == [m.payload for m in messages]
    # error of each arrival against the schedule start + t_i / rate, the start estimated as the median offset
    offsets = [arrival - m.t / RATE for arrival, m in zip(heard.arrivals, messages, strict=True)]
    start = statistics.median(offsets)
    errors_ms = [(offset - start) * 1000.0 for offset in offsets]
    ordered = sorted(abs(e) for e in errors_ms)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    assert p99 < 25.0, f"p99 |error| {p99:.1f} ms"
    tenth = len(errors_ms) // 10
    first, last = statistics.median(errors_ms[:tenth]), statistics.median(errors_ms[-tenth:])
    assert abs(last - first) < 5.0, f"drift: median error {first:.2f} ms first, {last:.2f} ms last"
    # the replayer's own account agrees
    summary = out.decode()
    assert f"replayed {len(messages)} of {len(messages)} selected messages" in summary
    late = re.search(r"lateness max ([\d.]+) ms, p99 ([\d.]+) ms", summary)
    assert late is not None and float(late.group(2)) < 25.0, summary


async def test_replay_under_another_mission_with_filters_leaves_other_retained_state(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path
) -> None:
    url = mosquitto_session.url
    source, target = Topics(mission), Topics(f"{mission}-b")
    clock = ClockState(source=Node.GROUND_CONTROL, epoch=1.7e9, sim_anchor=1.7e9, wall_anchor=time.time(),
                       rate=100.0, generation=1)
    path = tmp_path / "a.lgsrec"
    async with Bus(url, f"{mission}-pub") as pub:
        await pub.wait_connected(5)
        # retained before the recording starts
        await pub.publish(source.status(Node.RELAY_SATELLITE), b"relay-online", qos=1, retain=True)
        await pub.publish(source.clock, JsonCodec().encode(clock), qos=1, retain=True)
        await pub.flush(5)
        async with Recorder(url, mission, path) as recorder:
            await recorder.wait_connected(5)
            await wait_until(lambda: recorder.summary.messages == 2, 5, "the retained messages")
            live = [
                (source.tm(Side.SPACE, Node.LANDER_DRILL), bytes(range(256)), 0, False),
                (source.ev(Side.SPACE, Node.LANDER_DRILL), b"event", 1, False),
                (source.tc(Side.GROUND, Node.LANDER_DRILL), b"command", 2, False),
                (source.status(Node.LANDER_DRILL), b"drill-online", 1, True),  # a live retained publish
                (source.ack(Side.SPACE, Node.LANDER_DRILL), b"", 1, False),  # empty, not retained
            ]
            for topic, payload, qos, retain in live:
                await pub.publish(topic, payload, qos=qos, retain=retain)
            await pub.flush(5)
            await wait_until(lambda: recorder.summary.messages == 7, 5, "the live messages")
    recording = read_recording(path)
    assert sorted(essence(recording.messages[:2])) == sorted([
        (source.status(Node.RELAY_SATELLITE), b"relay-online", 1, True),
        (source.clock, JsonCodec().encode(clock), 1, True)])
    assert_same_per_qos(essence(recording.messages[2:]), live)
    assert all(m.mission_time is not None and m.mission_time > clock.epoch for m in recording.messages[2:])

    # the target mission has retained state of its own: one topic the recording lacks, one it holds
    # but the filters leave out
    keep = {target.status(Node.GROUND_CONTROL): b"gc-keep",
            target.status(Node.RELAY_SATELLITE): b"relay-keep"}
    async with Bus(url, f"{mission}-pub-b") as pub:
        await pub.wait_connected(5)
        for topic, payload in keep.items():
            await pub.publish(topic, payload, qos=1, retain=True)
        await pub.flush(5)
    # one filter names the recorded mission, the other the target: a message matching either is replayed
    filters = [f"lgs/v1/{mission}/space/#", f"{target.prefix}/sys/+/status"]
    heard = Collector()
    listener = Bus(url, f"{mission}-listen-b", mqtt5=True)
    listener.subscribe(f"{target.prefix}/#", heard, qos=2, retain_as_published=True)
    async with listener, Bus(url, f"{mission}-replayer") as bus:
        await listener.wait_connected(5)
        await wait_until(lambda: len(heard.messages) == 2, 5, "the target's retained state")
        report = await Replayer(bus, rate=20.0, topics=filters, mission=target.mission).replay(recording)
        await wait_until(lambda: len(heard.messages) == 2 + 5, 5, "the replayed messages")
        await asyncio.sleep(0.2)
    expected = [(rewrite_mission(topic, target.mission), payload, qos, retain)
                for topic, payload, qos, retain in essence(recording.messages)
                if "/space/" in topic or topic.endswith("/status")]
    assert len(expected) == 5 and report.selected == report.published == 5 and report.retained == 2
    assert essence(heard.messages[2:]) == expected
    # the retained relay status of the recording replaced the target's; nothing else was touched, and the
    # target's retained ground-control status, which the recording never held, is still there
    assert await retained_state(url, target.mission) == {
        target.status(Node.GROUND_CONTROL): b"gc-keep",
        target.status(Node.RELAY_SATELLITE): b"relay-online",
        target.status(Node.LANDER_DRILL): b"drill-online",
    }
    # and a replay that leaves every status out changes no retained state at all
    before = await retained_state(url, target.mission)
    async with Bus(url, f"{mission}-replayer-2") as bus:
        await Replayer(bus, rate=100.0, topics=[f"{target.prefix}/space/#"], mission=target.mission).replay(
            recording)
    assert await retained_state(url, target.mission) == before


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def test_the_record_command_leaves_a_readable_file_however_it_stops(
    mosquitto_session: MosquittoProcess, mission: str, tmp_path: Path
) -> None:
    """Three `lunar-gs record` processes hear the same traffic: one stops after --duration, one on Ctrl-C
    (SIGINT), one is killed (SIGKILL). Each file holds every message; a file cut mid-line reads up to the
    cut."""
    url = mosquitto_session.url
    topics = Topics(mission)
    files = {how: tmp_path / f"{how}.lgsrec" for how in ("duration", "sigint", "sigkill")}
    processes = {}
    for how, path in files.items():
        extra = ["--duration", "2"] if how == "duration" else []
        processes[how] = await asyncio.create_subprocess_exec(
            *cli("record", "--mission", mission, "--broker", url, "--out", str(path), *extra),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    for how, process in processes.items():  # each says so once it is subscribed
        assert process.stderr is not None
        said = [await asyncio.wait_for(process.stderr.readline(), 20)]
        while said[-1] and not said[-1].startswith(b"recording lgs/v1/"):
            said.append(await asyncio.wait_for(process.stderr.readline(), 20))
        assert said[-1], (how, said)
    sent = [(topics.tm(Side.SPACE, Node.LANDER_DRILL), b"tm-%d" % i, i % 3, False) for i in range(40)]
    sent.append((topics.status(Node.LANDER_DRILL), b"online", 1, True))
    async with Bus(url, f"{mission}-pub") as pub:
        await pub.wait_connected(5)
        for topic, payload, qos, retain in sent:
            await pub.publish(topic, payload, qos=qos, retain=retain)
        await pub.flush(5)
    # every message the recorder has received is in its file while it runs: then kill it
    await wait_until(lambda: lines_in(files["sigkill"]) == 1 + len(sent), 5, "the messages on disk")
    processes["sigkill"].kill()
    processes["sigint"].send_signal(signal.SIGINT)
    results = {how: await asyncio.wait_for(p.communicate(), 15) for how, p in processes.items()}
    assert processes["sigkill"].returncode == -signal.SIGKILL
    for how in ("duration", "sigint"):
        assert processes[how].returncode == 0, results[how]
        out = results[how][0].decode()
        assert f"recorded {len(sent)} messages (1 retained, 2 topics" in out, out
    for path in files.values():
        recording = read_recording(path)
        assert_same_per_qos(essence(recording.messages), sent)
        assert not recording.truncated
    # a recorder killed mid-write leaves a last line cut short: read up to the cut
    whole = read_recording(files["sigkill"]).messages
    data = files["sigkill"].read_bytes()
    files["sigkill"].write_bytes(data[:-20])
    cut = read_recording(files["sigkill"])
    assert cut.truncated and cut.messages == whole[:-1]


async def test_a_recorder_on_a_broker_without_mqtt5_records_with_311_flags(mission: str, tmp_path: Path
                                                                           ) -> None:
    """The embedded amqtt broker speaks MQTT 3.1.1 only: the recorder falls back, says so in the header, and
    still records retained messages present at the start as retained."""
    broker = EmbeddedBrokerProcess().start()
    try:
        topics = Topics(mission)
        async with Bus(broker.url, f"{mission}-pub") as pub:
            await pub.wait_connected(10)
            await pub.publish(topics.status(Node.LANDER_DRILL), b"online", qos=1, retain=True)
            await pub.flush(5)
            path = tmp_path / "amqtt.lgsrec"
            async with Recorder(broker.url, mission, path) as recorder:
                await recorder.wait_connected(10)
                await wait_until(lambda: recorder.summary.messages == 1, 5, "the retained status")
                await pub.publish(topics.ev(Side.SPACE, Node.LANDER_DRILL), b"event", qos=1)
                await pub.flush(5)
                await wait_until(lambda: recorder.summary.messages == 2, 5, "the event")
    finally:
        broker.stop()
    recording = read_recording(path)
    assert not recording.header.retain_as_published
    # (not the QoS: amqtt 0.12 delivers at the subscription's QoS, 2, rather than the publisher's)
    assert [(m.topic, m.payload, m.retain) for m in recording.messages] == [
        (topics.status(Node.LANDER_DRILL), b"online", True),
        (topics.ev(Side.SPACE, Node.LANDER_DRILL), b"event", False)]

