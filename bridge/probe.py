"""A probe of a subscriber's way up (issue #16), sent before it is moved from the low rendition to
the high one (bridge.adapt decides when, bridge.adaptation starts it).

For ``PROBE_S`` the bridge sends the subscriber, beside its low rendition, as much again as the high
rendition would add: copies of the last few packets it sent (over RTX where negotiated, as a
retransmission would go). A receiver drops a copy of a packet it holds — aiortc's jitter buffer
ignores one within its reordering window, a browser counts it as a duplicate — so the picture does
not change; but the link carries the high rendition's rate for a moment, and the receiver's next
reports tell whether it could (bridge.adapt judges them). A link that could not drops packets of the
low rendition too while the probe lasts. So the probe **stops at the first NACK** it draws (the
receiver lost a packet: the link did not take the rate, and every further copy only loses more of
the picture: a full 0.5 s probe of a 300 kbit/s commune froze its picture 1–1.4 s in a CI run), and
once the bottleneck's queue has drained
(``REPAIR_AFTER``) every packet of the low rendition sent during the probe goes once more: the
picture keeps moving whatever the probe cost it — aiortc asks for a lost packet again only at its
next new loss, which on a quiet link may be seconds away.

Each copy is RTP-padded (RFC 3550 §5.1: by at most 255 bytes, to ``PAD_TO``), as libwebrtc pads
its own probes: a rendition of small packets (a still picture, a small window) would otherwise
probe with many times the packets for the same bytes, and every packet costs the receiver its
handling (an in-process aiortc player on a loaded machine queued the picture's own packets
behind hundreds of copies for a second).

Nothing is decoded or encoded; a probe of a subscriber that moved to another rendition meanwhile
(its history cleared at the splice) just finds nothing to copy.
"""

from __future__ import annotations

import asyncio

from bridge.direct_send import DirectSender

PROBE_S = 0.5  # how long a probe lasts: long enough to fill a bottleneck's queue, short enough to cost little
TICK = 0.02  # seconds between bursts of copies
WINDOW = 16  # copies cycle over the last packets sent (well within a receiver's reordering window)
REPAIR_AFTER = 0.3  # after the probe, when its packets go again (a 200 ms bottleneck queue has drained)
HEADROOM = 1.1  # the probe adds this much over the difference between the renditions
BURST_BYTES = 16 * 1200  # at most this much of copies at one tick
PAD_TO = 1200  # a copy is RTP-padded up to this size (by 255 bytes at most, as RFC 3550 allows)


def _span(first: int, end: int) -> range:
    """The sequence numbers from ``first`` up to ``end`` (exclusive), across the 16-bit wrap."""
    return range(first, first + ((end - first) & 0xFFFF))


async def probe(direct: DirectSender, extra_bps: float, duration: float = PROBE_S) -> int:
    """Send ``extra_bps`` of copies for ``duration`` seconds, or until the subscriber NACKs a packet,
    then the packets sent meanwhile once more; returns the bytes of copies sent (0: nothing to copy,
    the subscriber gets no video)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = direct.sequence_number
    target = extra_bps * HEADROOM / 8  # bytes per second of copies
    sent = 0
    turn = 0
    asked = direct.repairs.asked
    while (elapsed := loop.time() - start) < duration and direct.repairs.asked == asked:
        # what the probe should have sent by now: a late tick (a busy event loop) catches up, in
        # bursts of at most one window so the bottleneck sees a rate, not one lump
        owed = min(target * (elapsed + TICK) - sent, BURST_BYTES)
        newest = direct.sequence_number - 1
        misses = 0
        while owed > 0 and misses < WINDOW:
            size = await direct.resend((newest - turn % WINDOW) & 0xFFFF, PAD_TO)
            turn += 1
            misses = misses + 1 if not size else 0
            owed -= size
            sent += size
        if misses >= WINDOW:
            break  # nothing left to copy (no video, or a splice cleared the history)
        await asyncio.sleep(TICK)
    await asyncio.sleep(REPAIR_AFTER)
    span = _span(first, direct.sequence_number)
    if len(span) <= direct.history_size:
        for sequence_number in span:
            await direct.resend(sequence_number & 0xFFFF)
    return sent
