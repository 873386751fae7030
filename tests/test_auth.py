"""Authentication: argon2id passwords, the session cookie, logout, CSRF on every state change,
login throttling per account and per IP (slowed down, not locked), the audit trail, and machine tokens (scope, expiry,
revocation, tampering), plus refusals of bad input with Vietnamese messages."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import func, select
from yarl import URL

from server.auth import PRELOGIN_CSRF_COOKIE, SESSION_COOKIE
from server.services.access import MACHINE_TOKEN_TYPE
from server.state import DB, SIGNING_KEY
from sessions import signing
from sessions.models import AuditEntry, LoginRecord, MachineToken, User
from tests.conftest import ACCOUNTS, PASSWORD, LiveServer
from tests.test_scope import ROUTES, Req, changed, fixture_ids, issue_token, send, session_client, snapshot

NEW_PASSWORD = "mot-mat-khau-moi-2025"


async def api_error(resp: aiohttp.ClientResponse, status: int, code: str) -> str:
    """Assert a JSON error answer; returns its (Vietnamese) message."""
    text = await resp.text()
    assert resp.status == status, f"{resp.method} {resp.url.path}: {resp.status}, expected {status}: {text}"
    assert resp.content_type == "application/json", text
    body = await resp.json()
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


async def count(live: LiveServer, model: Any, *where: Any) -> int:
    async with live.app[DB]() as db:
        return int((await db.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def audit_rows(live: LiveServer, action: str) -> list[AuditEntry]:
    async with live.app[DB]() as db:
        return list((await db.execute(select(AuditEntry).where(AuditEntry.action == action)
                                      .order_by(AuditEntry.id))).scalars().all())


async def try_login(live: LiveServer, username: str, password: str,
                    headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """One login attempt through the real form, from a fresh browser."""
    http = live.client()
    page = await (await http.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return await http.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)},
                           headers=headers, allow_redirects=False)


# ---------------------------------------------------------------------------------------------
# Passwords and sessions


async def test_passwords_are_stored_as_argon2id(live: LiveServer) -> None:
    admin = await session_client(live, "quantri")
    resp = await admin.api("POST", "/api/users", json={"username": "moi-mot", "full_name": "Người Mới",
                                                       "unit_code": "00070", "role": "site_operator",
                                                       "password": NEW_PASSWORD})
    assert resp.status == 201, await resp.text()
    async with live.app[DB]() as db:
        hashes = dict((await db.execute(select(User.username, User.password_hash))).all())
    assert set(hashes) == set(ACCOUNTS) | {"moi-mot"}
    for username, stored in hashes.items():
        assert stored.startswith("$argon2id$"), username
    assert NEW_PASSWORD not in hashes["moi-mot"] and hashes["moi-mot"] != hashes["quantri"]
    assert "password" not in await resp.text()  # neither password nor hash is ever sent back
    # The stored hash is the one login verifies: the new account logs in with its own password.
    assert (await (await (await live.login("moi-mot", NEW_PASSWORD)).get("/api/me")).json())["name"] == "moi-mot"


async def test_session_cookie_is_httponly_samesite_and_stored_hashed(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    http = live.client()
    form = await http.get("/login")
    prelogin = form.cookies[PRELOGIN_CSRF_COOKIE]
    assert prelogin["httponly"] and prelogin["samesite"] == "Strict" and prelogin["path"] == "/login"
    token = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
    assert token and token.group(1) == prelogin.value
    resp = await http.post("/login", data={"username": "hanoi", "password": PASSWORD, "csrf_token": token.group(1)},
                           allow_redirects=False)
    assert resp.status == 303
    raw = [h for h in resp.headers.getall("Set-Cookie") if h.startswith(f"{SESSION_COOKIE}=")]
    assert len(raw) == 1
    flags = {part.strip().split("=")[0].lower() for part in raw[0].split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags, raw[0]
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert int(cookie["max-age"]) == live.settings.session_ttl_minutes * 60
    # The database keeps only a digest: a leaked table does not hand out sessions.
    async with live.app[DB]() as db:
        stored = list((await db.execute(select(LoginRecord.id))).scalars().all())
    assert stored == [hashlib.sha256(cookie.value.encode()).hexdigest()] and cookie.value not in stored


async def test_logout_ends_the_session_on_the_server(live: LiveServer) -> None:
    c = await live.login("hanoi")
    secret = c.http.cookie_jar.filter_cookies(URL(live.url))[SESSION_COOKIE].value
    assert await count(live, LoginRecord) == 1
    resp = await c.post_form("/logout")
    assert (resp.status, resp.headers["Location"]) == (303, "/login?m=out")
    assert await count(live, LoginRecord) == 0
    assert [r.actor_name for r in await audit_rows(live, "logout")] == ["hanoi"]
    # Replaying the old cookie (as a stolen copy would) finds no session.
    replay = live.client()
    replay.cookie_jar.update_cookies({SESSION_COOKIE: secret})
    resp = await replay.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login?next=/")
    await api_error(await replay.get("/api/me"), 401, "unauthenticated")
    resp = await replay.post("/api/tokens", json={"name": "x", "unit_code": "01", "scopes": ["units:read"], "days": 1},
                             headers={"X-CSRF-Token": c.csrf})
    await api_error(resp, 401, "unauthenticated")
    assert await count(live, MachineToken) == 0


async def test_expired_or_forged_session_is_anonymous(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    c = await live.login("hanoi")
    assert (await c.get("/api/me")).status == 200
    live.clock.advance(minutes=live.settings.session_ttl_minutes + 1)
    await api_error(await c.get("/api/me"), 401, "unauthenticated")
    forged = live.client()
    forged.cookie_jar.update_cookies({SESSION_COOKIE: "khong-phai-phien-that"})
    await api_error(await forged.get("/api/me"), 401, "unauthenticated")


# ---------------------------------------------------------------------------------------------
# CSRF


def state_changing_routes() -> list[tuple[tuple[str, str], Any]]:
    """Every non-public route that is not a plain read, taken from the scope matrix (logout last)."""
    routes = [(k, r) for k, r in ROUTES.items() if r.access != "public" and k[0] not in ("GET", "HEAD")]
    return sorted(routes, key=lambda kv: kv[0] == ("POST", "/logout"))


async def test_state_changes_without_the_csrf_token_are_refused(live: LiveServer) -> None:
    ids = await fixture_ids(live)
    routes = state_changing_routes()
    sessions = {name: await session_client(live, name) for name in {r.by for _k, r in routes}}
    other = await session_client(live, "hanoi")  # a valid token, but of another session
    before = await snapshot(live)
    audit_before = await count(live, AuditEntry)
    for (method, canonical), route in routes:
        who = sessions[route.by]
        for label, token in (("no token", ""), ("wrong token", "sai-" + who.csrf[4:]),
                             ("another session's token", other.csrf)):
            resp = await send(who.http, route.sample, token, ids)
            where = f"{method} {canonical} with {label}"
            assert resp.status == 403, f"{where}: {resp.status}"
            assert "CSRF" in await resp.text(), where
            if route.access == "api":
                assert (await resp.json())["error"]["code"] == "forbidden", where
    assert changed(before, await snapshot(live)) == set()
    assert await count(live, AuditEntry) == audit_before  # no refused request got as far as acting
    for who in sessions.values():
        assert (await who.get("/api/me")).status == 200, "refused logouts must not end the session"

    # The same requests with the right token go through (so the 403s above were the CSRF check).
    for (method, canonical), route in routes:
        who = sessions[route.by]
        resp = await send(who.http, route.sample, who.csrf, ids)
        assert resp.status == route.ok, f"{method} {canonical}: {resp.status} {await resp.text()}"
    assert changed(before, await snapshot(live))
    assert (await sessions["quantri"].get("/api/me")).status == 401  # the last one was the logout


async def test_login_form_needs_its_double_submit_cookie(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    bare = live.client()  # never fetched the form: no cookie
    resp = await bare.post("/login", data={"username": "hanoi", "password": PASSWORD, "csrf_token": "doan-bua"},
                           allow_redirects=False)
    assert resp.status == 403 and "CSRF" in await resp.text()
    assert SESSION_COOKIE not in resp.cookies

    mismatched = live.client()
    await mismatched.get("/login")
    resp = await mismatched.post("/login", data={"username": "hanoi", "password": PASSWORD, "csrf_token": "khac"},
                                 allow_redirects=False)
    assert resp.status == 403 and SESSION_COOKIE not in resp.cookies
    assert await count(live, LoginRecord) == 0 and await audit_rows(live, "login") == []
    assert await audit_rows(live, "login_failed") == []  # refused before the password was even looked at

    resp = await try_login(live, "hanoi", PASSWORD)
    assert resp.status == 303 and SESSION_COOKIE in resp.cookies


# ---------------------------------------------------------------------------------------------
# Login throttling


async def test_failed_logins_throttle_the_account(server_factory: Any, sqlite_url: str) -> None:
    """Failures slow the account's unknown clients down (doubling waits), they do not lock it: the
    right password works once the wait is over. (Known clients: tests/test_login_throttle.py.)"""
    live: LiveServer = await server_factory(sqlite_url, login_max_failures=2)
    window = live.settings.login_window_minutes
    for _ in range(2):
        resp = await try_login(live, "hanoi", "sai-mat-khau")
        assert resp.status == 401 and "không đúng" in await resp.text()
    resp = await try_login(live, "hanoi", PASSWORD)  # the right password, too soon
    assert resp.status == 429 and SESSION_COOKIE not in resp.cookies
    assert resp.headers["Retry-After"] == "1"
    assert "Vui lòng thử lại sau 1 giây" in await resp.text()
    assert (await try_login(live, "phutho", PASSWORD)).status == 303  # other accounts are not affected

    live.clock.advance(seconds=1)
    assert (await try_login(live, "hanoi", PASSWORD)).status == 303  # the wait passed; the count starts over

    # Each failure past the allowance doubles the wait.
    for _ in range(2):
        assert (await try_login(live, "hanoi", "sai")).status == 401
    waits = []
    for _ in range(4):
        resp = await try_login(live, "hanoi", "sai")
        waits.append(int(resp.headers["Retry-After"]))
        assert resp.status == 429
        live.clock.advance(seconds=waits[-1])
        assert (await try_login(live, "hanoi", "sai")).status == 401
    assert waits == [1, 2, 4, 8]
    # Left alone for the window after its wait, the count is forgotten.
    live.clock.advance(seconds=16, minutes=window)
    for _ in range(2):
        assert (await try_login(live, "hanoi", "sai")).status == 401
    assert (await try_login(live, "hanoi", PASSWORD)).status == 429

    assert len(await audit_rows(live, "login_failed")) == 2 + 2 + 4 + 2
    assert [r.target for r in await audit_rows(live, "login_throttled")] == ["hanoi"] * 6


async def test_failed_logins_throttle_the_client_ip(server_factory: Any, sqlite_url: str) -> None:
    live: LiveServer = await server_factory(sqlite_url, login_max_failures_ip=3)
    for name in ("hanoi", "phutho", "khong-ton-tai"):  # three accounts, one of them unknown
        assert (await try_login(live, name, "sai-mat-khau")).status == 401
    resp = await try_login(live, "quantri", PASSWORD)
    assert resp.status == 429 and SESSION_COOKIE not in resp.cookies
    # X-Forwarded-For is not trusted by default, so it cannot dodge the throttle.
    assert (await try_login(live, "quantri", PASSWORD, headers={"X-Forwarded-For": "10.9.9.9"})).status == 429
    assert {r.ip for r in await audit_rows(live, "login_failed")} == {"127.0.0.1"}
    live.clock.advance(minutes=live.settings.login_window_minutes + 1)
    assert (await try_login(live, "quantri", PASSWORD)).status == 303


# ---------------------------------------------------------------------------------------------
# Audit trail


async def test_audit_trail_records_logins_and_admin_actions(live: LiveServer) -> None:
    assert (await try_login(live, "chutri", "sai-mat-khau")).status == 401
    admin = await live.login("quantri")
    resp = await admin.api("POST", "/api/users", json={"username": "ghi-nhat-ky", "full_name": "", "role": "viewer",
                                                       "unit_code": "25", "password": NEW_PASSWORD})
    assert resp.status == 201
    resp = await admin.api("POST", "/api/tokens", json={"name": "cau-phu-tho", "unit_code": "25",
                                                        "scopes": ["units:read", "bridge"], "days": 7})
    assert resp.status == 201
    issued = await resp.json()
    assert (await admin.api("DELETE", f"/api/tokens/{issued['id']}")).status == 200

    (failed,) = await audit_rows(live, "login_failed")
    assert (failed.actor_kind, failed.target, failed.ip) == ("anonymous", "chutri", "127.0.0.1")
    (login,) = await audit_rows(live, "login")
    assert (login.actor_kind, login.actor_name, login.target) == ("user", "quantri", "quantri")
    (created,) = await audit_rows(live, "user_created")
    assert (created.actor_name, created.target, created.detail) == ("quantri", "ghi-nhat-ky",
                                                                    {"role": "viewer", "unit": "25"})
    (token_issued,) = await audit_rows(live, "token_issued")
    assert (token_issued.actor_name, token_issued.target) == ("quantri", f"token:{issued['id']}")
    assert token_issued.detail == {"name": "cau-phu-tho", "unit": "25", "scopes": "bridge units:read", "days": 7}
    (revoked,) = await audit_rows(live, "token_revoked")
    assert (revoked.actor_name, revoked.target) == ("quantri", f"token:{issued['id']}")
    # No secret ever reaches the trail.
    async with live.app[DB]() as db:
        everything = " ".join(f"{e.target} {e.detail}" for e in (await db.execute(select(AuditEntry))).scalars())
    for secret in (issued["token"], NEW_PASSWORD, PASSWORD, admin.csrf):
        assert secret not in everything


# ---------------------------------------------------------------------------------------------
# Machine tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tamper(token: str, part: int) -> str:
    """Change one character in the middle of a token part (never just base64 padding bits)."""
    parts = token.split(".")
    mid = len(parts[part]) // 2
    parts[part] = parts[part][:mid] + ("A" if parts[part][mid] != "A" else "B") + parts[part][mid + 1:]
    return ".".join(parts)


async def test_machine_tokens_scope_expiry_revocation_tampering(live: LiveServer) -> None:
    ministry = await session_client(live, "quantri")
    province = await session_client(live, "qt_hanoi")
    resp = await ministry.api("POST", "/api/tokens", json={"name": "cau-bca", "unit_code": "BCA",
                                                           "scopes": ["units:read"], "days": 1})
    assert resp.status == 201, await resp.text()
    bca = await resp.json()
    assert bca["token"].startswith("hn1.") and bca["status"] == "active" and bca["unit_code"] == "BCA"
    assert bca["expires_at"] == (live.clock.now + timedelta(days=1)).isoformat()
    resp = await province.api("POST", "/api/tokens", json={"name": "cau-hanoi", "unit_code": "01",
                                                           "scopes": ["units:read"], "days": 1})
    assert resp.status == 201, await resp.text()
    hanoi = await resp.json()
    http = live.client()  # no cookies: the token alone speaks

    resp = await http.get("/api/units/BCA", headers=bearer(bca["token"]))
    assert resp.status == 200
    assert {c["code"] for c in (await resp.json())["children"]} == {"01", "25", "79"}
    resp = await http.get("/api/me", headers=bearer(hanoi["token"]))
    assert (await resp.json())["kind"] == "machine" and (await resp.json())["unit"]["code"] == "01"
    assert (await http.get("/api/units/00070/subtree", headers=bearer(hanoi["token"]))).status == 200
    for code in ("25", "08707", "BCA"):
        await api_error(await http.get(f"/api/units/{code}", headers=bearer(hanoi["token"])), 403, "out_of_scope")
    async with live.app[DB]() as db:
        used = (await db.execute(select(MachineToken.last_used_at).where(MachineToken.id == hanoi["id"]))).scalar()
    assert used == live.clock.now

    # Read-only scope: even the ministry's token can administer nothing.
    async with live.app[DB]() as db:
        ids = {"user_hanoi": (await db.execute(select(User.id).where(User.username == "hanoi"))).scalar_one()}
    before = await snapshot(live)
    admin_requests = [
        Req("POST", "/api/users", json={"username": "may-tao", "full_name": "", "unit_code": "BCA", "role": "admin",
                                        "password": NEW_PASSWORD}),
        Req("POST", "/api/users/{user_hanoi}/lock"),
        Req("POST", "/api/tokens", json={"name": "may", "unit_code": "BCA", "scopes": ["units:read"], "days": 1}),
        Req("DELETE", f"/api/tokens/{bca['id']}"),
        Req("POST", "/api/units/import", csv="99201,Xã Máy,commune,25\n"),
        Req("GET", "/api/users"), Req("GET", "/api/tokens"), Req("GET", "/api/audit"),
    ]
    for req in admin_requests:  # refused for the token's scope, before any handler runs
        await api_error(await send(http, req, ids=ids, headers=bearer(bca["token"])), 403, "token_scope")
    assert changed(before, await snapshot(live)) == set()
    # Tokens are for the API only: on pages they are no login at all.
    resp = await http.get("/admin/users", headers=bearer(bca["token"]), allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/login?next=/admin/users")
    # A query survives the trip through the login page (it is encoded, not cut at its '&').
    resp = await http.get("/slides/BCA?a=1&b=2", allow_redirects=False)
    location = URL(resp.headers["Location"])
    assert (location.path, dict(location.query)) == ("/login", {"next": "/slides/BCA?a=1&b=2"})
    # A token without units:read reads no units, even inside its own unit.
    _tid, bridge_only = await issue_token(live, "01", scopes=frozenset({"bridge"}))
    await api_error(await http.get("/api/units/01", headers=bearer(bridge_only)), 403, "token_scope")

    # Revoked: refused from the next request on, and listed as revoked.
    assert (await ministry.api("DELETE", f"/api/tokens/{bca['id']}")).status == 200
    await api_error(await http.get("/api/units/BCA", headers=bearer(bca["token"])), 401, "token_revoked")
    listed = {t["id"]: t["status"] for t in (await (await ministry.get("/api/tokens")).json())["tokens"]}
    assert listed[bca["id"]] == "revoked" and listed[hanoi["id"]] == "active"

    # Tampered, forged or malformed: refused as invalid, never as a server error.
    key = live.app[SIGNING_KEY]
    exp = live.clock.now + timedelta(days=1)
    forged = {
        "payload changed": (tamper(hanoi["token"], 1), "token_invalid"),
        "signature changed": (tamper(hanoi["token"], 2), "token_invalid"),
        "signed with another key": (signing.sign(b"khoa-khac", MACHINE_TOKEN_TYPE, {"tid": hanoi["id"]}, exp),
                                    "token_invalid"),
        "validly signed but never issued": (signing.sign(key, MACHINE_TOKEN_TYPE, {"tid": hanoi["id"], "n": "x"},
                                                         exp), "token_invalid"),
        "another kind of token": (signing.sign(key, "join", {"tid": hanoi["id"]}, exp), "token_wrong_type"),
        "not a token": ("khong-phai-ma", "token_malformed"),
        "two parts only": ("hn1." + hanoi["token"].split(".")[1], "token_malformed"),
        "garbage that fails the signature": ("hn1.@@@.@@@", "token_invalid"),
    }
    for label, (token, code) in forged.items():
        resp = await http.get("/api/units/01", headers=bearer(token))
        assert resp.status == 401, f"{label}: {resp.status}"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), label
        assert (await resp.json())["error"]["code"] == code, label
    assert (await http.get("/api/units/01", headers=bearer(hanoi["token"]))).status == 200  # the real one works

    # Expired: a day-long token is refused two days later.
    live.clock.advance(days=2)
    await api_error(await http.get("/api/units/01", headers=bearer(hanoi["token"])), 401, "token_expired")
    refused = await audit_rows(live, "token_refused")
    assert {r.target for r in refused} >= {"token_revoked", "token_invalid", "token_malformed", "token_expired"}
    assert all(hanoi["token"] not in f"{r.target} {r.detail}" for r in refused)


# ---------------------------------------------------------------------------------------------
# Bad input


async def test_bad_account_input_is_refused_in_vietnamese(live: LiveServer) -> None:
    admin = await session_client(live, "qt_hanoi")
    users_before = await count(live, User)

    def user(**over: str) -> dict[str, str]:
        return {"username": "moi-hai", "full_name": "Người Mới", "unit_code": "00070", "role": "viewer",
                "password": NEW_PASSWORD, **over}

    cases = [
        (user(password=""), 400, "password_blank", "Mật khẩu không được để trống"),
        (user(password="        "), 400, "password_blank", "Mật khẩu không được để trống"),
        (user(password="ngan"), 400, "password_too_short", "ít nhất 8 ký tự"),
        (user(username="A b"), 400, "username_invalid", "Tên đăng nhập gồm"),
        (user(role="vua"), 400, "role_invalid", "Vai trò 'vua' không hợp lệ"),
        (user(unit_code="KHONGCO"), 404, "unit_not_found", "Không tìm thấy đơn vị"),
        (user(username="hanoi"), 409, "username_taken", "đã tồn tại"),
    ]
    for body, status, code, message in cases:
        assert message in await api_error(await admin.api("POST", "/api/users", json=body), status, code)
    resp = await admin.api("POST", "/api/users", data="username=x", headers={"Content-Type": "text/plain"})
    await api_error(resp, 400, "json_required")
    resp = await admin.api("POST", "/api/users", data="{khong-phai-json",
                           headers={"Content-Type": "application/json"})
    await api_error(resp, 400, "json_invalid")
    # The form says the same, keeps what was typed (not the password) and creates nothing.
    resp = await admin.post_form("/admin/users", user(password=""))
    page = await resp.text()
    assert resp.status == 400 and "Mật khẩu không được để trống" in page and 'value="moi-hai"' in page
    assert await count(live, User) == users_before


async def test_bad_token_input_is_refused_in_vietnamese(live: LiveServer) -> None:
    admin = await session_client(live, "qt_hanoi")
    max_days = live.settings.machine_token_max_days

    def token(**over: Any) -> dict[str, Any]:
        return {"name": "cau-moi", "unit_code": "01", "scopes": ["units:read"], "days": 1, **over}

    cases = [
        (token(days=max_days + 1), "token_ttl_invalid", f"Số ngày hiệu lực phải từ 1 đến {max_days}"),
        (token(days=0), "token_ttl_invalid", f"Số ngày hiệu lực phải từ 1 đến {max_days}"),
        (token(days="1"), "token_ttl_invalid", "'days' phải là số nguyên"),
        (token(days=True), "token_ttl_invalid", "'days' phải là số nguyên"),
        (token(scopes=[]), "token_scope_invalid", "Phạm vi quyền không hợp lệ"),
        (token(scopes=["admin"]), "token_scope_invalid", "Phạm vi quyền không hợp lệ: admin"),
        (token(scopes="units:read"), "token_scope_invalid", "'scopes' phải là danh sách chuỗi"),
        (token(name=" "), "token_name_invalid", "Tên gọi của mã truy cập"),
    ]
    for body, code, message in cases:
        assert message in await api_error(await admin.api("POST", "/api/tokens", json=body), 400, code), body
    for days, message in ((str(max_days + 1), f"phải từ 1 đến {max_days}"), ("mot", "phải là số nguyên")):
        resp = await admin.post_form("/admin/tokens", {"name": "cau-moi", "unit_code": "01", "scopes": "units:read",
                                                       "days": days})
        assert resp.status == 400 and message in await resp.text()
    assert await count(live, MachineToken) == 0
    # Within the limits it works (so the refusals were about the input).
    assert (await admin.api("POST", "/api/tokens", json=token(days=max_days))).status == 201

