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

    async def _run(self, meeting_id: int, changes: list[tuple[int, bool]]) -> list[Exception | None]:
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

    async def close(self, drain_s: float = 5.0) -> None:
        """Let queued changes be written (at most ``drain_s``), then stop."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=drain_s)
        await self.batches.close(drain_s)
