"""The recording's sound: the chair's and the floor holder's decoded Opus summed into one mono
timeline (bridge.recording_mux encodes it again as one Opus track any player plays)."""

from __future__ import annotations

import av
import numpy as np

OPUS_FRAME = 960  # 20 ms at 48 kHz


def to_mono(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as mono float32 samples in [-1, 1]."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    fmt = frame.format.name
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    data = data.astype(np.float32)
    if fmt.startswith("s16"):
        data /= 32768.0
    elif fmt.startswith("s32"):
        data /= 2147483648.0
    return data.mean(axis=0) if channels > 1 else data[0]


class AudioMix:
    """Two (or more) timelines of decoded sound summed into one, sample by sample."""

    def __init__(self, start: int = 0) -> None:
        self.upto = start  # everything before this position was handed out
        self._buffer = np.zeros(0, dtype=np.float32)
        self.late_samples = 0

    def add(self, position: int, samples: np.ndarray) -> None:
        if position < self.upto:  # arrived after its place was mixed: keep what is still ahead
            cut = min(len(samples), self.upto - position)
            self.late_samples += cut
            samples, position = samples[cut:], self.upto
            if not len(samples):
                return
        offset = position - self.upto
        end = offset + len(samples)
        if end > len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.zeros(end - len(self._buffer), dtype=np.float32)])
        self._buffer[offset:end] += samples

    def take(self, until: int) -> list[tuple[int, np.ndarray]]:
        """Whole frames (position, samples) up to ``until``; silence where nothing was heard."""
        out = []
        while self.upto + OPUS_FRAME <= until:
            chunk = self._buffer[:OPUS_FRAME]
            if len(chunk) < OPUS_FRAME:
                chunk = np.concatenate([chunk, np.zeros(OPUS_FRAME - len(chunk), dtype=np.float32)])
            out.append((self.upto, np.clip(chunk, -1.0, 1.0)))
            self._buffer = self._buffer[OPUS_FRAME:]
            self.upto += OPUS_FRAME
        return out
