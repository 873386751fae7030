"""#13 (13a): every bridge has its own key. A join token is signed with the key of the bridge that
checks it, so whoever holds a provincial bridge's key mints nothing the central bridge accepts; a
bridge that cascades gets its upstream's tokens from the server over its control channel, which
checks the upstream is above it and the unit is its own or one of its sites in the meeting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestServer

from bridge.app import STATE, create_app
from bridge.cascade import UPSTREAM
from bridge.room import BridgeConfig, BridgeState
from server.services.media import bridge_key
from sessions import join_tokens
from sessions.signing import BadToken
from tests.audio_util import Listener, ToneTrack, listen, until_heard
from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state
from tests.media_browser_util import bridge_token
from tests.media_util import EncodedVideoTrack, Publisher, offer_sdp, post_sdp, token, until, whip
from tests.test_media_server import bridge_socket

A, HANOI_COMMUNE = "08707", "00070"  # a Phú Thọ ward; a Hà Nội ward (outside Phú Thọ's subtree)


async def _start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE]


async def _live_meeting(live: LiveServer) -> int:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    return mid


@pytest.fixture
async def central(live: LiveServer) -> AsyncIterator[str]:
    server, url, _state = await _start(BridgeConfig(unit="BCA", key=bridge_key(live.settings, "BCA")))
    try:
        yield url
    finally:
        await server.close()


async def test_a_provincial_bridge_key_mints_nothing_the_central_bridge_accepts(live: LiveServer,
                                                                                central: str) -> None:
    mid = await _live_meeting(live)
    province_key, central_key = bridge_key(live.settings, "25"), bridge_key(live.settings, "BCA")
    assert province_key != central_key
    forged = token("BCA", "BCA", "chair", mid, province_key)  # "I am the chair", signed with Phú Thọ's key
    status, body, _ = await post_sdp(f"{central}/meetings/{mid}/whip", forged, await offer_sdp())
    assert status == 401 and "token_invalid" in body, (status, body)
    status, body, _ = await post_sdp(f"{central}/meetings/{mid}/whip", token("BCA", "BCA", "chair", mid, central_key),
                                     await offer_sdp())
    assert status == 201, (status, body)
    # A bridge token for the upstream, signed by the province itself, is refused the same way.
    status, body, _ = await post_sdp(f"{central}/meetings/{mid}/whep", token("BCA", "25", "bridge", mid, province_key),
                                     await offer_sdp(direction="recvonly"))
    assert status == 401 and "token_invalid" in body, (status, body)


async def test_the_server_issues_cascade_tokens_only_for_what_the_bridge_may_relay(live: LiveServer) -> None:
    mid = await _live_meeting(live)
    phutho = await bridge_socket(live, "25")
    central_key = bridge_key(live.settings, "BCA")
    try:
        own = await phutho.request({"type": "cascade_token", "meeting": mid, "unit": "25", "bridge": "BCA"})
        assert own["type"] == "result", own
        claims = join_tokens.check(central_key, own["data"]["token"], datetime.now(UTC))
        assert (claims.meeting, claims.unit, claims.role, claims.bridge) == (mid, "25", "bridge", "BCA")
        with pytest.raises(BadToken):  # signed for the central bridge only
            join_tokens.check(bridge_key(live.settings, "25"), own["data"]["token"], datetime.now(UTC))
        floor = await phutho.request({"type": "cascade_token", "meeting": mid, "unit": A, "bridge": "BCA"})
        assert join_tokens.check(central_key, floor["data"]["token"], datetime.now(UTC)).unit == A

        refusals = {
            "out_of_scope": {"unit": HANOI_COMMUNE, "bridge": "BCA"},  # not a site of Phú Thọ
            "upstream_invalid": {"unit": "25", "bridge": "01"},  # Hà Nội is no upstream of Phú Thọ
        }
        for code, fields in refusals.items():
            answer = await phutho.request({"type": "cascade_token", "meeting": mid, **fields})
            assert (answer["type"], answer["code"]) == ("error", code), answer
            assert "token" not in str(answer.get("data"))
        itself = await phutho.request({"type": "cascade_token", "meeting": mid, "unit": "25", "bridge": "25"})
        assert itself["code"] == "upstream_invalid"
        # A meeting that is not open gets no media tokens.
        later = await schedule(await live.login("chutri"))
        closed = await phutho.request({"type": "cascade_token", "meeting": later, "unit": "25", "bridge": "BCA"})
        assert closed["code"] == "wrong_state", closed
    finally:
        await phutho.close()
    # Nobody but a bridge asks: a chair's socket is refused; a units:read token opens no socket at all.
    chair = await WsClient.open(await live.login("chutri"))
    try:
        answer = await chair.request({"type": "cascade_token", "meeting": mid, "unit": "25", "bridge": "BCA"})
        assert answer["code"] == "forbidden", answer
    finally:
        await chair.close()
    with pytest.raises(WSServerHandshakeError) as refused:
        await bridge_socket(live, "25", scopes=frozenset({"units:read"}))
    assert refused.value.status == 403


async def test_a_cascade_runs_on_tokens_from_the_server(live: LiveServer) -> None:
    """Both bridges hold only their own keys and follow the server: the chair's sound reaches a Phú
    Thọ site through the provincial bridge, and once the chair gives Phú Thọ's site A the floor the
    provincial bridge publishes A upstream (a token for A asked while the floor change is being
    handled) and the chair hears A — with the upstream tokens the server gave it."""
    mid = await _live_meeting(live)
    central_key, province_key = bridge_key(live.settings, "BCA"), bridge_key(live.settings, "25")
    central, central_url, _central_state = await _start(BridgeConfig(
        unit="BCA", key=central_key, server_url=live.url, token=await bridge_token(live, "BCA")))
    config = BridgeConfig(unit="25", key=province_key, server_url=live.url, token=await bridge_token(live, "25"),
                          upstream_url=central_url)
    assert not config.upstream_key
    province, province_url, province_state = await _start(config)
    peers: list[Publisher | Listener] = []
    try:
        chair_pub = await whip(central_url, mid, token("BCA", "BCA", "chair", mid, central_key),
                               EncodedVideoTrack("vp8"), ToneTrack(440))
        peers.append(chair_pub)
        chair_ear = await listen(central_url, mid, token("BCA", "BCA", "chair", mid, central_key))
        peers.append(chair_ear)
        site = await listen(province_url, mid, token("25", A, "site", mid, province_key))
        peers.append(site)
        await until(lambda: UPSTREAM in province_state.room(mid).programme.sites, 20.0, "the cascade up")
        await until_heard(site, "chair", 440.0, within=20.0, who="a Phú Thọ site")

        # A sends its microphone before it has the floor (as a site page does): the grant, handled
        # as the control channel reports it, publishes A upstream at once.
        mic = await whip(province_url, mid, token("25", A, "site", mid, province_key), None, ToneTrack(1000))
        peers.append(mic)
        chair = await live.login("chutri")
        resp = await chair.api("POST", f"/api/meetings/{mid}/floor",
                               json={"action": "grant", "unit": A, "confirm": True})
        assert resp.status == 200, await resp.text()
        await until_heard(chair_ear, "floor", 1000.0, within=20.0, who="the chair")
        speaker = await whip(province_url, mid, token("25", A, "site", mid, province_key),
                             EncodedVideoTrack("vp8", 176, 144), ToneTrack(1000))  # and now its camera
        peers.append(speaker)
        await until_heard(chair_ear, "floor", 1000.0, within=20.0, who="the chair")
        await until_heard(site, "chair", 440.0, within=5.0, who="a Phú Thọ site")
    finally:
        for peer in peers:
            await (peer.close() if isinstance(peer, Listener) else peer.pc.close())
        await province.close()
        await central.close()
