"""The pass-through relay with real aiortc peers over WHIP/WHEP: late joiners, floor switches,
codec pinning, and (in a separate bridge process) proof that nothing is encoded or decoded."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from pathlib import Path

from bridge.room import BridgeState
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import (
    KEY,
    STEP,
    EncodedVideoTrack,
    Player,
    Publisher,
    close_peers,
    token,
    until,
    whep,
    whip,
)

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = MEDIA_BRIDGE


def _monotonic(pts: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(pts))


async def test_late_joiner_gets_a_decodable_frame_within_a_second(bridge: tuple[str, BridgeState]) -> None:
    url, _state = bridge
    camera = EncodedVideoTrack("vp8")
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
        first = await whep(url, 1, token(BRIDGE, "A"))
        peers.append(first)
        await first.wait_frames(30)
        await asyncio.sleep(2.0)  # the source's only natural keyframe is long gone
        keyframes_before = camera.keyframes
        late = await whep(url, 1, token(BRIDGE, "B"))
        peers.append(late)
        await asyncio.wait_for(late.first_frame.wait(), STEP)
        # The source sends no keyframe by itself any more: the late joiner's first frame can only be
        # one the relay asked for. How soon it comes (issue #4: within 1 s) is a figure, measured by
        # bench/relay.py (late_join_first_frame_p95_ms), not a timed assert a loaded CI run trips on.
        assert camera.keyframes > keyframes_before, "the keyframe must have been requested through the relay"
        assert late.frames[0][1:3] == (160, 120)
        await late.wait_frames(20)
        first_count = len(first.frames)
        await first.wait_frames(first_count + 10)  # the earlier player kept playing
    finally:
        await close_peers(*peers)


async def test_floor_switch_shows_the_new_source_with_monotonic_timestamps(
        bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    chair_cam = EncodedVideoTrack("vp8", 160, 120)
    site_cam = EncodedVideoTrack("vp8", 176, 144)
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), chair_cam))
        player = await whep(url, 1, token(BRIDGE, "B"))
        peers.append(player)
        await player.wait_frames(15)
        assert {f[1:3] for f in player.frames} == {(160, 120)}

        state.room(1).set_floor("X")
        peers.append(await whip(url, 1, token(BRIDGE, "X"), site_cam))

        def shows(size: tuple[int, int]) -> bool:
            return bool(player.frames) and player.frames[-1][1:3] == size

        try:
            await until(lambda: shows((176, 144)), STEP, "the floor holder's picture")
        except AssertionError:
            room = state.room(1)
            x = room.programme.sites.get("X")
            raise AssertionError(f"no switch: player {len(player.frames)} frames, camera {site_cam.keyframes} "
                                 f"keyframes/{site_cam.keyframe_requests} requests, source "
                                 f"{x.video.frames if x and x.video else None} frames "
                                 f"{x.video.keyframes_seen if x and x.video else None} keyframes "
                                 f"{x.video.keyframe_requests_sent if x and x.video else None} requests") from None
        count = len(player.frames)
        await player.wait_frames(count + 15)

        state.room(1).set_floor(None)  # back to the chair
        await until(lambda: shows((160, 120)), STEP, "the chair's picture again")
        count = len(player.frames)
        await player.wait_frames(count + 15)

        pts = [f[3] for f in player.frames]
        assert _monotonic(pts), "the programme's timestamps must only move forward across floor switches"
        sizes = [f[1:3] for f in player.frames]
        # never a frame of the new source before its keyframe: sizes change exactly twice
        changes = sum(1 for a, b in itertools.pairwise(sizes) if a != b)
        assert changes == 2
    finally:
        await close_peers(*peers)


async def test_h264_source_pins_subscribers_to_h264(bridge: tuple[str, BridgeState]) -> None:
    url, state = bridge
    camera = EncodedVideoTrack("h264")
    peers: list[Publisher | Player] = []
    try:
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
        # the chair's video arriving pins the meeting (its answer alone does not)
        await until(lambda: state.room(1).video_codec is not None, STEP, "the chair's video to pin the codec")
        player = await whep(url, 1, token(BRIDGE, "B"))  # aiortc offers VP8 first, then H.264
        peers.append(player)
        video_section = player.answer.split("m=video", 1)[1].split("m=audio", 1)[0]
        assert "H264/90000" in video_section and "VP8/90000" not in video_section
        await player.wait_frames(15)
        assert player.frames[-1][1:3] == (160, 120)
    finally:
        await close_peers(*peers)


async def _codec_counts(proc: asyncio.subprocess.Process) -> dict[str, int]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"counts\n")
    await proc.stdin.drain()
    return dict(json.loads(await asyncio.wait_for(proc.stdout.readline(), STEP)))


async def test_relay_process_never_encodes_or_decodes() -> None:
    """The bridge runs in its own process with every aiortc codec and ``av.CodecContext.create``
    counted; the publisher and the players (which decode) live in this process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "bridge_process.py"), BRIDGE, KEY.decode(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
    peers: list[Publisher | Player] = []
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        camera = EncodedVideoTrack("vp8")
        peers.append(await whip(url, 1, token(BRIDGE, "CHAIR", "chair"), camera))
        players = [await whep(url, 1, token(BRIDGE, f"S{i}")) for i in range(2)]
        peers.extend(players)
        for player in players:
            await player.wait_frames(30)
        await until(lambda: all(p.audio_frames > 20 for p in players), STEP, "audio at both players")

        counts = await _codec_counts(proc)
        assert counts["forwarded_packets"] > 60, counts
        assert counts["codec_context_create"] == 0, counts
        assert counts["aiortc_codec_objects"] == 0, counts
        assert counts["encode_calls"] == 0 and counts["decode_calls"] == 0, counts
    finally:
        await close_peers(*peers)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
