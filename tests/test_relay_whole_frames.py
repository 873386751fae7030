"""A video frame leaves the bridge as soon as it is whole (bridge.frame_assembly, aiortc_compat.WholeFrames):
it does not wait in aiortc's jitter buffer for the next frame to begin, nor cross to a decoder thread.

The assembler's rules are tested alone, in milliseconds; on the wire, a camera that stops after a
frame proves the point by structure: that last frame must reach a pass-through player while no
other frame follows it (aiortc's jitter buffer would hold it until the next one arrived)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import av
import pytest
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bridge import aiortc_compat
from bridge.frame_assembly import RESTART_RUN, FrameAssembler, TimestampUnwrap
from bridge.room import BridgeState
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import STEP, EncodedVideoTrack, Publisher, peer_connection, post_sdp, token, until, whip

BRIDGE = MEDIA_BRIDGE


# --------------------------------------------------------------------------- the rules, alone

def _video() -> FrameAssembler:
    return FrameAssembler(capacity=16)


def test_a_frame_is_out_at_its_last_packet_not_at_the_next_frames_first() -> None:
    frames = _video()
    assert frames.add(100, 3000, False, b"a") == (False, [])
    assert frames.add(101, 3000, False, b"b") == (False, [])
    assert frames.add(102, 3000, True, b"c") == (False, [(3000, b"abc")])
    assert frames.add(103, 6000, True, b"d") == (False, [(6000, b"d")])


def test_packets_out_of_order_make_the_frame_once_all_are_there() -> None:
    frames = _video()
    assert frames.add(10, 90, False, b"1") == (False, [])
    assert frames.add(12, 90, True, b"3") == (False, [])
    assert frames.add(13, 180, True, b"4") == (False, [])  # whole, but behind the gap: in order
    assert frames.add(11, 90, False, b"2") == (False, [(90, b"123"), (180, b"4")])
    assert frames.add(11, 90, False, b"2") == (False, [])  # a late duplicate (say, RTX) changes nothing


def test_a_frame_without_a_marker_ends_when_the_next_begins() -> None:
    frames = _video()
    frames.add(1, 90, False, b"x")
    assert frames.add(2, 180, False, b"y") == (False, [(90, b"x")])
    assert frames.add(3, 180, True, b"z") == (False, [(180, b"yz")])


def test_sequence_numbers_wrap() -> None:
    frames = _video()
    assert frames.add(0xFFFF, 90, False, b"a") == (False, [])
    assert frames.add(0, 90, True, b"b") == (False, [(90, b"ab")])
    assert frames.add(1, 180, True, b"c") == (False, [(180, b"c")])


def test_a_packet_never_repaired_costs_whole_frames_and_a_keyframe_request() -> None:
    frames = _video()  # capacity 16
    frames.add(0, 0, True, b"k")
    # packet 1 is lost for good: frame 90 (packets 1..3) cannot be whole; one-packet frames from 4 on
    frames.add(2, 90, False, b"-")
    frames.add(3, 90, True, b"-")
    out: list[tuple[int, bytes]] = []
    pli = False
    for seq in range(4, 17):
        asked, got = frames.add(seq, seq * 1000, True, bytes([seq]))
        pli, out = pli or asked, out + got
    assert not pli and out == []  # still waiting for packet 1: it may come back (NACK/RTX)
    pli, out = frames.add(17, 17000, True, bytes([17]))
    assert pli, "the frames given up must be replaced by a keyframe"
    assert out == [(seq * 1000, bytes([seq])) for seq in range(4, 18)], "the cut frame is dropped whole"
    assert frames.dropped_packets == 2


def test_after_a_long_outage_the_stream_starts_again() -> None:
    frames = _video()
    frames.add(0, 0, True, b"k")
    pli, out = frames.add(600, 90, False, b"a")
    assert pli and out == []
    assert frames.add(601, 90, True, b"b") == (False, [(90, b"ab")])


def test_a_very_late_retransmission_replays_nothing() -> None:
    frames = _video()
    for seq in range(400):
        frames.add(seq, seq * 90, True, bytes([seq % 256]))
    # a NACK answered late: a burst of a sender's whole history (128 packets), far behind
    assert [frames.add(seq, seq * 90, True, b"late") for seq in range(150, 278)] == [(False, [])] * 128
    assert frames.add(400, 400 * 90, True, b"n") == (False, [(400 * 90, b"n")])
    assert frames.frames == 401


def test_a_stream_that_restarts_far_behind_is_followed() -> None:
    frames = _video()
    frames.add(5000, 90, True, b"a")
    out = [frames.add(100 + i, 180 + i, True, b"b") for i in range(RESTART_RUN)]
    assert out[:-1] == [(False, [])] * (RESTART_RUN - 1)
    assert out[-1] == (True, [(180 + RESTART_RUN - 1, b"b")])
    assert frames.add(100 + RESTART_RUN, 999, True, b"c") == (False, [(999, b"c")])


def test_timestamps_unwrap_from_the_first() -> None:
    unwrap = TimestampUnwrap()
    assert [unwrap(t) for t in (0xFFFFFF00, 0xFFFFFFF0, 0x10)] == [0, 0xF0, 0x110]


# --------------------------------------------------------------------------- on the wire

class StoppingCamera(EncodedVideoTrack):
    """An encoding camera that can stop after a frame: its sender then waits, sending nothing."""

    def __init__(self, codec: str) -> None:
        super().__init__(codec)
        self.sent: list[bytes] = []
        self.stop_after = False
        self.stopped = asyncio.Event()  # set once the last frame was handed to the sender
        self._resume = asyncio.Event()

    async def recv(self) -> av.Packet:
        if self.stop_after:
            self.stopped.set()
            await self._resume.wait()
        packet = await super().recv()
        self.sent.append(bytes(packet))
        return packet

    def stop(self) -> None:
        self._resume.set()
        super().stop()


async def _pass_through_player(url: str, kind: str) -> tuple[object, list[bytes], list[asyncio.Task[None]]]:
    """A WHEP player that takes the encoded frames of its one ``kind`` track (a child bridge does)."""
    pc = peer_connection()
    got: list[bytes] = []
    tasks: list[asyncio.Task[None]] = []

    async def take(track: MediaStreamTrack) -> None:
        try:
            while True:
                got.append(bytes(await track.recv()))  # type: ignore[arg-type]
        except MediaStreamError:
            pass

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(take(track)))

    pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, answer, _ = await post_sdp(f"{url}/meetings/1/whep", token(BRIDGE, "A"), pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    aiortc_compat.mark_passthrough(pc)
    return pc, got, tasks


def _content(source: str, frame: bytes) -> object:
    """What identifies a frame end to end (H.264: its NAL units; the start codes may differ)."""
    if source == "h264":
        return list(getattr(H264Encoder, aiortc_compat.H264_SPLIT)(frame))
    return frame


@pytest.mark.parametrize("source", ["vp8", "h264"])
async def test_the_last_frame_a_camera_sends_arrives_with_nothing_behind_it(
        bridge: tuple[str, BridgeState], source: str) -> None:
    url, state = bridge
    track = StoppingCamera(source)
    publisher: Publisher | None = None
    pc = None
    tasks: list[asyncio.Task[None]] = []
    try:
        publisher = await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), track, audio=False)
        await until(lambda: state.room(1).video_codec is not None, STEP, "the chair's video to pin the codec")
        pc, got, tasks = await _pass_through_player(url, "video")
        await until(lambda: len(got) >= 10, STEP, f"10 {source} frames at the player")
        track.stop_after = True
        await asyncio.wait_for(track.stopped.wait(), STEP)
        last = _content(source, track.sent[-1])
        # Nothing follows ``last`` now: held until a next frame began, it would never arrive.
        await until(lambda: bool(got) and _content(source, got[-1]) == last, STEP,
                    f"the {source} frame sent last to reach the player while no frame follows it")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if pc is not None:
            await pc.close()  # type: ignore[attr-defined]
        if publisher is not None:
            await publisher.pc.close()
        track.stop()


async def test_frames_arrive_whole_in_order_and_once_through_loss_and_retransmission() -> None:
    """A camera sent over a link that loses 1 RTP packet in 12 (NACK/RTX repair it) to a
    pass-through receiver: every frame that comes out is one the camera sent, whole, in order,
    never twice."""
    camera = RecordingCamera("vp8", 320, 240)
    publisher, player = peer_connection(), peer_connection()
    got: list[bytes] = []
    tasks: list[asyncio.Task[None]] = []

    @player.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def take() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    got.append(bytes(await track.recv()))  # type: ignore[arg-type]
        tasks.append(asyncio.ensure_future(take()))

    try:
        transceiver = publisher.addTransceiver(camera, direction="sendonly")
        transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                         if c.mimeType in ("video/VP8", "video/rtx")])
        await publisher.setLocalDescription(await publisher.createOffer())
        await player.setRemoteDescription(publisher.localDescription)
        aiortc_compat.mark_passthrough(player)
        await player.setLocalDescription(await player.createAnswer())
        await publisher.setRemoteDescription(player.localDescription)
        aiortc_compat.mark_passthrough(publisher)
        await until(lambda: len(got) >= 5, STEP, "frames before the loss")
        connection = getattr(transceiver.sender.transport.transport, aiortc_compat.ICE_CONNECTION_ATTR)
        udp: Any = getattr(connection, aiortc_compat.ICE_NOMINATED_ATTR)[1].protocol.transport
        original, count = udp.sendto, itertools.count()

        def lossy(data: bytes, addr: Any = None) -> None:
            rtp = len(data) >= 12 and data[0] >> 6 == 2 and 96 <= data[1] & 0x7F <= 127
            if rtp and next(count) % 12 == 5:
                return
            original(data, addr)

        udp.sendto = lossy
        start = len(got)
        await until(lambda: len(got) >= start + 90, 2 * STEP, "90 frames through the lossy link")
        sent = camera.sent
        assert next(count) > 90, "packets went through the lossy link"
        positions = [sent.index(frame) for frame in got]  # ValueError: a frame never sent (cut or joined)
        assert positions == sorted(set(positions)), "frames out of order or twice"
        assert len(got) - start >= 90 and len(got) <= len(sent)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.close()
        await player.close()
        camera.stop()


class RecordingCamera(EncodedVideoTrack):
    """An encoding camera whose frames differ from each other and are remembered."""

    def __init__(self, codec: str, width: int, height: int) -> None:
        super().__init__(codec, width, height, bitrate=900_000)
        self.sent: list[bytes] = []

    async def recv(self) -> av.Packet:
        packet = await super().recv()
        self.sent.append(bytes(packet))
        return packet
