"""Site connections and disconnections of this process, written as *counts* in batches.

The process knows exactly which (meeting, unit) its sockets hold (``held``, changed at once on a
join or leave); what it writes is that count (``sessions.store.presence.hold``), never an increment.
So a write may be replayed safely: a batch that failed after committing, written again, changes
nothing. The changes of one meeting that arrive while its previous batch is being written go to
the database together (``server.batching``); alone, a change is written at once.

A write that fails (the database is down, say) leaves its (meeting, unit) *unsure*: a repair task
writes it again from ``held`` with backoff until it succeeds — so a connection that closes while
the database is away is released when it is back, and a join whose answer was lost is corrected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

from server.batching import Coalescer
from server.outage import is_outage
from sessions.errors import DomainError

log = logging.getLogger("hoinghi.presence")

# (meeting id, {unit id: connections this process holds}, as of when — None: now): commit, then publish
WriteCounts = Callable[[int, dict[int, int], datetime | None], Awaitable[None]]
Key = tuple[int, int]  # (meeting id, unit id)


class Presence:
    def __init__(self, write: WriteCounts, clock: Callable[[], datetime], max_batch: int = 500,
                 retry_s: tuple[float, float] = (0.25, 4.0)) -> None:
        self._write, self._clock = write, clock
        self.batches: Coalescer[int, int, None] = Coalescer(self._run, max_batch)
        self.retry_s = retry_s
        self.held: Counter[Key] = Counter()  # the truth: connections this process's sockets hold
        self.written: dict[Key, int] = {}  # what the database was last known to store for this process
        self.unsure: set[Key] = set()  # a write failed: what is stored is unknown
        self.lapsed: dict[Key, datetime] = {}  # when the last connection of a key closed, until written
        self._wake = asyncio.Event()
        self._repair: asyncio.Task[None] | None = None

    async def connect(self, meeting_id: int, unit_id: int) -> None:
        """Raises when the join was refused (the socket does not hold the site then). A join the
        database could not take now is held all the same, and written when it answers."""
        key = (meeting_id, unit_id)
        self.held[key] += 1
        try:
            await asyncio.shield(self.batches.submit(meeting_id, unit_id))
        except Exception as exc:
            self._mark_unsure(key)
            if is_outage(exc):
                log.warning("connection not written yet; it will be retried",
                            extra={"meeting": meeting_id, "unit": unit_id, "error": type(exc).__name__})
                return
            self._drop(key)  # refused: not held, and written again without it
            raise
        except asyncio.CancelledError:  # the caller gave up: not held, written again without it
            self._drop(key)
            self._mark_unsure(key)
            raise

    async def disconnect(self, meeting_id: int, unit_id: int) -> None:
        """Never fails: a disconnection that cannot be written now is written by the repair task."""
        key = (meeting_id, unit_id)
        self._drop(key)
        try:
            await asyncio.shield(self.batches.submit(meeting_id, unit_id))
        except Exception as exc:
            self._mark_unsure(key)
            log.warning("disconnection not written yet; it will be retried",
                        extra={"meeting": meeting_id, "unit": unit_id, "error": type(exc).__name__})

    def _drop(self, key: Key) -> None:
        self.held[key] -= 1
        if self.held[key] <= 0:
            del self.held[key]
            self.lapsed[key] = self._clock()

    def _mark_unsure(self, key: Key) -> None:
        self.unsure.add(key)
        self._wake.set()
        if self._repair is None or self._repair.done():
            self._repair = asyncio.get_running_loop().create_task(self._repairing(), name="presence-repair")

    async def _run(self, meeting_id: int, units: list[int]) -> list[Exception | None]:
        order = list(dict.fromkeys(units))
        failed = await self._write_counts(meeting_id, order)
        if failed and len(order) > 1 and not any(is_outage(e) for e in failed.values()):
            # one bad unit (not a participant, say) must not fail the others: one by one
            log.info("presence batch failed; writing its units one by one",
                     extra={"meeting": meeting_id, "units": len(order)})
            failed = {}
            for unit_id in order:
                failed |= await self._write_counts(meeting_id, [unit_id])
        return [failed.get(unit_id) for unit_id in units]

    async def _write_counts(self, meeting_id: int, units: list[int]) -> dict[int, Exception]:
        counts = {unit_id: self.held.get((meeting_id, unit_id), 0) for unit_id in units}
        # A site whose leave could not be written when it happened (the database was away) may be
        # back meanwhile: its leave is written first, as of when it left, so attendance shows the gap.
        left = {u: self.lapsed[(meeting_id, u)] for u in units if (meeting_id, u) in self.unsure
                and (meeting_id, u) in self.lapsed}
        try:
            for unit_id, at in sorted(left.items()):
                await self._write(meeting_id, {unit_id: 0}, at)
            await self._write(meeting_id, counts, None)
        except Exception as exc:
            for unit_id in units:
                self.unsure.add((meeting_id, unit_id))
            return dict.fromkeys(units, exc)
        for unit_id, count in counts.items():
            key = (meeting_id, unit_id)
            self.unsure.discard(key)
            self.lapsed.pop(key, None)
            if count:
                self.written[key] = count
            else:
                self.written.pop(key, None)
        return {}

    def stale(self) -> set[Key]:
        """What must be written again: unsure keys, and any whose written count differs from held."""
        keys = set(self.unsure)
        keys |= {k for k in self.held.keys() | self.written.keys() if self.held.get(k, 0) != self.written.get(k, 0)}
        return keys

    def reassert(self) -> int:
        """This process was taken for dead and its connections released (it stopped reaching the
        database for too long): have every connection it holds written again. Returns how many."""
        self.written.clear()
        for key in self.held:
            self._mark_unsure(key)
        return sum(self.held.values())

    async def _repairing(self) -> None:
        delay = self.retry_s[0]
        while True:
            await self._wake.wait()
            await asyncio.sleep(delay)
            self._wake.clear()
            todo = sorted(self.stale())
            if not todo:
                delay = self.retry_s[0]
                continue
            futures = [self.batches.submit(meeting_id, unit_id) for meeting_id, unit_id in todo]
            results = await asyncio.gather(*futures, return_exceptions=True)
            errors = [r for r in results if isinstance(r, Exception)]
            for (meeting_id, unit_id), result in zip(todo, results, strict=True):
                if isinstance(result, DomainError):  # the meeting ended, say: nothing to write any more
                    key = (meeting_id, unit_id)
                    self.unsure.discard(key)
                    self.written[key] = self.held.get(key, 0)
                    log.info("connection not re-written", extra={"meeting": meeting_id, "unit": unit_id})
            if any(not isinstance(e, DomainError) for e in errors):
                delay = min(delay * 2, self.retry_s[1])
                self._wake.set()
            else:
                delay = self.retry_s[0]
                log.info("presence written again after a failure", extra={"keys": len(todo)})
                if self.stale():
                    self._wake.set()

    async def close(self, drain_s: float = 5.0) -> None:
        """Let queued changes be written (at most ``drain_s``), then stop."""
        if self._repair is not None:
            self._repair.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repair
        await self.batches.close(drain_s)
