"""Who is speaking, from the RFC 6464 audio levels senders put in every audio packet's header
(``urn:ietf:params:rtp-hdrext:ssrc-audio-level``): nothing is decoded. Plain Python with the
clock passed in, so the hold time is tested without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

SPEAKING_LEVEL = 50  # -dBov: a packet louder than -50 dBov is voice (silence reads 127)
HOLD_SECONDS = 0.4  # still speaking this long after the last loud packet (pauses between words)


class SpeakingMeter:
    """One microphone's speaking state."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_loud: float | None = None
        self.loudest = 127  # loudest level (lowest -dBov) since the last :meth:`take_level`
        self.packets = 0

    def feed(self, level: int) -> None:
        """One packet's level in -dBov (0 loudest, 127 silence)."""
        self.packets += 1
        if level <= SPEAKING_LEVEL:
            self._last_loud = self._clock()
        self.loudest = min(self.loudest, level)

    @property
    def speaking(self) -> bool:
        return self._last_loud is not None and self._clock() - self._last_loud <= HOLD_SECONDS

    def take_level(self) -> int:
        """The loudest level since the last call (then forgotten)."""
        level, self.loudest = self.loudest, 127
        return level


class SpeakingChanges:
    """What to tell the server: a site's state only when it changed, at most once per ``interval``
    per site (a few updates a second at most, however chatty the microphone)."""

    def __init__(self, interval: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._told: dict[tuple[int, str], tuple[bool, float]] = {}

    def changes(self, meters: dict[tuple[int, str], SpeakingMeter]) -> dict[int, list[dict[str, object]]]:
        """{meeting: [{"unit", "speaking", "level"}]} for the sites whose state moved; sites whose
        meter is gone (stopped publishing) are reported silent once."""
        now = self._clock()
        out: dict[int, list[dict[str, object]]] = {}
        for key, meter in meters.items():
            speaking = meter.speaking
            told = self._told.get(key)
            if told is not None and (told[0] == speaking or now - told[1] < self.interval):
                continue
            if told is None and not speaking:
                continue  # never spoke: nothing to say
            self._told[key] = (speaking, now)
            out.setdefault(key[0], []).append({"unit": key[1], "speaking": speaking, "level": meter.take_level()})
        for key in [k for k in self._told if k not in meters]:
            if self._told.pop(key)[0]:
                out.setdefault(key[0], []).append({"unit": key[1], "speaking": False, "level": None})
        return out
