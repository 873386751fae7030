"""Every aiortc private name the pass-through relay relies on (bridge/aiortc_compat.py).

An aiortc upgrade that moves one of them must fail here, by name, rather than leave the bridge
silently decoding and re-encoding (or forwarding nothing)."""

from __future__ import annotations

import fractions
import inspect

import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame

from bridge import aiortc_compat as compat


def _has(owner: object, name: str, what: str) -> object:
    assert hasattr(owner, name), (f"aiortc moved {what}: {getattr(owner, '__name__', owner)}.{name} is gone; "
                                  "bridge/aiortc_compat.py must be adapted before the relay can work")
    return getattr(owner, name)


def test_receiver_looks_its_decoder_up_by_module_name() -> None:
    module, name = compat.RECEIVER_DECODER_LOOKUP
    _has(module, name, "the receiver's decoder lookup")
    source = inspect.getsource(module.decoder_worker)
    assert f"{name}(codec)" in source, ("aiortc.rtcrtpreceiver.decoder_worker no longer calls get_decoder(codec): "
                                        "the pass-through decoder hook would be bypassed")


def test_sender_looks_its_encoder_up_by_module_name_and_packs_packets() -> None:
    module, name = compat.SENDER_ENCODER_LOOKUP
    _has(module, name, "the sender's encoder lookup")
    source = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert f"{name}(codec)" in source, "RTCRtpSender._next_encoded_frame no longer calls get_encoder(codec)"
    assert ".pack(data)" in source, "RTCRtpSender no longer re-packetizes av.Packet through Encoder.pack()"


def test_sender_keyframe_request_method() -> None:
    method = _has(RTCRtpSender, compat.SENDER_KEYFRAME_METHOD, "the sender's PLI/FIR handler")
    assert f"self.{compat.SENDER_KEYFRAME_METHOD}()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet), \
        "RTCRtpSender._handle_rtcp_packet no longer calls _send_keyframe() on PLI/FIR"
    assert len(inspect.signature(method).parameters) == 1  # type: ignore[arg-type]


def test_receiver_pli_method() -> None:
    method = _has(RTCRtpReceiver, compat.RECEIVER_PLI_METHOD, "the receiver's PLI sender")
    assert list(inspect.signature(method).parameters) == ["self", "media_ssrc"]  # type: ignore[arg-type]
    assert inspect.iscoroutinefunction(method)


def test_receiver_rtp_handler_and_audio_level_extension() -> None:
    """The audio-level hook wraps ``_handle_rtp_packet`` per receiver; the DTLS transport must call
    it through the instance (so the wrapper is seen) and the parser must fill ``audio_level``."""
    from aiortc import rtcdtlstransport, rtp

    method = _has(RTCRtpReceiver, compat.RECEIVER_RTP_METHOD, "the receiver's RTP packet handler")
    assert list(inspect.signature(method).parameters) == ["self", "packet", "arrival_time_ms"]  # type: ignore[arg-type]
    assert inspect.iscoroutinefunction(method)
    assert f"receiver.{compat.RECEIVER_RTP_METHOD}(" in inspect.getsource(rtcdtlstransport), \
        "RTCDtlsTransport no longer hands RTP packets to receiver._handle_rtp_packet"
    assert "audio_level" in {f.name for f in __import__("dataclasses").fields(rtp.HeaderExtensions)}


async def test_transceiver_keeps_negotiated_codecs() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        _has(transceiver, compat.TRANSCEIVER_CODECS_ATTR, "RTCRtpTransceiver._codecs (negotiated codecs)")
    finally:
        await pc.close()


def test_packetizers_and_codec_negotiation_helpers() -> None:
    _has(Vp8Encoder, compat.VP8_PACKETIZE, "the VP8 packetizer")
    _has(H264Encoder, compat.H264_SPLIT, "the H.264 bitstream splitter")
    _has(H264Encoder, compat.H264_PACKETIZE, "the H.264 packetizer")
    _has(*compat.COMMON_CODECS_FUNCTION, "codec negotiation (find_common_codecs)")
    table = _has(*compat.LOCAL_CODECS_TABLE, "aiortc's codec table (CODECS)")
    assert {c.mimeType.lower() for c in table["video"]} >= {"video/vp8", "video/h264"}  # type: ignore[index]
    assert "audio/opus" in {c.mimeType.lower() for c in table["audio"]}  # type: ignore[index]


def test_jitter_frame_shape() -> None:
    frame = JitterFrame(data=b"\x10\x02", timestamp=3000)
    packets = compat.PacketDecoder(compat.VIDEO_TIME_BASE).decode(frame)
    assert len(packets) == 1 and bytes(packets[0]) == b"\x10\x02"
    assert packets[0].pts == 3000 and packets[0].time_base == fractions.Fraction(1, 90000)


def test_install_keeps_unmarked_codecs_decoding() -> None:
    compat.install()
    assert compat.installed()
    module, name = compat.RECEIVER_DECODER_LOOKUP
    vp8 = next(c for c in compat.LOCAL_CODECS_TABLE[0].CODECS["video"] if c.mimeType == "video/VP8")
    assert not isinstance(getattr(module, name)(vp8), compat.PacketDecoder)


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

    module, name = compat.NTP_CLOCK
    _has(module, name, "the sender's NTP clock")
    assert "clock.current_ntp_time()" in inspect.getsource(RTCRtpSender._run_rtp), \
        "RTCRtpSender._run_rtp no longer stamps packets through clock.current_ntp_time()"
    reference = clock.datetime_to_ntp(clock.current_datetime())
    fast = compat.fast_ntp_time()
    assert abs(fast - reference) < (1 << 32) // 100  # within 10 ms


async def test_direct_send_path_names() -> None:
    """What the direct send path (DirectSender) reads and replaces on aiortc's objects."""
    from aiortc import RTCDtlsTransport, RTCIceTransport
    from aiortc import rtp as aiortc_rtp

    send_source = inspect.getsource(RTCRtpSender.send)
    assert f"self.{compat.SENDER_RUN_RTP}(" in send_source, "RTCRtpSender.send() no longer starts self._run_rtp(codec)"
    assert inspect.iscoroutinefunction(_has(RTCRtpSender, compat.SENDER_RUN_RTP, "the sender's RTP loop"))
    assert f"self.{compat.SENDER_RETRANSMIT}(seq)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet), \
        "RTCRtpSender._handle_rtcp_packet no longer answers a NACK through self._retransmit(seq)"
    stop_source = inspect.getsource(RTCRtpSender.stop)
    assert "__rtp_started.wait()" in stop_source and "__rtp_exited.wait()" in stop_source
    run_source = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count"):
        assert f"self.__{name}" in run_source, f"the RTCP sender report no longer reads __{name}"
    assert isinstance(_has(*compat.SENDER_HISTORY_SIZE, "RTP_HISTORY_SIZE"), int)
    _has(_has(*compat.DTLS_CONNECTED, "the DTLS transport's State"), "CONNECTED", "State.CONNECTED")
    assert inspect.iscoroutinefunction(_has(RTCDtlsTransport, compat.DTLS_SEND_RTP, "the DTLS transport's SRTP send"))
    assert f"self.{compat.DTLS_SRTP_ATTR} = " in inspect.getsource(RTCDtlsTransport), "RTCDtlsTransport._tx_srtp"
    _has(*compat.ICE_UDP_PROTOCOL, "aioice's UDP protocol (StunProtocol)")
    assert "self.transport.sendto(data, addr)" in inspect.getsource(compat.ICE_UDP_PROTOCOL[0].StunProtocol.send_data)
    for name in ("HeaderExtensions", "RtpPacket", "wrap_rtx"):
        _has(aiortc_rtp, name, f"aiortc.rtp.{name}")

    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        sender = transceiver.sender
        for name in compat.SENDER_STATE:
            _has(sender, compat.SENDER_PRIVATE + name, f"RTCRtpSender.__{name}")
        dtls = sender.transport
        _has(dtls, compat.DTLS_STATE_ATTR, "RTCDtlsTransport._state")
        assert isinstance(dtls.transport, RTCIceTransport)
        connection = _has(dtls.transport, compat.ICE_CONNECTION_ATTR, "RTCIceTransport._connection")
        assert isinstance(_has(connection, compat.ICE_NOMINATED_ATTR, "aioice Connection._nominated"), dict)
    finally:
        await pc.close()
