"""A timeline's subscribers in steady state, sent to by one C loop per frame (or audio packet).

The direct send path (:mod:`bridge.direct_send`) sends a frame to one subscriber in one C call,
but getting there costs a dozen Python calls per subscriber per frame (the fan-out, the track's
gates, the sender's checks, its counters and history): a third of a relay's CPU per subscriber.
Most subscribers, most of the time, are in steady state — connected over a plain UDP pair, their
transport with nothing queued, taking every frame of the one timeline they sit in (a listener's own
voice, withheld from it, is never sent from here). Those are
enrolled here: their stream state moves into an ``hn_sub`` (``bridge/native/rtp_send.c``) and
``hn_fanout_frame`` sends each frame to all of them in one call — the packets built, SRTP-protected
and written exactly as the per-subscriber call does, the state advanced in C, the frame recorded in
the subscriber's ring so a NACK can be answered (:meth:`DirectSender.materialize`).

Anything else hands a subscriber back to the Python path (:meth:`NativeFanout.remove`), which then
sends it the frame in the same fan-out call: a move to another rendition or to sound only, a floor
change (whose own voice is withheld changes), a resync, a track that stops, a socket that did not
take a whole frame (the rest goes through the asyncio transport, in order), another codec on the
timeline, a frame too big for the C path, and, checked every :data:`AUDIT_EVERY` frames, a
connection that closed or changed pair. A subscriber that is back in steady state after a frame
sent from Python is enrolled again (:meth:`enroll`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bridge import aiortc_compat as compat
from bridge import native_send
from bridge.rtp_frames import ExtensionBlock, FramePacker, SentHistory

if TYPE_CHECKING:
    import av
    from aiortc import RTCRtpSender

    from bridge.relay import RelayTrack

log = logging.getLogger("hoinghi.bridge.native_fanout")

AUDIT_EVERY = 30  # frames (a second at 30 fps) between checks that each enrolled connection is as it was
# The sender's own counters, read by its RTCP sender reports and getStats() (bridge.direct_send too)
NTP_TIMESTAMP = compat.SENDER_PRIVATE + "ntp_timestamp"
RTP_TIMESTAMP = compat.SENDER_PRIVATE + "rtp_timestamp"
OCTET_COUNT = compat.SENDER_PRIVATE + "octet_count"
PACKET_COUNT = compat.SENDER_PRIVATE + "packet_count"


class NativeFanout:
    """The enrolled subscribers of one timeline (its :class:`bridge.relay.Fanout`)."""

    def __init__(self, packer: FramePacker) -> None:
        self.packer = packer
        self.codec: str | None = None  # the timeline's codec (lower-case mime type) while anyone is enrolled
        self.members: list[tuple[RelayTrack, NativeMember]] = []
        self._capacity = 16
        self._subs: Any = native_send.new_subs(self._capacity)
        self._sent: Any = native_send.new_int()
        self._until_audit = AUDIT_EVERY

    def enroll(self, track: RelayTrack, direct: NativeMember, codec: str | None) -> bool:
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

    def remove(self, direct: NativeMember) -> None:
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


class NativeMember:
    """A :class:`bridge.direct_send.DirectSender`'s stream state as the rest of the bridge reads it:
    its own while it sends from Python, its ``hn_sub``'s while the timeline's C loop sends for it;
    and its way into and out of that loop."""

    sender: RTCRtpSender
    dtls: Any
    mime: str
    packer: FramePacker
    payload_type: int
    ssrc: int
    timestamp_origin: int
    native: Any  # the hn_sub while in the C loop
    _group: NativeFanout | None
    _slot: Any
    _native_frames: int  # frames sent from the C loop already in the history
    _seq: int
    _packets: int
    _octets: int
    _history: SentHistory
    _native: tuple[int, bytes] | None
    _splice_next: bool
    _connected: Any
    _udp: Any
    _addr: Any
    _pair: Any
    _pairs: dict[int, Any] | None
    _session: tuple[Any, int] | None
    _serialized_extension: ExtensionBlock
    _picture_id_delta: int
    _last_timestamp: int | None
    _last_ntp: int

    def _session_address(self) -> int:
        raise NotImplementedError

    @property
    def sequence_number(self) -> int:
        """The next packet's sequence number."""
        native = self.native
        return self._seq if native is None else int(native.sequence_number)

    @sequence_number.setter
    def sequence_number(self, value: int) -> None:
        self.leave_native()
        self._seq = value

    @property
    def packets(self) -> int:
        native = self.native
        return self._packets if native is None else int(native.packets)

    @property
    def octets(self) -> int:
        native = self.native
        return self._octets if native is None else int(native.octets)

    @property
    def history(self) -> SentHistory:
        """What was sent, as far as it can be asked for again (the C loop's frames included)."""
        self.materialize()
        return self._history

    def native_ready(self) -> bool:
        """Whether the C loop can send for this subscriber now: connected over a plain UDP pair that
        the C path writes to, nothing queued in the transport, no move pending."""
        return self.native is None and self._native is not None and not self._splice_next \
            and len(self._serialized_extension.layout()[0]) <= native_send.EXTENSION_MAX and self._route_as_taken()

    def native_still_ready(self) -> bool:
        """While in the C loop: its pair, transport and SRTP session are still the ones it writes with,
        and the transport holds nothing (the C loop hands a frame the socket did not take to it)."""
        session = self._session
        return self._route_as_taken() and session is not None \
            and getattr(self.dtls, compat.DTLS_SRTP_ATTR) is session[0]

    def _route_as_taken(self) -> bool:
        """Connected, over the UDP pair last routed to, its transport open and holding nothing."""
        udp = self._udp
        return getattr(self.dtls, compat.DTLS_STATE_ATTR) is self._connected and self._pairs is not None \
            and self._pairs.get(1) is self._pair and udp is not None and not udp.is_closing() \
            and not udp.get_write_buffer_size()

    def enter_native(self, group: NativeFanout) -> Any:
        """This subscriber's stream state into an ``hn_sub`` (returned) for ``group``'s C loop."""
        assert self._native is not None
        slot = self._slot
        if slot is None:
            slot = self._slot = native_send.new_sub()
        fd, address = self._native
        extension, abs_at = self._serialized_extension.layout()
        native_send.fill_sub(slot, fd=fd, address=address, session=self._session_address(),
                             payload_type=self.payload_type, ssrc=self.ssrc, first_byte=0x90 if extension else 0x80,
                             sequence_number=self._seq, timestamp_origin=self.timestamp_origin,
                             extension=extension, abs_at=abs_at, picture_id_delta=self._picture_id_delta,
                             packets=self._packets, octets=self._octets)
        self._native_frames = 0
        self._group, self.native = group, slot
        return slot

    def leave_native(self) -> None:
        """Out of the C loop (if in it): from the next frame on this sender sends again."""
        if self._group is not None:
            self._group.remove(self)

    def exit_native(self) -> None:
        """The C loop let this subscriber go (NativeFanout.remove): its state back here."""
        slot = self.native
        if slot is None:
            return
        self.materialize()
        self._seq, self._packets, self._octets = int(slot.sequence_number), int(slot.packets), int(slot.octets)
        if slot.frames:
            self._last_timestamp, self._last_ntp = int(slot.last_timestamp), int(slot.last_ntp)
        self.native = self._group = None
        self.sync_counters()

    def materialize(self) -> None:
        """The frames the C loop sent since the last call, into the history (a NACK is answered from it)."""
        slot = self.native
        if slot is None:
            return
        newest = int(slot.frames)
        ring, size = slot.ring, native_send.RING
        block, delta, first_byte = self._serialized_extension, int(slot.picture_id_delta), int(slot.first_byte)
        for number in range(max(self._native_frames + 1, newest - size + 1), newest + 1):
            record = ring[number % size]
            payloads = self.packer.recent(record.serial) if record.frame == number else None
            if payloads is not None:
                self._history.add(record.sequence_number, record.timestamp, block(record.abs_send_time), payloads,
                                  delta, first_byte)
        self._native_frames = newest

    def transport_sendto(self, data: bytes) -> None:
        """One datagram through the UDP pair's asyncio transport (after what it already holds)."""
        self._udp.sendto(data, self._addr)

    def sync_counters(self) -> None:
        """The counters the sender's RTCP reports and ``getStats()`` read, as they are now."""
        slot, sender = self.native, self.sender
        if slot is not None and slot.frames:
            setattr(sender, NTP_TIMESTAMP, int(slot.last_ntp))
            setattr(sender, RTP_TIMESTAMP, int(slot.last_timestamp))
        setattr(sender, OCTET_COUNT, self.octets)
        setattr(sender, PACKET_COUNT, self.packets)
