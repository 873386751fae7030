"""The server's side of media: which bridge serves a site, the join tokens it signs for it, and
the bridges' control messages over /ws — presence for the sites they serve (so a bridge that
dies leaves a gap in the roll call) and connection health for the consoles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.auth import issue_machine_token
from server.db import transaction
from server.services.media import bridge_key
from server.settings import SettingsError, load_settings
from server.state import DB
from sessions import join_tokens
from sessions.signing import BadToken
from sessions.store import live as live_store
from sessions.store import units as units_store
from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state

BRIDGES = "BCA=http://127.0.0.1:8701, 25=http://127.0.0.1:8725/"
ICE = '[{"urls": ["stun:stun.example:3478"]}]'


@pytest.fixture
async def media_server(server_factory: Any, db_url: str) -> LiveServer:
    srv: LiveServer = await server_factory(db_url, bridges=BRIDGES, ice_servers=ICE)
    return srv


async def grant(srv: LiveServer, username: str, mid: int, status: int = 200) -> dict[str, Any]:
    c = await srv.login(username)
    resp = await c.api("GET", f"/api/meetings/{mid}/media")
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def test_sites_get_their_bridge_and_a_signed_join_token(media_server: LiveServer) -> None:
    srv = media_server
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    early = await grant(srv, "vinhyen", mid, 409)
    assert early["error"]["code"] == "wrong_state"
    await set_state(chair, mid, "rehearsal")
    key = bridge_key(srv.settings, "25")  # each bridge checks tokens with its own key

    site = await grant(srv, "vinhyen", mid)  # a Phú Thọ commune: its province's bridge
    assert site["bridge"] == {"unit": "25", "url": "http://127.0.0.1:8725"}
    assert site["whep"] == f"http://127.0.0.1:8725/meetings/{mid}/whep"
    assert site["whip"] == f"http://127.0.0.1:8725/meetings/{mid}/whip"
    assert (site["role"], site["may_publish"], site["ice_servers"]) == ("site", False, [
        {"urls": ["stun:stun.example:3478"]}])
    claims = join_tokens.check(key, site["token"], srv.clock())
    assert (claims.meeting, claims.unit, claims.role, claims.bridge) == (mid, "08707", "site", "25")
    assert claims.expires_at == int((srv.clock() + timedelta(minutes=10)).timestamp())
    # The token is short-lived, and signed with the media key, not the server's own.
    with pytest.raises(BadToken) as expired:
        join_tokens.check(key, site["token"], srv.clock() + timedelta(minutes=11))
    assert expired.value.code == "token_expired"
    with pytest.raises(BadToken):
        join_tokens.check(srv.settings.signing_key(), site["token"], srv.clock())
    with pytest.raises(BadToken):  # nor with another bridge's
        join_tokens.check(bridge_key(srv.settings, "BCA"), site["token"], srv.clock())

    hanoi = await grant(srv, "hoankiem", mid)  # Hà Nội has no bridge: the ministry's serves it
    assert hanoi["bridge"]["unit"] == "BCA"
    head = await grant(srv, "chutri", mid)
    assert (head["role"], head["may_publish"], head["bridge"]["unit"]) == ("chair", True, "BCA")
    assert join_tokens.check(bridge_key(srv.settings, "BCA"), head["token"], srv.clock()).role == "chair"

    # The floor makes a site's token say it may publish.
    resp = await chair.api("POST", f"/api/meetings/{mid}/floor",
                           json={"action": "grant", "unit": "08707", "confirm": True})
    assert resp.status == 200, await resp.text()
    assert (await grant(srv, "vinhyen", mid))["may_publish"] is True


async def test_who_may_not_have_media(media_server: LiveServer) -> None:
    srv = media_server
    chair = await srv.login("chutri")
    mid = await schedule(chair, participants=[{"unit": "25", "levels": ["commune"]}])
    await set_state(chair, mid, "rehearsal")
    assert (await grant(srv, "xem_hanoi", mid, 404))["error"]["code"] == "meeting_not_found"
    assert (await grant(srv, "hoankiem", mid, 404))["error"]["code"] == "meeting_not_found"
    anon = aiohttp.ClientSession(base_url=srv.url)
    try:
        assert (await anon.get(f"/api/meetings/{mid}/media")).status == 401
    finally:
        await anon.close()
    # Phú Thọ's own operator sees the meeting, but its province seat is not a participant here.
    body = await grant(srv, "phutho", mid, 400)
    assert body["error"]["code"] == "not_participant"


async def test_no_bridges_configured_means_no_media(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal")
    body = await grant(live, "vinhyen", mid)
    assert body["bridge"] is None and "token" not in body and body["ice_servers"] == []


@pytest.mark.parametrize(("name", "value"), [("bridges", "25"), ("bridges", "25=ftp://x"),
                                             ("bridges", "25=http://a, 25=http://b"), ("ice_servers", "{"),
                                             ("ice_servers", '[{"url": "stun:x"}]'), ("join_token_minutes", "0")])
def test_media_settings_are_checked(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={f"HOINGHI_{name.upper()}": value}, var_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Bridges on /ws


async def bridge_socket(srv: LiveServer, code: str, scopes: frozenset[str] = frozenset({"bridge"})) -> WsClient:
    async with transaction(srv.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        _tid, token = await issue_machine_token(srv.app, db, name=f"bridge-{code}", unit_id=unit.id, scopes=scopes,
                                                days=1, created_by_id=None)
    http = aiohttp.ClientSession(base_url=srv.url, headers={"Authorization": f"Bearer {token}"})
    srv.sessions.append(http)
    return WsClient(await http.ws_connect("/ws"))


async def intervals(srv: LiveServer, mid: int, code: str) -> list[Any]:
    async with srv.app[DB]() as db:
        rows = await live_store.attendance_rows(db, mid)
    return next(r["intervals"] for r in rows if r["code"] == code)


async def test_a_bridge_reports_its_sites_and_a_dead_bridge_leaves_a_gap(media_server: LiveServer) -> None:
    srv = media_server
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    console = await WsClient.open(await srv.login("phutho"))
    await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:25"})
    bridge = await bridge_socket(srv, "25")
    answer = await bridge.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    assert answer["type"] == "result", answer
    assert (await bridge.request({"type": "join", "meeting": mid, "unit": "08707"}))["type"] == "result"
    await console.until(lambda: (console.seat("08707") or {}).get("online") == 1)
    assert console.seat("08707")["status"] == "present_online"

    # Floor changes reach the bridge.
    await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": "08707", "confirm": True})
    await bridge.until(lambda: ((bridge.meeting or {}).get("floor") or {}).get("code") == "08707")

    # Health for its site reaches the province console.
    stats = {"type": "stats", "meeting": mid, "sites": [
        {"unit": "08707", "rtt_ms": 42.5, "loss": 0.002, "kbps": 980, "fps": 30}]}
    assert (await bridge.request(stats))["type"] == "result"
    health = await console.until(lambda: console.health.get("08707"))
    assert (health["rtt_ms"], health["loss"], health["kbps"], health["fps"], health["level"]) == (
        42.5, 0.002, 980.0, 30.0, "good")

    # Refused: a site outside the bridge's province, a figure out of range, a bridge-only message
    # from a person.
    for msg, code in (({"type": "join", "meeting": mid, "unit": "00070"}, "out_of_scope"),
                      ({**stats, "sites": [{"unit": "00070", "rtt_ms": 1}]}, "out_of_scope"),
                      ({**stats, "sites": [{"unit": "08707", "loss": 2}]}, "stats_invalid"),
                      ({**stats, "sites": [{"rtt_ms": 1}]}, "stats_invalid")):
        answer = await bridge.request(msg)
        assert (answer["type"], answer.get("code")) == ("error", code), (msg, answer)
    person = await WsClient.open(await srv.login("vinhyen"))
    for msg in (stats, {"type": "join", "meeting": mid, "unit": "08740"}):
        answer = await person.request(msg)
        assert (answer["type"], answer.get("code")) == ("error", "forbidden"), answer
    await person.close()

    # The bridge dies: its site drops out; it comes back: a second interval — the gap shows.
    await bridge.close()
    await console.until(lambda: (console.seat("08707") or {}).get("online") == 0)
    srv.clock.advance(seconds=30)
    again = await bridge_socket(srv, "25")
    assert (await again.request({"type": "join", "meeting": mid, "unit": "08707"}))["type"] == "result"
    await console.until(lambda: (console.seat("08707") or {}).get("online") == 1)
    spans = await intervals(srv, mid, "08707")
    assert len(spans) == 2 and spans[0][1] is not None and spans[1][0] - spans[0][1] >= timedelta(seconds=30)
    await again.close()
    await console.close()


async def test_a_bridge_without_the_bridge_scope_cannot_report(media_server: LiveServer) -> None:
    srv = media_server
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal")
    # The control channel (/ws) takes tokens of scope bridge only: the handshake itself is refused.
    for scope in ("units:read", "kpi:write"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await bridge_socket(srv, "25", frozenset({scope}))
        assert refused.value.status == 403, scope
