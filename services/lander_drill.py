"""The lander's coring drill: drills to depth through layered regolith, stows the core."""

from dataclasses import fields
from typing import Any

from lunar_gs.hardware_sim.hal import Drill, settle
from lunar_gs.protocols.commands import DrillToDepth, Retract, SetPercussion
from lunar_gs.protocols.events import EVENT_STREAM, Event
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.telemetry import DrillHousekeeping, Housekeeping
from lunar_gs.protocols.topics import Channel
from lunar_gs.services.device_node import CommandBinding, DeviceNode
from lunar_gs.services.mission import Timing
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.service import ServiceRuntime

DRILL = "drill"


class LanderDrillNode(DeviceNode):
    def __init__(self, runtime: ServiceRuntime, drill: Drill, timing: Timing) -> None:
        super().__init__(runtime, [drill], timing)
        self.drill = drill
        runtime.bus.subscribe(runtime.topics.ev(self.side, Node.LANDER_ARM), self._on_platform_event, qos=1)

    async def _on_platform_event(self, message: IncomingMessage) -> None:
        """The lander platform (hosted by the arm service) sheds the drill when the bus sags."""
        heard = await self.runtime.decode(message, *EVENT_STREAM, reject=False, source=Node.LANDER_ARM)
        if heard is None or not self.runtime.accept_delivery(heard, Channel.EV):
            return
        if isinstance(heard, Event) and heard.event == "load_shed" and heard.data.get("load") == "drill":
            async with self.stepped_to_now():
                await settle(self.drill.power_cut(str(heard.message)))
            self.runtime.log.warning("drill_power_cut", bus_voltage_v=heard.data.get("bus_voltage_v"))
            self._wake.set()

    def bindings(self) -> dict[str, CommandBinding]:
        drill = self.drill

        def drill_to_depth(args: DrillToDepth) -> object:
            return drill.start(args.target_depth_m, args.rpm, args.percussion)

        def set_percussion(args: SetPercussion) -> object:
            return drill.set_percussion(args.enabled)

        def retract(args: Retract) -> object:
            return drill.retract(args.distance_m)

        return {
            "CHECKOUT": CommandBinding(lambda _: drill.self_test(), DRILL, completes_on="self_test_passed"),
            "DRILL_TO_DEPTH": CommandBinding(
                drill_to_depth, DRILL,
                completes_on="target_depth_reached",
                fails_on=("over_torque", "bit_overheat_trip", "power_lost"),
                aborts_on=("drill_stopped",),
                progress_on=("material_changed",),
            ),
            "SET_PERCUSSION": CommandBinding(set_percussion, DRILL),
            "STOP": CommandBinding(lambda _: drill.stop(), DRILL),
            "STOW_CORE": CommandBinding(lambda _: drill.stow_core(), DRILL, completes_on="core_stowed"),
            "RETRACT": CommandBinding(retract, DRILL, completes_on="retracted"),
            "RESET_PROTECTION": CommandBinding(lambda _: drill.reset_protection(), DRILL),
        }

    def housekeeping(self) -> tuple[type[Housekeeping], dict[str, Any]]:
        state = self.drill.state()
        return DrillHousekeeping, {f.name: getattr(state, f.name) for f in fields(state)}  # flat: no deep copy
