"""Recording tests' helpers: a programme fed with real encoded media without any network (VP8 from
libvpx, Opus tones from libopus, pre-encoded once), and a reader that opens what a recording wrote."""

from __future__ import annotations

import asyncio
import fractions
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from bridge.programme import Programme, Site
from bridge.relay import Source

FPS = 30
ROOT = Path(__file__).resolve().parent.parent


def vp8_frames(count: int, width: int = 320, height: int = 240, bitrate: int = 1_000_000,
               gop: int = 60) -> list[tuple[bytes, bool]]:
    """``count`` encoded VP8 frames of a moving picture, a keyframe every ``gop``."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.gop_size = gop
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(7)
    out: list[tuple[bytes, bool]] = []
    i = 0
    while len(out) < count:
        img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8) if i % 2 else np.full(
            (height, width, 3), (i * 5) % 255, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i % gop == 0 else av.video.frame.PictureType.NONE
        for packet in codec.encode(frame):
            out.append((bytes(packet), bool(packet.is_keyframe)))
        i += 1
    return out[:count]


def opus_tone(frequency: float, seconds: float, amplitude: float = 0.3) -> list[bytes]:
    """20 ms Opus packets of a sine (what a speaking microphone sends)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    enc.bit_rate = 32000
    out: list[bytes] = []
    for k in range(int(seconds * 50)):
        n = np.arange(k * 960, (k + 1) * 960)
        mono = (amplitude * 32767 * np.sin(2 * math.pi * frequency * n / 48000)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, k * 960
        out.extend(bytes(p) for p in enc.encode(frame))
    return out


@dataclass
class FakeSite:
    """A site publishing pre-encoded media into a programme, paced by the caller."""

    unit: str
    video: Source = field(init=False)
    audio: Source = field(init=False)
    keyframe_requests: int = 0

    def __post_init__(self) -> None:
        self.video = Source("video", "video/VP8", label=self.unit)
        self.audio = Source("audio", "audio/opus", label=self.unit)
        self.video.request_keyframe = self._asked  # type: ignore[method-assign]

    def _asked(self) -> None:
        self.keyframe_requests += 1

    def site(self) -> Site:
        return Site(self.unit, self.video, self.audio)


def feed_video(site: FakeSite, data: bytes, index: int) -> None:
    packet = av.Packet(data)
    packet.pts = index * 90000 // FPS
    packet.time_base = fractions.Fraction(1, 90000)
    site.video.feed(packet)


def feed_audio(site: FakeSite, data: bytes, index: int) -> None:
    packet = av.Packet(data)
    packet.pts = index * 960
    packet.time_base = fractions.Fraction(1, 48000)
    site.audio.feed(packet)


def programme_with(*sites: FakeSite, chair: str) -> Programme:
    programme = Programme()
    for s in sites:
        programme.publish(s.site(), chair=s.unit == chair)
    return programme


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run_conference(programme: Programme, clock: Clock, sites: dict[str, FakeSite], seconds: float,
                         floor_at: dict[int, str | None], stop_when: Callable[[], bool] | None = None) -> None:
    """Every site sends video (30 fps) and sound (50 packets/s); the floor moves at the given frames."""
    frames = vp8_frames(2 * FPS, gop=FPS)  # two seconds, looped: a keyframe every second
    tones = {unit: opus_tone(300 + 200 * i, 1.0) for i, unit in enumerate(sites)}
    for i in range(int(seconds * FPS)):
        if i in floor_at:
            programme.set_floor(floor_at[i])
        clock.now += 1 / FPS
        for site in sites.values():
            feed_video(site, frames[i % len(frames)][0], i)
        for k in range(i * 50 // FPS, (i + 1) * 50 // FPS):
            for unit, site in sites.items():
                feed_audio(site, tones[unit][k % len(tones[unit])], k)
        if i % 10 == 0:
            await asyncio.sleep(0.001)  # let the writer thread's events reach the loop
        if stop_when is not None and stop_when():
            return


@dataclass
class SegmentFacts:
    path: Path
    duration: float
    video_frames: int
    audio_rms: float
    chapters: list[dict[str, Any]]
    width: int


def read_segment(path: Path) -> SegmentFacts:
    """Open a segment with PyAV: count its video frames (demuxed, not decoded), decode its audio."""
    with av.open(str(path)) as container:
        chapters = container.chapters()
        video = container.streams.video[0]
        width = video.codec_context.width if video.codec_context else 0
        frames = 0
        samples: list[np.ndarray] = []
        first_v = last_v = None
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                frames += 1
                t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                if t is not None:
                    first_v = t if first_v is None else min(first_v, t)
                    last_v = t if last_v is None else max(last_v, t)
            elif packet.stream.type == "audio":
                for frame in packet.decode():
                    assert isinstance(frame, av.AudioFrame)
                    samples.append(frame.to_ndarray().astype(np.float32).ravel())
    audio = np.concatenate(samples) if samples else np.zeros(1, dtype=np.float32)
    duration = (last_v - first_v) if first_v is not None and last_v is not None else 0.0
    return SegmentFacts(path, duration, frames, float(np.sqrt(np.mean(audio ** 2))),
                        [{"title": c["metadata"].get("title"), "start": float(c["start"] * (c["time_base"] or 0)),
                          "end": float(c["end"] * (c["time_base"] or 0))} for c in chapters], width)


def sidecar(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / "chapters.json").read_text()))


async def record_synthetic(folder: Path, meeting: int, seconds: float, floor_at: dict[int, str | None],
                           segment_seconds: float = 4.0) -> list[dict[str, Any]]:
    """A recording of a conference of three sites (chair BCA), as a central bridge makes it: the
    events it would report to the server (each carries ``meeting`` and ``recording``)."""
    from bridge.recorder import ProgrammeRecorder

    clock = Clock()
    sites = {u: FakeSite(u) for u in ("BCA", "00070", "08707")}
    programme = programme_with(*sites.values(), chair="BCA")
    for switch in (programme.video, programme.chair_audio, programme.floor_audio):
        switch._clock = clock
    events: list[dict[str, Any]] = []
    recorder = ProgrammeRecorder(meeting, programme, folder, segment_seconds=segment_seconds,
                                 on_event=events.append, disk_free=lambda p: 1 << 40, relative_to=folder,
                                 clock=clock, queue_items=100_000)
    recorder.start()
    events.append({"type": "recording_started", "meeting": meeting, "recording": recorder.name})
    await run_conference(programme, clock, sites, seconds, floor_at)
    await recorder.stop()
    await asyncio.sleep(0.05)  # the writer's last events reach the loop
    return events


@dataclass
class RecordingBridge:
    """A bridge that records, in its own process (tests/recording_bridge.py): :meth:`kill` is a crash."""

    proc: Any
    url: str

    @classmethod
    async def start(cls, unit: str, key: bytes, server_url: str, token: str, folder: Path, *, upstream: str = "",
                    segment_seconds: float = 4.0, min_free_mb: int = 1) -> RecordingBridge:
        import os
        import sys

        root = ROOT
        env = {**os.environ, "PYTHONPATH": str(root), "HOINGHI_BRIDGE_TOKEN": token,
               "HOINGHI_BRIDGE_RECORDINGS_DIR": str(folder),
               "HOINGHI_BRIDGE_RECORDING_SEGMENT_SECONDS": str(segment_seconds),
               "HOINGHI_BRIDGE_RECORDING_MIN_FREE_MB": str(min_free_mb)}
        args = [sys.executable, str(root / "tests" / "recording_bridge.py"), unit, key.decode(), server_url]
        proc = await asyncio.create_subprocess_exec(*args, *([upstream] if upstream else []), env=env,
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        return cls(proc, url)

    async def counts(self) -> dict[str, int]:
        self.proc.stdin.write(b"counts\n")
        await self.proc.stdin.drain()
        return dict(json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 10)))

    async def kill(self) -> None:
        """SIGKILL: nothing closed, nothing said to anyone."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    async def stop(self) -> None:
        """As an operator stops it: its recordings closed and said, then it exits."""
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
        await self.proc.wait()
