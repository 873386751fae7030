"""Bus message framing: a small routing header, a newline, then the client frame — serialised
once by the publisher and forwarded byte for byte to every matching websocket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sessions.store.live import LiveEvent


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# Event kinds that are not ordered by the meeting's seq: each carries the latest whole state of its
# row (a site's connection health) and is always delivered, never held back behind a snapshot.
UNORDERED = frozenset({"health", "speaking", "on_air", "call"})
# Event kinds every subscription of the meeting gets (sites included), not only those whose unit
# or subtree the event concerns.
BROADCAST = frozenset({"meeting", "on_air", "slide"})  # slide: every push of the meeting (issue #14)


@dataclass(frozen=True, slots=True)
class Routed:
    meeting_id: int
    seq: int
    kind: str
    unit_id: int | None
    path: frozenset[int]
    frame: bytes

    def newer_than(self, seq: int) -> bool:
        return self.seq > seq or self.kind in UNORDERED


def encode(event: LiveEvent) -> bytes:
    header = {"m": event.meeting_id, "s": event.seq, "k": event.kind, "p": list(event.unit_path),
              "u": event.data.get("unit_id") if event.kind == "seat" else None}
    return dumps(header) + b"\n" + dumps(event.wire())


def decode(message: bytes) -> Routed:
    head, _, frame = message.partition(b"\n")
    h = json.loads(head)
    return Routed(int(h["m"]), int(h["s"]), str(h["k"]), h.get("u"), frozenset(h.get("p") or ()), frame)
