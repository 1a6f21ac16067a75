"""End-to-end delivery of QoS-1 streams, in the spirit of CCSDS COP-1 (go-back-N with receipts).

MQTT's QoS 1 ends at the broker: a broker killed between its PUBACK and its delivery loses the message,
and a subscriber that reconnects after a publisher misses what was sent in between. So each reliable
stream (one source's events, or its verification reports) is numbered by the envelope's `seq`; every
receiver named below sends back a cumulative `DeliveryReceipt` (highest contiguous `seq` it holds), and
the source re-sends whatever some receiver has not confirmed. Receivers drop duplicates by `seq`.

Receipts travel on `{side}/{stream source}/rx`: to a far-side source they go through the relay like
telecommands; between lander nodes they stay on the lander's own (space-side) bus.
"""

from typing import Annotated, Literal

from annotated_types import Ge

from lunar_gs.protocols.envelope import Envelope
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.topics import Channel


class DeliveryReceipt(Envelope):
    """From `source` (the receiver) to `stream_source`: every `seq` up to `upto` on that stream is held."""

    schema_name: Literal["receipt"] = "receipt"
    stream_source: Node
    channel: Literal["ev", "ack"]
    upto: Annotated[int, Ge(-1)]


RELIABLE_RECEIVERS: dict[tuple[Node, Channel], frozenset[Node]] = {
    (Node.LANDER_DRILL, Channel.EV): frozenset({Node.GROUND_CONTROL, Node.LANDER_ARM}),
    (Node.LANDER_DRILL, Channel.ACK): frozenset({Node.GROUND_CONTROL}),
    (Node.LANDER_ARM, Channel.EV): frozenset({Node.GROUND_CONTROL, Node.ASCENT_VEHICLE, Node.LANDER_DRILL}),
    (Node.LANDER_ARM, Channel.ACK): frozenset({Node.GROUND_CONTROL}),
    (Node.ASCENT_VEHICLE, Channel.EV): frozenset({Node.GROUND_CONTROL}),
    (Node.ASCENT_VEHICLE, Channel.ACK): frozenset({Node.GROUND_CONTROL}),
    (Node.RELAY_SATELLITE, Channel.EV): frozenset({Node.GROUND_CONTROL}),
}
"""Who must confirm each reliable stream before its source forgets a message."""
