"""The speaking meter and its reporter: plain rules, the clock passed in (no sleeping)."""

from __future__ import annotations

from bridge.speaking import HOLD_SECONDS, SPEAKING_LEVEL, SpeakingChanges, SpeakingMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_loud_packets_make_a_speaker_for_the_hold_time_then_silence() -> None:
    clock = Clock()
    meter = SpeakingMeter(clock)
    meter.feed(127)
    assert not meter.speaking
    meter.feed(SPEAKING_LEVEL + 1)  # quieter than voice: background noise
    assert not meter.speaking
    meter.feed(12)
    assert meter.speaking
    clock.now += HOLD_SECONDS - 0.01
    meter.feed(127)
    assert meter.speaking, "a pause between words is not silence"
    clock.now += 0.02
    assert not meter.speaking
    assert meter.take_level() == 12 and meter.take_level() == 127


def test_changes_are_told_once_rate_limited_and_a_gone_speaker_falls_silent() -> None:
    clock = Clock()
    changes = SpeakingChanges(interval=0.25, clock=clock)
    meter = SpeakingMeter(clock)
    meters = {(1, "08707"): meter}
    assert changes.changes(meters) == {}, "a site that never spoke is not reported"
    meter.feed(10)
    assert changes.changes(meters) == {1: [{"unit": "08707", "speaking": True, "level": 10}]}
    assert changes.changes(meters) == {}, "no change, nothing said"
    clock.now += HOLD_SECONDS + 0.01
    assert changes.changes(meters)[1][0]["speaking"] is False
    meter.feed(10)
    clock.now += 0.1
    assert changes.changes(meters) == {}, "within the interval: the next change waits"
    clock.now += 0.2
    assert changes.changes(meters)[1][0]["speaking"] is True
    assert changes.changes({}) == {1: [{"unit": "08707", "speaking": False, "level": None}]}
    assert changes.changes({}) == {}
