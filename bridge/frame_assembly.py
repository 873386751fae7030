"""Encoded video frames out of RTP packets, each handed on as soon as it is whole.

aiortc's receiver reassembles frames in its jitter buffer, which hands a video frame out only when
the first packet of the *next* frame arrives (one frame interval, 33 ms at 30 fps, of waiting at
every hop); a decoder thread then hands the frame back to the event loop. A relay decodes nothing
and needs neither: :class:`FrameAssembler` ends a frame at its last packet (the RTP marker bit),
or, if that packet carried no marker, when the next frame begins. (Audio keeps aiortc's buffer,
which holds four packets back: see ``bridge.aiortc_compat.mark_passthrough``.)

Plain code, no I/O: packets in (sequence number, timestamp, marker, depayloaded bytes), frames
out, in sequence order, each once: a packet behind the frames already handed on is dropped (a
stream that really restarted further back is followed after RESTART_RUN packets). Loss is aiortc's
rule: a frame waits for a missing packet (NACK/RTX may bring it back) until the packets behind it
fill ``capacity``; then whole frames are dropped and the caller is told to ask for a keyframe
(``pli``).
"""

from __future__ import annotations

MAX_MISORDER = 100  # aiortc's: a packet this far behind may mean the stream restarted...
# ...when this many such packets come in a row. Late retransmissions come in bursts too (a NACK
# lists every packet missing), but a sender keeps 128 packets to resend (aiortc's RTP_HISTORY_SIZE,
# libwebrtc's is similar) and new packets come between its bursts.
RESTART_RUN = 256
VIDEO_CAPACITY = 512  # aiortc's video jitter buffer
SEQ_MASK = 0xFFFF
HALF = 0x8000


class FrameAssembler:
    """One RTP stream's frames, in order (see the module docs)."""

    def __init__(self, capacity: int = VIDEO_CAPACITY) -> None:
        self.capacity = capacity
        self._next: int | None = None  # the sequence number the next frame starts at
        self._packets: dict[int, tuple[int, bool, bytes]] = {}  # seq -> (timestamp, marker, data)
        self._far_behind = 0  # packets in a row more than MAX_MISORDER behind
        self.frames = 0
        self.dropped_packets = 0

    def add(self, seq: int, timestamp: int, marker: bool, data: bytes) -> tuple[bool, list[tuple[int, bytes]]]:
        """Take one packet. Returns (ask the sender for a keyframe, the frames now whole as
        (RTP timestamp, bytes))."""
        pli = False
        if self._next is None:
            self._next = seq
        delta = (seq - self._next) & SEQ_MASK
        if delta >= HALF:  # behind the frames already handed on
            if (self._next - seq) & SEQ_MASK < MAX_MISORDER:
                return False, []  # late (its frame left or was dropped) or a duplicate
            self._far_behind += 1
            if self._far_behind < RESTART_RUN:
                # A retransmission answered very late: following it back would replay frames
                # already handed on (aiortc's jitter buffer does, at the first such packet).
                return False, []
            self._packets.clear()  # the stream restarted elsewhere
            self._next, delta = seq, 0
            pli = True
        self._far_behind = 0
        if delta >= self.capacity:
            self._drop_until((seq - self.capacity + 1) & SEQ_MASK)
            if not self._packets:  # nothing left to wait for: start again here (aiortc does too)
                self._next = seq
            pli = True
        self._packets[seq] = (timestamp, marker, data)
        return pli, self._whole_frames()

    def _whole_frames(self) -> list[tuple[int, bytes]]:
        frames: list[tuple[int, bytes]] = []
        packets = self._packets
        while True:
            start = self._next
            assert start is not None
            seq = start
            first = packets.get(seq)
            if first is None:
                return frames
            timestamp = first[0]
            parts = []
            while True:
                packet = packets.get(seq)
                if packet is None:
                    return frames  # a packet of this frame is still missing
                if packet[0] != timestamp:
                    break  # the next frame began: this one ended without a marker
                parts.append(packet[2])
                seq = (seq + 1) & SEQ_MASK
                if packet[1]:
                    break
            self._forget(start, seq)
            self._next = seq
            self.frames += 1
            frames.append((timestamp, b"".join(parts)))

    def _forget(self, start: int, end: int) -> None:
        pop = self._packets.pop
        seq = start
        while seq != end:
            pop(seq, None)
            seq = (seq + 1) & SEQ_MASK

    def _drop_until(self, seq: int) -> None:
        """Give up on every packet before ``seq``, then on each packet that is not known to start
        a frame (its predecessor held, and ending a frame or of another timestamp)."""
        start = self._next
        assert start is not None
        packets = self._packets
        span = (seq - start) & SEQ_MASK
        gone = [k for k in packets if (k - start) & SEQ_MASK < span]
        before = packets.get((seq - 1) & SEQ_MASK)
        for k in gone:
            del packets[k]
        dropped = len(gone)
        while (packet := packets.get(seq)) is not None:
            if before is not None and (before[1] or before[0] != packet[0]):
                break  # ``packet`` starts a frame
            del packets[seq]
            dropped += 1
            before = packet
            seq = (seq + 1) & SEQ_MASK
        self.dropped_packets += dropped
        self._next = seq


class TimestampUnwrap:
    """RTP timestamps (32 bits) from the stream's first one on, unwrapped (aiortc's mapping)."""

    def __init__(self) -> None:
        self._origin: int | None = None
        self._last = 0

    def __call__(self, timestamp: int) -> int:
        if self._origin is None:
            self._origin = timestamp
        elif timestamp < self._last:
            self._origin -= 1 << 32
        self._last = timestamp
        return timestamp - self._origin

