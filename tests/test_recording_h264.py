"""An H.264 programme (a chair publishing H.264, as OBS does) recorded through a real central
bridge process (issue #17): Matroska segments PyAV opens, at the programme's frame rate, with the
chair's sound — and neither the relay nor the recorder creates a video encoder or decoder."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from server.services.media import bridge_key
from tests.audio_util import ToneTrack
from tests.conftest import LiveServer
from tests.media_util import EncodedVideoTrack, Player, Publisher, close_peers, token, whep, whip
from tests.recording_util import RecordingBridge, read_segment
from tests.test_recording_bridge import VIDEO_CODECS, listing, machine_token, poll, recording_status
from tests.test_recording_province import live_meeting

FPS = 30


async def test_an_h264_programme_is_recorded_as_received(server_factory: Any, sqlite_url: str,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(folder), recording_min_free_mb=1)
    chair, mid = await live_meeting(srv)
    key = bridge_key(srv.settings, "BCA")
    bridge = await RecordingBridge.start("BCA", key, srv.url, await machine_token(srv, "BCA"), folder,
                                         segment_seconds=4)
    peers: list[Publisher | Player] = []
    try:
        camera = EncodedVideoTrack("h264", 320, 240, fps=FPS)
        peers.append(await whip(bridge.url, mid, token("BCA", "BCA", "chair", mid, key), camera, ToneTrack(440)))
        deadline = time.monotonic() + 20
        while True:  # a player answered before the chair's video pinned the meeting's codec plays again
            try:
                player = await whep(bridge.url, mid, token("BCA", "00004", "site", mid, key))
            except AssertionError as exc:
                # pinned while this offer was being answered in VP8: 422 codec_unsupported, as a page
                # would be told, and it asks again
                assert "codec_unsupported" in str(exc), exc
            else:
                if "H264/90000" in player.answer.split("m=video", 1)[1].split("m=audio", 1)[0]:
                    break
                await close_peers(player)
            assert time.monotonic() < deadline, "the bridge never answered with H.264"
            await asyncio.sleep(0.5)
        peers.append(player)
        await player.wait_frames(10)
        assert player.frames[-1][1:3] == (320, 240)

        async def active() -> bool:
            return bool((await recording_status(srv, mid))["active"])

        await poll(active, 20, "the bridge to say it records")
        started = time.monotonic()
        await asyncio.sleep(10.0)
        resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": "concluded"})
        assert resp.status == 200, await resp.text()
        elapsed = time.monotonic() - started

        async def finished() -> list[dict[str, Any]]:
            recs = await listing(srv, mid)
            return recs if recs and recs[0]["status"] != "recording" else []

        recs = await poll(finished, 30, "the recording to be closed and indexed")
        codec_counts = await bridge.counts()
    finally:
        await close_peers(*peers)
        await bridge.stop()

    assert len(recs) == 1 and recs[0]["status"] == "stopped", recs
    segments = recs[0]["segments"]
    assert len(segments) >= 2, segments  # ~10 s in segments of 4 s
    total = sum(s["duration"] for s in segments)
    assert elapsed - 1.0 <= total <= elapsed + 3.0, (total, elapsed)
    files = await asyncio.to_thread(lambda: sorted((folder / str(mid) / recs[0]["name"]).glob("segment-*")))
    assert [f.name for f in files] == [f"segment-{s['index']:04d}.mkv" for s in segments], files
    sent = codec_counts["programme_frames_recorded"]
    rate = sent / total
    total_frames = 0
    for seg, file in zip(segments, files, strict=True):
        facts = await asyncio.to_thread(read_segment, file)
        assert facts.width == 320, facts
        # each segment at the rate the programme carried (a camera in this loaded test process skips
        # frames, as real ones do: 8–30 fps), never above the camera's
        assert 0.5 * rate * seg["duration"] <= facts.video_frames <= 1.1 * FPS * seg["duration"], (seg, facts, rate)
        assert abs(facts.duration - seg["duration"]) <= 1.0, (seg, facts)  # as in test_recording_bridge
        assert facts.audio_rms > 0.01, f"segment {seg['index']} is silent"
        total_frames += facts.video_frames
    assert sent - FPS <= total_frames <= sent, (total_frames, sent)  # at most the wait for the first keyframe
    video_codecs = {k: v for k, v in codec_counts.items() if k.startswith(VIDEO_CODECS)}
    assert video_codecs == {}, codec_counts  # neither the relay nor the recorder touches a picture
    assert any(k.startswith("opus:") for k in codec_counts), codec_counts
