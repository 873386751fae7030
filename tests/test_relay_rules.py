"""The relay's rules as plain code: keyframe recognition, throttling, gating, resync, re-basing."""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable

import av
import pytest

from bridge.keyframes import KeyframeRequester, KeyframeThrottle, h264_nal_types, is_keyframe
from bridge.programme import Programme, Site, Switch
from bridge.relay import Fanout, RelayTrack, Source

TB = fractions.Fraction(1, 90000)
VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag bit 0 clear
VP8_DELTA = b"\x11\x02\x00"


def packet(data: bytes, pts: int) -> av.Packet:
    p = av.Packet(data)
    p.pts = pts
    p.time_base = TB
    return p


def test_vp8_and_h264_keyframes() -> None:
    assert is_keyframe("video/VP8", VP8_KEY) and not is_keyframe("video/VP8", VP8_DELTA)
    assert not is_keyframe("video/VP8", b"")
    idr = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88"
    assert h264_nal_types(idr) == [7, 8, 5] and is_keyframe("video/H264", idr)
    assert not is_keyframe("video/H264", b"\x00\x00\x00\x01\x41\x9a")
    assert is_keyframe("audio/opus", b"\xfc")


def test_throttle_defers_instead_of_dropping() -> None:
    t = KeyframeThrottle(0.5)
    assert t.request(10.0) == 0.0  # sent at once
    assert t.request(10.1) == pytest.approx(0.4) # inside the window: deferred to its end
    assert t.request(10.2) is None  # merged with the deferred one
    t.fire(10.5)
    assert t.request(10.6) == pytest.approx(0.4)
    t.fire(11.0)
    assert t.request(11.6) == 0.0


async def test_requester_sends_the_deferred_request() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send() -> None:
        sent.append(loop.time())

    requester = KeyframeRequester(send, interval=0.1)
    for _ in range(5):
        requester.request()
    await asyncio.sleep(0.25)
    await requester.close()
    assert len(sent) == 2 and sent[1] - sent[0] >= 0.09  # one at once, the four others as one deferred
    assert requester.requested == 5


async def test_new_subscriber_waits_for_a_keyframe_and_a_slow_one_resyncs() -> None:
    resyncs: list[int] = []
    track = RelayTrack("video", lambda: resyncs.append(1), max_queue=3)
    track.push(packet(VP8_KEY, 0), True)  # the sender has not started: nothing is kept
    assert track.packets_in == 0 and resyncs == []
    track.start()  # the sender reads: a keyframe is asked for
    assert resyncs == [1]
    track.push(packet(VP8_DELTA, 0), False)
    # dropped, and asked again (the first request may have been lost: the browser, getting
    # nothing, never asks itself; the publisher's requester throttles the repeats)
    assert track.waiting_keyframe and track.packets_dropped == 1 and resyncs == [1, 1]
    track.push(packet(VP8_KEY, 3000), True)
    for i in range(2, 4):
        track.push(packet(VP8_DELTA, i * 3000), False)
    assert not track.waiting_keyframe and resyncs == [1, 1]  # flowing: nothing more asked
    track.push(packet(VP8_DELTA, 12000), False)  # the fourth queued packet: fallen behind
    assert track.waiting_keyframe and resyncs == [1, 1, 1] and track.resyncs == 1
    track.push(packet(VP8_DELTA, 15000), False)  # still dropped, asked again: no keyframe yet
    assert resyncs == [1, 1, 1, 1]
    track.push(packet(VP8_KEY, 18000), True)
    got = await asyncio.wait_for(track.recv(), 1)
    assert got.pts == 18000 and bytes(got) == VP8_KEY
    track.stop()


async def test_a_direct_subscriber_that_breaks_stops_alone() -> None:
    fanout = Fanout("video", lambda: None)
    broken, healthy = fanout.subscribe(), fanout.subscribe()
    got: list[int] = []

    def explode(_packet: av.Packet) -> bool:
        raise OSError("socket gone")

    def take(p: av.Packet) -> bool:
        got.append(p.pts or 0)
        return True

    broken.attach_direct(explode)
    healthy.attach_direct(take)
    fanout.push(packet(VP8_KEY, 0), True)
    fanout.push(packet(VP8_DELTA, 3000), False)
    assert got == [0, 3000], "the other subscriber is not disturbed"
    assert broken.readyState == "ended" and broken not in fanout.tracks
    await asyncio.wait_for(broken.wait_stopped(), 1)
    healthy.stop()


async def test_audio_is_never_gated() -> None:
    track = RelayTrack("audio", lambda: None, max_queue=10)
    track.start()
    track.push(packet(b"\xfc", 960), True)
    assert (await asyncio.wait_for(track.recv(), 1)).pts == 960
    track.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_switch_waits_for_the_keyframe_and_rebases_timestamps() -> None:
    clock = Clock()
    a = Source("video", "video/VP8", label="a")
    b = Source("video", "video/VP8", label="b")
    switch = Switch("video", clock)
    out = switch.fanout.subscribe(max_queue=100)
    out.start()
    switch.select(a)
    a.feed(packet(VP8_KEY, 500_000))
    clock.now += 1 / 30
    a.feed(packet(VP8_DELTA, 503_000))
    switch.select(b)
    clock.now += 1 / 30
    b.feed(packet(VP8_DELTA, 7_000))  # not a keyframe: a stays on air
    a.feed(packet(VP8_DELTA, 506_000))
    clock.now += 1 / 30
    b.feed(packet(VP8_KEY, 10_000))  # b takes over here
    a.feed(packet(VP8_DELTA, 509_000))  # no longer forwarded
    clock.now += 1 / 30
    b.feed(packet(VP8_DELTA, 13_000))
    got = [await asyncio.wait_for(out.recv(), 1) for _ in range(5)]
    assert [bytes(p)[:1] for p in got] == [b"\x10", b"\x11", b"\x11", b"\x10", b"\x11"]
    pts = [p.pts for p in got]
    assert pts[:3] == [0, 3000, 6000]
    assert pts[3] == 9000 and pts[4] == 12000  # b re-based onto the running timeline
    assert switch.current is b and switch.switches == 2
    switch.close()


async def test_a_sites_new_microphone_takes_over_at_its_first_voice_while_the_old_one_sends() -> None:
    """A page adding its camera opens its microphone again, and the first second of it may be
    silence: the floor's sound stays on the old publication's microphone until the new one carries
    voice (its RFC 6464 level), or the old one ends. Another site's microphone takes over at once."""
    clock = Clock()
    old, new = Source("audio", "audio/opus", label="08707/audio"), Source("audio", "audio/opus", label="08707/audio")
    switch = Switch("audio", clock)
    out = switch.fanout.subscribe(max_queue=100)
    out.start()
    switch.select(old)
    old.feed(packet(b"\x01", 960))
    switch.select(new)  # the same site published again
    for i in range(3):
        clock.now += 0.02
        new.heard_level(127)  # silence while it starts
        new.feed(packet(b"\x02", 48_000 + 960 * i))
        old.feed(packet(b"\x01", 960 * (i + 2)))
    assert switch.current is old
    new.heard_level(30)  # voice
    new.feed(packet(b"\x02", 48_000 + 960 * 3))
    old.feed(packet(b"\x01", 960 * 5))  # no longer forwarded
    got = [bytes(await asyncio.wait_for(out.recv(), 1)) for _ in range(5)]
    assert got == [b"\x01"] * 4 + [b"\x02"] and switch.current is new

    def silent_successor(label: str, before: Callable[[], None]) -> Source:
        """A microphone of ``label`` chosen after ``new``'s last packet, ``before`` its first: silence."""
        successor = Source("audio", "audio/opus", label=label)
        switch.select(successor)
        assert switch.current is not None
        switch.current.feed(packet(b"\x02", 48_000 + 960 * 9))
        before()
        successor.heard_level(127)
        successor.feed(packet(b"\x03", 0))
        return successor

    # the old one ends, or falls silent, before the new one says anything: the new one takes over
    # at its next packet
    for label, before in (("08707/audio", lambda: new.ended.set()),
                          ("08707/audio", lambda: setattr(clock, "now", clock.now + 0.3)),
                          # another site's microphone (the floor moved) takes over at once, voice or not
                          ("08740/audio", lambda: None)):
        successor = silent_successor(label, before)
        assert switch.current is successor, label
    switch.close()


async def test_a_source_without_levels_counts_as_sounding_after_half_a_second() -> None:
    """A publication whose packets carry no level extension (an older client) is not held back."""
    source = Source("audio", "audio/opus", label="x/audio")
    for i in range(25):
        assert not source.sounding.is_set()
        source.feed(packet(b"\x01", 960 * i))
    source.feed(packet(b"\x01", 960 * 25))
    assert source.sounding.is_set()


async def test_programme_shows_the_floor_holder_else_the_chair() -> None:
    programme = Programme(Clock())
    chair = Site("HN", Source("video", "video/VP8"), Source("audio", "audio/opus"))
    site = Site("X", Source("video", "video/VP8"), Source("audio", "audio/opus"))
    programme.publish(chair, chair=True)
    assert programme.on_air == "HN" and programme.floor_audio.pending is None
    programme.set_floor("X")  # X has not published yet: still the chair
    assert programme.on_air == "HN"
    programme.publish(site)
    assert programme.on_air == "X" and programme.floor_audio.pending is site.audio
    assert programme.chair_audio.pending is chair.audio
    programme.unpublish("X")
    assert programme.on_air == "HN"
    programme.close()
