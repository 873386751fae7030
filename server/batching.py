"""Coalescing of concurrent calls into batches.

When thousands of sites connect at once, each needs the same few database reads and writes
(token check, snapshot, join). A ``Coalescer`` runs the calls that arrived while the previous
batch of the same key was running as one batch — one database round instead of one per site.
Alone, a call runs at once: no timer, no added delay; batches only grow under load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

# (key, items) → one result or exception per item, in order
RunBatch = Callable[[K, list[T]], Awaitable[Sequence[R | Exception]]]


class Coalescer(Generic[K, T, R]):
    def __init__(self, run: RunBatch[K, T, R], max_batch: int = 500) -> None:
        self._run, self.max_batch = run, max_batch
        self._pending: dict[K, list[tuple[T, asyncio.Future[R]]]] = {}
        self._drains: dict[K, asyncio.Task[None]] = {}
        self.batches = 0
        self.items = 0

    def submit(self, key: K, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future gets its result. Cancelling the future drops the item if
        its batch has not started yet (a started batch runs to its end)."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, fut))
        if key not in self._drains:
            self._drains[key] = asyncio.create_task(self._drain(key), name=f"batch-{key}")
        return fut

    async def call(self, key: K, item: T) -> R:
        return await self.submit(key, item)

    async def _drain(self, key: K) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while pending := self._pending.get(key):
                head, self._pending[key] = pending[:self.max_batch], pending[self.max_batch:]
                batch = [(item, fut) for item, fut in head if not fut.done()]
                if not batch:
                    continue
                try:
                    results: Sequence[R | Exception] = await self._run(key, [item for item, _f in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
                except Exception as exc:
                    results = [exc] * len(batch)
                self.batches += 1
                self.items += len(batch)
                for (_item, fut), result in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                        fut.add_done_callback(_retrieve)  # nobody may be waiting any more
                    else:
                        fut.set_result(result)
                batch = []
        finally:
            del self._drains[key]
            for _item, fut in [*batch, *self._pending.pop(key, [])]:  # only when cancelled (shutdown)
                fut.cancel()

    async def close(self, drain_s: float = 0.0) -> None:
        """Stop: batches still queued get ``drain_s`` seconds to finish, then are cancelled."""
        tasks = list(self._drains.values())
        if tasks and drain_s > 0:
            await asyncio.wait(tasks, timeout=drain_s)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
