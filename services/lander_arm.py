"""The lander's robotic arm and the mechanisms it serves: sample container, its seal, the flag.

The container also receives the drill's core: the arm service overhears the drill's events on the
lander's own (space-side) bus, as the lander's internal data bus would carry them.
"""

import math
from typing import Any

from lunar_gs.hardware_sim.hal import Arm, DeviceCommandError, DeviceEvent, Flag, Power, SampleContainer, settle
from lunar_gs.protocols.commands import JointArg, SampleSites, SetHeaters, SwitchEncoder
from lunar_gs.protocols.events import EVENT_STREAM, Event
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.telemetry import ArmHousekeeping, DrillHousekeeping, Housekeeping
from lunar_gs.protocols.topics import Channel
from lunar_gs.services.device_node import CommandBinding, DeviceNode
from lunar_gs.services.mission import Timing
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.service import ServiceRuntime

ARM, CONTAINER, FLAG, POWER = "arm", "container", "flag", "power"
DRILL_LOAD_PERIOD_S = 5.0
"""Simulated seconds between two samples of the drill's load: the bus changes slowly, and the drill's
1 Hz housekeeping at a high clock rate is thousands of packets a second."""


class LanderArmNode(DeviceNode):
    def __init__(
        self,
        runtime: ServiceRuntime,
        arm: Arm,
        container: SampleContainer,
        flag: Flag,
        power: Power,
        timing: Timing,
    ) -> None:
        super().__init__(runtime, [arm, container, flag, power], timing)
        self.arm = arm
        self.container = container
        self.flag = flag
        self.power = power
        self._drill_load_at = -math.inf
        runtime.bus.subscribe(runtime.topics.ev(self.side, Node.LANDER_DRILL), self._on_drill_event, qos=1)
        runtime.bus.subscribe(runtime.topics.tm(self.side, Node.LANDER_DRILL), self._on_drill_tm, qos=0)

    def bindings(self) -> dict[str, CommandBinding]:
        arm, container, flag = self.arm, self.container, self.flag

        power = self.power

        def sample(args: SampleSites) -> object:
            return arm.start_sampling(args.sites, args.scoop_depth_cm)

        def switch_encoder(args: SwitchEncoder) -> object:
            return arm.switch_encoder(args.joint, args.unit)

        def reset_joint(args: JointArg) -> object:
            return arm.reset_joint(args.joint)

        def set_heaters(args: SetHeaters) -> object:
            return power.set_heaters(args.enabled)

        return {
            "CHECKOUT": CommandBinding(lambda _: arm.self_test(), ARM, completes_on="self_test_passed"),
            "SAMPLE_SITES": CommandBinding(
                sample, ARM, completes_on="sampling_complete", progress_on=("scoop_deposited",),
                fails_on=("joint_fault", "joint_overcurrent", "scoop_jammed"),
            ),
            "SEAL_CONTAINER": CommandBinding(lambda _: container.seal(), CONTAINER,
                                             completes_on="container_sealed"),
            "TRANSFER_CONTAINER": CommandBinding(
                lambda _: container.transfer_to_ascender(), CONTAINER, completes_on="container_transferred"
            ),
            "DEPLOY_FLAG": CommandBinding(lambda _: flag.deploy(), FLAG, completes_on="flag_deployed"),
            "STOW": CommandBinding(lambda _: arm.stow(), ARM, completes_on="stowed",
                                   fails_on=("joint_fault", "joint_overcurrent")),
            "SWITCH_ENCODER": CommandBinding(switch_encoder, ARM),
            "RESET_JOINT": CommandBinding(reset_joint, ARM),
            "CLEAR_SCOOP": CommandBinding(lambda _: arm.clear_scoop(), ARM, completes_on="scoop_cleared"),
            "SET_HEATERS": CommandBinding(set_heaters, POWER),
        }

    def active(self) -> bool:
        """Full-rate housekeeping while a mechanism moves; the platform's power and thermal state changes
        slowly and rides along at the idle period (its protections report by events at once)."""
        return any(device.active() for device in (self.arm, self.container, self.flag))

    def before_advance(self) -> None:
        # the arm's own electrical load, as it stands before this step
        bus_v = self.power.state().bus_voltage_v
        self.power.set_load("arm", bus_v * sum(j.current_a for j in self.arm.state().joints)
                            if self.arm.active() else 0.0)

    async def on_device_event(self, event: DeviceEvent) -> None:
        if event.name == "scoop_deposited":
            await self._pour(float(event.data["mass_g"]), "scoop")

    async def _pour(self, mass_g: float, what: str) -> float:
        """Into the container; one that refuses (sealed, link down) leaves the sample where it was."""
        try:
            return await settle(self.container.receive(mass_g))
        except DeviceCommandError as exc:
            self.runtime.log.warning("container_refused_sample", what=what, mass_g=mass_g, reason=exc.reason,
                                     code=exc.code)
            return 0.0

    async def _on_drill_event(self, message: IncomingMessage) -> None:
        heard = await self.runtime.decode(message, *EVENT_STREAM, reject=False, source=Node.LANDER_DRILL)
        if heard is None or not self.runtime.accept_delivery(heard, Channel.EV):
            return
        if isinstance(heard, Event) and heard.event == "core_stowed":
            async with self.stepped_to_now():
                accepted = await self._pour(float(heard.data["mass_g"]), "core")
            self.runtime.log.info("core_received", offered_g=heard.data["mass_g"], accepted_g=accepted)
            self._wake.set()

    async def _on_drill_tm(self, message: IncomingMessage) -> None:
        """The drill's electrical load on the lander bus, from its housekeeping (the relay, owner of
        this topic, rejects bad input)."""
        if self.runtime.clock.ready and self.runtime.clock.now() - self._drill_load_at < DRILL_LOAD_PERIOD_S:
            return
        heard = await self.runtime.decode(message, DrillHousekeeping, reject=False, source=Node.LANDER_DRILL)
        if heard is None:
            return
        # paced by this node's clock, not the packet's time: a backlog of drill packets (at a high rate)
        # must not cost one step of every device each
        self._drill_load_at = self.runtime.clock.now() if self.runtime.clock.ready else heard.sim_time
        async with self.stepped_to_now():
            self.power.set_load("drill", heard.power_w)
        self._wake.set()

    def housekeeping(self) -> tuple[type[Housekeeping], dict[str, Any]]:
        arm, container, power = self.arm.state(), self.container.state(), self.power.state()
        return ArmHousekeeping, {
            "mode": arm.mode,
            "joints": [
                {"name": j.name, "angle_deg": j.angle_deg, "torque_nm": j.torque_nm, "current_a": j.current_a,
                 "encoder": j.encoder}
                for j in arm.joints
            ],
            "scoop_phase": arm.scoop_phase,
            "scoops_done": arm.scoops_done,
            "scoop_mass_g": arm.scoop_mass_g,
            "container_mass_g": container.mass_g,
            "container_sealed": container.sealed,
            "seal_pressure_kpa": container.seal_pressure_kpa,
            "container_on_ascender": container.on_ascender,
            "flag_deployed": self.flag.state(),
            "battery_soc_percent": power.battery_soc_percent,
            "bus_voltage_v": power.bus_voltage_v,
            "battery_current_a": power.battery_current_a,
            "load_w": power.load_w,
            "heaters_on": power.heaters_on,
            "battery_temperature_c": power.battery_temperature_c,
            "arm_motor_temperature_c": power.arm_motor_temperature_c,
        }
