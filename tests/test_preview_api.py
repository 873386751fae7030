"""#16, the server's side of a preview: ``GET /api/meetings/{id}/media?preview=<unit code>`` gives a
join token that plays only that site's own picture and sound (the mosaics' thumbnails, the chair's
preview before giving the floor). The chair may preview any site taking part, a province's operator
the sites of its own subtree; anyone else gets 403 ``forbidden`` with a Vietnamese message, a code
that names no unit 400, and a refusal changes nothing and hands out no token."""

from __future__ import annotations

from typing import Any

import pytest

from server.services.media import bridge_key
from sessions import join_tokens
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state

BRIDGES = "BCA=http://127.0.0.1:8701, 25=http://127.0.0.1:8725"


@pytest.fixture
async def media_server(server_factory: Any, db_url: str) -> LiveServer:
    srv: LiveServer = await server_factory(db_url, bridges=BRIDGES)
    return srv


async def preview(srv: LiveServer, username: str, mid: int, code: str, status: int) -> dict[str, Any]:
    c = await srv.login(username)
    resp = await c.api("GET", f"/api/meetings/{mid}/media", params={"preview": code})
    body: dict[str, Any] = await resp.json()
    assert resp.status == status, (username, code, body)
    return body


def claims(srv: LiveServer, body: dict[str, Any]) -> join_tokens.JoinClaims:
    return join_tokens.check(bridge_key(srv.settings, body["bridge"]["unit"]), body["token"], srv.clock())


async def test_who_may_preview_which_site(media_server: LiveServer) -> None:
    srv = media_server
    chair = await srv.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")

    # The chair previews any province, or a commune anywhere: its own bridge, a token for that site alone.
    for code in ("25", "01", "08707", "00070"):
        body = await preview(srv, "chutri", mid, code, 200)
        got = claims(srv, body)
        assert (got.unit, got.role, got.bridge, got.view) == ("BCA", "chair", "BCA", code), got
        assert body["whep"] == f"http://127.0.0.1:8701/meetings/{mid}/whep"
    # Phú Thọ's operator previews its communes, through its own bridge.
    body = await preview(srv, "phutho", mid, "08707", 200)
    got = claims(srv, body)
    assert (got.unit, got.bridge, got.view) == ("25", "25", "08707"), got
    # The ordinary grant carries no view: it plays the programme, as before.
    plain = await (await srv.login("vinhyen")).api("GET", f"/api/meetings/{mid}/media")
    assert plain.status == 200
    assert claims(srv, await plain.json()).view is None

    # A commune's operator previews no other site — not another province's commune, not its neighbour;
    # a province's operator nothing outside its own subtree.
    refused = [("vinhyen", "00070"), ("vinhyen", "08740"), ("vinhyen", "25"), ("hoankiem", "08707"),
               ("hanoi", "08707"), ("hanoi", "25"), ("phutho", "00070"), ("phutho", "01")]
    for username, code in refused:
        body = await preview(srv, username, mid, code, 403)
        assert body["error"]["code"] == "forbidden", (username, code, body)
        assert "xem trước" in body["error"]["message"], body
        assert "token" not in body


async def test_bad_preview_codes_are_refused_plainly(media_server: LiveServer) -> None:
    srv = media_server
    chair = await srv.login("chutri")
    mid = await schedule(chair, participants=[{"unit": "25", "levels": ["commune"]}])
    await set_state(chair, mid, "rehearsal", "live")
    for code in ("99999", "x" * 41, "'; DROP TABLE units; --", "<b>25</b>"):
        body = await preview(srv, "chutri", mid, code, 400)
        assert body["error"]["code"] == "preview_invalid", (code, body)
        assert "token" not in body
    # A unit that exists but does not take part in this meeting (Hà Nội's commune).
    body = await preview(srv, "chutri", mid, "00070", 400)
    assert body["error"]["code"] == "not_participant", body
    assert "token" not in body
    # Outside an open meeting nothing is previewed.
    await set_state(chair, mid, "concluded")
    body = await preview(srv, "chutri", mid, "08707", 409)
    assert body["error"]["code"] == "wrong_state", body
