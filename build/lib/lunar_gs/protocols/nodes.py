"""The nodes of the mission and the two sides of the relay."""

from enum import StrEnum


class Side(StrEnum):
    """Which leg of the relay a topic belongs to.

    `space` is between a far-side node and the relay satellite, `ground` between the relay and ground
    control: nothing reaches ground control from the far side except through the relay.
    """

    SPACE = "space"
    GROUND = "ground"


class Node(StrEnum):
    """A simulated system; each runs as its own service of the same name."""

    LANDER_DRILL = "lander-drill"
    LANDER_ARM = "lander-arm"
    ASCENT_VEHICLE = "ascent-vehicle"
    RELAY_SATELLITE = "relay-satellite"
    GROUND_CONTROL = "ground-control"
    INSTRUCTOR = "instructor"
    """The instructor station: takes fault requests, keeps the ground truth. Not seen by operators."""


FAR_SIDE_NODES: tuple[Node, ...] = (Node.LANDER_DRILL, Node.LANDER_ARM, Node.ASCENT_VEHICLE)
"""Nodes that can only talk to Earth through the relay."""
