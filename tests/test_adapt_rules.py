"""The rendition a subscriber gets, from the reports of its link (bridge.adapt): quick down,
slow up, and a failed way up keeps the way closed longer."""

from __future__ import annotations

from bridge.adapt import RenditionChooser, Sample


def feed(chooser: RenditionChooser, start: float, seconds: int, **figures: float) -> list[tuple[float, str]]:
    """One sample a second with these figures; stops at the first switch (whose figures would change)."""
    for i in range(seconds):
        at = start + i
        layer = chooser.update(Sample(at=at, **figures))  # type: ignore[arg-type]
        if layer is not None:
            return [(at, layer)]
    return []


def test_a_clean_link_stays_high() -> None:
    c = RenditionChooser()
    assert feed(c, 0, 120, loss=0.0, rtt_ms=20, sent_bps=800_000) == []
    assert c.layer == "high"


def test_a_300_kbit_link_goes_low_within_two_seconds_and_stays() -> None:
    c = RenditionChooser()
    # 800 kbit/s into a 300 kbit/s bottleneck: over half the packets are dropped.
    changes = feed(c, 0, 5, loss=0.6, rtt_ms=250, sent_bps=800_000)
    assert changes == [(1, "low")]
    # On the low rendition the link is clear; a probe up after 8 s fails, the next waits 16 s, then 32.
    at, probes = 5, []
    for _ in range(4):
        ups = feed(c, at, 70, loss=0.0, rtt_ms=45, sent_bps=150_000)
        assert ups and ups[0][1] == "high"
        probes.append(ups[0][0] - at)
        at = ups[0][0] + 1
        downs = feed(c, at, 3, loss=0.6, rtt_ms=260, sent_bps=800_000)
        assert downs and downs[0][1] == "low"
        at = downs[0][0] + 1
    # 8 clear seconds, then 16, 32, 64 — each after the 3 s the reports take to settle (2 samples).
    assert probes == [8, 18, 34, 66], probes


def test_the_way_up_once_the_limit_is_lifted() -> None:
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.5, sent_bps=800_000)
    assert c.layer == "low"
    ups = feed(c, 3, 12, loss=0.0, rtt_ms=30, sent_bps=150_000)
    assert ups == [(12, "high")]  # settled at 4, then 8 clear seconds
    assert feed(c, 15, 60, loss=0.0, rtt_ms=30, sent_bps=800_000) == []  # it holds


def test_a_link_that_cannot_take_the_low_rendition_gets_sound_only() -> None:
    c = RenditionChooser()
    feed(c, 0, 2, loss=0.7, sent_bps=800_000)
    assert feed(c, 2, 2, loss=0.4, sent_bps=150_000) == []  # the reports still describe the old rendition
    assert feed(c, 4, 3, loss=0.4, sent_bps=150_000) == [(5, "audio")]
    assert c.layer == "audio"
    assert feed(c, 7, 5, loss=0.4, sent_bps=0) == []  # there is nothing lower


def test_moderate_loss_that_nack_repairs_is_not_a_reason_to_go_down() -> None:
    c = RenditionChooser()
    assert feed(c, 0, 60, loss=0.05, rtt_ms=40, nacks=4, sent_bps=800_000) == []  # 5 % loss, repaired


def test_a_queue_building_up_is_congestion_before_loss() -> None:
    c = RenditionChooser()
    feed(c, 0, 5, loss=0.0, rtt_ms=30, sent_bps=800_000)
    assert feed(c, 5, 3, loss=0.0, rtt_ms=400, sent_bps=800_000)[0][1] == "low"


def test_a_remb_under_the_rendition_rate_goes_down() -> None:
    c = RenditionChooser()
    assert feed(c, 0, 3, loss=0.0, remb_bps=300_000, sent_bps=800_000)[0] == (1, "low")
