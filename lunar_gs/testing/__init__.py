"""The test kit for telemetry handlers: a pytest plugin, waits and assertions in mission time, record and
replay, and hypothesis strategies for every message of the wire contract.

    from lunar_gs.testing import MissionClient, tm, event, alarm, gt, within_range

The pytest plugin (`lunar_gs.testing.plugin`, loaded automatically when lunar-gs is installed) gives the
fixtures `lunar_broker`, `lunar_mission` and `lunar_tm`; docs/testing-handlers.md is the tutorial.
Strategies live in `lunar_gs.testing.strategies` (it imports hypothesis, so it is not imported here).
"""

from lunar_gs.testing.client import (
    CommandFailed,
    CommandHandle,
    ConditionHappened,
    Mark,
    Match,
    MissionClient,
    MissionTimeout,
    ParameterSample,
)
from lunar_gs.testing.conditions import Heard, alarm, event, on_topic, rejection, tm, verification
from lunar_gs.testing.mission import LocalMission, MissionSpec
from lunar_gs.testing.predicates import (
    Predicate,
    all_of,
    any_of,
    anything,
    approx,
    changed_by,
    eq,
    ge,
    gt,
    is_false,
    is_in,
    is_true,
    le,
    lt,
    matches,
    ne,
    not_,
    outside_range,
    within_range,
)

__all__ = [
    "MissionClient", "MissionTimeout", "ConditionHappened", "CommandFailed", "CommandHandle", "Mark", "Match",
    "ParameterSample", "Heard", "tm", "event", "alarm", "rejection", "verification", "on_topic",
    "LocalMission", "MissionSpec", "Predicate", "anything", "eq", "ne", "gt", "ge", "lt", "le",
    "within_range", "outside_range", "approx", "changed_by", "is_in", "is_true", "is_false", "matches",
    "any_of", "all_of", "not_",
]
