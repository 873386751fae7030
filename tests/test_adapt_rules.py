"""The rendition a subscriber gets, from the reports of its link (bridge.adapt): quick down,
slow up after a probe, and a failed probe or way up keeps the way closed longer."""

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
    assert changes == [(0, "low")]  # so much lost: at the first report
    # On the low rendition the link is clear; the way up is probed after 8 s. The probe fills the
    # bottleneck (its reports show loss): the subscriber stays low, the next probe waits 16 s, then 32.
    at, probes = 5, []
    for _ in range(4):
        asked = feed(c, at, 70, loss=0.0, rtt_ms=45, sent_bps=150_000)
        assert asked and asked[0][1] == "probe"
        probes.append(asked[0][0] - at)
        at = asked[0][0] + 1
        assert feed(c, at, 1, loss=0.25, rtt_ms=240, sent_bps=150_000) == []  # the probe's own loss
        assert c.layer == "low"
        at += 1
    # 8 clear seconds, then 16, 32, 64 — each after the 4 s the reports take to settle (3 samples).
    assert probes == [8, 19, 35, 67], probes


def test_congestion_short_of_severe_takes_two_seconds() -> None:
    c = RenditionChooser()
    assert feed(c, 0, 5, loss=0.15, rtt_ms=60, sent_bps=800_000) == [(1, "low")]


def test_a_probe_that_meets_a_queue_but_no_loss_fails_too() -> None:
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.2, sent_bps=800_000)
    assert feed(c, 3, 12, loss=0.0, rtt_ms=40, sent_bps=150_000) == [(13, "probe")]
    assert feed(c, 14, 2, loss=0.0, rtt_ms=130, sent_bps=150_000) == []  # a queue filled: 90 ms more
    assert c.layer == "low"


def test_a_probe_that_drew_a_nack_fails_whatever_the_next_report_says() -> None:
    """The probe stops at the first NACK (bridge.probe): the receiver report after it may count
    too few packets, or come too late, to show the loss."""
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.2, sent_bps=800_000)
    assert feed(c, 3, 12, loss=0.0, rtt_ms=40, sent_bps=150_000) == [(13, "probe")]
    assert c.update(Sample(at=14, loss=0.0, rtt_ms=40, sent_bps=150_000, nacks=1)) is None
    assert feed(c, 15, 12, loss=0.0, rtt_ms=40, sent_bps=150_000) == []  # the way up waits 16 s now
    assert c.layer == "low"


def test_a_probe_the_receiver_says_nothing_about_takes_nobody_up() -> None:
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.2, sent_bps=800_000)
    assert feed(c, 3, 12, loss=0.0, rtt_ms=40, sent_bps=150_000) == [(13, "probe")]
    assert feed(c, 14, 4, sent_bps=150_000) == []  # no receiver report for four seconds
    assert c.layer == "low"
    assert feed(c, 18, 30, loss=0.0, rtt_ms=40, sent_bps=150_000)[0][1] == "probe"  # tried again later


def test_a_way_up_congested_soon_after_closes_the_way_longer() -> None:
    """A probe passed but the high rendition still strained the link (a bottleneck just over it)."""
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.2, sent_bps=800_000)
    at, ups = 3, []
    for _ in range(2):
        asked = feed(c, at, 70, loss=0.0, rtt_ms=40, sent_bps=150_000)
        assert asked[0][1] == "probe"
        went = feed(c, asked[0][0] + 1, 2, loss=0.0, rtt_ms=40, sent_bps=150_000)
        assert went and went[0][1] == "high"
        ups.append(went[0][0] - at)
        downs = feed(c, went[0][0] + 1, 3, loss=0.3, rtt_ms=200, sent_bps=800_000)
        assert downs and downs[0][1] == "low"
        at = downs[0][0] + 1
    assert ups == [12, 21], ups  # settle, 8 clear s and the probe's 2; then settle, 16 and 2


def test_the_way_up_once_the_limit_is_lifted() -> None:
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.2, sent_bps=800_000)
    assert c.layer == "low"
    assert feed(c, 3, 12, loss=0.0, rtt_ms=30, sent_bps=150_000) == [(13, "probe")]  # settled at 5, 8 clear s
    assert feed(c, 14, 5, loss=0.0, rtt_ms=31, sent_bps=150_000) == [(15, "high")]  # its two samples clear
    assert feed(c, 16, 60, loss=0.0, rtt_ms=30, sent_bps=800_000) == []  # it holds


def test_a_link_that_cannot_take_the_low_rendition_gets_sound_only() -> None:
    c = RenditionChooser()
    assert feed(c, 0, 2, loss=0.7, sent_bps=800_000) == [(0, "low")]
    assert feed(c, 1, 3, loss=0.4, sent_bps=150_000) == []  # the reports still describe the old rendition
    # sound only is the last resort: three congested seconds in a row on the low rendition
    assert feed(c, 4, 4, loss=0.4, sent_bps=150_000) == [(6, "audio")]
    assert c.layer == "audio"
    assert feed(c, 8, 5, loss=0.4, sent_bps=0) == []  # there is nothing lower


def test_moderate_loss_that_nack_repairs_is_not_a_reason_to_go_down() -> None:
    c = RenditionChooser()
    assert feed(c, 0, 60, loss=0.05, rtt_ms=40, nacks=4, sent_bps=800_000) == []  # 5 % loss, repaired


def test_a_queue_building_up_is_congestion_with_some_loss_beside_it() -> None:
    c = RenditionChooser()
    feed(c, 0, 5, loss=0.0, rtt_ms=30, sent_bps=800_000)
    assert feed(c, 5, 3, loss=0.0, rtt_ms=400, sent_bps=800_000) == [], "a longer round trip alone: a stall"
    assert feed(c, 8, 3, loss=0.03, rtt_ms=400, sent_bps=800_000)[0][1] == "low"


def test_a_remb_under_what_is_sent_holds_the_way_up() -> None:
    c = RenditionChooser()
    feed(c, 0, 3, loss=0.2, sent_bps=800_000)
    assert c.layer == "low"
    assert feed(c, 3, 30, loss=0.0, remb_bps=100_000, sent_bps=150_000) == [], "even low strains its estimate"
    assert feed(c, 33, 12, loss=0.0, remb_bps=400_000, sent_bps=150_000)[0][1] == "probe"


def test_random_loss_that_nack_repairs_with_a_falling_remb_holds() -> None:
    """aiortc's estimate falls under 5 % random loss that retransmission repairs: no reason to move."""
    c = RenditionChooser()
    assert feed(c, 0, 30, loss=0.04, rtt_ms=5, remb_bps=289_000, sent_bps=700_000) == []


def test_a_ramping_remb_on_a_clean_link_moves_nobody() -> None:
    """Chromium's estimate starts far under what it is sent and climbs for many seconds."""
    c = RenditionChooser()
    assert feed(c, 0, 20, loss=0.0, remb_bps=55_000, sent_bps=155_000) == []


def test_a_low_remb_while_little_was_sent_says_nothing_of_the_link() -> None:
    """A stalled publisher (or bridge) sends little, and the subscriber's estimate falls with what it
    got: that is no reason to move it down."""
    c = RenditionChooser()
    assert feed(c, 0, 5, loss=0.0, remb_bps=1_300, sent_bps=80) == []
    assert c.layer == "high"


def test_a_burst_of_nacks_on_high_goes_low_at_once() -> None:
    """A burst of NACKs (bridge.adaptation.Feedback.nacked) decides like a severe receiver report."""
    c = RenditionChooser()
    assert feed(c, 0, 1, nacks=40, sent_bps=700_000, severe_nacks=True) == [(0, "low")]
    on_low = RenditionChooser()
    on_low.layer = "low"
    assert feed(on_low, 0, 1, nacks=10, sent_bps=140_000, severe_nacks=True) == []  # sound only takes longer


def test_a_burst_is_a_share_of_what_was_sent_not_a_few_random_losses() -> None:
    from bridge.adaptation import NACK_BURST_WINDOW, Feedback

    # 5 % random loss at 120 packets a second, a receiver asking each missing packet twice: no burst
    random_loss = Feedback()
    bursts = [random_loss.nacked([seq, seq - 20] if seq >= 20 else [seq], seq + 3, seq / 120)
              for seq in range(0, 1200, 20)]
    assert not any(bursts)
    # a 300 kbit/s bottleneck under 700 kbit/s: over half of each second's packets lost
    congested = Feedback()
    newest, burst_at = 60_000, None
    for step in range(30):
        newest = (newest + 4) & 0xFFFF
        lost = [(newest - 3) & 0xFFFF, (newest - 1) & 0xFFFF]  # the sequence numbers wrap meanwhile
        if congested.nacked(lost, newest, step / 30) and burst_at is None:
            burst_at = step
    assert burst_at is not None and burst_at <= 5, burst_at  # within the first sixth of a second
    # NACKs of packets never sent (the run a splice jumped over) are no burst
    jumped = Feedback()
    assert not jumped.nacked(list(range(100, 120)), 2000, 0.0, sent=lambda seq: seq < 100 or seq >= 1200)
    # what is older than the window is forgotten
    assert not congested.nacked([], newest, 30 / 30 + NACK_BURST_WINDOW + 0.1)
