"""The recorder in one process (issue #17): a programme fed with real VP8 and Opus, driven by a
clock the test moves — segments PyAV opens, frames as received, mixed sound, chapters of the floor
history, and a disk that fills up mid-recording."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.recorder import ProgrammeRecorder
from bridge.recording_mux import DiskLow
from tests.recording_util import FPS, Clock, FakeSite, programme_with, read_segment, run_conference, sidecar

GIB = 1024 ** 3


async def test_a_recording_is_segments_of_the_programme_as_received_with_its_chapters(tmp_path: Path) -> None:
    clock = Clock()
    sites = {u: FakeSite(u) for u in ("BCA", "25", "08707")}
    programme = programme_with(*sites.values(), chair="BCA")
    programme.video._clock = programme.chair_audio._clock = programme.floor_audio._clock = clock
    events: list[dict[str, Any]] = []
    recorder = ProgrammeRecorder(7, programme, tmp_path, segment_seconds=4.0, on_event=events.append,
                                 disk_free=lambda p: 10 * GIB, relative_to=tmp_path, clock=clock,
                                 queue_items=100_000)
    recorder.start()
    await run_conference(programme, clock, sites, 12.0, {120: "25", 240: "08707"})
    await recorder.stop()
    await asyncio.sleep(0.01)

    assert recorder.dropped == 0
    segments = [e for e in events if e["type"] == "recording_segment"]
    assert [e["index"] for e in segments] == [1, 2, 3], events
    total_frames = 0
    for event in segments:
        facts = read_segment(tmp_path / event["file"])
        assert facts.width == 320
        assert facts.video_frames == event["frames"]
        total_frames += facts.video_frames
        assert facts.audio_rms > 0.05, f"{event['file']} is silent"
        assert [c["title"] for c in facts.chapters] == [c["unit"] or "chair" for c in event["chapters"]]
    assert abs(total_frames - 12 * FPS) <= 2  # every frame the programme sent, none re-encoded away
    history = sidecar(recorder.directory)["chapters"]
    assert [c["unit"] for c in history] == [None, "25", "08707"]
    assert history[1]["start"] == pytest.approx(4.0, abs=0.1)
    assert history[2]["start"] == pytest.approx(8.0, abs=0.1)
    assert history[0]["end"] == history[1]["start"] and history[2]["end"] == pytest.approx(12.0, abs=0.1)
    assert events[-1]["type"] == "recording_stopped" and events[-1]["reason"] == "stopped"


async def test_recording_refuses_to_start_under_the_disk_threshold(tmp_path: Path) -> None:
    programme = programme_with(FakeSite("BCA"), chair="BCA")
    recorder = ProgrammeRecorder(7, programme, tmp_path, min_free_bytes=GIB, disk_free=lambda p: GIB - 1)
    with pytest.raises(DiskLow):
        recorder.start()
    assert not recorder.running and programme.video.taps == []
    assert not any(path.suffix == ".webm" for path in await asyncio.to_thread(lambda: list(tmp_path.rglob("*"))))


async def test_a_disk_filling_up_stops_the_recording_cleanly_and_keeps_what_was_written(tmp_path: Path) -> None:
    clock = Clock()
    sites = {u: FakeSite(u) for u in ("BCA", "25")}
    programme = programme_with(*sites.values(), chair="BCA")
    events: list[dict[str, Any]] = []

    def disk_free(path: Path) -> int:  # the disk fills up while the third segment is written
        writer = recorder.writer
        return GIB // 2 if writer is not None and writer.segments >= 3 else 10 * GIB

    recorder = ProgrammeRecorder(7, programme, tmp_path, segment_seconds=2.0, min_free_bytes=GIB,
                                 on_event=events.append, disk_free=disk_free, relative_to=tmp_path,
                                 clock=clock, queue_items=100_000)
    recorder.start()
    await run_conference(programme, clock, sites, 9.0, {90: "25"})
    for _ in range(6000):  # the writer thread catches up (slowly on a loaded machine)
        if any(e["type"] == "recording_stopped" for e in events):
            break
        await asyncio.sleep(0.01)
    stopped = [e for e in events if e["type"] == "recording_stopped"]
    assert stopped and stopped[0]["reason"] == "disk_full"
    assert programme.video.fanout is not None  # the programme itself goes on: only the tap's writer ended
    segments = [e for e in events if e["type"] == "recording_segment"]
    assert len(segments) >= 2
    for event in segments:  # what was written before the disk filled plays
        assert read_segment(tmp_path / event["file"]).video_frames == event["frames"] > 0
    await recorder.stop()


async def test_a_keyframe_that_never_comes_is_asked_for_again(tmp_path: Path) -> None:
    """The recording waits for a keyframe; a request lost on the way (a cascade's, a busy camera's)
    is repeated about once a second until one comes, then the recording begins."""
    from tests.recording_util import feed_video, vp8_frames

    clock = Clock()
    chair = FakeSite("BCA")
    programme = programme_with(chair, chair="BCA")
    programme.video._clock = clock
    frames = vp8_frames(4 * FPS, gop=10 ** 6)  # one keyframe, then deltas only
    for i in range(FPS):  # the programme shows the chair before the recording starts
        clock.now += 1 / FPS
        feed_video(chair, frames[i][0], i)
    events: list[dict[str, Any]] = []
    recorder = ProgrammeRecorder(7, programme, tmp_path, segment_seconds=4.0, on_event=events.append,
                                 disk_free=lambda p: 10 * GIB, relative_to=tmp_path, clock=clock)
    asked = chair.keyframe_requests
    recorder.start()  # asks once: lost
    for i in range(FPS, 4 * FPS):  # three seconds of deltas
        clock.now += 1 / FPS
        feed_video(chair, frames[i][0], i)
        await asyncio.sleep(0.002 if i % 5 == 0 else 0)  # the writer's requests reach the loop
    for _ in range(1000):  # the writer has taken every frame
        if not recorder._items.qsize():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert chair.keyframe_requests - asked >= 3, chair.keyframe_requests - asked  # not just the first
    assert chair.keyframe_requests - asked <= 6  # about once a second, not at every frame
    clock.now += 1 / FPS
    feed_video(chair, frames[0][0], 4 * FPS)  # the keyframe comes
    await recorder.stop()
    await asyncio.sleep(0.01)
    assert recorder.writer is not None and recorder.writer.video_frames == 1
