"""Relay link: light-time delay, visibility gap, next window, events."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lunar_gs.hardware_sim.hal import RelayLink
from lunar_gs.hardware_sim.relay import RelayParams, SimRelayLink

EPOCH = RelayParams().epoch_unix_s


def make() -> SimRelayLink:
    return SimRelayLink(RelayParams(), random.Random(0), EPOCH)


@given(st.floats(0.0, 10 * 86400.0))
def test_delay_within_published_band(offset: float) -> None:
    assert 1.28 <= make().one_way_delay_s(EPOCH + offset) <= 1.34


def test_delay_varies_smoothly_over_the_day() -> None:
    relay = make()
    delays = [relay.one_way_delay_s(EPOCH + k * 600.0) for k in range(145)]
    assert max(delays) - min(delays) > 0.04
    assert max(abs(a - b) for a, b in zip(delays, delays[1:])) < 0.002
    assert delays[0] == pytest.approx(delays[-1])


def test_gap_visibility_and_next_window() -> None:
    relay = make()
    assert isinstance(relay, RelayLink) and relay.storage_capacity == 10000
    assert relay.far_side_visible(EPOCH + 13.9 * 3600)
    assert relay.next_window_start(EPOCH + 13.9 * 3600) is None
    assert not relay.far_side_visible(EPOCH + 14 * 3600)
    assert relay.next_window_start(EPOCH + 15 * 3600) == EPOCH + 18 * 3600
    assert relay.far_side_visible(EPOCH + 18 * 3600)


def test_overlapping_gaps_chain() -> None:
    relay = SimRelayLink(RelayParams(gaps_s=((100.0, 200.0), (150.0, 300.0))), random.Random(0), EPOCH)
    assert relay.next_window_start(EPOCH + 120.0) == EPOCH + 300.0


def test_events_at_gap_edges_even_across_a_warp() -> None:
    relay = make()
    relay.advance(EPOCH + 48 * 3600)
    events = relay.drain_events()
    assert [(e.name, e.time - EPOCH) for e in events] == [("far_side_lost", 14 * 3600.0),
                                                          ("far_side_regained", 18 * 3600.0)]
    assert not relay.active()
