"""The kit's predicates: what they say of themselves, how far a value misses, and how they combine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lunar_gs.testing.predicates import (
    all_of,
    any_of,
    approx,
    as_predicate,
    changed_by,
    eq,
    ge,
    gt,
    is_in,
    le,
    lt,
    matches,
    not_,
    outside_range,
    within_range,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_predicates_describe_themselves() -> None:
    assert str(gt(30)) == "> 30"
    assert str(gt(30.5) & lt(80)) == "(> 30.5 and < 80)"
    assert str(any_of("idle", "stowed")) == "(== 'idle' or == 'stowed')"
    assert str(~within_range(1, 2)) == "not in [1, 2]"
    assert str(approx(10, 0.5)) == "≈ 10 ± 0.5"
    assert str(is_in([1, 2])) == "in {1, 2}"
    assert str(changed_by(-3)) == "changed by -3 from its first value"

    def overheated(value: float) -> bool:
        return value > 90

    assert str(as_predicate(overheated)) == "overheated" and as_predicate(overheated)(91)


@given(limit=finite, value=finite)
def test_comparisons_agree_with_python_and_a_pass_misses_by_nothing(limit: float, value: float) -> None:
    for predicate, truth in ((gt(limit), value > limit), (ge(limit), value >= limit), (lt(limit), value < limit),
                             (le(limit), value <= limit), (eq(limit), value == limit)):
        assert predicate(value) is truth
        assert predicate.miss(value) == (0.0 if truth else abs(value - limit))


@given(low=finite, width=st.floats(min_value=0, max_value=1e6), value=finite)
def test_within_range_misses_by_the_distance_to_the_range(low: float, width: float, value: float) -> None:
    high = low + width
    inside = within_range(low, high)
    assert inside(value) is (low <= value <= high)
    expected = 0.0 if low <= value <= high else min(abs(value - low), abs(value - high))
    assert inside.miss(value) == pytest.approx(expected)
    assert outside_range(low, high)(value) is (value < low or value > high)


def test_values_of_another_type_do_not_match_and_have_no_distance() -> None:
    assert not gt(3)("4") and gt(3).miss("4") is None
    assert not gt(3)(True)  # a boolean is not a number here
    assert not within_range(0, 1)(None)
    assert not matches("^jam")(42) and matches("^jam")("jammed")


def test_changed_by_remembers_its_first_value_until_made_fresh() -> None:
    rose = changed_by(5)
    assert [rose(v) for v in (10, 12, 14.9, 15, 3)] == [False, False, False, True, False]
    again = rose.fresh()
    assert again is not rose and not again(15) and again(20)
    fell = changed_by(-2)
    assert [fell(v) for v in (5, 4, 3)] == [False, False, True]
    combined = gt(0) & changed_by(1)
    assert combined.fresh() is not combined  # a combination with memory is fresh as a whole
    assert (gt(0) & lt(5)).fresh() is not None
    with pytest.raises(ValueError):
        changed_by(0)


@given(value=finite)
def test_combinators_follow_boolean_logic_and_the_best_miss(value: float) -> None:
    a, b = gt(10), lt(-10)
    assert any_of(a, b)(value) is (a(value) or b(value))
    assert all_of(a, b)(value) is False
    assert not_(a)(value) is (not a(value))
    either = any_of(a, b).miss(value)
    assert either == pytest.approx(min(a.miss(value), b.miss(value)))  # type: ignore[type-var]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        within_range(2, 1)
    with pytest.raises(ValueError):
        any_of()
    with pytest.raises(ValueError):
        all_of()
