"""Lost events, noticed: the seqs of each meeting's ordered events, checked for gaps.

Every change of a meeting takes its next seq and is announced by events carrying it (a change
that changed nothing gives its seq back: ``sessions.store.meetings.give_back_seq``), so a
meeting's ordered events (every kind but ``wire.UNORDERED``) carry contiguous seqs — several
events may share one. A client cannot check this (it follows a filtered share of the events: its
own seat, its subtree), but each server process's hub sees every event of the meetings its
clients follow. A seq that skips ahead means an event was lost on the bus (its publish failed) or
that two processes published out of commit order; a gap still open after ``GRACE`` seconds is a
loss, and the meeting's clients get fresh snapshots (server.live.resync). Plain code: the caller
passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GRACE = 1.0  # seconds a gap may stay open before it counts as a loss (out-of-order publishes)
MAX_AHEAD = 4096  # seqs held while a stream waits for its base; beyond, the newest becomes the base


@dataclass
class Stream:
    high: int | None = None  # every seq up to this one was seen (None: waiting for a snapshot's seq)
    ahead: set[int] = field(default_factory=set)  # seen beyond ``high + 1``
    since: float | None = None  # when the open gap opened

    def _absorb(self, now: float) -> bool:
        """Move ``high`` over what arrived contiguously; True when a gap has just opened."""
        assert self.high is not None
        while self.high + 1 in self.ahead:
            self.high += 1
            self.ahead.discard(self.high)
        self.ahead = {s for s in self.ahead if s > self.high}
        if not self.ahead:
            self.since = None
            return False
        if self.since is None:
            self.since = now
            return True
        return False


class SeqGaps:
    """The streams of the meetings this process's clients follow, one per meeting."""

    def __init__(self, grace: float = GRACE) -> None:
        self.grace = grace
        self.streams: dict[int, Stream] = {}

    def watch(self, meeting: int) -> None:
        """A meeting gets its first subscription here: wait for its snapshot's seq."""
        self.streams.setdefault(meeting, Stream())

    def forget(self, meeting: int) -> None:
        self.streams.pop(meeting, None)

    def base(self, meeting: int, seq: int, now: float) -> bool:
        """A snapshot of ``meeting`` at ``seq`` was read: the stream starts there if it was waiting.
        True when a gap has just opened (events seen beyond it are not contiguous)."""
        stream = self.streams.get(meeting)
        if stream is None or stream.high is not None:
            return False
        stream.high = seq
        return stream._absorb(now)

    def seen(self, meeting: int, seq: int, now: float) -> bool:
        """An ordered event of ``meeting`` came. True when it opens a gap (check it ``grace`` later)."""
        stream = self.streams.get(meeting)
        if stream is None:
            return False
        if stream.high is None:
            stream.ahead.add(seq)
            if len(stream.ahead) > MAX_AHEAD:  # no snapshot came to start it: start from what is seen
                stream.high, stream.ahead = max(stream.ahead), set()
            return False
        if seq <= stream.high:
            return False
        stream.ahead.add(seq)
        return stream._absorb(now)

    def open_since(self, meeting: int) -> float | None:
        """When the open gap of ``meeting`` opened, or None."""
        stream = self.streams.get(meeting)
        return stream.since if stream is not None else None

    def overdue(self, meeting: int, now: float) -> bool:
        since = self.open_since(meeting)
        return since is not None and now - since >= self.grace

    def restart(self, meeting: int) -> None:
        """Its clients are being resynced: the stream starts again at their snapshots' seq."""
        if meeting in self.streams:
            self.streams[meeting] = Stream()
