"""Fault injection for training: the catalogue of fault kinds and the messages that carry faults.

A fault has a **kind** from the catalogue, a **target** (`NODE` or `NODE.ITEM`: a joint, a housekeeping
parameter, a component or a link direction), typed, range-checked **parameters**, a **trigger** and a
**duration** (None: until cleared). Faults act where real failures act (a device model, a sensor, the
relay link or a service process), so operators see only symptoms.

Three ways in, one record: a scenario step, `lunar-gs fault ...`, or any MQTT client publishing a
`FaultRequest` (JSON, schema `fault.request`) on `lgs/v1/{mission}/sys/fault/request`. The instructor
service validates it, arms its trigger, orders the target node to apply it, and writes every step of the
fault's life to the ground-truth log (`FaultRecord` on `.../sys/fault/truth`), which is kept apart from
the operators' archive.

Composition (two faults on the same target and aspect): kinds whose catalogue entry says
`compose="add"` add up (two biases sum, two latencies sum, two losses combine as independent chances);
every other pair is refused with the id of the fault already there. Nothing is silently overwritten.
"""

from enum import StrEnum
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lunar_gs.protocols.envelope import Envelope
from lunar_gs.protocols.nodes import FAR_SIDE_NODES, Node

ParamValue = str | int | float | bool


class FaultLayer(StrEnum):
    """Where a fault acts, as a real failure would."""

    MODEL = "model"
    """The device's physics (a jammed bit, a leaking seal, a weak engine)."""
    SENSOR = "sensor"
    """One measured parameter between the physics and the housekeeping packet."""
    LINK = "link"
    """The relay link, one direction, for one far-side node or for all."""
    PROCESS = "process"
    """A service process (crash, hang)."""


class FaultKind(StrEnum):
    DRILL_STALL = "drill.stall"
    DRILL_BIT_OVERHEAT = "drill.bit_overheat"
    DRILL_FEED_STUCK = "drill.feed_stuck"
    ARM_ENCODER_STUCK = "arm.encoder_stuck"
    ARM_ENCODER_DRIFT = "arm.encoder_drift"
    ARM_JOINT_OVERCURRENT = "arm.joint_overcurrent"
    ARM_SCOOP_JAM = "arm.scoop_jam"
    CONTAINER_SEAL_LEAK = "container.seal_leak"
    ASCENT_THRUST_DEFICIT = "ascent.thrust_deficit"
    ASCENT_PROPELLANT_LEAK = "ascent.propellant_leak"
    ASCENT_IGNITION_FAILURE = "ascent.ignition_failure"
    POWER_BATTERY_UNDERVOLTAGE = "power.battery_undervoltage"
    THERMAL_DRIFT = "thermal.drift"
    SENSOR_STUCK = "sensor.stuck"
    SENSOR_BIAS = "sensor.bias"
    SENSOR_NOISE = "sensor.noise"
    SENSOR_SPIKES = "sensor.spikes"
    SENSOR_DROPOUT = "sensor.dropout"
    LINK_LOS = "link.los"
    LINK_LATENCY = "link.latency"
    LINK_LOSS = "link.loss"
    LINK_CORRUPT = "link.corrupt"
    LINK_DUPLICATE = "link.duplicate"
    LINK_REORDER = "link.reorder"
    LINK_BANDWIDTH = "link.bandwidth"
    SERVICE_CRASH = "service.crash"
    SERVICE_HANG = "service.hang"
    DEVICE_UNRESPONSIVE = "device.unresponsive"


# -- parameters of each kind ------------------------------------------------------------------------------

class FaultParams(BaseModel):
    """Base of every kind's parameters: unknown keys are errors, values are range-checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoParams(FaultParams):
    pass


class DrillStall(FaultParams):
    torque_rise_nm_per_s: Annotated[float, Ge(0.1), Le(20.0)] = 2.0
    """How fast the jammed bit's torque climbs while the drill turns."""
    rpm_loss_percent: Annotated[float, Ge(0.0), Le(100.0)] = 40.0


class DrillBitOverheat(FaultParams):
    extra_heating_c_per_s: Annotated[float, Ge(0.01), Le(5.0)] = 0.2
    """Extra bit heating while the drill turns (lost cooling by regolith contact)."""


class ArmEncoderDrift(FaultParams):
    rate_deg_per_s: Annotated[float, Ge(0.001), Le(5.0)] = 0.05


class ArmJointOvercurrent(FaultParams):
    extra_current_a: Annotated[float, Ge(0.1), Le(20.0)] = 3.0


class DeviceUnresponsive(FaultParams):
    seconds: Annotated[float, Ge(0.5), Le(600.0)] = 10.0
    """Wall seconds the device answers nothing (a hung controller), then comes back by itself."""


class ContainerSealLeak(FaultParams):
    rate_kpa_per_h: Annotated[float, Ge(0.1), Le(1000.0)] = 20.0


class AscentThrustDeficit(FaultParams):
    percent: Annotated[float, Ge(1.0), Le(90.0)] = 20.0


class AscentPropellantLeak(FaultParams):
    rate_kg_per_h: Annotated[float, Ge(0.1), Le(500.0)] = 5.0


class AscentIgnitionFailure(FaultParams):
    attempts: Annotated[int, Ge(1), Le(5)] = 1
    """How many IGNITE attempts fail before the igniter works again."""


class BatteryUndervoltage(FaultParams):
    capacity_loss_percent: Annotated[float, Ge(0.0), Le(95.0)] = 50.0
    resistance_factor: Annotated[float, Ge(1.0), Le(20.0)] = 4.0
    """Internal resistance multiplied by this: the bus sags under load."""


class ThermalDrift(FaultParams):
    rate_c_per_h: Annotated[float, Ge(-2000.0), Le(2000.0)] = 120.0
    """Heating (positive) or cooling (negative) beyond what the thermal model gives, e.g. a stuck heater
    or a failed one."""

    @model_validator(mode="after")
    def _not_zero(self) -> "ThermalDrift":
        if self.rate_c_per_h == 0:
            raise ValueError("rate_c_per_h must not be 0")
        return self


class SensorStuck(FaultParams):
    value: float | None = None
    """The value it sticks at; None: the last good reading."""


class SensorBias(FaultParams):
    offset: float


class SensorNoise(FaultParams):
    sigma: Annotated[float, Gt(0.0), Le(1e6)]


class SensorSpikes(FaultParams):
    magnitude: Annotated[float, Gt(0.0), Le(1e6)]
    probability: Annotated[float, Ge(0.001), Le(1.0)] = 0.1


class LinkLatency(FaultParams):
    extra_s: Annotated[float, Ge(0.0), Le(600.0)]
    jitter_s: Annotated[float, Ge(0.0), Le(60.0)] = 0.0


class LinkPercent(FaultParams):
    percent: Annotated[float, Gt(0.0), Le(100.0)]


class LinkCorrupt(FaultParams):
    percent: Annotated[float, Gt(0.0), Le(100.0)]
    bits: Annotated[int, Ge(1), Le(64)] = 1


class LinkReorder(FaultParams):
    percent: Annotated[float, Gt(0.0), Le(100.0)]
    hold_s: Annotated[float, Ge(0.01), Le(60.0)] = 3.0
    """How long a picked message is held back, so later ones overtake it."""


class LinkBandwidth(FaultParams):
    bytes_per_s: Annotated[float, Ge(10.0), Le(1e7)]


# -- the catalogue ----------------------------------------------------------------------------------------

class TargetItem(StrEnum):
    """What follows `NODE.` in a target."""

    NONE = "none"
    JOINT = "joint"
    PARAMETER = "parameter"
    COMPONENT = "component"
    DIRECTION = "direction"
    DEVICE = "device"


ARM_JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow", "wrist", "scoop")
LINKED_DEVICES: dict[Node, tuple[str, ...]] = {
    Node.LANDER_DRILL: ("drill",),
    Node.LANDER_ARM: ("arm", "container"),
}
"""Devices a node may have behind a link (Modbus TCP, serial line): what `device.unresponsive` targets."""

THERMAL_COMPONENTS: dict[Node, tuple[str, ...]] = {
    Node.LANDER_DRILL: ("motor",),
    Node.LANDER_ARM: ("battery", "arm_motors"),
}
LINK_DIRECTIONS = ("down", "up")
"""`down`: far side to Earth (TM, events, reports); `up`: Earth to far side (telecommands, receipts)."""
LINK_NODES = (*FAR_SIDE_NODES, Node.RELAY_SATELLITE)
"""A link fault targets one far-side node's traffic, or `relay-satellite` for every node's."""
SERVICE_NODES = (*FAR_SIDE_NODES, Node.RELAY_SATELLITE)


class CatalogueEntry(BaseModel):
    """What instructors and `lunar-gs check` know about a fault kind."""

    model_config = ConfigDict(frozen=True)

    kind: FaultKind
    layer: FaultLayer
    summary: str
    params: type[FaultParams]
    nodes: tuple[Node, ...]
    item: TargetItem = TargetItem.NONE
    aspect: str
    """Faults on the same target and aspect compose by `compose` or are refused."""
    compose: Literal["refuse", "add"] = "refuse"
    permanent: bool = False
    """Clearing stops the perturbation, but what it did (propellant lost, pressure lost) stays."""
    reveals: tuple[str, ...] = ()
    """Housekeeping parameters (`node.field`) and events (`node:event`) where the fault shows; a sensor
    fault shows in its own parameter. Empty: `lunar-gs check` warns that nothing could reveal it."""
    recovers: tuple[str, ...] = ()
    """Commands (`NODE COMMAND`) that recover or work around it."""
    worsens: tuple[str, ...] = ()
    """Commands that make it worse while it is active."""


def _entry(kind: FaultKind, layer: FaultLayer, summary: str, params: type[FaultParams],
           nodes: tuple[Node, ...], aspect: str, **extra: object) -> CatalogueEntry:
    return CatalogueEntry(kind=kind, layer=layer, summary=summary, params=params, nodes=nodes,
                          aspect=aspect, **extra)  # type: ignore[arg-type]


_D, _A, _V, _R = Node.LANDER_DRILL, Node.LANDER_ARM, Node.ASCENT_VEHICLE, Node.RELAY_SATELLITE
_M, _S, _L, _P = FaultLayer.MODEL, FaultLayer.SENSOR, FaultLayer.LINK, FaultLayer.PROCESS

CATALOGUE: dict[FaultKind, CatalogueEntry] = {e.kind: e for e in (
    _entry(FaultKind.DRILL_STALL, _M, "bit jams on rock: torque climbs, rpm falls, over-torque trips",
           DrillStall, (_D,), "drill.jam",
           reveals=("lander-drill.torque_nm", "lander-drill.rpm", "lander-drill:over_torque"),
           recovers=("lander-drill RETRACT", "lander-drill RESET_PROTECTION"),
           worsens=("lander-drill DRILL_TO_DEPTH",)),
    _entry(FaultKind.DRILL_BIT_OVERHEAT, _M, "bit heats faster than it should while turning",
           DrillBitOverheat, (_D,), "drill.bit_heat", compose="add",
           reveals=("lander-drill.bit_temperature_c", "lander-drill:bit_overheat"),
           recovers=("lander-drill STOP", "lander-drill DRILL_TO_DEPTH"),
           worsens=("lander-drill SET_PERCUSSION",)),
    _entry(FaultKind.DRILL_FEED_STUCK, _M, "feed mechanism stuck: the bit turns but goes no deeper",
           NoParams, (_D,), "drill.feed",
           reveals=("lander-drill.penetration_rate_mm_min", "lander-drill.depth_m"),
           recovers=("lander-drill STOP", "lander-drill RETRACT")),
    _entry(FaultKind.ARM_ENCODER_STUCK, _M, "joint encoder reading frozen: the controller loses the joint",
           NoParams, (_A,), "arm.encoder", item=TargetItem.JOINT,
           reveals=("lander-arm.joints", "lander-arm:joint_fault"),
           recovers=("lander-arm SWITCH_ENCODER", "lander-arm SAMPLE_SITES")),
    _entry(FaultKind.ARM_ENCODER_DRIFT, _M, "joint encoder drifts away from the true angle",
           ArmEncoderDrift, (_A,), "arm.encoder", item=TargetItem.JOINT,
           reveals=("lander-arm.joints", "lander-arm:joint_fault"),
           recovers=("lander-arm SWITCH_ENCODER",)),
    _entry(FaultKind.ARM_JOINT_OVERCURRENT, _M, "joint motor draws too much current; protection stops the arm",
           ArmJointOvercurrent, (_A,), "arm.motor", item=TargetItem.JOINT,
           reveals=("lander-arm.joints", "lander-arm:joint_overcurrent"),
           recovers=("lander-arm RESET_JOINT",), worsens=("lander-arm SAMPLE_SITES",)),
    _entry(FaultKind.ARM_SCOOP_JAM, _M, "scoop jammed: it neither digs nor releases",
           NoParams, (_A,), "arm.scoop",
           reveals=("lander-arm.scoop_phase", "lander-arm:scoop_jammed"),
           recovers=("lander-arm CLEAR_SCOOP",)),
    _entry(FaultKind.CONTAINER_SEAL_LEAK, _M, "sealed container leaks: seal pressure decays",
           ContainerSealLeak, (_A,), "container.seal", compose="add", permanent=True,
           reveals=("lander-arm.seal_pressure_kpa",),
           recovers=("lander-arm TRANSFER_CONTAINER",)),
    _entry(FaultKind.ASCENT_THRUST_DEFICIT, _M, "engine gives less thrust than rated",
           AscentThrustDeficit, (_V,), "ascent.thrust",
           reveals=("ascent-vehicle.thrust_n", "ascent-vehicle.chamber_pressure_mpa"),
           recovers=("ascent-vehicle RETARGET", "ascent-vehicle IGNITE")),
    _entry(FaultKind.ASCENT_PROPELLANT_LEAK, _M, "propellant leaks from the tanks",
           AscentPropellantLeak, (_V,), "ascent.propellant", compose="add", permanent=True,
           reveals=("ascent-vehicle.propellant_kg",),
           recovers=("ascent-vehicle IGNITE", "ascent-vehicle RETARGET")),
    _entry(FaultKind.ASCENT_IGNITION_FAILURE, _M, "igniter fails: IGNITE fails at start",
           AscentIgnitionFailure, (_V,), "ascent.igniter",
           reveals=("ascent-vehicle:ignition_failure",),
           recovers=("ascent-vehicle IGNITE",)),
    _entry(FaultKind.POWER_BATTERY_UNDERVOLTAGE, _M, "battery weakens: the bus sags under load",
           BatteryUndervoltage, (_A,), "power.battery",
           reveals=("lander-arm.bus_voltage_v", "lander-arm.battery_soc_percent", "lander-arm:load_shed"),
           recovers=("lander-arm SET_HEATERS", "lander-drill DRILL_TO_DEPTH"),
           worsens=("lander-drill SET_PERCUSSION",)),
    _entry(FaultKind.THERMAL_DRIFT, _M, "a component heats or cools past its limits",
           ThermalDrift, (_D, _A), "thermal", item=TargetItem.COMPONENT, compose="add",
           reveals=("lander-drill.motor_temperature_c", "lander-arm.battery_temperature_c",
                    "lander-arm.arm_motor_temperature_c"),
           recovers=("lander-arm SET_HEATERS", "lander-drill STOP")),
    _entry(FaultKind.SENSOR_STUCK, _S, "sensor stuck at a value", SensorStuck, (_D, _A, _V, _R),
           "sensor", item=TargetItem.PARAMETER),
    _entry(FaultKind.SENSOR_BIAS, _S, "sensor reads off by a constant", SensorBias, (_D, _A, _V, _R),
           "sensor", item=TargetItem.PARAMETER, compose="add"),
    _entry(FaultKind.SENSOR_NOISE, _S, "sensor noise added", SensorNoise, (_D, _A, _V, _R),
           "sensor", item=TargetItem.PARAMETER, compose="add"),
    _entry(FaultKind.SENSOR_SPIKES, _S, "occasional spikes on a sensor", SensorSpikes, (_D, _A, _V, _R),
           "sensor", item=TargetItem.PARAMETER, compose="add"),
    _entry(FaultKind.SENSOR_DROPOUT, _S, "sensor gives no reading: the parameter is reported missing",
           NoParams, (_D, _A, _V, _R), "sensor", item=TargetItem.PARAMETER),
    _entry(FaultKind.LINK_LOS, _L, "loss of signal", NoParams, LINK_NODES, "link.los",
           item=TargetItem.DIRECTION, reveals=("relay-satellite.far_side_visible",)),
    _entry(FaultKind.LINK_LATENCY, _L, "extra latency", LinkLatency, LINK_NODES, "link.latency",
           item=TargetItem.DIRECTION, compose="add", reveals=("relay-satellite.one_way_delay_s",)),
    _entry(FaultKind.LINK_LOSS, _L, "packet loss", LinkPercent, LINK_NODES, "link.loss",
           item=TargetItem.DIRECTION, compose="add", reveals=("ground-control:tm_sequence",)),
    _entry(FaultKind.LINK_CORRUPT, _L, "bit corruption, caught by the frame CRC and counted as a rejection",
           LinkCorrupt, LINK_NODES, "link.corrupt", item=TargetItem.DIRECTION, compose="add",
           reveals=("relay-satellite.corrupted_frames", "relay-satellite:rejection")),
    _entry(FaultKind.LINK_DUPLICATE, _L, "packets duplicated", LinkPercent, LINK_NODES, "link.duplicate",
           item=TargetItem.DIRECTION, compose="add", reveals=("ground-control:tm_sequence",)),
    _entry(FaultKind.LINK_REORDER, _L, "packets reordered", LinkReorder, LINK_NODES, "link.reorder",
           item=TargetItem.DIRECTION, reveals=("ground-control:tm_sequence",)),
    _entry(FaultKind.LINK_BANDWIDTH, _L, "bandwidth cap: messages queue on board", LinkBandwidth,
           LINK_NODES, "link.bandwidth", item=TargetItem.DIRECTION,
           reveals=("relay-satellite.stored_messages",)),
    _entry(FaultKind.SERVICE_CRASH, _P, "the service process dies (its Last Will fires)", NoParams,
           SERVICE_NODES, "service", reveals=("sys:status",)),
    _entry(FaultKind.SERVICE_HANG, _P, "the service stops answering but keeps its connection (no Last Will)",
           NoParams, SERVICE_NODES, "service", reveals=("tm:silence",)),
    _entry(FaultKind.DEVICE_UNRESPONSIVE, _M,
           "a device behind a link (an emulator) stops answering for a while: the link is lost, then back",
           DeviceUnresponsive, (_D, _A), "device.link", item=TargetItem.DEVICE,
           reveals=("lander-drill:link_lost", "lander-arm:link_lost"),
           recovers=("lander-drill CHECKOUT", "lander-arm CHECKOUT")),
)}

SENSOR_KINDS = frozenset(k for k, e in CATALOGUE.items() if e.layer is FaultLayer.SENSOR)


class FaultTargetError(ValueError):
    """A target that the kind cannot act on."""


def parse_target(kind: FaultKind, target: str) -> tuple[Node, str | None]:
    """Split `NODE[.ITEM]` and check it against the catalogue entry of `kind`."""
    entry = CATALOGUE[kind]
    node_name, _, item = target.partition(".")
    try:
        node = Node(node_name)
    except ValueError:
        raise FaultTargetError(f"target {target!r}: unknown node {node_name!r}") from None
    if node not in entry.nodes:
        raise FaultTargetError(
            f"{kind} cannot target {node}; it acts on {', '.join(entry.nodes)}")
    if entry.item is TargetItem.NONE:
        if item:
            raise FaultTargetError(f"{kind} takes a node alone as target, got {target!r}")
        return node, None
    if entry.item is TargetItem.JOINT:
        if item not in ARM_JOINTS:
            raise FaultTargetError(f"{kind} needs a joint: {node}.JOINT with JOINT one of {', '.join(ARM_JOINTS)}")
    elif entry.item is TargetItem.COMPONENT:
        known = THERMAL_COMPONENTS.get(node, ())
        if item not in known:
            raise FaultTargetError(f"{kind} on {node} needs a component: one of {', '.join(known)}")
    elif entry.item is TargetItem.DEVICE:
        known = LINKED_DEVICES.get(node, ())
        if item not in known:
            raise FaultTargetError(f"{kind} on {node} needs a device: one of {', '.join(known)}")
    elif entry.item is TargetItem.DIRECTION:
        if item not in LINK_DIRECTIONS:
            raise FaultTargetError(f"{kind} needs a direction: {node}.down or {node}.up")
    elif not item:
        raise FaultTargetError(f"{kind} needs a housekeeping parameter: {node}.PARAMETER")
    return node, item


def parse_fault_params(kind: FaultKind, params: dict[str, ParamValue]) -> FaultParams:
    """Validate a fault's parameters against its kind (raises pydantic's ValidationError)."""
    return CATALOGUE[kind].params.model_validate(params)


# -- triggers -----------------------------------------------------------------------------------------

Comparison = Literal["==", "!=", "<", "<=", ">", ">="]


class TmCondition(BaseModel):
    """A housekeeping parameter of a node crossing a value (`depth_m >= 0.9`), as the node measured it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    node: Node
    field: Annotated[str, MinLen(1), MaxLen(64)]
    op: Comparison
    value: float | bool | str


class EventCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node: Node
    event: Annotated[str, MinLen(1), MaxLen(64)]


class Trigger(BaseModel):
    """When a fault goes in. At most one of `at`, `after`, `when_tm`, `when_event`, `phase`,
    `before_los`; none means at once. `probability` draws, from the rehearsal's seed, whether it goes in
    at all (recorded either way), so a random fault schedule reproduces."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    at: Annotated[float, Ge(0.0)] | None = None
    """Mission time: seconds after the epoch."""
    after: Annotated[float, Ge(0.0)] | None = None
    """Seconds (simulated) after the request arrives."""
    when_tm: TmCondition | None = None
    when_event: EventCondition | None = None
    phase: Annotated[str, MinLen(1), MaxLen(128)] | None = None
    """At the start of the scenario phase of this name."""
    before_los: Annotated[float, Ge(0.0), Le(86400.0)] | None = None
    """Seconds before the relay's next scheduled loss of signal."""
    probability: Annotated[float, Ge(0.0), Le(1.0)] | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> "Trigger":
        given = [n for n in ("at", "after", "when_tm", "when_event", "phase", "before_los")
                 if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"a trigger has at most one of at, after, when_tm, when_event, phase, "
                             f"before_los; got {', '.join(given)}")
        return self

    def describe(self) -> str:
        parts = []
        if self.at is not None:
            parts.append(f"at T+{self.at:.0f} s")
        if self.after is not None:
            parts.append(f"after {self.after:.0f} s")
        if self.when_tm is not None:
            c = self.when_tm
            parts.append(f"when {c.node}.{c.field} {c.op} {c.value}")
        if self.when_event is not None:
            parts.append(f"when {self.when_event.node} reports {self.when_event.event}")
        if self.phase is not None:
            parts.append(f"at the start of phase {self.phase!r}")
        if self.before_los is not None:
            parts.append(f"{self.before_los:.0f} s before the next loss of signal")
        if self.probability is not None:
            parts.append(f"with probability {self.probability}")
        return ", ".join(parts) or "at once"


class FaultSpec(BaseModel):
    """One fault as an instructor asks for it; validated against the catalogue as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: FaultKind
    target: Annotated[str, MinLen(1), MaxLen(128)]
    params: dict[str, ParamValue] = {}
    trigger: Trigger = Trigger()
    duration: Annotated[float, Gt(0.0)] | None = None
    """Simulated seconds from taking effect to clearing itself; None: until cleared."""
    label: Annotated[str, MaxLen(64)] = ""
    """A name for scenario steps and the debrief (e.g. `stall`)."""

    @model_validator(mode="after")
    def _valid_for_kind(self) -> "FaultSpec":
        parse_target(self.kind, self.target)
        try:
            parse_fault_params(self.kind, self.params)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}"
                                 for e in exc.errors(include_url=False))
            raise ValueError(f"{self.kind} params: {problems}") from None
        return self

    @property
    def node(self) -> Node:
        return parse_target(self.kind, self.target)[0]

    @property
    def item(self) -> str | None:
        return parse_target(self.kind, self.target)[1]

    @property
    def entry(self) -> CatalogueEntry:
        return CATALOGUE[self.kind]


def conflict_key(spec: FaultSpec) -> tuple[str, str]:
    """Two faults with the same key act on the same thing; their kinds decide whether they compose."""
    return spec.target, spec.entry.aspect


def composes(a: FaultSpec, b: FaultSpec) -> bool:
    """True when `a` and `b` may both be active; never silently overwrite one with the other."""
    if conflict_key(a) != conflict_key(b):
        return True
    ea, eb = a.entry, b.entry
    both_add = ea.compose == "add" and eb.compose == "add"
    return both_add and (a.kind == b.kind or ea.layer is FaultLayer.SENSOR)


# -- messages ---------------------------------------------------------------------------------------------

class FaultAction(StrEnum):
    INJECT = "inject"
    CLEAR = "clear"
    CLEAR_ALL = "clear_all"


class FaultVia(StrEnum):
    """How a request came in: kept in the ground truth for the debrief."""

    SCENARIO = "scenario"
    CLI = "cli"
    MQTT = "mqtt"
    CONSOLE = "console"
    CONTINGENCY = "contingency"
    TEST = "test"
    """A test written with the test kit (lunar_gs.testing)."""


class FaultRequest(Envelope):
    """What an instructor (a scenario, the CLI, any MQTT client) asks of the instructor service.

    inject: `spec` is the fault. clear: `fault_id` names it. clear_all: every active and armed fault.
    The answer is a `FaultRecord` on the truth topic with the same `request_id`: `accepted` (with the
    fault's id) or `rejected` (with the reason); a rejected request changes nothing.
    """

    schema_name: Literal["fault.request"] = "fault.request"
    request_id: Annotated[str, MinLen(1), MaxLen(64)]
    action: FaultAction = FaultAction.INJECT
    spec: FaultSpec | None = None
    fault_id: Annotated[str, MaxLen(64)] | None = None
    via: FaultVia = FaultVia.MQTT

    @model_validator(mode="after")
    def _complete(self) -> "FaultRequest":
        if self.action is FaultAction.INJECT and self.spec is None:
            raise ValueError("an inject request needs a spec")
        if self.action is FaultAction.CLEAR and not self.fault_id:
            raise ValueError("a clear request needs a fault_id")
        return self


class FaultOrderAction(StrEnum):
    APPLY = "apply"
    CLEAR = "clear"


class FaultOrder(Envelope):
    """From the instructor service to the node that hosts the target: apply or clear one fault now."""

    schema_name: Literal["fault.order"] = "fault.order"
    fault_id: Annotated[str, MinLen(1), MaxLen(64)]
    action: FaultOrderAction
    kind: FaultKind
    target: Annotated[str, MaxLen(128)]
    params: dict[str, ParamValue] = {}
    seed: int = 0
    """For the fault's own randomness (noise, spikes, loss), derived from the rehearsal's seed."""


class FaultEffect(StrEnum):
    APPLIED = "applied"
    """The fault took effect at `sim_time`."""
    SYMPTOM = "symptom"
    """The first time the fault changed something observable (a reading, an event, a message)."""
    CLEARED = "cleared"
    REFUSED = "refused"
    """The node could not apply it (e.g. the parameter is not in its housekeeping)."""


class FaultReport(Envelope):
    """From a node to the instructor service: what a fault did, stamped in simulated time."""

    schema_name: Literal["fault.report"] = "fault.report"
    fault_id: Annotated[str, MinLen(1), MaxLen(64)]
    effect: FaultEffect
    detail: Annotated[str, MaxLen(500)] = ""


class TruthEntry(StrEnum):
    """Every step of a fault's life, in the ground-truth log."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ARMED = "armed"
    NOT_DRAWN = "not_drawn"
    """Its probability draw said no: it never goes in (recorded, so the schedule reproduces)."""
    INJECTED = "injected"
    EFFECTIVE = "effective"
    SYMPTOM = "symptom"
    REFUSED = "refused"
    CLEARED = "cleared"
    DUD = "dud"
    """Cleared (or the run ended) without any observable symptom."""


class FaultRecord(Envelope):
    """One line of the ground truth: what really happened to a fault, when, and how it came in."""

    schema_name: Literal["fault.truth"] = "fault.truth"
    entry: TruthEntry
    fault_id: Annotated[str, MaxLen(64)] = ""
    request_id: Annotated[str, MaxLen(64)] = ""
    via: FaultVia = FaultVia.MQTT
    kind: FaultKind | None = None
    target: Annotated[str, MaxLen(128)] = ""
    params: dict[str, ParamValue] = {}
    label: Annotated[str, MaxLen(64)] = ""
    mission_time: float = 0.0
    """Seconds after the epoch (sim_time minus the epoch), for people."""
    detail: Annotated[str, MaxLen(1000)] = ""


class ActiveFault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    fault_id: str
    kind: FaultKind
    target: str
    params: dict[str, ParamValue] = {}
    label: str = ""
    state: Literal["armed", "active"]
    trigger: str = ""
    since: float | None = None
    """Simulated time it took effect (active) or was armed."""
    clears_at: float | None = None


class ActiveFaults(Envelope):
    """Retained on `sys/fault/active`: what is armed and active now (the instructor's view only)."""

    schema_name: Literal["fault.active"] = "fault.active"
    faults: Annotated[list[ActiveFault], Field(max_length=1000)] = []


FAULT_MESSAGES = (FaultRequest, FaultOrder, FaultReport, FaultRecord, ActiveFaults)


def target_form(kind: FaultKind) -> str:
    """How a target of this kind is written, for people (`lander-arm.JOINT`, ...)."""
    entry = CATALOGUE[kind]
    nodes = "|".join(entry.nodes)
    item = {TargetItem.NONE: "", TargetItem.JOINT: ".JOINT", TargetItem.PARAMETER: ".PARAMETER",
            TargetItem.COMPONENT: ".COMPONENT", TargetItem.DIRECTION: ".down|up",
            TargetItem.DEVICE: ".DEVICE"}[entry.item]
    return f"{nodes}{item}"


def describe_params(kind: FaultKind) -> str:
    """`name (min..max, default d)` for each parameter of a kind."""
    parts = []
    for name, info in CATALOGUE[kind].params.model_fields.items():
        low = next((getattr(m, a) for m in info.metadata for a in ("ge", "gt") if hasattr(m, a)), None)
        high = next((getattr(m, a) for m in info.metadata for a in ("le", "lt") if hasattr(m, a)), None)
        bounds = f"{low}..{high}" if low is not None or high is not None else ""
        default = "required" if info.is_required() else f"default {info.default}"
        parts.append(f"{name} ({', '.join(x for x in (bounds, default) if x)})")
    return "; ".join(parts)
