"""A client of the instructor service, for `lunar-gs fault ...` and tests: send a fault request and wait for
its answer in the ground truth; read the retained list of armed and active faults."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from lunar_gs.protocols.codec import DecodeError, get_codec
from lunar_gs.protocols.faults import (
    ActiveFaults,
    FaultAction,
    FaultRecord,
    FaultRequest,
    FaultSpec,
    FaultVia,
    TruthEntry,
)
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.topics import Topics
from lunar_gs.services.runtime.bus import Bus, IncomingMessage

ANSWERS = (TruthEntry.ACCEPTED, TruthEntry.REJECTED)


class NoAnswer(TimeoutError):
    """The instructor service did not answer (is it running for this mission?)."""


async def send_request(broker_url: str, mission: str, action: FaultAction, *, spec: FaultSpec | None = None,
                       fault_id: str | None = None, via: FaultVia = FaultVia.CLI,
                       timeout_s: float = 10.0) -> FaultRecord | None:
    """Send one request; returns the truth record that answers it (accepted or rejected), or, for a clear,
    None once it is delivered. Raises NoAnswer after `timeout_s` wall seconds."""
    codec = get_codec("json")
    topics = Topics(mission)
    request_id = f"{via}-{uuid.uuid4().hex[:10]}"
    answer: asyncio.Future[FaultRecord] = asyncio.get_running_loop().create_future()

    async def on_truth(message: IncomingMessage) -> None:
        with contextlib.suppress(DecodeError):
            record = codec.decode(message.payload)
            if (isinstance(record, FaultRecord) and record.request_id == request_id and record.entry in ANSWERS
                    and not answer.done()):
                answer.set_result(record)

    bus = Bus(broker_url, f"lgs-{mission}-fault-cli-{uuid.uuid4().hex[:6]}")
    bus.subscribe(topics.fault_truth, on_truth, qos=1)
    async with bus:
        await bus.wait_connected(timeout=timeout_s)
        request = FaultRequest(source=Node.INSTRUCTOR, request_id=request_id, action=action, spec=spec,
                               fault_id=fault_id, via=via, wall_time=time.time())
        await bus.publish(topics.fault_request, codec.encode(request), qos=1)
        await bus.flush(timeout=timeout_s)
        if action is not FaultAction.INJECT:
            return None
        try:
            return await asyncio.wait_for(answer, timeout_s)
        except TimeoutError:
            raise NoAnswer(f"no answer from the instructor service of mission {mission!r} within "
                           f"{timeout_s:.0f} s (is `lunar-gs run instructor` running?)") from None


async def read_active(broker_url: str, mission: str, timeout_s: float = 5.0) -> ActiveFaults:
    """The retained list of armed and active faults."""
    codec = get_codec("json")
    found: asyncio.Future[ActiveFaults] = asyncio.get_running_loop().create_future()

    async def on_active(message: IncomingMessage) -> None:
        with contextlib.suppress(DecodeError):
            decoded = codec.decode(message.payload)
            if isinstance(decoded, ActiveFaults) and not found.done():
                found.set_result(decoded)

    bus = Bus(broker_url, f"lgs-{mission}-fault-cli-{uuid.uuid4().hex[:6]}")
    bus.subscribe(Topics(mission).fault_active, on_active, qos=1)
    async with bus:
        try:
            return await asyncio.wait_for(found, timeout_s)
        except TimeoutError:
            raise NoAnswer(f"no fault list retained for mission {mission!r} (no instructor service has "
                           "run for it)") from None
