"""Both ends of end-to-end delivery (see protocols.delivery): the sender's book of unconfirmed messages,
re-sent go-back-N with backoff, and the receiver's per-stream record that drops duplicates and says how
far it holds a stream without a hole."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lunar_gs.protocols.nodes import Node

Monotonic = Callable[[], float]


@dataclass
class _OutStream:
    topic: str
    receivers: frozenset[Node]
    pending: dict[int, bytes] = field(default_factory=dict)
    confirmed: dict[Node, int] = field(default_factory=dict)
    last_sent: float = 0.0
    backoff_s: float = 0.0


class DeliveryOutbox:
    """Messages of each reliable stream, kept until every receiver has confirmed them.

    A stream whose oldest unconfirmed message has waited `resend_after_s` (wall seconds; doubling up to
    `max_backoff_s` while nothing is confirmed) is re-sent whole, in order, with the original bytes.
    At most `limit` messages are kept per stream; beyond that the oldest is given up and counted.
    """

    def __init__(self, resend_after_s: float = 1.0, max_backoff_s: float = 16.0, limit: int = 100_000,
                 monotonic: Monotonic = time.monotonic) -> None:
        self.resend_after_s = resend_after_s
        self.max_backoff_s = max_backoff_s
        self.limit = limit
        self._monotonic = monotonic
        self._streams: dict[str, _OutStream] = {}
        self.resent = 0
        self.given_up = 0

    def track(self, channel: str, topic: str, receivers: frozenset[Node], seq: int, payload: bytes) -> None:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _OutStream(topic, receivers, backoff_s=self.resend_after_s)
        if not stream.pending:
            stream.last_sent = self._monotonic()
            stream.backoff_s = self.resend_after_s
        stream.pending[seq] = payload
        if len(stream.pending) > self.limit:
            del stream.pending[next(iter(stream.pending))]
            self.given_up += 1

    def confirm(self, channel: str, receiver: Node, upto: int) -> int:
        """Record a receipt; returns how many messages no receiver needs any more."""
        stream = self._streams.get(channel)
        if stream is None or receiver not in stream.receivers:
            return 0
        if upto <= stream.confirmed.get(receiver, -1):
            return 0
        stream.confirmed[receiver] = upto
        everyone = min(stream.confirmed.get(r, -1) for r in stream.receivers)
        released = [seq for seq in stream.pending if seq <= everyone]
        for seq in released:
            del stream.pending[seq]
        if released:
            stream.backoff_s = self.resend_after_s
            stream.last_sent = self._monotonic()
        return len(released)

    def due(self) -> list[tuple[str, bytes]]:
        """What to re-send now: every unconfirmed message of each stream whose wait is over."""
        now = self._monotonic()
        out: list[tuple[str, bytes]] = []
        for stream in self._streams.values():
            if stream.pending and now - stream.last_sent >= stream.backoff_s:
                out.extend((stream.topic, payload) for _, payload in sorted(stream.pending.items()))
                stream.last_sent = now
                stream.backoff_s = min(stream.backoff_s * 2, self.max_backoff_s)
        self.resent += len(out)
        return out

    @property
    def unconfirmed(self) -> int:
        return sum(len(s.pending) for s in self._streams.values())

    def snapshot(self) -> dict[str, Any]:
        return {ch: {"topic": s.topic, "receivers": sorted(s.receivers), "pending": dict(s.pending),
                     "confirmed": {str(k): v for k, v in s.confirmed.items()}}
                for ch, s in self._streams.items()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        now = self._monotonic()
        for channel, saved in snapshot.items():
            self._streams[channel] = _OutStream(
                saved["topic"], frozenset(Node(r) for r in saved["receivers"]), dict(saved["pending"]),
                {Node(k): v for k, v in saved["confirmed"].items()}, last_sent=now - self.resend_after_s,
                backoff_s=self.resend_after_s)


@dataclass
class _InStream:
    upto: int
    first: int
    accepted: int = 1
    ahead: set[int] = field(default_factory=set)


class DeliveryRecord:
    """What a receiver holds of each reliable stream (source, channel)."""

    def __init__(self) -> None:
        self._streams: dict[tuple[Node, str], _InStream] = {}
        self._dirty: set[tuple[Node, str]] = set()
        self.duplicates = 0

    def accept(self, source: Node, channel: str, seq: int) -> bool:
        """True for a message not seen before; a duplicate is counted and refused."""
        key = (source, channel)
        self._dirty.add(key)  # a duplicate means our receipt was lost: say it again
        stream = self._streams.get(key)
        if stream is None:  # first contact: take the stream from here
            self._streams[key] = _InStream(upto=seq, first=seq)
            return True
        if seq <= stream.upto or seq in stream.ahead:
            self.duplicates += 1
            return False
        stream.ahead.add(seq)
        stream.accepted += 1
        while stream.upto + 1 in stream.ahead:
            stream.upto += 1
            stream.ahead.discard(stream.upto)
        return True

    def take_receipts(self) -> list[tuple[Node, str, int]]:
        """(source, channel, upto) of every stream that changed since the last call."""
        receipts = [(source, channel, self._streams[(source, channel)].upto) for source, channel in self._dirty]
        self._dirty.clear()
        return receipts

    def holes(self) -> dict[tuple[Node, str], int]:
        """Messages known to be missing (between the contiguous mark and the furthest seen), per stream."""
        return {key: max(s.ahead) - s.upto - len(s.ahead) for key, s in self._streams.items() if s.ahead}

    def summary(self) -> dict[str, dict[str, int]]:
        """Per stream: first and last contiguous seq, messages taken, messages known missing."""
        return {f"{source}/{channel}": {"first": s.first, "upto": s.upto, "accepted": s.accepted,
                                        "missing": (max(s.ahead) - s.upto - len(s.ahead)) if s.ahead else 0}
                for (source, channel), s in self._streams.items()}
