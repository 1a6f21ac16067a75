"""Link faults, pure: each kind's effect on a message's fate, their composition, reproducibility from the
seed, the CRC-16 frame check and clearing."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lunar_gs.hardware_sim.faults import FaultNotApplicable, ModelFault
from lunar_gs.hardware_sim.link_faults import Fate, LinkFaults, flip_bits, frame_check

PAYLOAD = b'{"schema_name":"tm.lander-drill.hk","seq":1,"depth_m":0.5}'
DRILL = "lander-drill"
LIGHT = 1.3


def fault(fault_id: str, kind: str, seed: int = 7, **params: object) -> ModelFault:
    return ModelFault(fault_id, kind, None, params, seed)  # type: ignore[arg-type]


def fates(links: LinkFaults, n: int = 200, direction: str = "down", node: str | None = DRILL,
          payload: bytes = PAYLOAD, start: float = 1000.0, step: float = 1.0) -> list[Fate]:
    return [links.decide(direction, node, payload, start + i * step, start + i * step + LIGHT) for i in range(n)]


def nominal(fate: Fate, now: float) -> bool:
    return not fate.held and fate.lost == 0 and len(fate.copies) == 1 and fate.copies[0].due == now + LIGHT \
        and fate.copies[0].payload == PAYLOAD and fate.copies[0].crc_error is None


def test_no_fault_leaves_every_message_alone() -> None:
    links = LinkFaults()
    assert all(nominal(f, 1000.0 + i) for i, f in enumerate(fates(links)))
    assert links.drain_symptoms() == []


def test_los_holds_only_its_direction_and_node_and_clearing_releases() -> None:
    links = LinkFaults()
    links.add(fault("los", "link.los"), "down", DRILL)
    assert links.decide("down", DRILL, PAYLOAD, 10.0, 11.3).held
    assert links.out_of_signal("down", DRILL) and not links.out_of_signal("up", DRILL)
    assert not links.out_of_signal("down", "lander-arm") and not links.relay_out_of_signal()
    assert nominal(links.decide("up", DRILL, PAYLOAD, 10.0, 10.0 + LIGHT), 10.0)
    assert nominal(links.decide("down", "lander-arm", PAYLOAD, 10.0, 10.0 + LIGHT), 10.0)
    [symptom] = links.drain_symptoms()
    assert symptom.fault_id == "los" and symptom.time == 10.0 and "out of signal" in symptom.what
    assert links.remove("los") and not links.remove("los")
    assert nominal(links.decide("down", DRILL, PAYLOAD, 20.0, 20.0 + LIGHT), 20.0)


def test_relay_wide_los_covers_every_node() -> None:
    links = LinkFaults()
    links.add(fault("los", "link.los"), "up", None)
    assert links.relay_out_of_signal()
    assert links.decide("up", DRILL, PAYLOAD, 1.0, 2.3).held
    assert links.decide("up", "ascent-vehicle", PAYLOAD, 1.0, 2.3).held
    assert not links.decide("down", DRILL, PAYLOAD, 1.0, 2.3).held
    links.note_relay_los(5.0)  # already symptomatic: the first held message was the symptom
    assert [s.time for s in links.drain_symptoms()] == [1.0]
    links.add(fault("quiet", "link.los"), "down", None)
    links.note_relay_los(6.0)
    assert [(s.fault_id, s.time) for s in links.drain_symptoms()] == [("quiet", 6.0)]


def test_full_loss_drops_everything_and_partial_loss_about_its_share() -> None:
    links = LinkFaults()
    links.add(fault("all", "link.loss", percent=100.0), "down", DRILL)
    assert all(f.copies == () and f.lost == 1 for f in fates(links))
    links.remove("all")
    links.add(fault("some", "link.loss", percent=30.0), "down", DRILL)
    lost = sum(f.lost for f in fates(links, n=2000))
    assert 500 < lost < 700


def test_losses_combine_as_independent_chances() -> None:
    links = LinkFaults()
    links.add(fault("a", "link.loss", seed=1, percent=50.0), "down", DRILL)
    links.add(fault("b", "link.loss", seed=1, percent=50.0), "down", None)  # same seed: still independent
    lost = sum(f.lost for f in fates(links, n=4000))
    assert 2800 < lost < 3200  # 1 - 0.5 * 0.5 = 75 %


def test_latency_adds_up_and_jitter_stays_within_its_bound() -> None:
    links = LinkFaults()
    links.add(fault("a", "link.latency", extra_s=5.0), "down", DRILL)
    [fate] = fates(links, n=1)
    assert fate.copies[0].due == pytest.approx(1000.0 + LIGHT + 5.0)
    links.add(fault("b", "link.latency", extra_s=2.0, jitter_s=1.0), "down", None)
    extras = [f.copies[0].due - (1000.0 + i + LIGHT) for i, f in enumerate(fates(links))]
    assert all(7.0 <= e <= 8.0 for e in extras) and max(extras) - min(extras) > 0.5
    assert links.extra_delay_s("down") == pytest.approx(2.5) and links.extra_delay_s("up") == 0.0
    assert {s.fault_id for s in links.drain_symptoms()} == {"a", "b"}


def test_duplicate_sends_twice_and_two_duplicates_can_send_three_times() -> None:
    links = LinkFaults()
    links.add(fault("d", "link.duplicate", percent=100.0), "up", DRILL)
    [fate] = fates(links, n=1, direction="up")
    assert [c.payload for c in fate.copies] == [PAYLOAD, PAYLOAD]
    links.add(fault("e", "link.duplicate", percent=100.0), "up", None)
    [fate] = fates(links, n=1, direction="up")
    assert len(fate.copies) == 3


def test_reorder_holds_picked_messages_back_so_later_ones_overtake() -> None:
    links = LinkFaults()
    links.add(fault("r", "link.reorder", percent=50.0, hold_s=3.0), "down", DRILL)
    dues = [f.copies[0].due for f in fates(links, n=100)]
    held = [d - (1000.0 + i + LIGHT) for i, d in enumerate(dues)]
    assert set(round(h, 9) for h in held) == {0.0, 3.0}
    assert dues != sorted(dues), "a held message must arrive after one sent later"


def test_bandwidth_is_a_serial_channel() -> None:
    links = LinkFaults()
    links.add(fault("bw", "link.bandwidth", bytes_per_s=10.0), "down", DRILL)
    size = len(PAYLOAD) / 10.0
    out = fates(links, n=5, step=0.0)  # five messages at the same moment
    assert [f.copies[0].due for f in out] == pytest.approx([1000.0 + LIGHT + size * (k + 1) for k in range(5)])
    assert links.on_board(1000.0) == 5 and links.on_board(1000.0 + 2.5 * size) == 3
    assert links.on_board(1000.0 + 6 * size) == 0
    [wait] = out[1].copies[0].waits
    assert wait == ("bw", 1000.0, pytest.approx(1000.0 + 2 * size))
    # a channel that has gone idle sends at once again
    later = links.decide("down", DRILL, PAYLOAD, 2000.0, 2000.0 + LIGHT)
    assert later.copies[0].due == pytest.approx(2000.0 + LIGHT + size)


def test_corruption_is_caught_by_the_frame_check() -> None:
    links = LinkFaults()
    links.add(fault("c", "link.corrupt", percent=100.0, bits=3), "down", DRILL)
    for fate in fates(links, n=50):
        [copy] = fate.copies
        assert copy.payload != PAYLOAD
        assert sum(bin(a ^ b).count("1") for a, b in zip(copy.payload, PAYLOAD, strict=True)) == 3
        assert copy.crc_error == (frame_check(PAYLOAD), frame_check(copy.payload))
    [symptom] = links.drain_symptoms()
    assert "CRC-16 caught it" in symptom.what


def test_a_crc_collision_passes_the_corrupted_bytes_on() -> None:
    # CRC-16 is linear: an error pattern that is a multiple of the generator polynomial
    # (x^16 + x^12 + x^5 + 1) leaves the CRC unchanged, so the frame check cannot see it
    data = bytes(16)
    positions = [7, 3, 12, 23]  # bits x^16, x^12, x^5, x^0 of the first three bytes (MSB first)

    class Rigged:  # a random stream that always fires and picks exactly those bits
        def random(self) -> float:
            return 0.0

        def sample(self, population: range, k: int) -> list[int]:
            return positions[:k]

    collided = flip_bits(data, 4, Rigged())  # type: ignore[arg-type]
    assert collided != data and frame_check(collided) == frame_check(data)
    links = LinkFaults()
    links.add(fault("c", "link.corrupt", percent=100.0, bits=4), "down", DRILL)
    links._faults["c"].rng = Rigged()  # type: ignore[assignment]
    [copy] = links.decide("down", DRILL, data, 0.0, LIGHT).copies
    assert copy.payload == collided and copy.crc_error is None
    assert "collision" in links.drain_symptoms()[0].what


@given(payload=st.binary(min_size=1, max_size=512), position=st.integers(min_value=0))
def test_any_single_flipped_bit_of_any_payload_is_caught(payload: bytes, position: int) -> None:
    position %= len(payload) * 8
    flipped = bytearray(payload)
    flipped[position // 8] ^= 1 << (position % 8)
    assert frame_check(bytes(flipped)) != frame_check(payload)


def test_the_same_seed_gives_exactly_the_same_fates() -> None:
    def run(seed: int) -> list[Fate]:
        links = LinkFaults()
        for kind, params in (("link.loss", {"percent": 20.0}), ("link.corrupt", {"percent": 20.0, "bits": 2}),
                             ("link.duplicate", {"percent": 20.0}),
                             ("link.reorder", {"percent": 20.0, "hold_s": 2.0}),
                             ("link.latency", {"extra_s": 1.0, "jitter_s": 0.5}),
                             ("link.bandwidth", {"bytes_per_s": 200.0})):
            links.add(fault(kind, kind, seed=seed, **params), "down", DRILL)
        return fates(links, n=300)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_clearing_restores_nominal_behaviour() -> None:
    links = LinkFaults()
    kinds = {"link.loss": {"percent": 100.0}, "link.corrupt": {"percent": 100.0},
             "link.duplicate": {"percent": 100.0}, "link.reorder": {"percent": 100.0},
             "link.latency": {"extra_s": 9.0}, "link.bandwidth": {"bytes_per_s": 10.0}}
    for kind, params in kinds.items():
        links.add(fault(kind, kind, **params), "down", DRILL)
    assert not any(nominal(f, 1000.0 + i) for i, f in enumerate(fates(links, n=10)))
    for kind in kinds:
        assert links.remove(kind)
    assert len(links) == 0
    assert all(nominal(f, 5000.0 + i) for i, f in enumerate(fates(links, n=10, start=5000.0)))


def test_each_fault_reports_its_first_symptom_once() -> None:
    links = LinkFaults()
    links.add(fault("loss", "link.loss", percent=100.0), "down", DRILL)
    fates(links, n=5, start=50.0)
    symptoms = links.drain_symptoms()
    assert [(s.fault_id, s.time) for s in symptoms] == [("loss", 50.0)]
    fates(links, n=5)
    assert links.drain_symptoms() == []


def test_a_latency_of_nothing_is_a_dud() -> None:
    links = LinkFaults()
    links.add(fault("zero", "link.latency", extra_s=0.0), "down", DRILL)
    assert all(nominal(f, 1000.0 + i) for i, f in enumerate(fates(links, n=5)))
    assert links.drain_symptoms() == []


def test_faults_that_do_not_compose_and_kinds_that_are_not_link_faults_are_refused() -> None:
    links = LinkFaults()
    links.add(fault("los1", "link.los"), "down", DRILL)
    with pytest.raises(FaultNotApplicable, match="los1"):
        links.add(fault("los2", "link.los"), "down", DRILL)
    links.add(fault("los3", "link.los"), "down", None)  # another target: fine
    with pytest.raises(FaultNotApplicable):
        links.add(fault("x", "drill.stall"), "down", DRILL)
    with pytest.raises(FaultNotApplicable):
        links.add(fault("y", "link.loss", percent=1.0), "sideways", DRILL)


def test_link_faults_pickle_with_their_random_streams() -> None:
    links = LinkFaults()
    links.add(fault("l", "link.loss", percent=50.0), "down", DRILL)
    links.add(fault("b", "link.bandwidth", bytes_per_s=100.0), "down", DRILL)
    fates(links, n=10)
    copy = pickle.loads(pickle.dumps(links))
    assert fates(copy, n=50, start=2000.0) == fates(links, n=50, start=2000.0)
