"""The lander's robotic arm and the mechanisms it serves: sample container, its seal, the flag.

The container also receives the drill's core: the arm service overhears the drill's events on the
lander's own (space-side) bus, as the lander's internal data bus would carry them.
"""

from typing import Any

from hardware_sim.hal import Arm, DeviceEvent, Flag, SampleContainer
from protocols.commands import SampleSites
from protocols.events import EVENT_STREAM, Event
from protocols.nodes import Node
from protocols.topics import Channel
from protocols.telemetry import ArmHousekeeping, Housekeeping, JointState
from services.device_node import CommandBinding, DeviceNode
from services.mission import Timing
from services.runtime.bus import IncomingMessage
from services.runtime.service import ServiceRuntime


class LanderArmNode(DeviceNode):
    def __init__(
        self,
        runtime: ServiceRuntime,
        arm: Arm,
        container: SampleContainer,
        flag: Flag,
        timing: Timing,
    ) -> None:
        super().__init__(runtime, [arm, container, flag], timing)
        self.arm = arm
        self.container = container
        self.flag = flag
        runtime.bus.subscribe(runtime.topics.ev(self.side, Node.LANDER_DRILL), self._on_drill_event, qos=1)

    def bindings(self) -> dict[str, CommandBinding]:
        arm, container, flag = self.arm, self.container, self.flag

        def sample(args: SampleSites) -> None:
            arm.start_sampling(args.sites, args.scoop_depth_cm)

        return {
            "CHECKOUT": CommandBinding(lambda _: arm.self_test(), completes_on="self_test_passed"),
            "SAMPLE_SITES": CommandBinding(
                sample, completes_on="sampling_complete", progress_on=("scoop_deposited",)
            ),
            "SEAL_CONTAINER": CommandBinding(lambda _: container.seal(), completes_on="container_sealed"),
            "TRANSFER_CONTAINER": CommandBinding(
                lambda _: container.transfer_to_ascender(), completes_on="container_transferred"
            ),
            "DEPLOY_FLAG": CommandBinding(lambda _: flag.deploy(), completes_on="flag_deployed"),
            "STOW": CommandBinding(lambda _: arm.stow(), completes_on="stowed"),
        }

    def on_device_event(self, event: DeviceEvent) -> None:
        if event.name == "scoop_deposited":
            self.container.receive(float(event.data["mass_g"]))

    async def _on_drill_event(self, message: IncomingMessage) -> None:
        heard = await self.runtime.decode(message, *EVENT_STREAM, reject=False, source=Node.LANDER_DRILL)
        if heard is None or not self.runtime.accept_delivery(heard, Channel.EV):
            return
        if isinstance(heard, Event) and heard.event == "core_stowed":
            await self.advance(self.runtime.clock.now())
            accepted = self.container.receive(float(heard.data["mass_g"]))
            self.runtime.log.info("core_received", offered_g=heard.data["mass_g"], accepted_g=accepted)
            self._wake.set()

    def housekeeping(self) -> tuple[type[Housekeeping], dict[str, Any]]:
        arm, container = self.arm.state(), self.container.state()
        return ArmHousekeeping, {
            "mode": arm.mode,
            "joints": tuple(
                JointState(name=j.name, angle_deg=j.angle_deg, torque_nm=j.torque_nm, current_a=j.current_a)
                for j in arm.joints
            ),
            "scoop_phase": arm.scoop_phase,
            "scoops_done": arm.scoops_done,
            "scoop_mass_g": arm.scoop_mass_g,
            "container_mass_g": container.mass_g,
            "container_sealed": container.sealed,
            "seal_pressure_kpa": container.seal_pressure_kpa,
            "container_on_ascender": container.on_ascender,
            "flag_deployed": self.flag.state(),
        }
