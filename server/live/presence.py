"""Site connections and disconnections, written in batches: the joins and leaves of one meeting
that arrive while the previous batch is being written go to the database together — one
transaction, a few statements — instead of one transaction each (``server.batching``). Alone, a
change is written at once. This keeps thousands of sites connecting at once (or dropping and
reconnecting together) from queueing behind thousands of small transactions.

A join or leave returns only once its row is committed and its event published, as before. A
batch that fails is retried one change at a time, so one bad join never fails the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from server.batching import Coalescer

log = logging.getLogger("hoinghi.presence")

# (meeting id, [(unit id, True = connected / False = disconnected)]): commit, then publish
WriteMany = Callable[[int, list[tuple[int, bool]]], Awaitable[None]]


class Presence:
    def __init__(self, write: WriteMany, max_batch: int = 500) -> None:
        self._write = write
        self.batches: Coalescer[int, tuple[int, bool], None] = Coalescer(self._run, max_batch)
        self._background: set[asyncio.Task[None]] = set()
        # connections this process has written and not yet taken back: (meeting, unit) -> count
        self.held: Counter[tuple[int, int]] = Counter()

    async def connect(self, meeting_id: int, unit_id: int) -> None:
        fut = self.batches.submit(meeting_id, (unit_id, True))
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The caller gave up, but the join may still be written: then take it back, so no
            # seat stays online without a connection.
            fut.add_done_callback(lambda f: self._take_back(f, meeting_id, unit_id))
            raise

    async def disconnect(self, meeting_id: int, unit_id: int) -> None:
        await asyncio.shield(self.batches.submit(meeting_id, (unit_id, False)))

    def _take_back(self, fut: asyncio.Future[None], meeting_id: int, unit_id: int) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        task = asyncio.get_running_loop().create_task(self.disconnect(meeting_id, unit_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _count(self, meeting_id: int, unit_id: int, up: bool) -> None:
        key = (meeting_id, unit_id)
        self.held[key] += 1 if up else -1
        if self.held[key] <= 0:
            del self.held[key]

    async def _run(self, meeting_id: int, changes: list[tuple[int, bool]]) -> list[Exception | None]:
        results = await self._write_all(meeting_id, changes)
        for (unit_id, up), result in zip(changes, results, strict=True):
            if result is None:
                self._count(meeting_id, unit_id, up)
        return results

    async def _write_all(self, meeting_id: int, changes: list[tuple[int, bool]]) -> list[Exception | None]:
        try:
            await self._write(meeting_id, changes)
            return [None] * len(changes)
        except Exception as exc:
            if len(changes) == 1:
                return [exc]
        log.info("presence batch failed; writing its changes one by one",
                 extra={"meeting": meeting_id, "changes": len(changes)})
        results: list[Exception | None] = []
        for change in changes:
            try:
                await self._write(meeting_id, [change])
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results

    async def reassert(self) -> int:
        """This process was taken for dead and its connections released (it stopped reaching the
        database for too long): write the connections it still holds again. Returns how many.

        Counts are read per site just before its write, so a site that left meanwhile (its
        disconnect already taken off ``held``) is not brought back."""
        written = 0
        for meeting_id, unit_id in sorted(self.held):
            count = self.held.get((meeting_id, unit_id), 0)
            if count <= 0:
                continue
            try:
                await self._write(meeting_id, [(unit_id, True)] * count)
                written += count
            except Exception:  # the meeting ended meanwhile, say: nothing to hold any more
                log.info("connection not re-asserted", extra={"meeting": meeting_id, "unit": unit_id})
        return written

    async def close(self, drain_s: float = 5.0) -> None:
        """Let queued changes be written (at most ``drain_s``), then stop."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=drain_s)
        await self.batches.close(drain_s)
