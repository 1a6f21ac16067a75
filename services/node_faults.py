"""A node's side of fault injection: take the instructor service's orders and apply each fault where the
real failure would act (a device model, a sensor, the relay link, the process itself), then report what
it did: applied, its first observable symptom, cleared (by order or recovered by the physics), refused.

Orders come on `sys/fault/node/{node}`; reports go to `sys/fault/report`. Neither crosses the relay and
ground control subscribes to neither: what was injected stays apart from what operators see.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from lunar_gs.hardware_sim.faults import FaultHost, FaultNotApplicable, ModelFault, Symptom
from lunar_gs.hardware_sim.hal import Device
from lunar_gs.hardware_sim.sensor_faults import SensorFaults
from lunar_gs.protocols.faults import (
    CATALOGUE,
    FaultEffect,
    FaultKind,
    FaultLayer,
    FaultOrder,
    FaultOrderAction,
    FaultReport,
    parse_fault_params,
    parse_target,
)
from lunar_gs.protocols.nodes import Node
from lunar_gs.services.runtime.bus import IncomingMessage
from lunar_gs.services.runtime.service import ServiceRuntime

CRASH_EXIT_CODE = 70
"""Exit status of a process killed by a `service.crash` fault (EX_SOFTWARE): a supervisor restarts it."""


class LinkFaultHost(Protocol):
    """What the relay offers for link faults (see services.relay_satellite)."""

    def apply_link_fault(self, fault: ModelFault, direction: str, node: Node | None) -> None: ...
    def clear_link_fault(self, fault_id: str) -> bool: ...
    def drain_link_symptoms(self) -> list[Symptom]: ...


class NodeFaults:
    """Fault orders for one node. `sample` returns the current housekeeping fields (for sensor faults)."""

    def __init__(self, runtime: ServiceRuntime, devices: Sequence[Device], *,
                 sample: Callable[[], MutableMapping[str, Any]] | None = None,
                 link: LinkFaultHost | None = None) -> None:
        self.runtime = runtime
        self.devices = list(devices)
        self.sample = sample
        self.link = link
        self.sensors = SensorFaults()
        self.hung: set[str] = set()
        """Ids of active `service.hang` faults: while any, the node neither answers nor reports."""
        self._hang_noticed = False
        self._where: dict[str, str] = {}
        """fault id -> where it acts: a device kind, "sensor", "link" or "process"."""
        runtime.bus.subscribe(runtime.topics.fault_orders(runtime.node), self._on_order, qos=1)

    # -- orders ---------------------------------------------------------------------------------------
    async def _on_order(self, message: IncomingMessage) -> None:
        order = await self.runtime.decode(message, FaultOrder, source=Node.INSTRUCTOR)
        if order is None:
            return
        log = self.runtime.log.bind(fault_id=order.fault_id, kind=str(order.kind))
        if order.action is FaultOrderAction.CLEAR:
            cleared = self.clear(order.fault_id)
            await self.report(order.fault_id, FaultEffect.CLEARED, "cleared" if cleared else "was not active")
            log.info("fault_cleared", found=cleared)
            return
        try:
            detail = self.apply(order)
        except (FaultNotApplicable, ValueError) as exc:
            log.warning("fault_refused", reason=str(exc))
            await self.report(order.fault_id, FaultEffect.REFUSED, str(exc))
            return
        log.info("fault_applied", detail=detail)
        await self.report(order.fault_id, FaultEffect.APPLIED, detail)
        if order.kind is FaultKind.SERVICE_CRASH:
            await self._crash()

    def apply(self, order: FaultOrder) -> str:
        """Put a fault in; raises FaultNotApplicable (or ValueError) when this node cannot host it."""
        if order.fault_id in self._where:
            return f"already applied ({self._where[order.fault_id]})"
        entry = CATALOGUE[order.kind]
        node, item = parse_target(order.kind, order.target)
        if node != self.runtime.node and entry.layer is not FaultLayer.LINK:
            raise FaultNotApplicable(f"{order.target} is not on {self.runtime.node}")
        params = parse_fault_params(order.kind, dict(order.params)).model_dump()
        fault = ModelFault(order.fault_id, str(order.kind), item, params, order.seed)
        match entry.layer:
            case FaultLayer.MODEL:
                where = self._apply_to_model(fault)
            case FaultLayer.SENSOR:
                if self.sample is None or item is None:
                    raise FaultNotApplicable(f"{self.runtime.node} has no housekeeping sensors")
                self.sensors.add(fault.fault_id, fault.kind, item, params, order.seed, self.sample())
                where = "sensor"
            case FaultLayer.LINK:
                if self.link is None:
                    raise FaultNotApplicable(f"{self.runtime.node} carries no link")
                self.link.apply_link_fault(fault, item or "down", None if node is Node.RELAY_SATELLITE else node)
                where = "link"
            case FaultLayer.PROCESS:
                if order.kind is FaultKind.SERVICE_HANG:
                    self.hung.add(order.fault_id)
                    self._hang_noticed = False
                where = "process"
        self._where[order.fault_id] = where
        return f"acting on {where}"

    def _apply_to_model(self, fault: ModelFault) -> str:
        reasons = []
        for device in self.devices:
            if isinstance(device, FaultHost) and fault.kind in device.FAULT_KINDS:
                try:
                    device.inject_fault(fault)
                    return str(device.kind)
                except FaultNotApplicable as exc:
                    reasons.append(str(exc))
        raise FaultNotApplicable("; ".join(reasons) or f"no device of {self.runtime.node} takes {fault.kind}")

    def clear(self, fault_id: str) -> bool:
        where = self._where.pop(fault_id, None)
        if where is None:
            return False
        if where == "sensor":
            return self.sensors.remove(fault_id)
        if where == "link":
            return self.link is not None and self.link.clear_link_fault(fault_id)
        if where == "process":
            self.hung.discard(fault_id)
            return True
        for device in self.devices:
            if isinstance(device, FaultHost) and device.clear_fault(fault_id):
                return True
        return False

    # -- what the faults did --------------------------------------------------------------------------
    async def collect(self) -> None:
        """Report first symptoms and recoveries the devices (and the link) noted since the last call."""
        symptoms: list[Symptom] = []
        for device in self.devices:
            if isinstance(device, FaultHost):
                symptoms.extend(device.drain_symptoms())
        if self.link is not None:
            symptoms.extend(self.link.drain_link_symptoms())
        for symptom in sorted(symptoms, key=lambda s: s.time):
            if symptom.recovered:
                self._where.pop(symptom.fault_id, None)
                await self.report(symptom.fault_id, FaultEffect.CLEARED, f"recovered: {symptom.what}",
                                  sim_time=symptom.time)
            else:
                await self.report(symptom.fault_id, FaultEffect.SYMPTOM, symptom.what, sim_time=symptom.time)

    async def perturb_housekeeping(self, fields: MutableMapping[str, Any], now: float) -> list[str]:
        """Apply the sensor faults to one sample; returns the parameters to flag missing."""
        if not len(self.sensors):
            return []
        missing, symptoms = self.sensors.apply(fields, now)
        for symptom in symptoms:
            await self.report(symptom.fault_id, FaultEffect.SYMPTOM, symptom.what, sim_time=symptom.time)
        return missing

    async def note_silence(self, now: float) -> None:
        """A hung node just skipped something it would have sent: the hang's first symptom."""
        if self.hung and not self._hang_noticed:
            self._hang_noticed = True
            for fault_id in self.hung:
                await self.report(fault_id, FaultEffect.SYMPTOM, "stopped answering", sim_time=now)

    async def report(self, fault_id: str, effect: FaultEffect, detail: str, sim_time: float | None = None) -> None:
        await self.runtime.publish(self.runtime.topics.fault_report, FaultReport, qos=1, fault_id=fault_id,
                                   effect=effect, detail=detail[:500], sim_time=sim_time)

    async def _crash(self) -> None:
        """Die as a crashed process dies: no goodbye, so the broker fires the Last Will."""
        self.runtime.log.error("crashing_on_fault")
        try:
            await self.runtime.bus.flush(timeout=2.0)  # the `applied` report must reach the truth log
        except (TimeoutError, asyncio.TimeoutError):
            pass
        os._exit(CRASH_EXIT_CODE)

    # -- crash recovery -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"sensors": self.sensors, "hung": set(self.hung), "where": dict(self._where)}

    def restore(self, saved: Mapping[str, Any]) -> None:
        self.sensors = saved["sensors"]
        self.hung = set(saved["hung"])
        # a crash fault is over once the process is back; a hang is still on
        self._where = {k: v for k, v in saved["where"].items() if v != "process" or k in self.hung}
