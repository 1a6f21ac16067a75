"""End-to-end delivery without a broker: what is re-sent, when, and what a receiver takes or refuses."""

from lunar_gs.protocols.nodes import Node
from lunar_gs.services.runtime.delivery import DeliveryOutbox, DeliveryRecord

BOTH = frozenset({Node.GROUND_CONTROL, Node.LANDER_ARM})


class Wall:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_unconfirmed_messages_are_resent_in_order_with_backoff_until_every_receiver_confirms() -> None:
    wall = Wall()
    outbox = DeliveryOutbox(resend_after_s=1.0, max_backoff_s=4.0, monotonic=wall)
    for seq in range(3):
        outbox.track("ev", "t/ev", BOTH, seq, f"m{seq}".encode())
    assert outbox.due() == []
    wall.now = 1.0
    assert outbox.due() == [("t/ev", b"m0"), ("t/ev", b"m1"), ("t/ev", b"m2")]
    wall.now = 2.5
    assert outbox.due() == []  # backed off to 2 s
    assert outbox.confirm("ev", Node.GROUND_CONTROL, 2) == 0  # the arm has not confirmed yet
    assert outbox.confirm("ev", Node.LANDER_ARM, 0) == 1
    assert outbox.unconfirmed == 2
    wall.now = 3.0
    assert outbox.due() == []  # a confirmation restarts the wait
    wall.now = 3.5
    assert outbox.due() == [("t/ev", b"m1"), ("t/ev", b"m2")]
    assert outbox.confirm("ev", Node.LANDER_ARM, 2) == 2 and outbox.unconfirmed == 0
    assert outbox.confirm("ev", Node.RELAY_SATELLITE, 9) == 0  # not a receiver of this stream
    assert outbox.resent == 5


def test_outbox_survives_a_restart_through_its_snapshot() -> None:
    wall = Wall()
    outbox = DeliveryOutbox(monotonic=wall)
    outbox.track("ack", "t/ack", frozenset({Node.GROUND_CONTROL}), 7, b"r7")
    restored = DeliveryOutbox(monotonic=wall)
    restored.restore(outbox.snapshot())
    assert restored.due() == [("t/ack", b"r7")]  # re-sent at once: the receipt may have died with us


def test_receiver_drops_duplicates_and_tracks_holes() -> None:
    record = DeliveryRecord()
    drill = Node.LANDER_DRILL
    assert record.accept(drill, "ev", 0)
    assert record.accept(drill, "ev", 2)
    assert not record.accept(drill, "ev", 2)
    assert record.holes() == {(drill, "ev"): 1}
    assert record.take_receipts() == [(drill, "ev", 0)]
    assert record.accept(drill, "ev", 1)
    assert not record.accept(drill, "ev", 0)
    assert record.take_receipts() == [(drill, "ev", 2)]
    assert record.holes() == {} and record.duplicates == 2
    assert record.summary() == {"lander-drill/ev": {"first": 0, "upto": 2, "accepted": 3, "missing": 0}}
    assert record.take_receipts() == []
