"""The lander's coring drill: drills to depth through layered regolith, stows the core."""

from dataclasses import fields
from typing import Any

from hardware_sim.hal import Drill
from protocols.commands import DrillToDepth, SetPercussion
from protocols.telemetry import DrillHousekeeping, Housekeeping
from services.device_node import CommandBinding, DeviceNode
from services.mission import Timing
from services.runtime.service import ServiceRuntime


class LanderDrillNode(DeviceNode):
    def __init__(self, runtime: ServiceRuntime, drill: Drill, timing: Timing) -> None:
        super().__init__(runtime, [drill], timing)
        self.drill = drill

    def bindings(self) -> dict[str, CommandBinding]:
        drill = self.drill

        def drill_to_depth(args: DrillToDepth) -> None:
            drill.start(args.target_depth_m, args.rpm, args.percussion)

        def set_percussion(args: SetPercussion) -> None:
            drill.set_percussion(args.enabled)

        return {
            "CHECKOUT": CommandBinding(lambda _: drill.self_test(), completes_on="self_test_passed"),
            "DRILL_TO_DEPTH": CommandBinding(
                drill_to_depth,
                completes_on="target_depth_reached",
                fails_on=("over_torque",),
                progress_on=("material_changed",),
            ),
            "SET_PERCUSSION": CommandBinding(set_percussion),
            "STOP": CommandBinding(lambda _: drill.stop()),
            "STOW_CORE": CommandBinding(lambda _: drill.stow_core(), completes_on="core_stowed"),
        }

    def housekeeping(self) -> tuple[type[Housekeeping], dict[str, Any]]:
        state = self.drill.state()
        return DrillHousekeeping, {f.name: getattr(state, f.name) for f in fields(state)}  # flat: no deep copy
