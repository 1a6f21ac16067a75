"""A drill's initial conditions: HAL calls made on a node's devices before the clock starts.

Why HAL calls rather than poking model state: the public device interface is the one thing every backend
(simulated or real) offers, so a drill can start at T+48:30 with a sealed container on the ascender by
doing what the mission would have done (receive, seal, transfer), just without replaying the hours.
"""

from __future__ import annotations

from collections.abc import Mapping

from lunar_gs.hardware_sim.hal import Device
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.ground_control.scenario import InitialConditions

NOT_CALLABLE = frozenset({"advance", "drain_events", "active", "state", "drain_symptoms", "inject_fault",
                          "clear_fault", "active_faults"})


class SetupError(ValueError):
    """A setup call the device cannot make."""


def apply_initial_conditions(initial: InitialConditions, node: Node, devices: Mapping[str, Device],
                             epoch: float) -> None:
    """Make this node's setup calls in order, each after stepping its device to its time; events they
    cause are history before the drill starts, so they are dropped rather than reported."""
    for call in initial.setup:
        if call.node != node:
            continue
        device = devices.get(call.device)
        if device is None:
            raise SetupError(f"{node} has no device {call.device!r}; it has {', '.join(devices)}")
        method = getattr(device, call.call, None)
        if call.call.startswith("_") or call.call in NOT_CALLABLE or not callable(method):
            raise SetupError(f"{call.device} has no setup call {call.call!r}")
        device.advance(epoch + call.after)
        method(**call.args)
    for device in devices.values():
        device.advance(epoch + initial.at)
        device.drain_events()
