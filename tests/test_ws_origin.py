"""The ``Origin`` rule of the live websocket handshake (#13, finding 1).

A page on another origin — a sibling subdomain among them — with the chair's cookie must not open
``/ws``: its actions (grant, revoke, mark) carry no CSRF token. The site's own origin and the
configured ``allowed_origins`` may; a client without ``Origin`` only with a bearer token.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from server.settings import SettingsError
from tests.conftest import LiveServer, make_settings
from tests.media_browser_util import bridge_token


async def handshake(http: aiohttp.ClientSession, **headers: str) -> tuple[int, dict[str, Any] | None]:
    """The status of a ``/ws`` handshake with these headers (101: upgraded) and, when refused, its
    JSON body. The session's own default headers (the test client's ``Origin``) are replaced."""
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    resp = await http.get("/ws", headers={**upgrade, **headers}, allow_redirects=False)
    body = await resp.json() if resp.content_type == "application/json" else None
    resp.close()
    return resp.status, body


async def test_a_cross_origin_handshake_with_a_users_cookie_is_refused(live: LiveServer) -> None:
    chair = await live.login("chutri")
    port = live.url.rsplit(":", 1)[1]
    for evil in ("https://evil.example", f"http://127.0.0.2:{port}", "http://127.0.0.1", f"https://127.0.0.1:{port}",
                 "null", f"{live.url}/path", f"http://user@127.0.0.1:{port}"):
        status, body = await handshake(chair.http, Origin=evil)
        assert status == 403, evil
        assert body is not None and body["error"]["code"] == "origin_refused", (evil, body)
        assert "Origin" in body["error"]["message"], body
    # No Origin at all rides the cookie: not a browser page of ours either.
    session = chair.http.cookie_jar
    bare = aiohttp.ClientSession(base_url=live.url, cookie_jar=session)  # no default Origin header
    live.sessions.append(bare)
    status, body = await handshake(bare)
    assert (status, body and body["error"]["code"]) == (403, "origin_refused")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await bare.ws_connect("/ws", origin="https://evil.example")
    assert refused.value.status == 403


async def test_the_sites_own_origin_connects(live: LiveServer) -> None:
    chair = await live.login("chutri")
    host = live.url.split("://", 1)[1]
    for own in (live.url, live.url.upper().replace("HTTP://", "http://"), f"http://{host}/"):
        ws = await chair.http.ws_connect("/ws", origin=own)
        await ws.send_json({"type": "ping", "id": 1})
        assert (await ws.receive_json(timeout=5)) == {"type": "pong", "id": 1}
        await ws.close()


async def test_a_bearer_client_needs_no_origin(live: LiveServer) -> None:
    token = await bridge_token(live, "01")
    http = aiohttp.ClientSession(base_url=live.url, headers={"Authorization": f"Bearer {token}"})
    live.sessions.append(http)
    ws = await http.ws_connect("/ws")
    await ws.send_json({"type": "ping", "id": "b"})
    assert (await ws.receive_json(timeout=5)) == {"type": "pong", "id": "b"}
    await ws.close()
    # A bearer client that names a foreign page is refused like any other.
    status, body = await handshake(http, Origin="https://evil.example")
    assert (status, body and body["error"]["code"]) == (403, "origin_refused")


async def test_allowed_origins_and_a_trusted_proxy(server_factory: Any, sqlite_url: str) -> None:
    srv: LiveServer = await server_factory(sqlite_url, allowed_origins="https://dieuhanh.bca.example:8443",
                                           trust_forwarded_for=True)
    chair = await srv.login("chutri")
    assert (await handshake(chair.http, Origin="https://dieuhanh.bca.example:8443"))[0] == 101
    assert (await handshake(chair.http, Origin="https://dieuhanh.bca.example"))[0] == 403
    # Behind the proxy the browser used https://hoinghi.example: that is the site's own origin.
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hoinghi.example"}
    assert (await handshake(chair.http, Origin="https://hoinghi.example", **proxied))[0] == 101
    assert (await handshake(chair.http, Origin="https://evil.example", **proxied))[0] == 403
    assert (await handshake(chair.http, Origin=srv.url, **proxied))[0] == 403


def test_origins_are_compared_in_one_spelling() -> None:
    from server.live.origin import normalise, own_origin, parse_allowed

    assert normalise("HTTPS://Hoinghi.Example:443/") == "https://hoinghi.example"
    assert normalise("http://[::1]:8080") == "http://[::1]:8080"
    for bad in ("null", "", "hoinghi.example", "https://a@b.example", "https://b.example/x", "ftp://b.example",
                "https://b.example:99999"):
        assert normalise(bad) is None, bad
    assert own_origin({"X-Forwarded-Proto": "https"}, "http", "h.example:443", trust_forwarded=False) \
        == "http://h.example:443"
    assert own_origin({"X-Forwarded-Proto": "https, http"}, "http", "h.example:443", trust_forwarded=True) \
        == "https://h.example"
    assert own_origin({}, "http", "h.example", trust_forwarded=False, https=True) == "https://h.example"
    assert parse_allowed("https://a.example, http://b.example:81 ") == {"https://a.example", "http://b.example:81"}


def test_a_malformed_allowed_origin_is_refused_at_startup(tmp_path: Any) -> None:
    for bad in ("a.example", "https://a.example/path", "wss://a.example"):
        with pytest.raises(SettingsError, match=r"allowed_origins: .* không phải một origin"):
            make_settings(tmp_path, "sqlite+aiosqlite:///x", allowed_origins=bad)
