"""Link faults: what an injected fault does to each message crossing the relay, one direction at a time.

Why pure: the relay decides each message's fate here (dropped, corrupted, duplicated, delayed, held back,
queued behind a slow channel, or kept on board out of signal) and only carries the outcome out, so the
fates reproduce exactly from the faults' seeds and the relay can be saved and restored with them.

A fault acts on one direction (`down`: far side to Earth, `up`: Earth to far side) of one far-side node's
traffic, or (node None) of every node's. Every fault matching a message acts on it, in this order:

1. `link.los`: the direction is out of signal; the message stays on board (`Fate.held`) until cleared.
2. `link.duplicate`: each duplicate fault whose draw (its `percent`) hits adds one more copy.
Then, for each copy:
3. `link.bandwidth`: the fault is a serial channel of `bytes_per_s`; the copy starts to go out when the
   channel is free and takes len/bytes_per_s, and arrives that much later than it would have.
4. `link.latency`: `extra_s` plus a uniform draw in [0, `jitter_s`]; several latencies add up.
5. `link.reorder`: a picked copy (`percent`) is held back `hold_s`, so later messages overtake it.
6. `link.loss`: each loss fault draws on its own (`percent`): losses combine as independent chances.
7. `link.corrupt`: each corrupt fault whose draw hits flips `bits` distinct random bits. The receiving end
   computes the frame's CRC-16/CCITT (`binascii.crc_hqx(data, 0xFFFF)`): when it differs from the CRC of
   what was sent, the frame is caught and discarded (`Copy.crc_error`); a collision passes the corrupted
   bytes on, as a real frame check would.

Each fault has its own random stream, seeded from its `seed` and its id (so two faults ordered with the
same seed still draw independently), and draws only for messages it acts on.
"""

from __future__ import annotations

import binascii
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from lunar_gs.hardware_sim.faults import FaultNotApplicable, ModelFault, Symptom

DIRECTIONS = ("down", "up")
LINK_KINDS = ("link.los", "link.latency", "link.loss", "link.corrupt", "link.duplicate", "link.reorder",
              "link.bandwidth")
_ADDITIVE = frozenset({"link.latency", "link.loss", "link.corrupt", "link.duplicate"})
"""Kinds that may be active more than once on one target (they compose); the others exclude a second."""


def frame_check(data: bytes) -> int:
    """The frame's CRC-16/CCITT (polynomial 0x1021, initial value 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


def flip_bits(data: bytes, bits: int, rng: random.Random) -> bytes:
    """`data` with `bits` distinct bits flipped (all of them, if it has fewer)."""
    total = len(data) * 8
    out = bytearray(data)
    for position in rng.sample(range(total), min(bits, total)):
        out[position // 8] ^= 1 << (position % 8)
    return bytes(out)


@dataclass(frozen=True)
class Copy:
    """One copy of a message that leaves the relay's far end at `due`."""

    due: float
    payload: bytes
    crc_error: tuple[int, int] | None = None
    """(CRC sent, CRC received) when the receiving end's frame check caught corruption: the frame is
    counted and discarded there at `due`, not delivered."""
    waits: tuple[tuple[str, float, float], ...] = ()
    """(bandwidth fault id, entered its channel, fully sent) for each channel the copy queued in: what
    the relay needs to re-time it if that cap is cleared while the copy is still on board."""


@dataclass(frozen=True)
class Fate:
    """What the link does to one message."""

    held: bool = False
    """Out of signal (`link.los`): keep it on board and ask again when the signal is back."""
    copies: tuple[Copy, ...] = ()
    """What arrives (one copy normally, more when duplicated, none when lost)."""
    lost: int = 0
    """Copies the link lost."""


@dataclass
class _LinkFault:
    fault_id: str
    kind: str
    direction: str
    node: str | None
    params: Mapping[str, object]
    rng: random.Random
    symptomatic: bool = False
    free_at: float = float("-inf")
    """Bandwidth: when its channel is next free."""
    on_board: deque[float] = field(default_factory=deque)
    """Bandwidth: when each queued message will have gone out (in channel order)."""

    def matches(self, direction: str, node: str | None) -> bool:
        return self.direction == direction and (self.node is None or self.node == node)

    def number(self, name: str) -> float:
        return float(self.params.get(name) or 0.0)  # type: ignore[arg-type]

    def chance(self) -> bool:
        """One draw against the fault's `percent` (always drawn, so the stream does not depend on it)."""
        return self.rng.random() * 100.0 < self.number("percent")

    @property
    def target(self) -> str:
        return f"{self.node or 'relay-satellite'}.{self.direction}"


@dataclass
class LinkFaults:
    """The link faults active on the relay."""

    _faults: dict[str, _LinkFault] = field(default_factory=dict)
    _symptoms: list[Symptom] = field(default_factory=list)

    # -- faults in and out ----------------------------------------------------------------------------
    def add(self, fault: ModelFault, direction: str, node: str | None) -> None:
        """Start `fault` on `direction` of `node`'s traffic (None: every node's)."""
        if fault.kind not in LINK_KINDS:
            raise FaultNotApplicable(f"{fault.kind} is not a link fault")
        if direction not in DIRECTIONS:
            raise FaultNotApplicable(f"link direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        if fault.kind not in _ADDITIVE:
            for other in self._faults.values():
                if other.kind == fault.kind and other.direction == direction and other.node == node \
                        and other.fault_id != fault.fault_id:
                    raise FaultNotApplicable(f"{fault.kind} on {other.target} is already active "
                                             f"({other.fault_id}); it does not compose")
        rng = random.Random(f"{fault.seed}:{fault.fault_id}")
        self._faults[fault.fault_id] = _LinkFault(fault.fault_id, fault.kind, direction,
                                                  None if node is None else str(node), dict(fault.params), rng)

    def remove(self, fault_id: str) -> bool:
        """Stop a fault; messages it already changed stay changed. False if it was not active."""
        return self._faults.pop(fault_id, None) is not None

    def kind_of(self, fault_id: str) -> str | None:
        fault = self._faults.get(fault_id)
        return None if fault is None else fault.kind

    def __len__(self) -> int:
        return len(self._faults)

    def __contains__(self, fault_id: object) -> bool:
        return fault_id in self._faults

    # -- questions the relay asks ---------------------------------------------------------------------
    def out_of_signal(self, direction: str, node: str | None) -> bool:
        """A `link.los` covers this direction of this node's traffic."""
        return any(f.kind == "link.los" and f.matches(direction, node) for f in self._faults.values())

    def any_los(self) -> bool:
        return any(f.kind == "link.los" for f in self._faults.values())

    def relay_out_of_signal(self) -> bool:
        """A `link.los` on every node's traffic (either direction): the relay has lost the far side."""
        return any(f.kind == "link.los" and f.node is None for f in self._faults.values())

    def note_relay_los(self, now: float) -> None:
        """The relay just reported the far side out of view: a symptom of its every-node `link.los`
        faults, even when no message has tried to cross yet."""
        for fault in self._faults.values():
            if fault.kind == "link.los" and fault.node is None:
                self._symptom(fault, now, "relay reported the far side out of view")

    def extra_delay_s(self, direction: str) -> float:
        """Mean extra delay of the latency faults on every node's traffic in `direction` (what ranging
        through the relay would measure)."""
        return sum(f.number("extra_s") + f.number("jitter_s") / 2.0 for f in self._faults.values()
                   if f.kind == "link.latency" and f.node is None and f.direction == direction)

    def on_board(self, now: float) -> int:
        """Messages queued behind a bandwidth cap that have not yet fully gone out at `now`."""
        count = 0
        for fault in self._faults.values():
            while fault.on_board and fault.on_board[0] <= now:
                fault.on_board.popleft()
            count += len(fault.on_board)
        return count

    def drain_symptoms(self) -> list[Symptom]:
        """The first message each fault changed (once per fault), in the order it happened."""
        out, self._symptoms = self._symptoms, []
        return out

    # -- the fate of one message ----------------------------------------------------------------------
    def decide(self, direction: str, node: str | None, payload: bytes, now: float, due: float) -> Fate:
        """What happens to a message of `node` going `direction`, received at `now`, which would nominally
        arrive at `due`."""
        acting = [f for f in self._faults.values() if f.matches(direction, node)]
        if not acting:
            return Fate(copies=(Copy(due, payload),))
        where = f"{node or 'relay-satellite'}.{direction}"
        for fault in acting:
            if fault.kind == "link.los":
                self._symptom(fault, now, f"held a message on board: {where} out of signal")
                return Fate(held=True)
        count = 1
        for fault in self._of(acting, "link.duplicate"):
            if fault.chance():
                count += 1
                self._symptom(fault, now, f"duplicated a message on {where}")
        copies: list[Copy] = []
        lost = 0
        for _ in range(count):
            copy = self._one_copy(acting, where, payload, now, due)
            if copy is None:
                lost += 1
            else:
                copies.append(copy)
        return Fate(copies=tuple(copies), lost=lost)

    def _one_copy(self, acting: list[_LinkFault], where: str, payload: bytes, now: float, due: float
                  ) -> Copy | None:
        light = due - now
        leaves = now
        waits: list[tuple[str, float, float]] = []
        for fault in self._of(acting, "link.bandwidth"):
            start = max(leaves, fault.free_at)
            sent = start + len(payload) / fault.number("bytes_per_s")
            fault.free_at = sent
            fault.on_board.append(sent)
            waits.append((fault.fault_id, leaves, sent))
            if sent > now:
                self._symptom(fault, now, f"queued a message on board behind the {where} cap "
                                          f"({sent - now:.2f} s to send)")
            leaves = sent
        arrival = leaves + light
        for fault in self._of(acting, "link.latency"):
            extra = fault.number("extra_s") + fault.rng.uniform(0.0, fault.number("jitter_s"))
            arrival += extra
            if extra > 0:
                self._symptom(fault, now, f"delayed a message on {where} by {extra:.2f} s")
        for fault in self._of(acting, "link.reorder"):
            if fault.chance():
                arrival += fault.number("hold_s")
                self._symptom(fault, now, f"held back a message on {where} by {fault.number('hold_s'):.2f} s")
        lost = False
        for fault in self._of(acting, "link.loss"):
            if fault.chance():  # every loss fault draws, so each one's stream is independent of the others
                lost = True
                self._symptom(fault, now, f"lost a message on {where}")
        if lost:
            return None
        sent_bytes = payload
        for fault in self._of(acting, "link.corrupt"):
            if fault.chance() and sent_bytes:
                sent_bytes = flip_bits(sent_bytes, int(fault.number("bits")), fault.rng)
                caught = frame_check(sent_bytes) != frame_check(payload)
                self._symptom(fault, now, f"corrupted a frame on {where}"
                                          + (" (CRC-16 caught it)" if caught else " (CRC-16 collision: passed)"))
        crc_error = None
        if sent_bytes != payload:
            expected, actual = frame_check(payload), frame_check(sent_bytes)
            if expected != actual:
                crc_error = (expected, actual)
        return Copy(arrival, sent_bytes, crc_error, tuple(waits))

    @staticmethod
    def _of(acting: list[_LinkFault], kind: str) -> list[_LinkFault]:
        return [f for f in acting if f.kind == kind]

    def _symptom(self, fault: _LinkFault, time: float, what: str) -> None:
        if not fault.symptomatic:
            fault.symptomatic = True
            self._symptoms.append(Symptom(fault.fault_id, time, what))
