"""Generated files kept for the next reader: a national meeting's minutes cost seconds of CPU to
render as DOCX or PDF, and every participating unit downloads them. A stored minutes version
never changes (a correction is a new version), so a file rendered for (meeting, version, format)
is right for as long as it is kept; a new version has a new key and is rendered afresh.

Bounded by entry count and total bytes, least recently used first out. Requests for a file
being rendered wait for that rendering instead of starting their own. Per process, in memory.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

Key = tuple[Hashable, ...]  # e.g. (meeting id, version, format)

MAX_ENTRIES = 64
MAX_BYTES = 128 * 1024 * 1024


class ExportCache:
    """``get(key, make)``: the bytes kept for ``key``, else ``await make()`` (kept if they fit).
    ``rendered`` counts files made, ``served`` files answered from the cache (both only grow)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 on_event: Callable[[Key, str], None] | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.rendered = 0
        self.served = 0
        self._entries: OrderedDict[Key, bytes] = OrderedDict()
        self._bytes = 0
        self._pending: dict[Key, asyncio.Future[bytes | None]] = {}
        self._on_event = on_event  # (key, "rendered" | "cached"): metrics

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._bytes

    async def get(self, key: Key, make: Callable[[], Awaitable[bytes]]) -> bytes:
        while True:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
                return self._hit(key, data)
            pending = self._pending.get(key)
            if pending is None:
                break
            # Another request is rendering it: wait (shielded: our cancellation is not theirs).
            shared = await asyncio.shield(pending)
            if shared is not None:
                return self._hit(key, shared)
            # That rendering failed or was abandoned: try again (usually by rendering it here).
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        made: bytes | None = None
        try:
            made = await make()
            self.rendered += 1
            if self._on_event is not None:
                self._on_event(key, "rendered")
            self._put(key, made)
            return made
        finally:
            del self._pending[key]
            future.set_result(made)

    def _hit(self, key: Key, data: bytes) -> bytes:
        self.served += 1
        if self._on_event is not None:
            self._on_event(key, "cached")
        return data

    def _put(self, key: Key, data: bytes) -> None:
        if len(data) > self.max_bytes // 4:  # one huge file would push out every other: not kept
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = data
        self._bytes += len(data)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _key, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
