"""The ascent vehicle: lifts off from the lander, reaches lunar orbit, phases, docks, hands over."""

from dataclasses import fields
from typing import Any

from lunar_gs.hardware_sim.hal import AscentVehicle
from lunar_gs.protocols.commands import Ignite, OrbitAdjust, Retarget
from lunar_gs.protocols.events import EVENT_STREAM, Event
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.telemetry import AscentHousekeeping, Housekeeping
from lunar_gs.protocols.topics import Channel
from lunar_gs.services.device_node import CommandBinding, DeviceNode
from lunar_gs.services.mission import Timing
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.service import ServiceRuntime

ASCENT = "ascent"


class AscentVehicleNode(DeviceNode):
    def __init__(self, runtime: ServiceRuntime, vehicle: AscentVehicle, timing: Timing) -> None:
        super().__init__(runtime, [vehicle], timing)
        self.vehicle = vehicle
        runtime.bus.subscribe(runtime.topics.ev(self.side, Node.LANDER_ARM), self._on_arm_event, qos=1)

    def bindings(self) -> dict[str, CommandBinding]:
        vehicle = self.vehicle

        def ignite(args: Ignite) -> None:
            vehicle.ignite(args.target_perilune_km, args.target_apolune_km)

        def orbit_adjust(args: OrbitAdjust) -> None:
            vehicle.orbit_adjust(args.perilune_km, args.apolune_km)

        def retarget(args: Retarget) -> None:
            vehicle.retarget(args.target_perilune_km, args.target_apolune_km)

        return {
            "CHECKOUT": CommandBinding(lambda _: vehicle.self_test(), ASCENT, completes_on="self_test_passed"),
            "ARM": CommandBinding(lambda _: vehicle.arm(), ASCENT),
            "IGNITE": CommandBinding(
                ignite, ASCENT,
                completes_on="orbit_insertion",
                fails_on=("suborbital_cutoff", "impact"),
                progress_on=("liftoff", "engine_cutoff"),
            ),
            "ORBIT_ADJUST": CommandBinding(orbit_adjust, ASCENT, completes_on="orbit_adjusted"),
            "START_APPROACH": CommandBinding(lambda _: vehicle.start_approach(), ASCENT, completes_on="docked"),
            "TRANSFER_SAMPLE": CommandBinding(
                lambda _: vehicle.transfer_sample(), ASCENT, completes_on="sample_transferred"
            ),
            "RETARGET": CommandBinding(retarget, ASCENT),
        }

    async def _on_arm_event(self, message: IncomingMessage) -> None:
        heard = await self.runtime.decode(message, *EVENT_STREAM, reject=False, source=Node.LANDER_ARM)
        if heard is None or not self.runtime.accept_delivery(heard, Channel.EV):
            return
        if isinstance(heard, Event) and heard.event == "container_transferred":
            async with self.stepped_to_now():
                self.vehicle.load_sample(float(heard.data["mass_g"]))
            self.runtime.log.info("sample_container_loaded", mass_g=heard.data["mass_g"])

    def housekeeping(self) -> tuple[type[Housekeeping], dict[str, Any]]:
        state = self.vehicle.state()
        return AscentHousekeeping, {f.name: getattr(state, f.name) for f in fields(state)}  # flat: no deep copy
