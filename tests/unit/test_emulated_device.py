"""The firmware side of a device behind a link (hardware_sim/remote/emulated.py), without a wire: commands
execute once per sequence number, the mailbox keeps events until acknowledged, the host watchdog makes the
drill safe, and the emulator's own fault silences it for a while (wall time, on a fake clock here)."""

from __future__ import annotations

from lunar_gs.hardware_sim.backends import build_device
from lunar_gs.hardware_sim.remote.emulated import MAILBOX_DEPTH, STOP_ANSWERING, EmulatedDevice, build_emulated
from lunar_gs.hardware_sim.remote.link import FAULT_WORD_WATCHDOG


class FakeWall:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drill(wall: FakeWall) -> EmulatedDevice:
    return build_emulated("drill", build_device("drill", "sim", {}, 1, 0.0), wall=wall)


def test_a_command_executes_once_per_sequence_number() -> None:
    emulated = _drill(FakeWall())
    first = emulated.command(7, "start", {"target_depth_m": 0.5, "rpm": 100.0, "percussion": False})
    again = emulated.command(7, "start", {"target_depth_m": 0.5, "rpm": 100.0, "percussion": False})
    assert first.ok and again == first
    assert emulated.commands_executed == 1 and emulated.duplicates_replayed == 1
    busy = emulated.command(8, "start", {"target_depth_m": 0.5, "rpm": 100.0, "percussion": False})
    assert busy.code == "busy"  # a new number is a new command: the drill is already drilling
    assert emulated.command(9, "fly", {}).code == "unknown_command"
    assert emulated.command(10, "retract", {"distance_m": "far"}).code == "invalid_arguments"


def test_the_mailbox_keeps_events_until_the_host_acknowledges_them() -> None:
    emulated = _drill(FakeWall())
    emulated.command(1, "self_test", {})
    emulated.step(10.0)
    head = emulated.read().event_head
    assert [e.name for e in emulated.events(0)] == ["self_test_passed"]
    assert emulated.events(0) == emulated.events(0)  # reading does not consume
    emulated.ack(head)
    assert emulated.events(0) == [] and emulated.read().event_head == head


def test_an_unacknowledged_mailbox_is_bounded_and_counts_what_it_drops() -> None:
    emulated = _drill(FakeWall())
    for seq in range(MAILBOX_DEPTH + 5):
        emulated.command(seq + 1, "self_test", {})
    assert len(emulated.events(0)) == MAILBOX_DEPTH and emulated.events_dropped == 5


def test_an_expired_watchdog_stops_the_drill_and_says_so() -> None:
    wall = FakeWall()
    emulated = _drill(wall)
    emulated.kick(1.0)
    assert emulated.command(1, "start", {"target_depth_m": 1.0, "rpm": 120.0, "percussion": False}).ok
    emulated.step(30.0)
    assert emulated.read().fields["mode"] == "drilling"
    wall.now += 0.9
    emulated.step(40.0)
    assert not emulated.watchdog_expired
    wall.now += 1.5  # the host went quiet
    emulated.step(50.0)
    reading = emulated.read()
    assert reading.fields["mode"] == "idle" and reading.fault_word & FAULT_WORD_WATCHDOG
    names = [e.name for e in emulated.events(0)]
    assert "drill_stopped" in names and names[-1] == "watchdog_expired"
    emulated.kick(1.0)
    assert not emulated.watchdog_expired and not emulated.read().fault_word & FAULT_WORD_WATCHDOG


def test_stop_answering_silences_the_device_for_its_seconds_of_wall_time() -> None:
    wall = FakeWall()
    emulated = _drill(wall)
    assert emulated.inject({"kind": STOP_ANSWERING, "params": {"seconds": 3.0}}).ok
    assert not emulated.answering()
    wall.now += 2.9
    assert not emulated.answering()
    wall.now += 0.2
    assert emulated.answering()


def test_a_model_fault_goes_into_the_emulated_model_and_reports_its_symptom() -> None:
    emulated = _drill(FakeWall())
    assert emulated.inject({"fault_id": "f1", "kind": "drill.feed_stuck", "params": {}}).ok
    assert emulated.inject({"fault_id": "f2", "kind": "arm.scoop_jam", "params": {}}).code == "invalid_arguments"
    emulated.command(1, "start", {"target_depth_m": 1.0, "rpm": 120.0, "percussion": False})
    emulated.step(120.0)
    symptoms = [e for e in emulated.events(0) if e.symptom_of == "f1"]
    assert symptoms and not symptoms[0].data["recovered"]
    assert emulated.read().fields["depth_m"] == 0.0
    assert emulated.clear("f1").ok and emulated.clear("f1").code == "invalid_arguments"
