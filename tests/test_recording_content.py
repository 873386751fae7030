"""#17 The shared screen in a recording: its own video stream, written as received.

A programme (real VP8 and Opus, a clock the test moves) records 16 s while the chair shares a
640×360 screen from 3 s to 8 s: the segment cut at the share's start carries a second video stream
whose packets are the screen's frames byte for byte, in order, decoding at the screen's size; the
segments before and after the share carry one video stream only; the programme's own picture loses
no frame to the cuts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import av

from bridge.recorder import ProgrammeRecorder
from tests.recording_util import FPS, Clock, FakeSite, feed_audio, feed_video, opus_tone, programme_with, vp8_frames

SCREEN = (640, 360)
SHARE = (3 * FPS, 8 * FPS)  # the frames during which the chair shares its screen
SECONDS = 16


def streams(path: Path) -> dict[str, Any]:
    """The segment's video streams: per stream its packets (bytes, demuxed) and decoded frame sizes."""
    out: dict[str, Any] = {}
    with av.open(str(path)) as container:
        out["video"] = [{"packets": [], "sizes": set()} for _ in container.streams.video]
        index = {s.index: i for i, s in enumerate(container.streams.video)}
        for packet in container.demux(*container.streams.video):
            if packet.size == 0:
                continue
            entry = out["video"][index[packet.stream.index]]
            entry["packets"].append(bytes(packet))
            for frame in packet.decode():
                assert isinstance(frame, av.VideoFrame)
                entry["sizes"].add((frame.width, frame.height))
    return out


async def test_a_shared_screen_is_recorded_as_its_own_video_stream(tmp_path: Path) -> None:
    clock = Clock()
    sites = {u: FakeSite(u) for u in ("BCA", "25")}
    screen = FakeSite("BCA-screen")
    programme = programme_with(*sites.values(), chair="BCA")
    for switch in (programme.video, programme.chair_audio, programme.floor_audio, programme.content):
        switch._clock = clock
    events: list[dict[str, Any]] = []
    recorder = ProgrammeRecorder(7, programme, tmp_path, segment_seconds=60.0, on_event=events.append,
                                 disk_free=lambda p: 1 << 40, relative_to=tmp_path, clock=clock,
                                 queue_items=100_000)
    recorder.start()
    camera = vp8_frames(2 * FPS, gop=FPS)
    shared = vp8_frames(SHARE[1] - SHARE[0], *SCREEN, gop=FPS)
    tones = {unit: opus_tone(300 + 200 * i, 1.0) for i, unit in enumerate(sites)}
    for i in range(SECONDS * FPS):
        if i == SHARE[0]:
            programme.publish_content("BCA", screen.video, chair=True)
        clock.now += 1 / FPS
        for site in sites.values():
            feed_video(site, camera[i % len(camera)][0], i)
        if SHARE[0] <= i < SHARE[1]:
            feed_video(screen, shared[i - SHARE[0]][0], i - SHARE[0])
        for k in range(i * 50 // FPS, (i + 1) * 50 // FPS):
            for unit, site in sites.items():
                feed_audio(site, tones[unit][k % len(tones[unit])], k)
        if i % 10 == 0:
            await asyncio.sleep(0.001)
    await recorder.stop()
    await asyncio.sleep(0.05)

    segments = [e for e in events if e["type"] == "recording_segment"]
    assert len(segments) == 3, events  # before the share, with it, after it
    found = [await asyncio.to_thread(streams, tmp_path / e["file"]) for e in segments]
    assert [len(f["video"]) for f in found] == [1, 2, 1]
    content = found[1]["video"][1]
    sent = [data for data, _ in shared]
    # as received: a run of the screen's frames, byte for byte, in order, from a keyframe on
    assert len(content["packets"]) >= 3 * FPS, len(content["packets"])
    first = sent.index(content["packets"][0])
    assert content["packets"] == sent[first:first + len(content["packets"])]
    assert first + len(content["packets"]) == len(sent)  # up to the share's last frame
    assert content["sizes"] == {SCREEN}
    assert all(f["video"][0]["sizes"] == {(320, 240)} for f in found)  # the speaker's picture as before
    programme_frames = sum(len(f["video"][0]["packets"]) for f in found)
    assert abs(programme_frames - SECONDS * FPS) <= 2  # no frame of the programme lost to the cuts
