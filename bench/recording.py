"""What recording the programme costs at a bridge (issue #17).

A programme of one VP8 camera (~1 Mbit/s, 30 fps, pre-encoded and looped) and two Opus
microphones (chair and floor holder) is fed in real time through ``bridge.programme`` (as a
bridge's sources would), first without a recorder (baseline), then with one
(``bridge.recorder.ProgrammeRecorder``: video muxed as received, sound decoded, mixed, encoded).

- ``recording_cpu_pct``: the process's CPU (all threads) with the recorder minus without, in % of
  one core over the wall time;
- ``audio_mix_cpu_pct``: of that, the writer thread's time in decoding, mixing and encoding sound;
- ``segment_loss_s``: a recording process killed (SIGKILL) mid-segment: seconds of programme fed
  that no segment file plays back (PyAV reads every file, the half-written one too).

    .venv/bin/python bench/recording.py [--seconds 20] [--segment 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av

from bridge import recording_mux
from bridge.recorder import ProgrammeRecorder
from tests.recording_util import (
    FPS,
    FakeSite,
    feed_audio,
    feed_video,
    opus_tone,
    programme_with,
    vp8_frames,
)

AUDIO_TIME = {"s": 0.0}


def _timed(method_name: str) -> None:
    original = getattr(recording_mux.RecordingWriter, method_name)

    def wrapper(self: recording_mux.RecordingWriter, *args: object) -> object:
        start = time.thread_time()
        try:
            return original(self, *args)
        finally:
            AUDIO_TIME["s"] += time.thread_time() - start

    setattr(recording_mux.RecordingWriter, method_name, wrapper)


async def feed(seconds: float, recorder_dir: Path | None, segment: float,
               die: bool = False) -> tuple[float, float, int]:
    """Feed ``seconds`` of programme in real time; (cpu seconds, wall seconds, video bytes). ``die``:
    the process kills itself (SIGKILL) instead of stopping the recorder."""
    frames = vp8_frames(2 * FPS, width=640, height=480, bitrate=1_000_000, gop=FPS)
    tones = {"BCA": opus_tone(440, 1.0), "25": opus_tone(660, 1.0)}
    sites = {u: FakeSite(u) for u in tones}
    programme = programme_with(*sites.values(), chair="BCA")
    programme.set_floor("25")
    recorder = None
    if recorder_dir is not None:
        recorder = ProgrammeRecorder(1, programme, recorder_dir, segment_seconds=segment, relative_to=recorder_dir,
                                     min_free_bytes=0)
        recorder.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    video_bytes = 0
    for i in range(int(seconds * FPS)):
        due = wall0 + i / FPS
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data = frames[i % len(frames)][0]
        video_bytes += len(data)
        feed_video(sites["25"], data, i)  # the floor holder's camera is the programme's picture
        for k in range(i * 50 // FPS, (i + 1) * 50 // FPS):
            for unit, site in sites.items():
                feed_audio(site, tones[unit][k % 50], k)
    if die:
        os.kill(os.getpid(), signal.SIGKILL)
    if recorder is not None:
        await recorder.stop()
    return time.process_time() - cpu0, time.monotonic() - wall0, video_bytes


def crash_child(folder: str, seconds: float, segment: float) -> None:
    """Record for ``seconds``, then die without closing anything (SIGKILL)."""
    asyncio.run(feed(seconds, Path(folder), segment, die=True))


def playable_seconds(folder: Path) -> float:
    total = 0.0
    for path in sorted(folder.rglob("segment-*")):
        try:
            with av.open(str(path)) as container:
                times = [float(p.pts * p.time_base) for p in container.demux(container.streams.video[0])
                         if p.pts is not None and p.time_base is not None and p.size]
        except (av.FFmpegError, IndexError):
            continue
        if times:
            total += max(times) - min(times) + 1 / FPS
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--segment", type=float, default=6.0)
    parser.add_argument("--crash-child", default="")
    args = parser.parse_args()
    if args.crash_child:
        crash_child(args.crash_child, args.seconds, args.segment)
        return
    _timed("_audio")
    _timed("_flush_audio")
    with tempfile.TemporaryDirectory() as tmp:
        base_cpu, base_wall, vbytes = asyncio.run(feed(args.seconds, None, args.segment))
        AUDIO_TIME["s"] = 0.0
        rec_cpu, rec_wall, _ = asyncio.run(feed(args.seconds, Path(tmp) / "a", args.segment))
        audio_s = AUDIO_TIME["s"]
        written = sum(p.stat().st_size for p in (Path(tmp) / "a").rglob("segment-*"))

        crash_dir = Path(tmp) / "crash"
        crash_dir.mkdir()
        crash_after = 2.5 * args.segment + 0.5 * args.segment  # dies halfway through the third segment
        subprocess.run([sys.executable, __file__, "--crash-child", str(crash_dir), "--seconds", str(crash_after),
                        "--segment", str(args.segment)], check=False)
        fed = crash_after
        played = playable_seconds(crash_dir)

    mbps = vbytes * 8 / base_wall / 1e6
    recording_pct = max(0.0, (rec_cpu / rec_wall - base_cpu / base_wall) * 100)
    print(f"programme video {mbps:.2f} Mbit/s, {args.seconds:.0f} s; written {written / 1e6:.1f} MB")
    print(f"cpu without recorder {base_cpu / base_wall * 100:.2f} %, with {rec_cpu / rec_wall * 100:.2f} % of a core")
    print(f"crash after {crash_after:.1f} s (segments of {args.segment:.0f} s): {played:.1f} s playable")
    print(f"RESULT recording_cpu_pct={recording_pct:.2f} audio_mix_cpu_pct={audio_s / rec_wall * 100:.2f} "
          f"segment_loss_s={max(0.0, fed - played):.1f}")


if __name__ == "__main__":
    main()
