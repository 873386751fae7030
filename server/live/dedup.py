"""Late and repeated meeting events, dropped. The outbox (server.services.outbox) publishes an event
the bus refused later than the events after it, and may publish one twice (a publish whose
"delivered" mark was lost). A meeting's ordered events each carry the whole state of one row — the
meeting (``meeting``) or one seat (``seat``, by unit) — at their seq, so an event older than the
last one seen for its row, or the same frame again, would only take a client back in time: the hub
keeps, per meeting it serves, the newest seq and frame of each row and drops those. Plain code.
"""

from __future__ import annotations

from server.live.wire import UNORDERED, Routed


class Latest:
    def __init__(self) -> None:
        self.rows: dict[int, dict[tuple[str, int | None], tuple[int, int]]] = {}  # meeting → row → (seq, hash)

    def fresh(self, r: Routed) -> bool:
        """Whether ``r`` is new for its row (and remember it); False: older than, or the same as, the last."""
        if r.kind in UNORDERED:
            return True
        rows = self.rows.setdefault(r.meeting_id, {})
        key = (r.kind, r.unit_id)
        last = rows.get(key)
        mark = (r.seq, hash(r.frame))
        if last is not None and (r.seq < last[0] or mark == last):
            return False
        rows[key] = mark
        return True

    def forget(self, meeting: int) -> None:
        self.rows.pop(meeting, None)
