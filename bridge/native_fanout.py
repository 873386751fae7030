"""A video timeline's subscribers in steady state, sent to by one C loop per frame.

The direct send path (:mod:`bridge.direct_send`) sends a frame to one subscriber in one C call,
but getting there costs a dozen Python calls per subscriber per frame (the fan-out, the track's
gates, the sender's checks, its counters and history): a third of a relay's CPU per subscriber.
Most subscribers, most of the time, are in steady state — connected over a plain UDP pair, their
transport with nothing queued, taking every frame of the one timeline they sit in. Those are
enrolled here: their stream state moves into an ``hn_sub`` (``bridge/native/rtp_send.c``) and
``hn_fanout_frame`` sends each frame to all of them in one call — the packets built, SRTP-protected
and written exactly as the per-subscriber call does, the state advanced in C, the frame recorded in
the subscriber's ring so a NACK can be answered (:meth:`DirectSender.materialize`).

Anything else hands a subscriber back to the Python path (:meth:`NativeFanout.remove`), which then
sends it the frame in the same fan-out call: a move to another rendition or to sound only, a resync,
a track that stops, a socket that did not take a whole frame (the rest goes through the asyncio
transport, in order), another codec on the timeline, a frame too big for the C path, and, checked
every :data:`AUDIT_EVERY` frames, a connection that closed or changed pair. A subscriber that is
back in steady state after a frame sent from Python is enrolled again (:meth:`enroll`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bridge import native_send
from bridge.rtp_frames import FramePacker

if TYPE_CHECKING:
    import av

    from bridge.direct_send import DirectSender
    from bridge.relay import RelayTrack

log = logging.getLogger("hoinghi.bridge.native_fanout")

AUDIT_EVERY = 30  # frames (a second at 30 fps) between checks that each enrolled connection is as it was


class NativeFanout:
    """The enrolled subscribers of one video timeline (its :class:`bridge.relay.Fanout`)."""

    def __init__(self, packer: FramePacker) -> None:
        self.packer = packer
        self.codec: str | None = None  # the timeline's codec (lower-case mime type) while anyone is enrolled
        self.members: list[tuple[RelayTrack, DirectSender]] = []
        self._capacity = 16
        self._subs: Any = native_send.new_subs(self._capacity)
        self._sent: Any = native_send.new_int()
        self._until_audit = AUDIT_EVERY
        self.frames = 0  # frames sent from the C loop (to one subscriber or more)
        self.handed_back = 0  # subscribers handed back to the Python path

    def __len__(self) -> int:
        return len(self.members)

    def enroll(self, track: RelayTrack, direct: DirectSender, codec: str | None) -> bool:
        """Take ``track`` (sent by ``direct``) into the C loop if it is in steady state."""
        if codec is None or (self.codec is not None and codec != self.codec) or direct.mime != codec \
                or not direct.native_ready():
            return False
        count = len(self.members)
        if count == self._capacity:
            subs = native_send.new_subs(2 * self._capacity)
            for i in range(count):
                subs[i] = self._subs[i]
            self._subs, self._capacity = subs, 2 * self._capacity
        self._subs[count] = direct.enter_native(self)
        self.members.append((track, direct))
        track.native_sender = direct
        self.codec = codec
        return True

    def remove(self, direct: DirectSender) -> None:
        """Hand ``direct``'s subscriber back to the Python path (its state back in Python)."""
        members = self.members
        i = next((i for i, member in enumerate(members) if member[1] is direct), None)
        if i is None:
            return
        track = members[i][0]
        last = len(members) - 1
        members[i] = members[last]
        self._subs[i] = self._subs[last]
        members.pop()
        track.native_sender = None
        track.packets_in_native(int(direct.native.frames))
        direct.exit_native()
        self.handed_back += 1
        if not members:
            self.codec = None

    def clear(self) -> None:
        for _, direct in list(self.members):
            self.remove(direct)

    def abandon(self) -> None:
        """After a failure here: every member back on the Python path, whatever state it can get back."""
        members, self.members, self.codec = self.members, [], None
        for track, direct in members:
            track.native_sender = None
            try:
                direct.exit_native()
            except Exception:
                log.exception("subscriber %s: its state could not be taken back from the C loop", track.id)

    def send(self, packet: av.Packet, codec: str | None) -> None:
        """Send the timeline's next frame to every enrolled subscriber (see module docs)."""
        if codec != self.codec:
            self.clear()  # another codec on the timeline: each subscriber's own gate decides
            return
        payloads, timestamp = self.packer.pack(packet, codec or "")
        if not payloads:
            return
        frame = self.packer.native()
        if frame.count > native_send.MAX_PACKETS:
            self.clear()
            return
        self._until_audit -= 1
        if self._until_audit <= 0:
            self._until_audit = AUDIT_EVERY
            for _, direct in list(self.members):
                if not direct.native_still_ready():
                    self.remove(direct)
        self.frames += 1
        start, sent = 0, self._sent
        while start < len(self.members):
            stopped = native_send.fanout_frame(self._subs, start, len(self.members), frame, timestamp,
                                               self.packer.frames, sent)
            if stopped >= len(self.members):
                return
            self._short(stopped, sent[0], frame.count)
            start = stopped  # the member moved into its place has not had the frame yet

    def _short(self, index: int, sent: int, count: int) -> None:
        """Member ``index`` did not take the whole frame: the rest through its transport, in order
        (or, when SRTP failed, its track stops as on the Python path); it leaves the C loop."""
        track, direct = self.members[index]
        if sent < 0:
            log.error("subscriber %s: SRTP failed in the C loop (status %s), its track stops", track.id,
                      native_send.OUT.error[0])
            self.remove(direct)
            track.stop()
            return
        native_send.send_rest(sent, count, direct.transport_sendto)
        self.remove(direct)
