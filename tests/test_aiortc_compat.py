"""Every aiortc private name the pass-through relay relies on (bridge/aiortc_compat.py), checked by
name and exercised on a real pair of aiortc peers talking over loopback.

An aiortc upgrade that moves one of them must fail here, by name, rather than leave the bridge
silently decoding and re-encoding (or forwarding nothing): the name checks say which name moved,
the loopback tests that aiortc still calls it the way the hook expects."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fractions
import inspect
import struct
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiortc
import av
import pytest
from aiortc import RTCDtlsTransport, RTCIceTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, sdp
from aiortc import rtp as aiortc_rtp
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import SSL
from pylibsrtp import Policy, Session

from bridge import aiortc_compat as compat
from bridge import direct_send, native_send
from bridge.keyframes import is_keyframe
from bridge.relay import Fanout
from bridge.remb import RECEIVER_BITRATE_ESTIMATOR
from tests.conftest import need_service
from tests.media_util import STEP, EncodedVideoTrack, drain, lose_next_rtp, peer_connection, until

ROOT = Path(__file__).resolve().parent.parent


def _has(owner: object, name: str, what: str) -> Any:
    assert hasattr(owner, name), (f"aiortc moved {what}: {getattr(owner, '__name__', owner)}.{name} is gone; "
                                  "bridge/aiortc_compat.py must be adapted before the relay can work")
    return getattr(owner, name)


# --------------------------------------------------------------------------- the names, by name

NAMES: list[tuple[object, str, str]] = [
    (*compat.RECEIVER_DECODER_LOOKUP, "the receiver's decoder lookup"),
    (*compat.SENDER_ENCODER_LOOKUP, "the sender's encoder lookup"),
    (RTCRtpSender, compat.SENDER_KEYFRAME_METHOD, "the sender's PLI/FIR handler"),
    (RTCRtpReceiver, compat.RECEIVER_PLI_METHOD, "the receiver's PLI sender"),
    (RTCRtpReceiver, compat.RECEIVER_RTP_METHOD, "the receiver's RTP packet handler"),
    (Vp8Encoder, compat.VP8_PACKETIZE, "the VP8 packetizer"),
    (H264Encoder, compat.H264_SPLIT, "the H.264 bitstream splitter"),
    (H264Encoder, compat.H264_PACKETIZE, "the H.264 packetizer"),
    (*compat.NTP_CLOCK, "the sender's NTP clock"),
    (*compat.COMMON_CODECS_FUNCTION, "codec negotiation (find_common_codecs)"),
    (*compat.LOCAL_CODECS_TABLE, "aiortc's codec table (CODECS)"),
    (RTCRtpSender, compat.SENDER_RUN_RTP, "the sender's RTP loop"),
    (RTCRtpSender, compat.SENDER_RETRANSMIT, "the sender's NACK answer"),
    (RTCRtpSender, compat.SENDER_RTCP_METHOD, "the sender's RTCP handler (receiver reports, REMB)"),
    (RTCRtpReceiver, compat.SENDER_RTCP_METHOD, "the receiver's RTCP handler (sender reports, BYE)"),
    (RTCRtpSender, compat.SENDER_RUN_RTCP, "the sender's RTCP report loop"),
    (*compat.ICE_UDP_PROTOCOL, "aioice's UDP protocol (StunProtocol)"),
    (getattr(*compat.ICE_UDP_PROTOCOL), compat.ICE_DATAGRAM_METHOD, "StunProtocol.datagram_received"),
    (*compat.RTCP_IS, "aiortc.rtp.is_rtcp"),
    (*compat.RTCP_PARSE, "aiortc.rtp.RtcpPacket.parse"),
    (*compat.SENDER_HISTORY_SIZE, "RTP_HISTORY_SIZE"),
    (*compat.SEQUENCE_NUMBER_ORIGIN, "the sender's first sequence number"),
    (*compat.RTP_HEADER_EXTENSIONS, "aiortc.rtp.HeaderExtensions"),
    (*compat.RTP_PACKET, "aiortc.rtp.RtpPacket"),
    (*compat.RTX_WRAP, "aiortc.rtp.wrap_rtx"),
    (*compat.DTLS_CONNECTED, "the DTLS transport's State"),
    (RTCDtlsTransport, compat.DTLS_SEND_RTP, "the DTLS transport's SRTP send"),
    (*compat.ICE_UDP_PROTOCOL, "aioice's UDP protocol (StunProtocol)"),
    (*compat.DTLS_SSL_CONTEXT, "the DTLS certificate's SSL context factory"),
    (*compat.SRTP_LIBRARY, "pylibsrtp's cffi library"),
    (getattr(*compat.SRTP_LIBRARY), "srtp_protect", "libsrtp's srtp_protect"),
    (*compat.SRTP_FFI, "pylibsrtp's cffi FFI"),
]


@pytest.mark.parametrize(("owner", "name", "what"), NAMES, ids=[what for _, _, what in NAMES])
def test_the_name_is_there(owner: object, name: str, what: str) -> None:
    _has(owner, name, what)


def test_the_shapes_the_hooks_rely_on() -> None:
    assert len(inspect.signature(RTCRtpSender._send_keyframe).parameters) == 1
    pli = getattr(RTCRtpReceiver, compat.RECEIVER_PLI_METHOD)
    assert list(inspect.signature(pli).parameters) == ["self", "media_ssrc"] and inspect.iscoroutinefunction(pli)
    rtp_handler = getattr(RTCRtpReceiver, compat.RECEIVER_RTP_METHOD)
    assert list(inspect.signature(rtp_handler).parameters) == ["self", "packet", "arrival_time_ms"]
    assert inspect.iscoroutinefunction(rtp_handler)
    assert "audio_level" in {f.name for f in dataclasses.fields(aiortc_rtp.HeaderExtensions)}
    for name in (compat.SENDER_RUN_RTP, compat.SENDER_RETRANSMIT):
        assert inspect.iscoroutinefunction(getattr(RTCRtpSender, name)), f"RTCRtpSender.{name}"
    assert inspect.iscoroutinefunction(getattr(RTCDtlsTransport, compat.DTLS_SEND_RTP))
    assert isinstance(getattr(*compat.SENDER_HISTORY_SIZE), int)
    _has(getattr(*compat.DTLS_CONNECTED), "CONNECTED", "State.CONNECTED")
    ffi = getattr(*compat.SRTP_FFI)
    session = Session(Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    handle = _has(session, compat.SRTP_SESSION_POINTER, "pylibsrtp.Session._srtp (its libsrtp session)")
    assert ffi.typeof(handle[0]) is ffi.typeof(getattr(*compat.SRTP_LIBRARY).srtp_protect).args[0]
    table = getattr(*compat.LOCAL_CODECS_TABLE)
    assert {c.mimeType.lower() for c in table["video"]} >= {"video/vp8", "video/h264"}
    assert "audio/opus" in {c.mimeType.lower() for c in table["audio"]}


async def test_the_instance_state_the_direct_send_path_reads() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        _has(transceiver, compat.TRANSCEIVER_CODECS_ATTR, "RTCRtpTransceiver._codecs (negotiated codecs)")
        sender = transceiver.sender
        for name in compat.SENDER_STATE:
            _has(sender, compat.SENDER_PRIVATE + name, f"RTCRtpSender.__{name}")
        _has(sender, compat.SENDER_SSRC, "RTCRtpSender._ssrc")
        _has(sender, compat.SENDER_RTX_SSRC, "RTCRtpSender._rtx_ssrc")
        jitter_buffer = _has(transceiver.receiver, compat.RECEIVER_JITTER_BUFFER, "RTCRtpReceiver.__jitter_buffer")
        assert list(inspect.signature(jitter_buffer.add).parameters) == ["packet"]
        estimator = _has(transceiver.receiver, RECEIVER_BITRATE_ESTIMATOR,
                         "RTCRtpReceiver.__remote_bitrate_estimator")
        assert list(inspect.signature(estimator.add).parameters) == [
            "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"]
        _has(RemoteStreamTrack("video"), compat.TRACK_QUEUE, "RemoteStreamTrack._queue")
        dtls = sender.transport
        _has(dtls, compat.DTLS_STATE_ATTR, "RTCDtlsTransport._state")
        _has(dtls, compat.DTLS_SRTP_ATTR, "RTCDtlsTransport._tx_srtp")
        _has(dtls, compat.DTLS_RX_SRTP_ATTR, "RTCDtlsTransport._rx_srtp")
        for name in compat.DTLS_RX_COUNTERS:
            assert isinstance(_has(dtls, name, f"RTCDtlsTransport.{name}"), int)
        router = _has(dtls, compat.DTLS_ROUTER_ATTR, "RTCDtlsTransport._rtp_router")
        for name in compat.ROUTER_TABLES:
            assert isinstance(_has(router, name, f"RtpRouter.{name}"), dict)
        assert isinstance(dtls.transport, RTCIceTransport)
        connection = _has(dtls.transport, compat.ICE_CONNECTION_ATTR, "RTCIceTransport._connection")
        assert isinstance(_has(connection, compat.ICE_NOMINATED_ATTR, "aioice Connection._nominated"), dict)
    finally:
        await pc.close()


# --------------------------------------------------------------------------- the version held still

def test_the_installed_versions_are_the_targeted_ones_and_pinned() -> None:
    compat.check_versions()
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package, target in compat.TARGET_VERSIONS.items():
        assert f"{package}~={target}.0" in pinned, f"pyproject.toml must pin {package} to {target}.x"


def test_another_aiortc_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(compat.UnsupportedVersion) as refused:
        compat.check_versions()
    message = str(refused.value)
    assert "aiortc 1.16.x" in message and "1.17.0" in message and "aiortc~=1.16.0" in message


# --------------------------------------------------------------------------- the hooks, on the wire

@contextlib.asynccontextmanager
async def _peers() -> AsyncIterator[tuple[RTCPeerConnection, RTCPeerConnection, list[Any]]]:
    """A publisher and a player on loopback; what the player's tracks yield lands in the list."""
    publisher, player = peer_connection(), peer_connection()
    received: list[Any] = []
    tasks: list[asyncio.Future[None]] = []

    @player.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(drain(track, received.append)))

    try:
        yield publisher, player, received
    finally:
        await asyncio.wait_for(publisher.close(), STEP)  # a sender that never exits would hang here
        await player.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _connect(publisher: RTCPeerConnection, player: RTCPeerConnection, passthrough: bool = True) -> None:
    """Offer/answer between the two, marking both pass-through where the bridge does: right after
    each ``setRemoteDescription``, before any media flows."""
    await publisher.setLocalDescription(await publisher.createOffer())
    await player.setRemoteDescription(publisher.localDescription)
    if passthrough:
        compat.mark_passthrough(player)
    await player.setLocalDescription(await player.createAnswer())
    await publisher.setRemoteDescription(player.localDescription)
    if passthrough:
        compat.mark_passthrough(publisher)


def _prefer(transceiver: Any, mime: str) -> None:
    kind = mime.split("/")[0]
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities(kind).codecs
                                     if c.mimeType.lower() in (mime.lower(), "video/rtx")])


class RecordingCamera(EncodedVideoTrack):
    """An encoding camera that remembers every packet it handed out."""

    def __init__(self, codec: str) -> None:
        super().__init__(codec)
        self.sent: list[av.Packet] = []

    async def recv(self) -> av.Packet:
        packet = await super().recv()
        self.sent.append(packet)
        return packet


class OpusPackets(MediaStreamTrack):
    """A microphone of already-encoded Opus packets (distinct bytes each, 20 ms apart)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[av.Packet] = []

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(0.02)
        index = len(self.sent)
        packet = av.Packet(b"\xfc" + index.to_bytes(4, "big") * 10)
        packet.pts = index * 960
        packet.time_base = compat.AUDIO_TIME_BASE
        self.sent.append(packet)
        return packet


def _same_frames(received: list[av.Packet], sent: list[av.Packet], mime: str) -> None:
    """``received`` is a run of ``sent``: the same frames (H.264: the same NAL units) with the same
    spacing in time (pts = RTP timestamp, whose origin is random)."""
    def content(packet: av.Packet) -> object:
        if mime == "video/h264":
            return list(getattr(H264Encoder, compat.H264_SPLIT)(bytes(packet)))
        return bytes(packet)

    def spacing(packets: list[av.Packet]) -> list[int]:
        return [(p.pts - packets[0].pts) % (1 << 32) for p in packets]

    got = [content(p) for p in received]
    was = [content(p) for p in sent]
    assert all(p.time_base == sent[0].time_base for p in received)
    runs = [i for i in range(len(was)) if was[i:i + len(got)] == got
            and spacing(sent[i:i + len(got)]) == spacing(received)]
    assert runs, "the player did not get the frames that were sent, in order and whole"


@pytest.mark.parametrize(("mime", "packer"), [("video/VP8", compat.Vp8Packer), ("video/H264", compat.H264Packer),
                                              ("audio/opus", compat.OpusPacker)])
async def test_marked_codecs_carry_encoded_frames_end_to_end(mime: str, packer: type,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender looks its encoder up by the hooked name and gets a packer (no codec opened); the
    receiver looks its decoder up by the hooked name and yields the frames as ``av.Packet``s."""
    packed: list[int] = []
    pack = packer.pack
    monkeypatch.setattr(packer, "pack", lambda self, packet: packed.append(1) or pack(self, packet))
    async with _peers() as (publisher, player, received):
        track: RecordingCamera | OpusPackets = (OpusPackets() if mime == "audio/opus"
                                                else RecordingCamera(mime.split("/")[1].lower()))
        _prefer(publisher.addTransceiver(track, direction="sendonly"), mime)
        await _connect(publisher, player)
        await until(lambda: len(received) >= 10, STEP, f"10 {mime} frames at the player")
        assert all(isinstance(p, av.Packet) for p in received), "decoded: the decoder hook was bypassed"
        assert packed, "the sender used aiortc's encoder, not the packer: the encoder hook was bypassed"
        _same_frames(received, track.sent, mime.lower())


async def test_unmarked_peer_connections_still_decode() -> None:
    """The positive control: the same pair, not marked, gets pictures (the hooks change only
    marked codecs, so a test's own players and any other peer decode as usual)."""
    compat.install()
    assert compat.installed()
    async with _peers() as (publisher, player, received):
        _prefer(publisher.addTransceiver(EncodedVideoTrack("vp8"), direction="sendonly"), "video/VP8")
        await _connect(publisher, player, passthrough=False)
        await until(lambda: len(received) >= 3, STEP, "3 decoded frames")
        assert all(isinstance(f, av.VideoFrame) for f in received)


async def test_a_pli_from_the_receiver_reaches_the_hooked_sender() -> None:
    """``send_pli`` (the receiver's ``_send_rtcp_pli``) puts a PLI on the wire; the publisher's
    ``_send_keyframe`` wrapper sees it."""
    requests: list[int] = []
    async with _peers() as (publisher, player, received):
        transceiver = publisher.addTransceiver(EncodedVideoTrack("vp8"), direction="sendonly")
        compat.on_keyframe_request(transceiver.sender, lambda: requests.append(1))
        await _connect(publisher, player)
        await until(lambda: len(received) >= 3, STEP, "frames at the player")
        receiver = player.getTransceivers()[0].receiver
        ssrcs = [s.source for s in receiver.getSynchronizationSources()]
        assert ssrcs, "getSynchronizationSources() lists the publisher's SSRC"
        before = len(requests)
        await compat.send_pli(receiver, ssrcs[0])
        await until(lambda: len(requests) > before, STEP, "the PLI to reach the publisher's sender")


class Tone(AudioStreamTrack):
    """aiortc's silent microphone, made to send a square wave at -20 dBov."""

    async def recv(self) -> Any:
        frame = await super().recv()
        amplitude = round(32767 / 10)
        frame.planes[0].update(struct.pack(f"<{frame.samples}h",
                                           *(amplitude if i % 2 else -amplitude for i in range(frame.samples))))
        return frame


async def test_the_audio_level_hook_reads_what_an_aiortc_sender_encodes() -> None:
    """aiortc's own sender writes the RFC 6464 level of each encoded frame; the wrapped
    ``_handle_rtp_packet`` of the receiver hands it to the callback (here -20 dBov → 20)."""
    levels: list[int] = []
    async with _peers() as (publisher, player, received):
        publisher.addTransceiver(Tone(), direction="sendonly")
        await _connect(publisher, player, passthrough=False)
        compat.on_audio_level(player.getTransceivers()[0].receiver, levels.append)
        await until(lambda: len(levels) >= 10, STEP, "audio levels at the player")
        assert set(levels[-5:]) == {20}, levels
        await until(lambda: len(received) >= 3, STEP, "the audio still reaches the track")


async def test_the_sender_stamps_with_the_fast_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``install`` replaces the clock by the name aiortc's sender calls; the sender reports stamped
    with it tell the player the publisher's time correctly."""
    compat.install()
    module, name = compat.NTP_CLOCK
    assert getattr(module, name) is compat.fast_ntp_time
    calls: list[int] = []
    monkeypatch.setattr(module, name, lambda: calls.append(1) or compat.fast_ntp_time())
    async with _peers() as (publisher, player, _):
        publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await _connect(publisher, player, passthrough=False)
        await until(lambda: bool(calls), STEP, "the sender to read the clock")
        remote = await _remote_outbound(player)
        assert abs((remote.remoteTimestamp - datetime.now(UTC)).total_seconds()) < 1.0


async def _remote_outbound(pc: RTCPeerConnection) -> Any:
    """The first sender report ``pc`` received, as its ``remote-outbound-rtp`` statistics."""
    deadline = asyncio.get_running_loop().time() + STEP
    while asyncio.get_running_loop().time() < deadline:
        found = [s for s in (await pc.getStats()).values() if s.type == "remote-outbound-rtp"]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no RTCP sender report reached the player")


@pytest.mark.parametrize("native", [True, False], ids=["c-send", "python-send"])
async def test_the_direct_send_path_replaces_the_senders_loop(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay track on a sender given ``use_direct_send``: ``_run_rtp`` is replaced (frames go out
    of the fan-out call, over the nominated UDP pair, SRTP-protected: by bridge/native/rtp_send.c,
    or in Python where it is not built), the sender's counters feed its RTCP reports, a NACK
    reaches the replaced ``_retransmit``, and closing ends it cleanly."""
    if native and not native_send.ENABLED:
        need_service(native_send.WHY_NOT)
    monkeypatch.setattr(native_send, "ENABLED", native)
    camera = EncodedVideoTrack("vp8")
    fanout = Fanout("video", camera.request_keyframe)
    pushed: list[av.Packet] = []

    async def pump() -> None:
        while True:
            packet = await camera.recv()
            pushed.append(packet)
            fanout.push(packet, is_keyframe("video/vp8", bytes(packet)))

    pumping = asyncio.ensure_future(pump())
    try:
        async with _peers() as (publisher, player, received):
            sender = publisher.addTransceiver(fanout.subscribe(), direction="sendonly").sender
            direct_send.use_direct_send(sender)
            await _connect(publisher, player)
            await until(lambda: direct_send.direct_sender(sender) is not None, STEP, "the direct sender to start")
            direct = direct_send.direct_sender(sender)
            assert direct is not None
            await until(lambda: len(received) >= 10, STEP, "10 frames at the player")
            assert direct._udp is not None, "sent straight to the nominated UDP pair"
            assert (direct._native is not None) == native, "sent by the path this run is about"
            # the extension block serialized once, the send time patched in: what the map makes
            extensions = aiortc_rtp.HeaderExtensions(mid=direct.mid, abs_send_time=0x123456)
            profile, value = direct.extensions_map.set(extensions)
            block = struct.pack("!HH", profile, len(value) >> 2) + value
            assert value and direct._serialized_extension(0x123456) == block
            _same_frames(received, pushed, "video/vp8")
            remote = await _remote_outbound(player)
            assert 0 < remote.packetsSent <= direct.packets and 0 < remote.bytesSent <= direct.octets

            lost = lose_next_rtp(player, direct.ssrc)
            await until(lambda: lost() >= 0, STEP, "a packet to be lost")
            await until(lambda: direct.retransmits >= 1, STEP, "the player's NACK to be answered")
            count = len(received)
            await until(lambda: len(received) >= count + 10, STEP, "frames after the loss")
            _same_frames(received, pushed, "video/vp8")  # the lost packet's frame arrived whole
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)


async def test_common_codecs_are_what_set_remote_description_negotiates() -> None:
    """``common_codecs`` (aiortc's codec table through its negotiation function) predicts the
    transceiver's negotiated codecs, which ``negotiated_codecs`` reads."""
    async with _peers() as (publisher, player, _):
        publisher.addTransceiver("video", direction="sendonly")
        await publisher.setLocalDescription(await publisher.createOffer())
        offer = sdp.SessionDescription.parse(publisher.localDescription.sdp)
        predicted = compat.common_codecs("video", offer.media[0].rtp.codecs)
        await player.setRemoteDescription(publisher.localDescription)
        negotiated = compat.negotiated_codecs(player.getTransceivers()[0])
        assert [(c.mimeType, c.payloadType) for c in predicted] == [(c.mimeType, c.payloadType) for c in negotiated]
        assert {c.mimeType.lower() for c in negotiated} >= {"video/vp8", "video/h264"}


# --------------------------------------------------------------------------- the pieces, alone

def test_the_packet_decoder_keeps_the_jitter_frame_as_it_is() -> None:
    frame = JitterFrame(data=b"\x10\x02", timestamp=3000)
    packets = compat.PacketDecoder(compat.VIDEO_TIME_BASE).decode(frame)
    assert len(packets) == 1 and bytes(packets[0]) == b"\x10\x02"
    assert packets[0].pts == 3000 and packets[0].time_base == fractions.Fraction(1, 90000)


@pytest.mark.parametrize(("packer", "payload"), [(compat.Vp8Packer(), b"\x10" * 3000),
                                                 (compat.H264Packer(), b"\x00\x00\x00\x01\x65" + b"\x01" * 3000),
                                                 (compat.OpusPacker(), b"\xfc" * 60)])
def test_packers_packetize_without_a_codec(packer: object, payload: bytes) -> None:
    packet = av.Packet(payload)
    packet.pts = 90000 if not isinstance(packer, compat.OpusPacker) else 48000
    packet.time_base = compat.VIDEO_TIME_BASE if not isinstance(packer, compat.OpusPacker) else compat.AUDIO_TIME_BASE
    payloads, timestamp = packer.pack(packet)  # type: ignore[attr-defined]
    assert payloads and all(len(p) <= 1300 for p in payloads)
    assert timestamp in (90000, 48000)


def test_fast_ntp_clock_matches_aiortc() -> None:
    from aiortc import clock

    reference = clock.datetime_to_ntp(clock.current_datetime())
    fast = compat.fast_ntp_time()
    assert abs(fast - reference) < (1 << 32) // 100  # within 10 ms


# --------------------------------------------------------------------------- DTLS with RSA peers

class RsaCertificate(RTCCertificate):
    """A certificate as GStreamer's DTLS makes one: RSA 2048, offering ECDHE-RSA suites only."""

    @classmethod
    def generateCertificate(cls) -> RsaCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> SSL.Context:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
        ctx.use_certificate(self._cert)
        ctx.use_privatekey(self._key)
        ctx.set_cipher_list(b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
        ctx.set_tlsext_use_srtp(b":".join(x.openssl_profile for x in srtp_profiles))
        return ctx


def test_the_dtls_cipher_list_is_aiortcs_then_the_rsa_suites() -> None:
    """aiortc's own suites are still the ones the wrapper repeats (an upgrade that changes them
    fails here), and an installed bridge offers them first, then the ECDHE-RSA ones."""
    from aiortc.rtcdtlstransport import SRTP_AES128_CM_SHA1_80

    compat.install()
    owner, name = compat.DTLS_SSL_CONTEXT
    original = compat._original_create_ssl_context
    assert original is not None and getattr(owner, name) is not original
    certificate = RTCCertificate.generateCertificate()
    assert compat.context_ciphers(original(certificate, [SRTP_AES128_CM_SHA1_80])) == list(compat.AIORTC_DTLS_CIPHERS)
    assert compat.context_ciphers(certificate._create_ssl_context([SRTP_AES128_CM_SHA1_80])) == \
        list(compat.AIORTC_DTLS_CIPHERS + compat.RSA_PEER_CIPHERS)


async def test_dtls_with_a_peer_whose_certificate_is_rsa() -> None:
    """GStreamer's case on a real loopback pair: the offerer holds an RSA certificate and offers
    only ECDHE-RSA suites (it is the DTLS server: the answerer says ``setup:active``); the
    answerer, an installed aiortc like the bridge, keeps its ECDSA certificate and connects.
    Without the wrapper the handshake dies with "no shared cipher"."""
    compat.install()
    async with _peers() as (publisher, player, received):
        certificates = "_RTCPeerConnection__certificates"  # aiortc makes one ECDSA certificate per peer
        assert hasattr(publisher, certificates), "aiortc moved the peer connection's certificates"
        setattr(publisher, certificates, [RsaCertificate.generateCertificate()])
        _prefer(publisher.addTransceiver(EncodedVideoTrack("vp8"), direction="sendonly"), "video/VP8")
        await _connect(publisher, player, passthrough=False)
        await until(lambda: player.connectionState in ("connected", "failed"), STEP, "the DTLS handshake")
        assert player.connectionState == "connected", "no shared cipher with the RSA peer"
        await until(lambda: len(received) >= 3, STEP, "3 decoded frames through the RSA peer's DTLS")
