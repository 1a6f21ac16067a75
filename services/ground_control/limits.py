"""Limit checking of housekeeping parameters, with alarms that are raised once and cleared once."""

from dataclasses import dataclass
from typing import Any

from lunar_gs.protocols.events import AlarmState
from lunar_gs.services.mission import Limit


@dataclass(frozen=True)
class AlarmTransition:
    alarm: str
    state: AlarmState
    limit: Limit
    value: Any
    bound: float | None
    message: str


class LimitChecker:
    def __init__(self, limits: list[Limit]) -> None:
        self._by_node: dict[str, list[Limit]] = {}
        for limit in limits:
            self._by_node.setdefault(str(limit.node), []).append(limit)
        self.active: set[str] = set()

    def check(self, node: str, fields: dict[str, Any]) -> list[AlarmTransition]:
        transitions = []
        for limit in self._by_node.get(node, ()):
            value = fields.get(limit.parameter)
            if not isinstance(value, int | float):  # booleans count as 0/1: a `low: 1` wants True
                continue
            name = f"{node}.{limit.parameter}"
            applies = ((limit.when_mode is None or fields.get("mode") in limit.when_mode)
                       and (limit.when_true is None or fields.get(limit.when_true) is True)
                       and limit.parameter not in fields.get("missing", ()))
            number = float(value)
            breach = None
            if applies and limit.low is not None and number < limit.low:
                breach = ("below", limit.low)
            elif applies and limit.high is not None and number > limit.high:
                breach = ("above", limit.high)
            if breach and name not in self.active:
                self.active.add(name)
                transitions.append(AlarmTransition(
                    name, AlarmState.RAISED, limit, value, breach[1],
                    f"{limit.parameter} = {value} {breach[0]} limit {breach[1]}"))
            elif not breach and name in self.active:
                self.active.discard(name)
                transitions.append(AlarmTransition(
                    name, AlarmState.CLEARED, limit, value, None, f"{limit.parameter} = {value} back in limits"))
        return transitions
