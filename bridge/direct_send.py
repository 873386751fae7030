"""The direct send path: a relay subscriber's RTP stream sent from the fan-out call itself.

aiortc's ``RTCRtpSender._run_rtp`` wakes one task per subscriber per frame, packetizes the frame
again for each subscriber, builds an ``RtpPacket`` per packet and awaits four coroutines down to
``sendto``. For a track that can push (:class:`DirectTrack`, the relay's subscriber tracks),
:func:`use_direct_send` replaces the sender's ``_run_rtp`` and ``_retransmit`` on that one sender:
the frame is packetized once for all subscribers of a timeline
(:class:`FramePacker`); per subscriber there is only a 12-byte header (its extension block
serialized once per sender, the send time patched in), SRTP applied in place in one buffer
(libsrtp called directly, no copy but the packet's own), and the socket — all of it in one C call
with one ``sendmmsg`` where :mod:`bridge.native_send` is built, else in Python through
:mod:`bridge.udp_batch` (the same bytes). A subscriber in steady state is sent to by the timeline's
C loop instead (:mod:`bridge.native_fanout`): its stream state lives in an ``hn_sub`` meanwhile, and
what reads it here (sequence numbers, counters, the history a NACK is answered from) reads it there.

Every aiortc / aioice / pylibsrtp internal this reads or replaces is named in
:mod:`bridge.aiortc_compat` (checked by ``tests/test_aiortc_compat.py``); nothing here spells one.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import av
from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from bridge import aiortc_compat as compat
from bridge import native_send, rtcp_reports
from bridge.keyframes import VP8_PICTURE_IDS, vp8_picture_id
from bridge.native_fanout import (
    NTP_TIMESTAMP,
    OCTET_COUNT,
    PACKET_COUNT,
    RTP_TIMESTAMP,
    NativeFanout,
    NativeMember,
)
from bridge.python_send import PythonSend
from bridge.repair import Repairs
from bridge.rtcp_fast import handle_rtcp_directly
from bridge.rtcp_reports import use_shared_reports
from bridge.rtp_frames import ExtensionBlock, FramePacker, SentHistory
from bridge.udp_batch import DatagramBatch

MAX_SEND_BACKLOG = 256 * 1024  # bytes queued in the UDP transport: beyond this a subscriber resyncs
DIRECT_ATTR = "_hoinghi_direct"
SYNC_ATTR = rtcp_reports.SYNC_ATTR  # on the sender: brings its RTCP counters up to date

_RtpPacket: Any = getattr(*compat.RTP_PACKET)
_wrap_rtx: Any = getattr(*compat.RTX_WRAP)
_random_sequence_number: Callable[[], int] = getattr(*compat.SEQUENCE_NUMBER_ORIGIN)


class DirectTrack(Protocol):
    """A track that pushes its packets into a callback instead of being read by ``recv()``."""

    packer: FramePacker

    def attach_direct(self, send: Callable[[av.Packet], bool], sender: DirectSender | None = None) -> None:
        """From now on call ``send(packet)`` for each packet; ``False`` means it fell behind
        (``sender``: whose ``send`` it is, for the timeline's C loop)."""

    def detach_direct(self) -> None: ...

    async def wait_stopped(self) -> None: ...

    def stop(self) -> None: ...


# aiortc's video jitter buffer holds 512 packets and gives them all up at once only when a packet
# comes twice that far ahead of the oldest it waits on; a browser clears its NACK list (over 1,000
# missing) and asks for the keyframe it is about to get anyway.
SPLICE_SEQUENCE_SKIP = 1100
# After a move down (a congested link), the new rendition's first keyframe is sent once more this
# long after it, unasked: it went into the queue the old rendition had filled, and a receiver that
# lost a packet of it and then its retransmissions asks again only when it next notices a new loss
# (aiortc's NACK generator: seconds at the low rendition's rate, the picture frozen meanwhile; a CI
# failure of test_weak_link). By now the queue has drained; a copy that finds the packet there is
# dropped by the receiver.
KEYFRAME_AGAIN_AFTER = 0.4


def _sender_state(sender: RTCRtpSender, name: str) -> Any:
    return getattr(sender, compat.SENDER_PRIVATE + name)


class DirectSender(NativeMember, PythonSend):
    """One subscriber's RTP stream, sent synchronously from the fan-out (see module docs).

    Sequence numbers, timestamp origin and SSRC are the sender's own as aiortc would make them;
    header extensions (mid, abs-send-time) are serialized once per frame; NACKed packets are
    retransmitted (over RTX when negotiated) from a history of plain packets whose payloads are
    shared by all subscribers; the counters the sender's RTCP reports and ``getStats()`` read are
    kept up to date once per frame."""

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters, packer: FramePacker) -> None:
        self.sender = sender
        self.dtls = sender.transport
        self.packer = packer
        self.mime = codec.mimeType.lower()
        self.payload_type: int = codec.payloadType or 0
        self.ssrc: int = getattr(sender, compat.SENDER_SSRC)
        self._seq = _random_sequence_number()
        self.timestamp_origin = random.getrandbits(32)
        self.extensions_map = _sender_state(sender, "rtp_header_extensions_map")
        self.mid = _sender_state(sender, "mid")
        self.rtx_sequence_number = _random_sequence_number()
        self._history = SentHistory(getattr(*compat.SENDER_HISTORY_SIZE))
        self.history_size = self._history.size
        self._packets = 0
        self._octets = 0
        # While the timeline's C loop sends for this subscriber (bridge.native_fanout): its hn_sub,
        # the loop, and how many of the frames sent from there are already in the history
        self.native: Any = None
        self._group: NativeFanout | None = None
        self._slot: Any = None
        self._native_frames = 0
        self.backlogged = 0
        self._connected = getattr(*compat.DTLS_CONNECTED).CONNECTED
        self.repairs = Repairs(self.resend, lambda: getattr(sender, compat.SENDER_PRIVATE + "rtt", None))
        self._pair: Any = None
        self._pairs: dict[int, Any] | None = None
        self._udp: Any = None
        self._addr: Any = None  # the pair's remote address (aioice builds it anew at each read)
        self._native: tuple[int, bytes] | None = None  # (socket, sockaddr) for the C send path
        self._session: tuple[Any, int] | None = None  # (pylibsrtp session, its libsrtp context's address)
        self._batch: DatagramBatch | None = None
        self._serialized_extension = ExtensionBlock(self.extensions_map, self.mid)
        self._slow_queue: deque[bytes] = deque()  # a TURN pair's packets, sent in order by one task
        self._slow_task: asyncio.Task[None] | None = None
        # A move to another rendition (bridge.layers): the outgoing stream continues across it
        self._splice_next = False
        self._again_after_splice = False  # the spliced keyframe is sent once more (KEYFRAME_AGAIN_AFTER)
        self._again: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self.sent_again = 0  # packets of such keyframes sent once more
        self._picture_id_delta = 0  # VP8: added to every picture id sent since the last splice
        self._last_timestamp: int | None = None
        self._last_ntp = 0

    def splice(self, packer: FramePacker, skip_ahead: bool = False) -> None:
        """From the next frame on, send another timeline's frames (packetized by ``packer``) as the
        continuation of this stream: its RTP timestamp follows the last one sent by the wall-clock
        time between them and (VP8) its picture id follows the last one by one, as if one camera had
        kept running. The next frame must be a keyframe of that timeline.

        What was sent before is never sent again (a NACK for it goes unanswered: the keyframe makes
        it useless, and on a congested link a retransmission only adds to the loss). ``skip_ahead``
        (a move down, or back from sound only, after a link lost packets): the sequence numbers jump
        past a receiver's reordering window, so a receiver that holds frames back until a lost packet
        comes (aiortc's jitter buffer waits up to 512 packets: half a minute at the low rendition's
        rate) gives them up and takes the keyframe at once; a browser plays the keyframe too."""
        self.leave_native()
        self.packer = packer
        self._splice_next = True
        self._again_after_splice = skip_ahead
        self._history.clear()
        self.repairs.forget()
        if skip_ahead:
            self._seq = (self._seq + SPLICE_SEQUENCE_SKIP) & 0xFFFF

    def _spliced(self, payloads: list[bytes], timestamp: int, ntp: int) -> None:
        self._splice_next = False
        if self._again_after_splice:  # this frame's packets are sent below, then again later
            self._again_after_splice = False
            self._cancel_again()
            first, count = self._seq, len(payloads)
            self._again = asyncio.get_running_loop().call_later(KEYFRAME_AGAIN_AFTER, self._send_again, first, count)
        if self._last_timestamp is None:
            return
        step = max(1, round((ntp - self._last_ntp) / (1 << 32) * 90000))
        self.timestamp_origin = (self._last_timestamp + step - timestamp) & 0xFFFFFFFF
        if self.mime == "video/vp8" and payloads:
            last = self._history.payload((self._seq - 1) & 0xFFFF)
            last_id, new_id = vp8_picture_id(last or b""), vp8_picture_id(payloads[0])
            if last_id is not None and new_id is not None:
                self._picture_id_delta = (last_id + 1 - new_id) % VP8_PICTURE_IDS

    def _route(self) -> bool:
        """Re-read the nominated pair; True when it is a plain UDP pair we can send to directly."""
        pairs = self._pairs
        if pairs is None:  # aioice's dict of nominated pairs (one for the connection's life)
            pairs = self._pairs = getattr(getattr(self.dtls.transport, compat.ICE_CONNECTION_ATTR),
                                          compat.ICE_NOMINATED_ATTR)
        pair = pairs.get(1)
        if pair is not self._pair:
            self._pair = pair
            self._udp = self._native = None
            if self._batch is not None:
                self._batch.close()
                self._batch = None
            if pair is not None and type(pair.protocol) is getattr(*compat.ICE_UDP_PROTOCOL):
                self._udp = pair.protocol.transport
                self._addr = pair.remote_addr
                self._batch = DatagramBatch(self._udp)
                fd = self._batch.fileno()
                address = native_send.sockaddr(self._batch.family, self._addr) if native_send.ENABLED else None
                if fd is not None and address is not None:
                    self._native = (fd, address)
        return self._udp is not None

    @property
    def batch(self) -> DatagramBatch | None:
        """What writes this subscriber's datagrams to its UDP pair (None: not a plain UDP pair)."""
        return self._batch

    def send(self, packet: av.Packet) -> bool:
        """Send one encoded frame. False: this subscriber's transport is backlogged (the frame
        was not sent; the caller resyncs it at the next keyframe)."""
        if self.native is not None:  # pushed to directly while in the C loop: this path takes over
            self.leave_native()
        dtls = self.dtls
        if getattr(dtls, compat.DTLS_STATE_ATTR) is not self._connected:
            return True  # not connected (yet or any more): nothing to send to, as aiortc drops it
        payloads, timestamp = self.packer.pack(packet, self.mime)
        if not payloads:
            return True
        direct = self._route()
        backlog = self._udp.get_write_buffer_size() if direct else 0
        if backlog > MAX_SEND_BACKLOG:
            self.backlogged += 1
            return False
        ntp = compat.fast_ntp_time()  # per subscriber: abs-send-time is when this one's packets leave
        if self._splice_next:
            self._spliced(payloads, timestamp, ntp)
        extension = self._serialized_extension((ntp >> 14) & 0x00FFFFFF)
        first_byte = 0x90 if extension else 0x80
        timestamp = (self.timestamp_origin + timestamp) & 0xFFFFFFFF
        self._last_timestamp, self._last_ntp = timestamp, ntp
        seq = self._seq
        n = len(payloads)
        delta = self._picture_id_delta
        self._history.add(seq, timestamp, extension, payloads, delta, first_byte)
        self._seq = (seq + n) & 0xFFFF
        native = self._native
        if direct and native is not None and n <= native_send.MAX_PACKETS and not backlog \
                and not self._udp.is_closing():
            session = self._session_address()
            frame = self.packer.native()
            native_send.send_frame(native[0], native[1], session, frame, first_byte, self.payload_type, seq,
                                   timestamp, self.ssrc, extension, delta, self._udp, self._addr)
            octets = frame.octets
        else:
            octets = self._send_python(direct, payloads, delta, first_byte, seq, timestamp, extension)
        self._packets += n
        self._octets += octets
        sender = self.sender
        setattr(sender, NTP_TIMESTAMP, ntp)
        setattr(sender, RTP_TIMESTAMP, timestamp)
        setattr(sender, OCTET_COUNT, self._octets)
        setattr(sender, PACKET_COUNT, self._packets)
        return True

    def _session_address(self) -> int:
        session = getattr(self.dtls, compat.DTLS_SRTP_ATTR)
        cached = self._session
        if cached is None or cached[0] is not session:
            cached = self._session = (session, native_send.session_address(session))
        return cached[1]

    def _send_again(self, first: int, count: int) -> None:
        self._again = asyncio.get_running_loop().create_task(self._resend_run(first, count))

    async def _resend_run(self, first: int, count: int) -> None:
        for i in range(count):
            if await self.resend((first + i) & 0xFFFF):
                self.sent_again += 1

    def _cancel_again(self) -> None:
        if self._again is not None:
            self._again.cancel()

    async def close(self) -> None:
        """The sender stopped: packets still queued for aiortc's path are dropped, its tasks awaited."""
        self.leave_native()
        self._cancel_again()
        await self.repairs.close()
        if isinstance(self._again, asyncio.Task):
            await asyncio.gather(self._again, return_exceptions=True)
        self._slow_queue.clear()
        if self._batch is not None:
            self._batch.close()
        self._pair = self._udp = self._batch = None
        if self._slow_task is not None:
            self._slow_task.cancel()
            await asyncio.gather(self._slow_task, return_exceptions=True)

    async def retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again, wrapped in RTX when negotiated, twice at once and once 150 ms later,
        and not again within a round trip (bridge.repair)."""
        await self.repairs.nacked(sequence_number)

    @property
    def retransmits(self) -> int:
        """NACKed packets answered (the adaptation reads it as the NACK rate)."""
        return self.repairs.answered

    async def resend(self, sequence_number: int, pad_to: int = 0) -> int:
        """Packet ``sequence_number`` once more (over RTX when negotiated, RTP-padded up to ``pad_to``
        bytes or by 255), unasked (a probe: bridge.probe) or NACKed; returns the bytes sent, 0 when
        it is no longer in the history."""
        self.materialize()
        plain = self._history.packet(sequence_number, self.payload_type, self.ssrc)
        if plain is None:
            return 0
        rtx_payload_type = _sender_state(self.sender, "rtx_payload_type")
        if rtx_payload_type is not None:
            original = _RtpPacket.parse(plain, self.extensions_map)
            rtx = _wrap_rtx(original, payload_type=rtx_payload_type, sequence_number=self.rtx_sequence_number,
                            ssrc=getattr(self.sender, compat.SENDER_RTX_SSRC))
            self.rtx_sequence_number = (self.rtx_sequence_number + 1) & 0xFFFF
            rtx.padding_size = min(255, max(0, pad_to - len(plain)))
            plain = rtx.serialize(self.extensions_map)
        try:
            await getattr(self.dtls, compat.DTLS_SEND_RTP)(plain)
        except ConnectionError:
            return 0
        return len(plain)


def direct_sender(sender: RTCRtpSender) -> DirectSender | None:
    """The :class:`DirectSender` that sends for ``sender`` (None before it starts, or if it does not)."""
    return getattr(sender, DIRECT_ATTR, None)


def _is_direct_track(track: Any) -> bool:
    return track is not None and hasattr(track, "attach_direct")


def use_direct_send(sender: RTCRtpSender) -> None:
    """Have ``sender`` send its :class:`DirectTrack` through :class:`DirectSender` once it starts
    (call it when the track is added; a track replaced by an ordinary one gets aiortc's own loop)."""
    aiortc_run_rtp = getattr(RTCRtpSender, compat.SENDER_RUN_RTP)

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        if not _is_direct_track(sender.track):
            await aiortc_run_rtp(sender, codec)
            return
        track = cast(DirectTrack, sender.track)
        _sender_state(sender, "rtp_started").set()
        handle_rtcp_directly(sender.transport)  # its subscriber's reports, NACKs, PLIs, on arrival
        direct = DirectSender(sender, codec, track.packer)
        setattr(sender, compat.SENDER_RETRANSMIT, direct.retransmit)
        setattr(sender, DIRECT_ATTR, direct)
        setattr(sender, SYNC_ATTR, direct.sync_counters)
        get_stats = sender.getStats

        async def stats_now() -> Any:  # its counters as they are (the C loop keeps its own meanwhile)
            direct.sync_counters()
            return await get_stats()

        sender.getStats = stats_now  # type: ignore[method-assign]
        try:
            track.attach_direct(direct.send, direct)
            attach_splice = getattr(track, "attach_splice", None)  # an adaptive subscriber (bridge.layers)
            if attach_splice is not None:
                attach_splice(direct.splice)
            await track.wait_stopped()
        except asyncio.CancelledError:
            pass
        finally:
            track.detach_direct()
            track.stop()
            try:
                await direct.close()
            finally:
                _sender_state(sender, "rtp_exited").set()  # RTCRtpSender.stop() waits for it

    setattr(sender, compat.SENDER_RUN_RTP, run_rtp)
    use_shared_reports(sender)
