"""The envelope every message carries, so that 3.1.1 loses nothing: identity, order and time."""

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict

from lunar_gs.protocols.nodes import Node

SCHEMA_VERSION = 1
SEQ_MAX = 2**63 - 1
"""Sequence counts fit a signed 64-bit integer, as the archive stores them."""

NonNegative = Annotated[float, Ge(0.0)]


class Envelope(BaseModel):
    """Fields common to every message on the bus.

    `sim_time` is simulated UTC and `wall_time` real UTC, both as Unix seconds (floats round-trip
    exactly through JSON, and convert directly to CCSDS time codes). `seq` counts the messages of one
    source on one stream, so a reader can see gaps and duplicates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: int = SCHEMA_VERSION
    source: Node
    seq: Annotated[int, Ge(0), Le(SEQ_MAX)] = 0
    sim_time: float = 0.0
    wall_time: float = 0.0
