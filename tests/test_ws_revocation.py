"""Open websockets end with the credential they were opened with (#13, finding 3).

HTTP re-reads the session or token on every request; a socket was authenticated once. A password
reset by an admin (``hoinghi users passwd``), an account lock, a self-service password change and a
machine-token revocation each close the account's (or token's) open sockets with 4001 and a reason
the page can show — in every server process, through the bus. A self-service change also ends the
account's other login sessions; the one that made the change stays, with its sockets.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from server.commands import set_password
from server.db import transaction
from server.state import DB
from sessions.store import users as users_store
from tests.conftest import PASSWORD, Client, LiveServer
from tests.deployment import prepare, run_cli, server_processes
from tests.test_multiprocess import REDIS_URL, _redis_ok, pg_url  # noqa: F401  (pg_url: a fixture)

NEW_PASSWORD = "mat-khau-moi-2030"
CLOSE_REVOKED = 4001  # docs/protocol.md: the credential ended, log in again
MESSAGES = {  # the close reasons a page shows (docs/protocol.md)
    "password_changed": "Mật khẩu đã được đổi. Vui lòng đăng nhập lại.",
    "password_reset": "Mật khẩu đã được đặt lại. Vui lòng đăng nhập lại.",
    "account_locked": "Tài khoản đã bị khoá.",
    "token_revoked": "Mã truy cập đã bị thu hồi.",
}
# A bound on waiting, so that a socket left open fails the test instead of hanging it; not a
# timing assertion (a closed socket's close frame arrives at once).
BOUND = 10.0


async def open_socket(http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect("/ws")
    await ws.send_json({"type": "ping", "id": 0})
    assert (await ws.receive_json(timeout=BOUND))["type"] == "pong"
    return ws


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    """Wait for the server's close frame: (close code, reason)."""
    msg = await ws.receive(timeout=BOUND)
    assert msg.type == WSMsgType.CLOSE, f"expected the server to close the socket, got {msg.type}: {msg.data!r}"
    return msg.data, msg.extra or ""


async def still_open(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_json({"type": "ping", "id": "still"})
    assert (await ws.receive_json(timeout=BOUND)) == {"type": "pong", "id": "still"}


async def user_id(live: LiveServer, username: str) -> int:
    async with transaction(live.app[DB]) as db:
        user = await users_store.get_by_username(db, username)
    assert user is not None
    return user.id


async def test_an_account_lock_closes_its_sockets(live: LiveServer) -> None:
    admin = await live.login("quantri")
    site, other = await live.login("vinhyen"), await live.login("hoankiem")
    ws, bystander = await open_socket(site.http), await open_socket(other.http)
    resp = await admin.api("POST", f"/api/users/{await user_id(live, 'vinhyen')}/lock")
    assert resp.status == 200, await resp.text()
    assert await closed_by_server(ws) == (CLOSE_REVOKED, MESSAGES["account_locked"])
    await still_open(bystander)  # another account's socket is not touched
    assert (await site.get("/api/me")).status == 401  # and HTTP had stopped at once
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await site.http.ws_connect("/ws")
    await bystander.close()


async def test_a_token_revocation_closes_its_sockets(live: LiveServer) -> None:
    admin = await live.login("quantri")
    made = await admin.api("POST", "/api/tokens", json={"name": "cau-ha-noi", "unit_code": "01",
                                                          "scopes": ["bridge"], "days": 1})
    assert made.status == 201, await made.text()
    token = await made.json()
    kept = await admin.api("POST", "/api/tokens", json={"name": "cau-ha-noi-2", "unit_code": "01",
                                                          "scopes": ["bridge"], "days": 1})
    assert kept.status == 201, await kept.text()
    sockets = []
    for t in (token, await kept.json()):
        http = aiohttp.ClientSession(base_url=live.url, headers={"Authorization": f"Bearer {t['token']}"})
        live.sessions.append(http)
        sockets.append(await open_socket(http))
    revoked, other = sockets
    resp = await admin.api("DELETE", f"/api/tokens/{token['id']}")
    assert resp.status == 200, await resp.text()
    assert await closed_by_server(revoked) == (CLOSE_REVOKED, MESSAGES["token_revoked"])
    await still_open(other)
    await other.close()


async def test_a_password_change_ends_the_other_sessions_and_their_sockets(live: LiveServer) -> None:
    here, elsewhere = await live.login("vinhyen"), await live.login("vinhyen")
    ws_here, ws_elsewhere = await open_socket(here.http), await open_socket(elsewhere.http)
    resp = await here.post_form("/account/password", {"current": PASSWORD, "new": NEW_PASSWORD})
    assert resp.status == 200, await resp.text()
    assert await closed_by_server(ws_elsewhere) == (CLOSE_REVOKED, MESSAGES["password_changed"])
    assert (await elsewhere.get("/api/me")).status == 401  # the other login session ended
    assert (await here.get("/api/me")).status == 200  # the one that changed it stays
    await still_open(ws_here)
    await ws_here.close()
    # A wrong current password changes nothing and ends nothing.
    again = await live.login("vinhyen", NEW_PASSWORD)
    ws_again = await open_socket(again.http)
    resp = await here.post_form("/account/password", {"current": "sai-mat-khau", "new": "mot-mat-khau-khac"})
    assert resp.status == 400
    await still_open(ws_again)
    assert (await again.get("/api/me")).status == 200
    await ws_again.close()


async def test_a_password_reset_by_an_admin_closes_the_sockets(server_factory: Any, sqlite_url: str) -> None:
    """``hoinghi users passwd`` runs in a process of its own: it reaches the server through the bus."""
    await _redis_ok()
    srv: LiveServer = await server_factory(sqlite_url, bus_url=REDIS_URL,
                                           bus_channel_prefix=f"test-{uuid.uuid4().hex[:8]}")
    site, other = await srv.login("vinhyen"), await srv.login("hoankiem")
    ws, bystander = await open_socket(site.http), await open_socket(other.http)
    await set_password(srv.settings, "vinhyen", NEW_PASSWORD)
    assert await closed_by_server(ws) == (CLOSE_REVOKED, MESSAGES["password_reset"])
    await still_open(bystander)
    assert (await site.get("/api/me")).status == 401
    await bystander.close()


async def test_without_a_shared_bus_the_sweep_closes_them_within_a_second_or_so(live: LiveServer) -> None:
    """No ``bus_url``: ``hoinghi users passwd`` (a process of its own) cannot tell the server, but
    every second the server checks the credentials of its open sockets, and says why from the
    audit trail (the reset, not a bare "session ended"); a logout in another tab ends that login's
    sockets the same way."""
    assert not live.settings.bus_url
    site, other = await live.login("vinhyen"), await live.login("hoankiem")
    ws, bystander = await open_socket(site.http), await open_socket(other.http)
    await set_password(live.settings, "vinhyen", NEW_PASSWORD)
    assert await closed_by_server(ws) == (CLOSE_REVOKED, MESSAGES["password_reset"])
    await still_open(bystander)
    tab = await live.login("hoankiem")  # the same account in another browser: a login of its own
    ws_tab = await open_socket(tab.http)
    resp = await tab.post_form("/logout")
    assert resp.status in (302, 303), resp.status
    assert await closed_by_server(ws_tab) == (CLOSE_REVOKED, "Phiên đăng nhập đã kết thúc. Vui lòng đăng nhập lại.")
    await still_open(bystander)  # the account's other login keeps its socket
    await bystander.close()


# --- Two server processes sharing PostgreSQL and Redis --------------------------------------------


@pytest.fixture
async def two_processes(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[str, str, dict[str, str]]]:  # noqa: F811
    """(URL of process A, URL of process B, the environment a ``hoinghi`` command needs)."""
    await _redis_ok()
    users = [("quantri", "BCA", "admin"), ("vinhyen", "08707", "site_operator"), ("hoankiem", "00070", "site_operator")]
    env = await prepare(tmp_path, pg_url, REDIS_URL, users, PASSWORD, bus_channel_prefix=f"test-{uuid.uuid4().hex[:8]}")
    async with server_processes(env) as spawn:
        (url_a, _), (url_b, _) = await spawn(), await spawn()
        yield url_a, url_b, env


async def login(url: str, username: str, password: str = PASSWORD) -> Client:
    return await LiveServer(url, None, None, None).login(username, password)  # type: ignore[arg-type]


async def test_a_change_on_one_process_closes_sockets_on_the_other(
        two_processes: tuple[str, str, dict[str, str]]) -> None:
    url_a, url_b, env = two_processes
    clients: list[Client] = []
    try:
        admin_a = await login(url_a, "quantri")
        here_a, elsewhere_b, locked_b, reset_b = (await login(url_a, "vinhyen"), await login(url_b, "vinhyen"),
                                                  await login(url_b, "hoankiem"), await login(url_b, "quantri"))
        clients += [admin_a, here_a, elsewhere_b, locked_b, reset_b]
        ws_here, ws_elsewhere = await open_socket(here_a.http), await open_socket(elsewhere_b.http)
        ws_locked, ws_reset = await open_socket(locked_b.http), await open_socket(reset_b.http)

        # A self-service change on A ends the session (and socket) on B.
        resp = await here_a.post_form("/account/password", {"current": PASSWORD, "new": NEW_PASSWORD})
        assert resp.status == 200, await resp.text()
        assert await closed_by_server(ws_elsewhere) == (CLOSE_REVOKED, MESSAGES["password_changed"])
        await still_open(ws_here)

        # A lock through A ends the account's socket on B.
        users = await (await admin_a.get("/api/users")).json()
        hoankiem = next(u for u in users["users"] if u["username"] == "hoankiem")
        resp = await admin_a.api("POST", f"/api/users/{hoankiem['id']}/lock")
        assert resp.status == 200, await resp.text()
        assert await closed_by_server(ws_locked) == (CLOSE_REVOKED, MESSAGES["account_locked"])

        # The command line resets a password: the socket on B closes.
        run_cli(env, "users", "passwd", "quantri", "--password-stdin", stdin=NEW_PASSWORD + "\n")
        assert await closed_by_server(ws_reset) == (CLOSE_REVOKED, MESSAGES["password_reset"])
        await still_open(ws_here)
        await ws_here.close()
    finally:
        for c in clients:
            await c.http.close()
