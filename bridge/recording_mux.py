"""The writing half of a recording (issue #17): runs on a worker thread, never on the event loop.

It takes what the programme's timelines carried (:mod:`bridge.recorder` hands it items through a
bounded queue) and writes WebM/Matroska segments with PyAV:

- video is muxed AS RECEIVED: each encoded frame becomes one ``av.Packet`` of a stream that has no
  codec context (``add_mux_stream``), so nothing decodes or encodes a picture;
- the chair's and the floor holder's Opus are decoded, mixed into one mono timeline (:class:`AudioMix`)
  and encoded again as one Opus track, so any player plays it;
- a segment starts at a video keyframe and lasts about ``segment_seconds``: a crash loses at most
  the segment being written; each closed segment carries its part of the chapters (floor changes)
  and is announced through ``on_event``.

Positions are samples of a recording clock anchored at each timeline's first packet (the time it
arrived): the programme's timelines are monotonic and advance with the wall clock across floor
switches (bridge.programme), so their packets land where they were heard.
"""

from __future__ import annotations

import fractions
import json
import logging
import os
import queue
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av

from bridge.audio_mix import AudioMix, to_mono
from bridge.recording_content import ContentTrack, vp8_size

log = logging.getLogger("hoinghi.bridge.recording")

VIDEO_RATE = 90000
AUDIO_RATE = 48000
AUDIO_JITTER = int(0.25 * AUDIO_RATE)  # sound is mixed this far behind the newest arrival (late packets still fit)
DISK_CHECK_SECONDS = 1.0
KEYFRAME_RETRY_SECONDS = 1.0  # a keyframe asked for and not come (a request lost upstream): ask again
AUDIO_BITRATE = 48000
EXTENSIONS = {"video/vp8": "webm", "video/h264": "mkv"}  # Chromium plays WebM (VP8 + Opus); H.264 goes to Matroska


class DiskLow(Exception):
    """Free space under the threshold: recording does not start (or stops)."""


@dataclass
class Chapter:
    unit: str | None  # who had the floor (None: the chair, nobody else holding it)
    start: float  # seconds from the recording's start
    end: float | None = None

    def wire(self) -> dict[str, Any]:
        return {"unit": self.unit, "start": round(self.start, 3),
                "end": None if self.end is None else round(self.end, 3)}


@dataclass
class Segment:
    index: int
    path: Path
    container: Any
    video: Any
    audio: Any
    start: float  # seconds from the recording's start (its first keyframe)
    video_base: int  # recording position (1/90000) of its first keyframe
    audio_base: int  # recording position (1/48000) of its start
    started_at: datetime
    last_video: int = 0
    frames: int = 0
    content: Any = None  # the shared screen's video stream, while it is shared (bridge.recording_content)


@dataclass
class WriterSettings:
    directory: Path  # this recording's folder
    segment_seconds: float = 180.0
    min_free_bytes: int = 500 * 1024 * 1024
    disk_free: Callable[[Path], int] = field(default=lambda p: shutil.disk_usage(p).free)
    relative_to: Path | None = None  # segment paths are reported relative to this (the recordings root)


Item = tuple[Any, ...]


class RecordingWriter:
    """Consumes items from ``items`` until a ``("stop",)`` one; see the module docstring.

    Items: ``("v", data, pts, keyframe, codec, t)``, ``("c", data, pts, keyframe, codec, t)`` (the
    shared screen), ``("a", index, data, pts, t)``,
    ``("floor", unit, t)``, ``("gap",)`` (items were dropped: resume video at a keyframe),
    ``("stop", t)``. ``t`` is seconds since the recording started (the tap's clock)."""

    def __init__(self, settings: WriterSettings, items: queue.Queue[Item],
                 on_event: Callable[[dict[str, Any]], None], request_keyframe: Callable[[], None],
                 started_at: datetime) -> None:
        self.settings = settings
        self.items = items
        self.on_event = on_event
        self.request_keyframe = request_keyframe
        self.started_at = started_at
        self.segment: Segment | None = None
        self.segments = 0
        self.chapters: list[Chapter] = []
        self._video_anchor: int | None = None  # recording position = pts + anchor
        self._audio_last: dict[int, tuple[int, int]] = {}  # timeline → (pts, position) of its last packet
        self._decoders: dict[int, Any] = {}
        self._mix: AudioMix | None = None
        self._waiting_keyframe = True
        self._rollover_asked = False
        self._asked_at = float("-inf")
        self._last_t = 0.0
        self._last_disk_check = -DISK_CHECK_SECONDS
        self.failed: str | None = None  # why it stopped early ("disk_full", "error")
        self.video_frames = 0
        self.content = ContentTrack()

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        try:
            while True:
                item = self.items.get()
                if item[0] == "stop":
                    self._last_t = max(self._last_t, float(item[1]))
                    break
                self._handle(item)
                if self.failed:
                    break
        except Exception:
            log.exception("recording failed")
            self.failed = self.failed or "error"
        finally:
            self._finish()

    def _handle(self, item: Item) -> None:
        kind = item[0]
        if kind == "v":
            self._video(item[1], item[2], item[3], item[4], item[5])
        elif kind == "a":
            self._audio(item[1], item[2], item[3], item[4])
        elif kind == "c":
            packet = self.content.packet(self.segment, *item[1:])
            if packet is not None and self.segment is not None:
                self._mux(self.segment, packet)
        elif kind == "floor":
            self._floor(item[1], item[2])
        elif kind == "gap":
            self._waiting_keyframe = True
            self.request_keyframe()

    def _ask_keyframe(self, t: float, again: bool) -> None:
        """Ask for a keyframe; ``again``: only once the last request is KEYFRAME_RETRY_SECONDS old."""
        if not again or t - self._asked_at >= KEYFRAME_RETRY_SECONDS:
            self._asked_at = t
            self.request_keyframe()

    def _check_disk(self, t: float) -> bool:
        if t - self._last_disk_check < DISK_CHECK_SECONDS:
            return True
        self._last_disk_check = t
        if self.settings.disk_free(self.settings.directory) < self.settings.min_free_bytes:
            log.warning("recording stops: free disk space under the threshold")
            self.failed = "disk_full"
            return False
        return True

    # ------------------------------------------------------------------ video

    def _video(self, data: bytes, pts: int, keyframe: bool, codec: str, t: float) -> None:
        self._last_t = t
        if self._video_anchor is None:
            self._video_anchor = round(t * VIDEO_RATE) - pts
        position = pts + self._video_anchor
        if not self._check_disk(t):
            return
        segment = self.segment
        if segment is not None and (position / VIDEO_RATE - segment.start >= self.settings.segment_seconds
                                    or self.content.wants_new_segment(segment, t)):
            if not keyframe:
                self._ask_keyframe(t, again=self._rollover_asked)
                self._rollover_asked = True
            else:
                self._close_segment(position)
                segment = None
        if self._waiting_keyframe:
            if not keyframe:
                self._ask_keyframe(t, again=True)
                return
            self._waiting_keyframe = False
        if segment is None:
            segment = self._open_segment(codec, data, position)
        if position <= segment.last_video and segment.frames:
            return  # never backwards (a muxer refuses it)
        packet = av.Packet(data)
        packet.pts = packet.dts = position - segment.video_base
        packet.time_base = fractions.Fraction(1, VIDEO_RATE)
        packet.stream = segment.video
        if keyframe:
            packet.is_keyframe = True
        self._mux(segment, packet)
        segment.last_video = position
        segment.frames += 1
        self.video_frames += 1
        self._flush_audio(round(t * AUDIO_RATE) - AUDIO_JITTER)

    def _open_segment(self, codec: str, keyframe: bytes, position: int) -> Segment:
        self.segments += 1
        ext = EXTENSIONS.get(codec, "mkv")
        path = self.settings.directory / f"segment-{self.segments:04d}.{ext}"
        container = av.open(str(path), "w", format="webm" if ext == "webm" else "matroska")
        width, height = vp8_size(keyframe) if codec == "video/vp8" else (0, 0)
        video = container.add_mux_stream(codec.split("/")[1], width=width or 640, height=height or 480)
        video.time_base = fractions.Fraction(1, 1000)
        audio = container.add_stream("libopus", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = AUDIO_BITRATE
        start = position / VIDEO_RATE
        audio_base = round(start * AUDIO_RATE)
        if self._mix is None:
            self._mix = AudioMix(audio_base)
        else:
            audio_base = self._mix.upto
        self.segment = Segment(self.segments, path, container, video, audio, start, position, audio_base,
                               self.started_at + timedelta(seconds=start))
        self.segment.content = self.content.add_stream(container, path.suffix, self._last_t)
        self._rollover_asked = False
        return self.segment

    def _mux(self, segment: Segment, packet: av.Packet) -> None:
        try:
            segment.container.mux(packet)
        except OSError as exc:  # the disk filled up (ENOSPC) or went away
            log.warning("recording stops: cannot write %s (%s)", segment.path, exc)
            self.failed = "disk_full"

    # ------------------------------------------------------------------ audio

    def _position(self, index: int, pts: int, t: float) -> int:
        """Where a packet of sound goes: after the previous one of its timeline by their pts
        difference (a lost packet leaves its gap), unless that is far from when it arrived — the
        timeline was handed to another source (bridge.programme keeps sound handed over from a
        live source gapless, whatever the wall clock says) or its source paused: then it goes
        where it arrived, and the timelines stay in step with the picture."""
        position = round(t * AUDIO_RATE)
        last = self._audio_last.get(index)
        if last is not None:
            step = pts - last[0]
            if 0 < step <= AUDIO_RATE and abs(last[1] + step - position) <= AUDIO_JITTER:
                position = last[1] + step
        self._audio_last[index] = (pts, position)
        return position

    def _audio(self, index: int, data: bytes, pts: int, t: float) -> None:
        self._last_t = max(self._last_t, t)
        position = self._position(index, pts, t)
        if self._mix is None:
            return  # nothing is written before the first keyframe
        decoder = self._decoders.get(index)
        if decoder is None:
            decoder = self._decoders[index] = av.CodecContext.create("opus", "r")
        try:
            frames = decoder.decode(av.Packet(data))
        except av.FFmpegError:
            return
        for frame in frames:
            samples = to_mono(frame)
            if frame.sample_rate != AUDIO_RATE:
                continue  # Opus in WebRTC is 48 kHz; anything else is not ours to resample
            self._mix.add(position, samples)
            position += len(samples)

    def _flush_audio(self, until: int) -> None:
        segment, mix = self.segment, self._mix
        if segment is None or mix is None:
            return
        for position, samples in mix.take(until):
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = position - segment.audio_base
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            for packet in segment.audio.encode(frame):
                self._mux(segment, packet)

    # ------------------------------------------------------------------ chapters, segments

    def _floor(self, unit: str | None, t: float) -> None:
        if self.chapters and self.chapters[-1].unit == unit:
            return
        if self.chapters:
            self.chapters[-1].end = t
        self.chapters.append(Chapter(unit, t))

    def _close_segment(self, end_position: int) -> None:
        segment = self.segment
        if segment is None:
            return
        self.segment = None
        end = end_position / VIDEO_RATE
        try:
            self._flush_audio(round(end * AUDIO_RATE))
            for packet in segment.audio.encode(None):
                segment.container.mux(packet)
            segment.container.set_chapters(self._segment_chapters(segment.start, end))
        except (OSError, av.FFmpegError) as exc:
            log.warning("recording: closing %s: %s", segment.path, exc)
            self.failed = self.failed or "disk_full"
        try:
            segment.container.close()
        except (OSError, av.FFmpegError) as exc:
            log.warning("recording: closing %s: %s", segment.path, exc)
            self.failed = self.failed or "disk_full"
        size = segment.path.stat().st_size if segment.path.exists() else 0
        if not segment.frames or not size:
            with _suppress_os():
                segment.path.unlink()
            return
        self._write_sidecar(end)
        self.on_event({"type": "recording_segment", "index": segment.index, "file": self._relative(segment.path),
                       "offset": round(segment.start, 3), "duration": round(end - segment.start, 3),
                       "bytes": size, "frames": segment.frames, "started_at": segment.started_at.isoformat(),
                       "chapters": self._segment_wire(segment.start, end)})

    def _segment_chapters(self, start: float, end: float) -> list[dict[str, Any]]:
        out = []
        for i, c in enumerate(self._segment_wire(start, end)):
            out.append({"id": i + 1, "start": round((c["start"] - start) * 1000),
                        "end": round((c["end"] - start) * 1000), "time_base": fractions.Fraction(1, 1000),
                        "metadata": {"title": c["unit"] or "chair"}})
        return out

    def _segment_wire(self, start: float, end: float) -> list[dict[str, Any]]:
        """The chapters overlapping [start, end), clipped to it (recording seconds)."""
        out = []
        for c in self.chapters:
            c_end = end if c.end is None else c.end
            if c_end <= start or c.start >= end:
                continue
            out.append({"unit": c.unit, "start": round(max(c.start, start), 3), "end": round(min(c_end, end), 3)})
        return out

    def _relative(self, path: Path) -> str:
        root = self.settings.relative_to
        return str(path.relative_to(root)) if root is not None else str(path)

    def _write_sidecar(self, end: float) -> None:
        """chapters.json beside the segments: the whole floor history so far (written atomically)."""
        target = self.settings.directory / "chapters.json"
        tmp = target.with_suffix(".json.tmp")
        body = {"started_at": self.started_at.isoformat(), "duration": round(end, 3),
                "chapters": [c.wire() for c in self.chapters]}
        try:
            tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1))
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("recording: cannot write %s (%s)", target, exc)

    def _finish(self) -> None:
        end_position = self.segment.last_video + 1 if self.segment is not None else 0
        if self.chapters and self.chapters[-1].end is None:
            self.chapters[-1].end = max(self._last_t, self.chapters[-1].start)
        if self.segment is not None:
            self._close_segment(end_position)
        for decoder in self._decoders.values():
            with _suppress_os():
                decoder.close()
        # the chapters travel with each segment (a whole history could outgrow one control message)
        self.on_event({"type": "recording_stopped", "reason": self.failed or "stopped", "segments": self.segments})


class _suppress_os:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, av.FFmpegError, AttributeError))  # type: ignore[arg-type]
