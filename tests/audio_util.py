"""Listening as a participant does: a microphone that plays one tone (each publisher its own
frequency), and a player that decodes every inbound audio track on its own and tells which
frequency it carries now. A conference test asks, per track, "what does this listener hear?",
never "how many packets arrived in total?"."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tests.media_util import STEP, drain, peer_connection, play_offer, until

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
SILENCE_RMS = 200.0  # s16 RMS under which a track is silent (the tones play at ~8,000)
WINDOW_S = 0.3  # how much of the most recent sound a listener judges


class ToneTrack(MediaStreamTrack):
    """A microphone that plays a sine of ``frequency`` Hz while :attr:`speaking`, silence otherwise."""

    kind = "audio"

    def __init__(self, frequency: float, speaking: bool = True, amplitude: int = 12000) -> None:
        super().__init__()
        self.frequency = frequency
        self.speaking = speaking
        self.amplitude = amplitude
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * FRAME_SAMPLES / SAMPLE_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        n = np.arange(self._index * FRAME_SAMPLES, (self._index + 1) * FRAME_SAMPLES)
        if self.speaking:
            samples = (self.amplitude * np.sin(2 * math.pi * self.frequency * n / SAMPLE_RATE)).astype(np.int16)
        else:
            samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._index * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._index += 1
        return frame


def dominant_frequency(samples: np.ndarray) -> tuple[float, float]:
    """(frequency of the strongest component in Hz, RMS) of mono s16 ``samples`` at 48 kHz."""
    if samples.size == 0:
        return 0.0, 0.0
    x = samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    return peak * SAMPLE_RATE / x.size, rms


@dataclass
class Ear:
    """What one inbound audio track (one m-line) has brought lately."""

    mid: str
    chunks: deque[tuple[float, np.ndarray]] = field(default_factory=lambda: deque(maxlen=100))
    frames: int = 0
    timeline: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=1000))  # (arrival, pts, n)

    def feed(self, frame: av.AudioFrame) -> None:
        data = frame.to_ndarray()
        mono = data.reshape(-1, frame.layout.nb_channels if frame.format.is_packed else 1)[:, 0] \
            if frame.format.is_packed else data[0]
        self.chunks.append((time.monotonic(), mono.astype(np.int16)))
        self.frames += 1
        if frame.pts is not None:
            self.timeline.append((time.monotonic(), int(frame.pts), len(mono)))

    def longest_gap(self, since: float) -> float:
        """The longest hole, in seconds of media time, between consecutive frames that arrived
        after ``since`` (monotonic). The bridges stamp a timeline by the wall clock across a
        change of source, so a source that went quiet shows as a jump; a process that merely falls
        behind (a loaded machine) delivers late frames without one."""
        stamps = [(pts, n) for at, pts, n in self.timeline if at >= since]
        gaps = [(b[0] - a[0] - a[1]) / SAMPLE_RATE for a, b in itertools.pairwise(stamps)]
        return max(gaps, default=0.0)

    def hears(self, window: float = WINDOW_S) -> float | None:
        """The frequency this track carries over the last ``window`` seconds (None: silence or
        nothing arrived). aiortc's receiver conceals missing packets with silence-like frames, so
        a track that stopped carrying a source reads as silent, as a listener would hear it."""
        now = time.monotonic()
        recent = [c for t, c in self.chunks if now - t <= window]
        if not recent:
            return None
        frequency, rms = dominant_frequency(np.concatenate(recent))
        return frequency if rms >= SILENCE_RMS else None


@dataclass
class Listener:
    """A WHEP player that decodes each inbound audio track separately."""

    pc: object
    ears: dict[str, Ear]
    order: list[str]  # mids in the offer's order: [chair audio, floor audio]
    tasks: list[asyncio.Task[None]]
    location: str = ""
    video_frames: int = 0

    @property
    def chair(self) -> Ear:
        return self.ears[self.order[0]]

    @property
    def floor(self) -> Ear:
        return self.ears[self.order[1]]

    def heard(self) -> dict[str, float | None]:
        return {"chair": self.chair.hears(), "floor": self.floor.hears()}

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()  # type: ignore[attr-defined]


def near(frequency: float | None, expected: float, tolerance: float = 15.0) -> bool:
    return frequency is not None and abs(frequency - expected) <= tolerance


async def listen(base_url: str, meeting: int, tok: str) -> Listener:
    """Play the programme (video + chair audio + floor audio) and listen to each audio track."""
    pc = peer_connection()
    transceivers: list[RTCRtpTransceiver] = [pc.addTransceiver("video", direction="recvonly"),
                                             pc.addTransceiver("audio", direction="recvonly"),
                                             pc.addTransceiver("audio", direction="recvonly")]
    listener = Listener(pc, {}, [], [])

    def count_video(_frame: object) -> None:
        listener.video_frames += 1

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
        ear = listener.ears.get(transceiver.mid or "") if track.kind == "audio" else None
        on_frame = ear.feed if ear is not None else count_video
        listener.tasks.append(asyncio.ensure_future(drain(track, on_frame)))  # type: ignore[arg-type]

    try:
        await pc.setLocalDescription(await pc.createOffer())
        for transceiver in transceivers[1:]:
            mid = transceiver.mid or ""
            listener.order.append(mid)
            listener.ears[mid] = Ear(mid)
        _answer, listener.location = await play_offer(pc, base_url, meeting, tok)
    except BaseException:
        await listener.close()
        raise
    return listener


async def until_heard(listener: Listener, track: str, expected: float | None, within: float = STEP,
                      who: str = "a listener") -> float:
    """Wait until ``listener``'s ``track`` ("chair" / "floor") carries ``expected`` Hz (None:
    silence); return how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    def ok() -> bool:
        heard = listener.heard()[track]
        return heard is None if expected is None else near(heard, expected)

    await until(ok, within, f"{who} to hear {expected or 'silence'} on the {track} track "
                            f"(hears {listener.heard()})")
    return loop.time() - start
