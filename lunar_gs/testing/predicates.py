"""Composable predicates on one value that say what they test and how far a value is from passing.

`gt(30)` prints as `> 30`; `gt(30) & lt(80)` as `(> 30 and < 80)`. A predicate's `miss(value)` is how far
a failing value is from passing (0 when it passes, None when no distance makes sense), which is how a
timeout message names the closest misses. Plain values stand for equality: `any_of("idle", "stowed")`.

Stateful predicates (`changed_by`) compare with the first value they see; every wait starts from a
`fresh()` copy, so one predicate object can be reused across waits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "Predicate", "as_predicate", "anything", "eq", "ne", "gt", "ge", "lt", "le", "within_range",
    "outside_range", "approx", "changed_by", "is_in", "is_true", "is_false", "matches", "any_of", "all_of",
    "not_",
]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


class Predicate:
    """A named test on one value, with an optional distance from passing."""

    def __init__(self, text: str, test: Callable[[Any], bool],
                 distance: Callable[[Any], float | None] | None = None,
                 fresh: Callable[[], Predicate] | None = None) -> None:
        self.text = text
        self._test = test
        self._distance = distance
        self._fresh = fresh

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self._test(value))
        except (TypeError, ValueError):  # a value of another type simply does not match
            return False

    def miss(self, value: Any) -> float | None:
        """0 when `value` passes; how far it is from passing for a numeric test; None otherwise."""
        if self(value):
            return 0.0
        if self._distance is None:
            return None
        try:
            return self._distance(value)
        except (TypeError, ValueError):
            return None

    def fresh(self) -> Predicate:
        """A copy with no memory of earlier values (stateless predicates return themselves)."""
        return self._fresh() if self._fresh is not None else self

    def __and__(self, other: Any) -> Predicate:
        return all_of(self, other)

    def __or__(self, other: Any) -> Predicate:
        return any_of(self, other)

    def __invert__(self) -> Predicate:
        return not_(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<Predicate {self.text}>"


def as_predicate(value: Any) -> Predicate:
    """A predicate as it is, a plain callable by its name, anything else as equality with it."""
    if isinstance(value, Predicate):
        return value
    if callable(value):
        return Predicate(getattr(value, "__name__", "a condition"), value)
    return eq(value)


def _compare(symbol: str, limit: float, test: Callable[[float, float], bool]) -> Predicate:
    def passes(value: Any) -> bool:
        number = _number(value)
        return number is not None and test(number, limit)

    def distance(value: Any) -> float | None:
        number = _number(value)
        return None if number is None else abs(number - limit)

    return Predicate(f"{symbol} {_show(limit)}", passes, distance)


anything = Predicate("anything", lambda _value: True)
"""Matches every value (a wait for any sample of a parameter)."""


def eq(expected: Any) -> Predicate:
    number = _number(expected)

    def distance(value: Any) -> float | None:
        got = _number(value)
        return None if got is None or number is None else abs(got - number)

    return Predicate(f"== {_show(expected)}", lambda value: value == expected, distance)


def ne(unwanted: Any) -> Predicate:
    return Predicate(f"!= {_show(unwanted)}", lambda value: value != unwanted)


def gt(limit: float) -> Predicate:
    return _compare(">", limit, lambda v, lim: v > lim)


def ge(limit: float) -> Predicate:
    return _compare(">=", limit, lambda v, lim: v >= lim)


def lt(limit: float) -> Predicate:
    return _compare("<", limit, lambda v, lim: v < lim)


def le(limit: float) -> Predicate:
    return _compare("<=", limit, lambda v, lim: v <= lim)


def within_range(low: float, high: float) -> Predicate:
    """low <= value <= high."""
    if low > high:
        raise ValueError(f"within_range({low}, {high}): low is above high")

    def passes(value: Any) -> bool:
        number = _number(value)
        return number is not None and low <= number <= high

    def distance(value: Any) -> float | None:
        number = _number(value)
        return None if number is None else max(low - number, number - high, 0.0)

    return Predicate(f"in [{_show(low)}, {_show(high)}]", passes, distance)


def outside_range(low: float, high: float) -> Predicate:
    """value < low or value > high."""
    if low > high:
        raise ValueError(f"outside_range({low}, {high}): low is above high")

    def passes(value: Any) -> bool:
        number = _number(value)
        return number is not None and (number < low or number > high)

    def distance(value: Any) -> float | None:
        number = _number(value)
        return None if number is None else min(number - low, high - number)

    return Predicate(f"outside [{_show(low)}, {_show(high)}]", passes, distance)


def approx(expected: float, tolerance: float) -> Predicate:
    """|value - expected| <= tolerance."""
    inner = within_range(expected - tolerance, expected + tolerance)
    return Predicate(f"≈ {_show(expected)} ± {_show(tolerance)}", inner, inner.miss)


def changed_by(delta: float) -> Predicate:
    """The value moved by at least |delta| from the first value this wait saw (up for a positive delta,
    down for a negative one)."""
    if delta == 0:
        raise ValueError("changed_by(0) would match the first value: give a non-zero change")
    first: list[float] = []

    def moved(value: Any) -> float | None:
        number = _number(value)
        if number is None:
            return None
        if not first:
            first.append(number)
        return number - first[0]

    def passes(value: Any) -> bool:
        change = moved(value)
        return change is not None and (change >= delta if delta > 0 else change <= delta)

    def distance(value: Any) -> float | None:
        number = _number(value)
        return None if number is None or not first else abs(delta - (number - first[0]))

    return Predicate(f"changed by {delta:+g} from its first value", passes, distance,
                     fresh=lambda: changed_by(delta))


def is_in(values: Iterable[Any]) -> Predicate:
    options = tuple(values)
    return Predicate(f"in {{{', '.join(_show(v) for v in options)}}}", lambda value: value in options)


is_true = Predicate("is true", lambda value: value is True)
is_false = Predicate("is false", lambda value: value is False)


def matches(pattern: str) -> Predicate:
    """A string that the regular expression matches (re.search)."""
    compiled = re.compile(pattern)
    return Predicate(f"matches /{pattern}/", lambda value: isinstance(value, str) and bool(compiled.search(value)))


def _combined(parts: tuple[Predicate, ...], word: str, test: Callable[[Iterable[bool]], bool],
              distance: Callable[[list[float]], float], again: Callable[..., Predicate]) -> Predicate:
    def miss(value: Any) -> float | None:
        misses = [p.miss(value) for p in parts]
        known = [m for m in misses if m is not None]
        return distance(known) if known else None

    stateful = any(p.fresh() is not p for p in parts)
    return Predicate(f"({f' {word} '.join(p.text for p in parts)})", lambda value: test(p(value) for p in parts),
                     miss, fresh=(lambda: again(*(p.fresh() for p in parts))) if stateful else None)


def any_of(*options: Any) -> Predicate:
    """Passes when one of the options does (a plain value means equality with it)."""
    if not options:
        raise ValueError("any_of() needs at least one option")
    parts = tuple(as_predicate(o) for o in options)
    return _combined(parts, "or", any, min, any_of)


def all_of(*conditions: Any) -> Predicate:
    """Passes when every condition does."""
    if not conditions:
        raise ValueError("all_of() needs at least one condition")
    parts = tuple(as_predicate(c) for c in conditions)
    return _combined(parts, "and", all, max, all_of)


def not_(condition: Any) -> Predicate:
    inner = as_predicate(condition)
    return Predicate(f"not {inner.text}", lambda value: not inner(value),
                     fresh=(lambda: not_(inner.fresh())) if inner.fresh() is not inner else None)
