"""NACKed packets sent again, for one subscriber (issue #16: weak commune links).

A receiver built on aiortc asks for a lost packet only when it notices a *new* loss (its NACK
generator then lists every packet still missing), and its video jitter buffer hands nothing on
until the missing packet comes (or 512 packets later). So a retransmission that is lost too holds
the picture until the next new loss and its repair: seconds at the low rendition's rate. Two rules
make that rare and keep the repair from making a congested link worse:

- **Copies at once and later.** Each NACKed packet is sent again twice at once and a third time
  :data:`COPY_DELAYS` later. Against an independent loss two copies at once repair as fast as can
  be (a lost first copy costs nothing); but copies sent together meet the same full queue of a
  shaped link (a token bucket drops what arrives while it is full) and are lost together, and a
  copy 150 ms later meets it drained (a CI run's commune froze 6.3 s after its move down, its
  repairs all lost in the queue the high rendition had filled).
- **One answer per round trip.** Every NACK repeats the whole missing list, so a packet whose
  copies are still on their way is asked for again at each new loss. A packet is answered again
  only once its last copy has had a round trip to arrive (libwebrtc's packet history has the same
  rule): otherwise, on a congested link, the repair traffic feeds the congestion that lost it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

COPY_DELAYS = (0.0, 0.0, 0.15)  # seconds after the NACK at which a packet is sent again
_AT_ONCE = max(1, sum(1 for delay in COPY_DELAYS if delay == 0))  # copies sent within the NACK's handling
_LATER = tuple(delay for delay in COPY_DELAYS if delay > 0)  # the others, by a task
MIN_ROUND_TRIP = 0.05  # the gate's round trip while none is measured yet, and its least value
_PRUNE_AT = 2048  # answered sequence numbers remembered before the old ones are forgotten


class Repairs:
    """Answers one subscriber's NACKs. ``resend(seq)`` sends packet ``seq`` once more and returns
    the bytes sent (0: no longer held); ``round_trip()`` is the subscriber's RTT in seconds, or None."""

    def __init__(self, resend: Callable[[int], Awaitable[int]], round_trip: Callable[[], float | None]) -> None:
        self._resend = resend
        self._round_trip = round_trip
        self._quiet_until: dict[int, float] = {}  # seq -> until when a NACK for it is not answered again
        self._copies: set[asyncio.Task[None]] = set()
        self.asked = 0  # NACKed packets, answered or not (a probe stops at the first: bridge.probe)
        self.answered = 0  # NACKed packets answered (each counted once per answer, not per copy)
        self.ignored = 0  # NACKs for a packet whose copies had no round trip yet to arrive

    async def nacked(self, seq: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.asked += 1
        quiet = self._quiet_until.get(seq)
        if quiet is not None and now < quiet:
            self.ignored += 1
            return
        for copy in range(_AT_ONCE):
            if not await self._resend(seq):
                if copy == 0:
                    return
                break
        self.answered += 1
        rtt = max(self._round_trip() or 0.0, MIN_ROUND_TRIP)
        self._quiet_until[seq] = now + COPY_DELAYS[-1] + rtt
        if len(self._quiet_until) > _PRUNE_AT:
            self._quiet_until = {s: t for s, t in self._quiet_until.items() if t > now}
        if _LATER:
            task = loop.create_task(self._later_copies(seq))
            self._copies.add(task)
            task.add_done_callback(self._copies.discard)

    async def _later_copies(self, seq: int) -> None:
        waited = 0.0
        for delay in _LATER:
            await asyncio.sleep(delay - waited)
            waited = delay
            if not await self._resend(seq):
                return

    def forget(self) -> None:
        """The stream moved to another timeline (a splice): what was sent before is not sent again."""
        self._quiet_until.clear()
        for task in self._copies:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._copies)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
