"""A client of ground control for commands by hand (`lunar-gs cmd`): one `CommandRequest` out, then every
`CommandUpdate` about it until the command is final. Ground control books, sends, tracks, archives and
audits it like a scenario's command; this side only checks it first and follows it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

from lunar_gs.protocols.codec import DecodeError, get_codec
from lunar_gs.protocols.commands import (
    COMMAND_CATALOG,
    ArgValue,
    CommandRequest,
    CommandUpdate,
    catalogue_refusal,
    is_hazardous,
)
from lunar_gs.protocols.nodes import Node
from lunar_gs.protocols.system import ClockState
from lunar_gs.protocols.topics import Topics
from lunar_gs.protocols.verification import FailureCode
from lunar_gs.services.runtime.bus import Bus, IncomingMessage


class CommandCheckError(ValueError):
    """The command would be refused: nothing was sent."""


class NoGroundControl(TimeoutError):
    """Ground control did not answer (is it running for this mission?)."""


def check_command(node: Node, command: str, args: dict[str, ArgValue], *, confirm: bool) -> None:
    """The catalogue's word on a command before anything is sent."""
    if not COMMAND_CATALOG.get(node):
        commanded = ", ".join(str(n) for n, c in COMMAND_CATALOG.items() if c)
        raise CommandCheckError(f"{node} takes no commands (nodes with commands: {commanded})")
    refusal = catalogue_refusal(node, command, args)
    if refusal is not None:
        code, reason = refusal
        raise CommandCheckError(reason if code is FailureCode.UNKNOWN_COMMAND else f"{command}: {reason}")
    if is_hazardous(node, command) and not confirm:
        raise CommandCheckError(f"{command} on {node} is hazardous: add --confirm to send it")


async def send_command(broker_url: str, mission: str, node: Node, command: str, args: dict[str, ArgValue], *,
                       confirm: bool = False, timeout_s: float | None = None, operator: str = "cli",
                       answer_timeout_s: float = 10.0, on_update: Callable[[CommandUpdate, float | None], None],
                       wall_timeout_s: float | None = None) -> CommandUpdate:
    """Send one command through ground control; `on_update(update, epoch)` sees each new stage. Returns the
    final update. Raises NoGroundControl when nothing answers within `answer_timeout_s` wall seconds, and
    TimeoutError when the command is not final within `wall_timeout_s` (None: ground control's own
    timeout, in mission time, decides)."""
    codec = get_codec("json")
    topics = Topics(mission)
    client_ref = f"cli-{uuid.uuid4().hex[:12]}"
    loop = asyncio.get_running_loop()
    final: asyncio.Future[CommandUpdate] = loop.create_future()
    first: asyncio.Future[None] = loop.create_future()
    seen: set[tuple[str, str, int]] = set()
    epoch: list[float] = []

    async def on_message(message: IncomingMessage) -> None:
        with contextlib.suppress(DecodeError):
            decoded = codec.decode(message.payload)
            if isinstance(decoded, ClockState) and not epoch:
                epoch.append(decoded.epoch)
            if not isinstance(decoded, CommandUpdate) or decoded.client_ref != client_ref:
                return
            if not first.done():
                first.set_result(None)
            key = (decoded.state, decoded.stage, decoded.progress)
            if key not in seen:  # QoS 1 and repeated requests may say the same thing twice
                seen.add(key)
                on_update(decoded, epoch[0] if epoch else None)
            if decoded.final and not final.done():
                final.set_result(decoded)

    bus = Bus(broker_url, f"lgs-{mission}-cmd-{uuid.uuid4().hex[:6]}")
    bus.subscribe(topics.command_update, on_message, qos=1)
    bus.subscribe(topics.clock, on_message, qos=1)
    async with bus:
        await bus.wait_connected(timeout=answer_timeout_s)
        request = CommandRequest(source=Node.GROUND_CONTROL, client_ref=client_ref, target=node, command=command,
                                 args=args, confirm=confirm, timeout_s=timeout_s, operator=operator,
                                 wall_time=time.time())
        await bus.publish(topics.command_request, codec.encode(request), qos=1)
        try:
            await asyncio.wait_for(asyncio.shield(first), answer_timeout_s)
        except TimeoutError:
            raise NoGroundControl(f"no answer from ground control of mission {mission!r} within "
                                  f"{answer_timeout_s:.0f} s (is it running, on this broker?)") from None
        return await asyncio.wait_for(final, wall_timeout_s)
