"""Record and replay, the parts without a broker: the file format, cut-short and corrupt files, topic
filters, mission rewriting and the replay schedule."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from lunar_gs.protocols.topics import TopicError
from lunar_gs.services.recording import (
    RecordedMessage,
    RecordingError,
    RecordingHeader,
    ScheduledMessage,
    decode_header,
    decode_message,
    encode_header,
    encode_message,
    percentile,
    plan_replay,
    read_recording,
    rewrite_mission,
    topic_matches,
    validate_filter,
)

HEADER = RecordingHeader(mission="m1", topic_filter="lgs/v1/m1/#", broker="mqtt://127.0.0.1:1883",
                         started_wall=1_732_650_000.25, retain_as_published=True)


def message(t: float, topic: str = "lgs/v1/m1/space/lander-drill/tm/hk", payload: bytes = b"{}", qos: int = 0,
            retain: bool = False, mission_time: float | None = 1_717_280_596.5) -> RecordedMessage:
    return RecordedMessage(t=t, wall=1_732_650_000.25 + t, mission_time=mission_time, topic=topic,
                           payload=payload, qos=qos, retain=retain)


MESSAGES = [
    message(0.001, "lgs/v1/m1/sys/clock", b'{"schema_name":"clock"}', qos=1, retain=True, mission_time=None),
    message(0.5, payload=bytes(range(256))),  # every byte value survives
    message(0.75, "lgs/v1/m1/ground/lander-drill/ev", b"", qos=1),  # an empty payload too
    message(1.0, "lgs/v1/m1/sys/relay-satellite/status", b"online", qos=2, retain=True),
    message(2.5, "lgs/v1/m1/space/lander-drill/tm/hk", "é✓".encode()),
]


def write(path: Path, messages: list[RecordedMessage] = MESSAGES) -> bytes:
    data = encode_header(HEADER) + b"".join(encode_message(m) for m in messages)
    path.write_bytes(data)
    return data


# ---- the file format --------------------------------------------------------------------------------------

def test_header_and_messages_round_trip_exactly() -> None:
    assert decode_header(encode_header(HEADER)) == HEADER
    for original in MESSAGES:
        line = encode_message(original)
        assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the payload
        assert decode_message(line) == original


def test_a_recording_reads_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.lgsrec"
    write(path)
    recording = read_recording(path)
    assert recording.header == HEADER
    assert recording.messages == MESSAGES
    assert not recording.truncated


def test_a_file_cut_anywhere_in_its_last_line_reads_up_to_the_cut(tmp_path: Path) -> None:
    data = write(tmp_path / "whole")
    last_line_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path = tmp_path / "cut"
    for cut in range(last_line_start + 1, len(data) - 1):  # every cut inside the last line
        path.write_bytes(data[:cut])
        with capture_logs() as logs:
            recording = read_recording(path)
        assert recording.messages == MESSAGES[:-1], cut
        assert recording.truncated
        assert [e["event"] for e in logs] == ["recording_truncated"]
        assert logs[0]["line"] == len(MESSAGES) + 1
    # cut exactly before the final newline: the line is complete JSON, so nothing is lost
    path.write_bytes(data[:-1])
    assert read_recording(path).messages == MESSAGES


def test_a_file_cut_at_a_line_end_is_not_truncated(tmp_path: Path) -> None:
    data = write(tmp_path / "whole")
    path = tmp_path / "cut"
    path.write_bytes(data[: data.index(b"\n") + 1])  # the header only: a recording of nothing
    recording = read_recording(path)
    assert recording.messages == [] and not recording.truncated


@pytest.mark.parametrize(("line", "why"), [
    (b"{not json\n", "not JSON"),
    (b"[1, 2]\n", "expected a JSON object"),
    (b'{"t":"soon","wall":1,"mission_time":null,"topic":"a","qos":0,"retain":false,"payload":""}\n', "'t'"),
    (b'{"t":1,"wall":1,"mission_time":null,"topic":"a/#","qos":0,"retain":false,"payload":""}\n', "wildcard"),
    (b'{"t":1,"wall":1,"mission_time":null,"topic":"a","qos":3,"retain":false,"payload":""}\n', "'qos'"),
    (b'{"t":1,"wall":1,"mission_time":null,"topic":"a","qos":true,"retain":false,"payload":""}\n', "'qos'"),
    (b'{"t":1,"wall":1,"mission_time":null,"topic":"a","qos":0,"retain":0,"payload":""}\n', "'retain'"),
    (b'{"t":1,"wall":1,"mission_time":null,"topic":"a","qos":0,"retain":false,"payload":"@@"}\n', "base64"),
    (b'{"t":1,"wall":1,"topic":"a","qos":0,"retain":false,"payload":""}\n', "'mission_time'"),
    (b"\n", "not JSON"),
])
def test_a_corrupt_line_before_the_end_names_the_file_and_line(tmp_path: Path, line: bytes, why: str) -> None:
    data = write(tmp_path / "whole")
    lines = data.splitlines(keepends=True)
    path = tmp_path / "corrupt"
    path.write_bytes(b"".join([*lines[:3], line, *lines[3:]]))
    with pytest.raises(RecordingError, match=rf"^{re.escape(str(path))}:4: .*{why}"):
        read_recording(path)
    # a corrupt last line that ends with its newline was written whole: corruption, not a cut
    path.write_bytes(b"".join([*lines, line]))
    with pytest.raises(RecordingError, match=rf"^{re.escape(str(path))}:{len(lines) + 1}: "):
        read_recording(path)


def test_files_that_are_not_recordings_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "x"
    with pytest.raises(RecordingError, match="cannot read recording .*No such file"):
        read_recording(path)
    path.write_bytes(b"")
    with pytest.raises(RecordingError, match=r":1: empty file"):
        read_recording(path)
    path.write_bytes(b'{"format": "lunar-gs-rec')  # a header cut short is not a recording either
    with pytest.raises(RecordingError, match=r":1: header: not JSON"):
        read_recording(path)
    path.write_bytes(b'{"schema_name": "clock"}\n')
    with pytest.raises(RecordingError, match=r":1: header: not a Lunar GS recording"):
        read_recording(path)
    path.write_bytes(encode_header(HEADER).replace(b'"version":1', b'"version":2'))
    with pytest.raises(RecordingError, match="version 2 is not supported"):
        read_recording(path)
    with pytest.raises(RecordingError, match="cannot read recording"):
        read_recording(tmp_path)  # a folder


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    line = encode_message(MESSAGES[1]).replace(b'{"t"', b'{"future":[1,2],"t"')
    assert decode_message(line) == MESSAGES[1]


# ---- topic filters ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    ("lgs/v1/m1/#", "lgs/v1/m1/space/lander-drill/tm/hk", True),
    ("lgs/v1/m1/#", "lgs/v1/m1", True),  # '#' also matches the parent level
    ("lgs/v1/m1/#", "lgs/v1/m2/sys/clock", False),
    ("#", "lgs/v1/m1/sys/clock", True),
    ("#", "$SYS/broker/uptime", False),
    ("+/v1/#", "$SYS/v1/x", False),
    ("lgs/v1/+/sys/clock", "lgs/v1/m1/sys/clock", True),
    ("lgs/v1/+/sys/clock", "lgs/v1/m1/sys/clock/x", False),
    ("lgs/v1/m1/+/+/tm/+", "lgs/v1/m1/space/lander-drill/tm/hk", True),
    ("lgs/v1/m1/+/+/tm/+", "lgs/v1/m1/space/lander-drill/ev", False),
    ("lgs/v1/m1/+", "lgs/v1/m1", False),
    ("a/+/c", "a//c", True),  # '+' matches an empty level
    ("a/b", "a/b", True),
    ("a/b", "a/b/", False),
    ("a/b", "A/b", False),
])
def test_topic_filters_match_as_mqtt_does(topic_filter: str, topic: str, matches: bool) -> None:
    assert validate_filter(topic_filter) == topic_filter
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", "a/+b", "#/", "a\0b"])
def test_bad_filters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="filter"):
        validate_filter(bad)


def test_rewrite_mission_changes_only_the_mission_level() -> None:
    assert rewrite_mission("lgs/v1/m1/space/drill/tm/hk", "new") == "lgs/v1/new/space/drill/tm/hk"
    assert rewrite_mission("lgs/v1/m1", "new") == "lgs/v1/new"
    with pytest.raises(ValueError, match="not under lgs/v1"):
        rewrite_mission("other/v1/m1/x", "new")


# ---- the replay schedule ------------------------------------------------------------------------------

def test_the_schedule_is_recorded_offsets_divided_by_the_rate() -> None:
    plan = plan_replay(MESSAGES, rate=2.0)
    assert [p.at for p in plan] == [(m.t - MESSAGES[0].t) / 2.0 for m in MESSAGES]
    assert plan[1] == ScheduledMessage(at=(0.5 - 0.001) / 2, topic=MESSAGES[1].topic,
                                       payload=bytes(range(256)), qos=0, retain=False)
    assert [(p.topic, p.payload, p.qos, p.retain) for p in plan] == [
        (m.topic, m.payload, m.qos, m.retain) for m in MESSAGES]
    assert [p.at for p in plan_replay(MESSAGES, rate=0.5)] == [(m.t - 0.001) * 2 for m in MESSAGES]
    assert [p.at for p in plan_replay(MESSAGES, rate=math.inf)] == [0.0] * len(MESSAGES)


def test_filters_keep_a_subset_timed_from_the_first_kept_message() -> None:
    plan = plan_replay(MESSAGES, topics=["lgs/v1/m1/+/lander-drill/#"])
    assert [p.topic for p in plan] == [MESSAGES[i].topic for i in (1, 2, 4)]
    assert [p.at for p in plan] == [0.0, 0.25, 2.0]
    several = plan_replay(MESSAGES, topics=["lgs/v1/m1/sys/clock", "lgs/v1/m1/sys/+/status"])
    assert [p.topic for p in several] == [MESSAGES[0].topic, MESSAGES[3].topic]
    assert plan_replay(MESSAGES, topics=["lgs/v1/other/#"]) == []


def test_mission_rewrite_applies_to_every_topic_and_filters_match_either_name() -> None:
    plan = plan_replay(MESSAGES, mission="rehearsal-2")
    assert [p.topic for p in plan] == [m.topic.replace("/m1/", "/rehearsal-2/") for m in MESSAGES]
    by_old = plan_replay(MESSAGES, mission="rehearsal-2", topics=["lgs/v1/m1/sys/#"])
    by_new = plan_replay(MESSAGES, mission="rehearsal-2", topics=["lgs/v1/rehearsal-2/sys/#"])
    assert by_old == by_new
    assert [p.topic for p in by_new] == ["lgs/v1/rehearsal-2/sys/clock",
                                         "lgs/v1/rehearsal-2/sys/relay-satellite/status"]


def test_retain_flags_are_exactly_the_recorded_ones() -> None:
    plan = plan_replay(MESSAGES, mission="x")
    assert [p.retain for p in plan] == [m.retain for m in MESSAGES]
    assert not any(p.retain and not m.retain for p, m in zip(plan, MESSAGES, strict=True))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"rate": 0}, ValueError, "rate"),
    ({"rate": -1.0}, ValueError, "rate"),
    ({"rate": math.nan}, ValueError, "rate"),
    ({"topics": ["lgs/#/x"]}, ValueError, "filter"),
    ({"mission": "bad mission"}, TopicError, "mission"),
    ({"mission": ""}, TopicError, "mission"),
])
def test_bad_replay_arguments_are_refused(kwargs: dict[str, object], error: type[Exception],
                                          match: str) -> None:
    with pytest.raises(error, match=match):
        plan_replay(MESSAGES, **kwargs)  # type: ignore[arg-type]


def test_percentile() -> None:
    assert percentile([], 0.99) is None
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([float(x) for x in range(101)], 0.99) == pytest.approx(99.0)
    assert percentile([1.0, 2.0], 0.5) == pytest.approx(1.5)


# ---- the CLI refuses bad input with one line, never a traceback -----------------------------------------

def run_cli(*args: str) -> tuple[int, str]:
    """The CLI in this process; the logging it configures (onto the runner's stream) is put back after."""
    from typer.testing import CliRunner

    from lunar_gs.services.cli import app

    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(("args", "code", "says"), [
    (["replay", "{missing}"], 2, "cannot read recording {missing}: No such file"),
    (["replay", "{corrupt}"], 2, "{corrupt}:3: not JSON"),
    (["replay", "{good}", "--topics", "lgs/#/x"], 2, "topic filter 'lgs/#/x': '#' must be a whole level"),
    (["replay", "{good}", "--mission", "no/slashes"], 2, "mission 'no/slashes' must be"),
    (["replay", "{good}", "--rate", "0"], 2, "rate must be a positive number"),
    (["replay", "{good}", "--rate", "nan"], 2, "rate must be a positive number"),
    (["replay", "{good}", "--broker", "localhost:1883"], 2, "bad broker URL"),
    (["replay", "{good}", "--broker", "mqtt://127.0.0.1:1"], 3, "cannot connect to the broker at mqtt://127.0.0.1:1"),
    (["record", "--out", "{good}", "--mission", "m1", "--broker", "mqtt://127.0.0.1:1"], 2, "{good} exists"),
    (["record", "--out", "{new}", "--mission", "m 1", "--broker", "mqtt://127.0.0.1:1"], 2, "mission 'm 1'"),
    (["record", "--out", "{new}", "--mission", "m1", "--broker", "tcp://x"], 2, "bad broker URL"),
    (["record", "--out", "{nofolder}", "--mission", "m1"], 2, "folder {nofolder_parent} does not exist"),
    (["record", "--out", "{new}", "--mission", "m1", "--broker", "mqtt://127.0.0.1:1"], 3, "cannot connect"),
])
def test_bad_input_gets_one_line_and_an_exit_code(tmp_path: Path, args: list[str], code: int,
                                                   says: str) -> None:
    good, corrupt = tmp_path / "good [1].lgsrec", tmp_path / "corrupt.lgsrec"  # brackets: no markup
    data = write(good)
    lines = data.splitlines(keepends=True)
    corrupt.write_bytes(b"".join([*lines[:2], b"{oops\n", *lines[2:]]))
    names = {"missing": tmp_path / "missing.lgsrec", "good": good, "corrupt": corrupt,
             "new": tmp_path / "new", "nofolder": tmp_path / "no" / "x", "nofolder_parent": tmp_path / "no"}
    exit_code, output = run_cli(*(a.format(**names) for a in args))
    assert exit_code == code, output
    assert output.startswith("error: ") and output.count("\n") == 1, output
    assert says.format(**names) in output
    assert not (tmp_path / "new").exists()
