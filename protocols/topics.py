"""The topic tree: the one place that spells every topic string.

```
lgs/v1/{mission}/{side}/{node}/tm/{packet}   housekeeping TM                QoS 0
lgs/v1/{mission}/{side}/{node}/ev            events, alarms, rejections     QoS 1
lgs/v1/{mission}/{side}/{node}/tc            telecommands                   QoS 1
lgs/v1/{mission}/{side}/{node}/ack           verification reports           QoS 1
lgs/v1/{mission}/{side}/{node}/rx            delivery receipts to the node  QoS 1
lgs/v1/{mission}/sys/{service}/status        retained; Last Will "offline"  QoS 1
lgs/v1/{mission}/sys/clock                   retained simulation clock      QoS 1
lgs/v1/{mission}/sys/scenario                retained scenario progress     QoS 1
lgs/v1/{mission}/sys/fault/request           fault requests to the instructor QoS 1
lgs/v1/{mission}/sys/fault/truth             ground-truth log of faults     QoS 1
lgs/v1/{mission}/sys/fault/active            retained armed/active faults   QoS 1
lgs/v1/{mission}/sys/fault/report            nodes: what a fault did        QoS 1
lgs/v1/{mission}/sys/fault/node/{node}       orders to apply/clear a fault  QoS 1
lgs/v1/{mission}/sys/command/request         operators' commands to ground control QoS 1
lgs/v1/{mission}/sys/command/update          every change of a tracked command QoS 1
```
Fault traffic stays under `sys/`: it is the instructor's hand on the simulation, not a telecommand, so it
does not cross the relay, and ground control never subscribes to it.
Far-side nodes publish and listen on the `space` side; the relay copies each message to the other side
after the light-time delay, when the link is visible. `mission` namespaces everything so that several
rehearsals share one broker.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from lunar_gs.protocols.nodes import Node, Side

ROOT = "lgs/v1"
MISSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TopicError(ValueError):
    """A topic outside the tree, or a mission name that cannot be part of one."""


class Channel(StrEnum):
    TM = "tm"
    EV = "ev"
    TC = "tc"
    ACK = "ack"
    RX = "rx"
    """Delivery receipts addressed to the node (see protocols.delivery)."""



def validate_mission(mission: str) -> str:
    if not MISSION_PATTERN.match(mission):
        raise TopicError(
            f"mission {mission!r} must be 1-64 characters of letters, digits, '_', '.', '-' "
            "and start with a letter or digit"
        )
    return mission


@dataclass(frozen=True)
class NodeTopic:
    """A parsed node topic."""

    mission: str
    side: Side
    node: Node
    channel: Channel
    packet: str | None = None


@dataclass(frozen=True)
class Topics:
    """Topic names and subscription filters for one mission."""

    mission: str

    def __post_init__(self) -> None:
        validate_mission(self.mission)

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.mission}"

    def tm(self, side: Side, node: Node, packet: str = "hk") -> str:
        return f"{self.prefix}/{side}/{node}/tm/{packet}"

    def ev(self, side: Side, node: Node) -> str:
        return f"{self.prefix}/{side}/{node}/ev"

    def tc(self, side: Side, node: Node) -> str:
        return f"{self.prefix}/{side}/{node}/tc"

    def ack(self, side: Side, node: Node) -> str:
        return f"{self.prefix}/{side}/{node}/ack"

    def rx(self, side: Side, node: Node) -> str:
        return f"{self.prefix}/{side}/{node}/rx"

    def channel(self, side: Side, node: Node, channel: Channel, packet: str = "hk") -> str:
        if channel is Channel.TM:
            return self.tm(side, node, packet)
        return f"{self.prefix}/{side}/{node}/{channel}"

    def status(self, service: Node | str) -> str:
        return f"{self.prefix}/sys/{service}/status"

    def sys_events(self, service: Node | str) -> str:
        """Events and rejections of a service outside the relay's two sides (the instructor station)."""
        return f"{self.prefix}/sys/{service}/ev"

    @property
    def clock(self) -> str:
        return f"{self.prefix}/sys/clock"

    @property
    def scenario(self) -> str:
        return f"{self.prefix}/sys/scenario"

    @property
    def fault_request(self) -> str:
        return f"{self.prefix}/sys/fault/request"

    @property
    def fault_truth(self) -> str:
        return f"{self.prefix}/sys/fault/truth"

    @property
    def fault_active(self) -> str:
        return f"{self.prefix}/sys/fault/active"

    @property
    def fault_report(self) -> str:
        return f"{self.prefix}/sys/fault/report"

    def fault_orders(self, node: Node) -> str:
        return f"{self.prefix}/sys/fault/node/{node}"

    @property
    def command_request(self) -> str:
        """Commands by hand (`lunar-gs cmd`), sent through ground control so it tracks and archives them."""
        return f"{self.prefix}/sys/command/request"

    @property
    def command_update(self) -> str:
        """Ground control's word on every change of a command it tracks, whoever sent it."""
        return f"{self.prefix}/sys/command/update"

    # Subscription filters
    def side_filter(self, side: Side, channel: Channel, node: Node | None = None) -> str:
        who = node if node is not None else "+"
        if channel is Channel.TM:
            return f"{self.prefix}/{side}/{who}/tm/+"
        return f"{self.prefix}/{side}/{who}/{channel}"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/sys/+/status"

    def parse(self, topic: str) -> NodeTopic:
        """Parse a node topic of this mission, or raise TopicError saying what is wrong."""
        parsed = parse_node_topic(topic)
        if parsed.mission != self.mission:
            raise TopicError(f"topic {topic!r} belongs to mission {parsed.mission!r}, not {self.mission!r}")
        return parsed


def parse_node_topic(topic: str) -> NodeTopic:
    parts = topic.split("/")
    if len(parts) < 6 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise TopicError(f"topic {topic!r} is not under {ROOT}/{{mission}}/{{side}}/{{node}}/...")
    mission, side, node, channel = parts[2], parts[3], parts[4], parts[5]
    try:
        side_value, node_value, channel_value = Side(side), Node(node), Channel(channel)
    except ValueError as exc:
        raise TopicError(f"topic {topic!r}: {exc}") from None
    packet: str | None = None
    if channel_value is Channel.TM:
        if len(parts) != 7 or not parts[6]:
            raise TopicError(f"topic {topic!r}: TM topics end in /tm/{{packet}}")
        packet = parts[6]
    elif len(parts) != 6:
        raise TopicError(f"topic {topic!r}: too many levels for a {channel} topic")
    return NodeTopic(mission, side_value, node_value, channel_value, packet)
