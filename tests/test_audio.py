"""Who hears whom, with real aiortc peers through real bridges (central → two provinces), measured
from the listener's side: every publisher sends its own tone, every listener decodes each inbound
audio track on its own and finds the frequency it carries.

The chair (440 Hz) publishes at the centre; commune A (1000 Hz) of province P publishes at P's
bridge while it holds the floor. Listeners: the chair (at the centre), commune B of P (at P) and
commune C of province Q (at Q). Issue #11: before the fix the floor track carried nothing at any
tier (aiortc's "balanced" bundle policy left the second audio m-line on a dead transport).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestServer

from bridge import native_send
from bridge.app import LINK, STATE, create_app
from bridge.link import BridgeLink
from bridge.room import BridgeConfig, BridgeState
from tests.audio_util import Listener, ToneTrack, listen, until_heard
from tests.media_util import KEY, STEP, EncodedVideoTrack, Publisher, token, until, whip

CENTRAL, P, Q = "TW", "P", "Q"
CHAIR_HZ, A_HZ, B_HZ = 440.0, 1000.0, 700.0


@dataclass
class Tier:
    server: TestServer
    url: str
    state: BridgeState
    link: BridgeLink


async def _start(config: BridgeConfig) -> Tier:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return Tier(server, str(server.make_url("")).rstrip("/"), server.app[STATE], server.app[LINK])


@dataclass
class Conference:
    central: Tier
    p: Tier
    q: Tier
    chair_pub: Publisher
    chair: Listener
    b: Listener
    c: Listener
    a_pub: Publisher | None = None
    a: Listener | None = None

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self.central, self.p, self.q

    def set_floor(self, unit: str | None) -> None:
        """What the server's control channel does on a grant / revoke: every bridge is told."""
        for tier in self.tiers:
            tier.state.room(1).set_floor(unit)

    async def floor_changed(self) -> None:
        for tier in (self.p, self.q):
            uplink = tier.link.uplinks.get(1)
            if uplink is not None:
                await uplink.floor_changed()

    def set_muted(self, units: set[str]) -> None:
        for tier in self.tiers:
            tier.state.room(1).set_muted(units)

    def listeners(self) -> dict[str, Listener]:
        return {"the chair": self.chair, "commune B (same province)": self.b, "commune C (other province)": self.c}


@pytest.fixture
async def conference() -> AsyncIterator[Conference]:
    central = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    p = await _start(BridgeConfig(unit=P, key=KEY, upstream_url=central.url, upstream_key=KEY))
    q = await _start(BridgeConfig(unit=Q, key=KEY, upstream_url=central.url, upstream_key=KEY))
    closing: list[Publisher | Listener] = []
    try:
        chair_pub = await whip(central.url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack("vp8"),
                               ToneTrack(CHAIR_HZ))
        closing.append(chair_pub)
        chair = await listen(central.url, 1, token(CENTRAL, "CHAIR", "chair"))
        closing.append(chair)
        b = await listen(p.url, 1, token(P, "B"))
        closing.append(b)
        c = await listen(q.url, 1, token(Q, "C"))
        closing.append(c)
        conf = Conference(central, p, q, chair_pub, chair, b, c)
        for who, listener in (("commune B", b), ("commune C", c)):
            await until_heard(listener, "chair", CHAIR_HZ, who=who)
        yield conf
        closing += [x for x in (conf.a_pub, conf.a) if x is not None]
    finally:
        for peer in closing:
            await (peer.close() if isinstance(peer, Listener) else peer.pc.close())
        for tier in (q, p, central):
            await tier.server.close()


async def _give_floor_to_a(conf: Conference) -> float:
    """Grant the floor to A and have A publish at its province; seconds until every listener hears A."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    conf.set_floor("A")
    conf.a_pub = await whip(conf.p.url, 1, token(P, "A"), EncodedVideoTrack("vp8", 176, 144), ToneTrack(A_HZ))
    await conf.floor_changed()
    # A functional bound, not a speed figure (bench/audio.py measures that): with the full suite and
    # Chromium beside it on two cores, one run in a few needed over 10 s for the whole cascade.
    await asyncio.gather(*(until_heard(listener, "floor", A_HZ, within=2 * STEP, who=who)
                           for who, listener in conf.listeners().items()))
    return loop.time() - started


async def test_the_floor_holder_is_heard_at_every_tier_and_falls_silent_when_revoked(
        conference: Conference) -> None:
    conf = conference
    heard_after = await _give_floor_to_a(conf)
    # Issue #11 asks for 1 s; measured here ~0.2–0.4 s alone (A's publication, the cascade up to the
    # centre and down to Q), up to ~2.7 s with the whole suite running beside it: printed, not
    # asserted (a test checks what is heard; speed is a benchmark's figure).
    for who, listener in (("commune B", conf.b), ("commune C", conf.c)):  # (within a stall of this process)
        await until_heard(listener, "chair", CHAIR_HZ, within=1.0, who=who)
    print(f"floor audio heard at every tier {heard_after:.2f} s after the grant")

    # The floor moves back to the chair: A's sound stops at once everywhere, the chair stays.
    conf.set_floor(None)
    await conf.floor_changed()
    await asyncio.gather(*(until_heard(listener, "floor", None, who=who)
                           for who, listener in conf.listeners().items()))
    for who, listener in (("commune B", conf.b), ("commune C", conf.c)):
        await until_heard(listener, "chair", CHAIR_HZ, who=who)


async def test_a_muted_site_is_not_heard_even_if_it_keeps_sending(conference: Conference) -> None:
    """The publisher below ignores the mute (an aiortc client keeps its tone on): the bridges drop
    its audio from the programme and the cascade; lifted, it is heard again."""
    conf = conference
    await _give_floor_to_a(conf)
    loop = asyncio.get_running_loop()
    started = loop.time()
    conf.set_muted({"A"})
    await asyncio.gather(*(until_heard(listener, "floor", None, who=who)
                           for who, listener in conf.listeners().items()))
    silent_after = loop.time() - started
    assert conf.a_pub is not None
    # the site really kept sending: its bridge still receives A's packets, and drops them
    source = conf.p.state.room(1).programme.sites["A"].audio
    assert source is not None
    dropped = source.dropped_muted
    await until(lambda: source.dropped_muted > dropped + 10, STEP, "A's packets still arriving (and dropped)")
    # nothing of A goes up the cascade: the centre gets no audio of A while it is muted
    central_a = conf.central.state.room(1).programme.sites["A"].audio
    assert central_a is not None
    forwarded = central_a.frames
    await asyncio.sleep(0.5)
    assert central_a.frames == forwarded, "the province forwarded a muted site's audio upstream"
    for who, listener in conf.listeners().items():
        await until_heard(listener, "floor", None, within=1.0, who=f"{who} (the muted site)")
    print(f"muted site silent everywhere {silent_after:.2f} s after the mute")

    conf.set_muted(set())
    await asyncio.gather(*(until_heard(listener, "floor", A_HZ, who=who)
                           for who, listener in conf.listeners().items()))


async def test_nobody_hears_themselves(conference: Conference) -> None:
    """No echo: the chair's own player gets no chair audio; the floor holder's own player gets no
    floor audio (each bridge withholds a listener's own voice, whatever the page does)."""
    conf = conference
    await _give_floor_to_a(conf)
    conf.a = await listen(conf.p.url, 1, token(P, "A"))
    await until_heard(conf.a, "chair", CHAIR_HZ, who="commune A")
    await asyncio.sleep(0.5)
    # Each checked over the next second: one stall of this process (bridges and players share it) can
    # hold a track's frames back past the 0.3 s a listener is judged on.
    await until_heard(conf.a, "floor", None, within=1.0, who="commune A (its own voice)")
    await until_heard(conf.chair, "chair", None, within=1.0, who="the chair (its own voice)")
    await until_heard(conf.chair, "floor", A_HZ, within=1.0, who="the chair")


async def test_the_floor_holder_stays_heard_when_its_camera_joins(conference: Conference) -> None:
    """As a site page does: A sends its microphone alone, is given the floor (heard at once), then
    publishes camera and microphone, which replace the microphone-only publication. B (A's own
    province) and C (through the centre) keep hearing A through the change: a bridge ends the old
    publication only once the new one carries media, and the cascade sends up the floor-audio
    timeline, not one source (a full-suite CI run caught C going silent for a handshake)."""
    conf = conference
    mic = await whip(conf.p.url, 1, token(P, "A"), None, ToneTrack(A_HZ))
    conf.a_pub = mic
    conf.set_floor("A")
    await conf.floor_changed()
    await asyncio.gather(*(until_heard(listener, "floor", A_HZ, who=who) for who, listener in conf.listeners().items()))
    await asyncio.sleep(0.5)

    conf.a_pub = await whip(conf.p.url, 1, token(P, "A"), EncodedVideoTrack("vp8", 176, 144), ToneTrack(A_HZ))
    since = time.monotonic()
    await conf.floor_changed()
    # As a page does (media.js retire()): the microphone-only publication ends once the new one
    # carries media — a functional wait, not a fixed 2 s, which a loaded CI machine outran.
    new = conf.p.state.room(1).publishers["A"]
    await until(lambda: bool(new.sources) and all(s.flowing.is_set() for s in new.sources), 20.0,
                "A's camera and microphone arriving at its bridge")
    await asyncio.sleep(0.5)
    await mic.pc.close()
    for who, listener in conf.listeners().items():
        # heard (within a stall of this process); the hole in media time below is the real check
        await until_heard(listener, "floor", A_HZ, within=1.0, who=who)
        gap = listener.floor.longest_gap(since)
        print(f"{who}: longest hole in A's sound while its camera joined {gap * 1000:.0f} ms")
        # a listener notices ~0.1 s; the old break-before-make cascade left 0.1–0.3 s (more when loaded)
        assert gap < 0.06, f"{who}: A's sound had a {gap * 1000:.0f} ms hole while its camera joined"
    await until(lambda: conf.central.state.room(1).programme.on_air == "A", STEP, "A's picture at the centre")


async def test_a_listener_given_the_floor_stops_hearing_itself(conference: Conference) -> None:
    """A listens while B holds the floor: A's floor track carries B (and, in steady state, the
    province bridge's C loop sends it). Then A is given the floor: A's own player falls silent on
    that track, while the others hear A (a floor change takes the floor timeline's listeners back
    from the C loop, which never sends a listener its own voice)."""
    conf = conference
    b_pub = await whip(conf.p.url, 1, token(P, "B"), None, ToneTrack(B_HZ))
    try:
        conf.set_floor("B")
        await conf.floor_changed()
        conf.a = await listen(conf.p.url, 1, token(P, "A"))
        await until_heard(conf.a, "floor", B_HZ, within=2 * STEP, who="commune A (B on the floor)")
        if native_send.ENABLED:
            floor = conf.p.state.room(1).programme.floor_audio.fanout
            a_peer = next(p for p in conf.p.state.peers.values() if p.kind == "play" and p.unit == "A")
            a_track = next(t for t in a_peer.tracks if t in floor.tracks)
            await until(lambda: a_track.native_sender is not None, STEP, "A's floor track in the C loop")
        await _give_floor_to_a(conf)
        await until_heard(conf.a, "floor", None, within=1.0, who="commune A (its own voice)")
    finally:
        await b_pub.pc.close()
