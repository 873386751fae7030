"""The login throttle (#13, findings 2 and 13b): attempts are counted before the password is
checked, in the database (several server processes see one count), and slowed down rather than
locked out — a known client (device cookie of an earlier login) is throttled by its own failures
only, so an attacker elsewhere cannot keep the chair out of a live meeting."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from server.app import create_app
from server.auth import SESSION_COOKIE
from server.state import DB
from sessions.models import AuditEntry
from tests.conftest import PASSWORD, LiveServer

WRONG = "sai-mat-khau"
DEVICE_COOKIE = "hn_device"  # server.login.DEVICE_COOKIE, spelled out: the name browsers see


async def attempt(http: aiohttp.ClientSession, username: str, password: str,
                  ip: str | None = None) -> aiohttp.ClientResponse:
    """One login through the real form with this browser (its cookies: CSRF, device), as after
    its last session ended."""
    http.cookie_jar.clear(lambda cookie: cookie.key == SESSION_COOKIE)
    headers = {"X-Forwarded-For": ip} if ip else None
    page = await (await http.get("/login", headers=headers)).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    resp = await http.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)},
                           headers=headers, allow_redirects=False)
    await resp.read()
    return resp


async def audit_count(live: LiveServer, action: str) -> int:
    async with live.app[DB]() as db:
        return len((await db.execute(select(AuditEntry.id).where(AuditEntry.action == action))).all())


def retry_after(resp: aiohttp.ClientResponse) -> int:
    assert resp.status == 429, resp.status
    return int(resp.headers["Retry-After"])


# ---------------------------------------------------------------------------------------------
# The rule as plain code


def test_delays_double_after_the_free_failures_up_to_the_cap() -> None:
    from sessions.throttle import Rule

    rule = Rule(free=3, cap_ms=10_000, forget_ms=60_000)
    assert [rule.delay_ms(f) for f in range(9)] == [0, 0, 0, 1000, 2000, 4000, 8000, 10_000, 10_000]
    assert rule.delay_ms(10_000) == 10_000  # no overflow however long the attack
    assert rule.steps() == [(3, 1000), (4, 2000), (5, 4000), (6, 8000), (7, 10_000)]


# ---------------------------------------------------------------------------------------------
# Finding 2: parallel wrong passwords


async def test_parallel_wrong_passwords_are_counted_before_the_check(live: LiveServer) -> None:
    """20 simultaneous wrong passwords for one account, spread over two server processes sharing
    the database: at most the free allowance reaches the password check, the rest get 429."""
    second_app = create_app(live.settings, clock=live.clock, migrate=False)
    second = TestServer(second_app, host="127.0.0.1", port=0)
    await second.start_server()
    try:
        urls = [live.url, str(second.make_url("")).rstrip("/")]
        sessions = [aiohttp.ClientSession(base_url=urls[i % 2], cookie_jar=aiohttp.CookieJar(unsafe=True))
                    for i in range(20)]
        try:
            answers = await asyncio.gather(*(attempt(s, "hanoi", WRONG) for s in sessions))
            statuses = [r.status for r in answers]
            refused = [r for r in answers if r.status == 429]
            assert len(refused) >= 15, statuses
            assert set(statuses) <= {401, 429}, statuses
            for r in refused:
                assert int(r.headers["Retry-After"]) >= 1
                assert "Đăng nhập sai quá nhiều lần" in await r.text()
            # Only attempts that were let through were checked (and audited as failures).
            assert await audit_count(live, "login_failed") == statuses.count(401) <= live.settings.login_max_failures
            assert await audit_count(live, "login_throttled") == len(refused)
            # Refused attempts were not counted: once the wait is over, the owner gets in.
            live.clock.advance(seconds=max(int(r.headers["Retry-After"]) for r in refused))
            ok = await attempt(sessions[0], "hanoi", PASSWORD)
            assert ok.status == 303 and SESSION_COOKIE in ok.cookies
        finally:
            for s in sessions:
                await s.close()
    finally:
        await second.close()


# ---------------------------------------------------------------------------------------------
# Finding 13(b): no lockout as a weapon


async def test_five_wrong_passwords_no_longer_lock_the_chair_out(server_factory: Any, sqlite_url: str) -> None:
    """The finding as reported: five wrong passwords from anywhere locked the account, the chair
    with the right password included, for 15 minutes."""
    live: LiveServer = await server_factory(sqlite_url, trust_forwarded_for=True)
    chair = live.client()
    assert (await attempt(chair, "chutri", PASSWORD, "10.1.1.1")).status == 303
    for _ in range(5):
        assert (await attempt(live.client(), "chutri", WRONG, "203.0.113.7")).status == 401
    assert (await attempt(chair, "chutri", PASSWORD, "10.1.1.1")).status == 303


async def test_an_attack_from_elsewhere_does_not_keep_the_chair_out(server_factory: Any, sqlite_url: str) -> None:
    live: LiveServer = await server_factory(sqlite_url, trust_forwarded_for=True)
    chair_ip, attacker_ip = "10.1.1.1", "203.0.113.7"
    chair = live.client()
    first = await attempt(chair, "chutri", PASSWORD, chair_ip)
    assert first.status == 303
    device = first.cookies[DEVICE_COOKIE]
    assert device["httponly"] and device["path"] == "/login" and device["samesite"] == "Strict"

    # 50 wrong passwords from another IP, each one checked: the attacker waits out every delay.
    attacker = live.client()
    failures = waits = 0
    while failures < 50:
        resp = await attempt(attacker, "chutri", WRONG, attacker_ip)
        if resp.status == 429:
            waits += 1
            wait = retry_after(resp)
            assert wait <= live.settings.login_max_delay_seconds
            live.clock.advance(seconds=wait)
        else:
            assert resp.status == 401
            failures += 1
    assert waits >= 50 - live.settings.login_max_failures  # slowed down at every step past the allowance

    # The attacker is still being held at the longest wait…
    assert retry_after(await attempt(attacker, "chutri", WRONG, attacker_ip)) == live.settings.login_max_delay_seconds
    # …while the chair's own browser logs in at once (bound: 0 s, as it made no failure itself).
    resp = await attempt(chair, "chutri", PASSWORD, chair_ip)
    assert resp.status == 303 and SESSION_COOKIE in resp.cookies

    # A distributed guesser (one wrong password from each of 25 addresses) slows down every unknown
    # client of the account — a fresh browser with the right password waits, never beyond the cap…
    bots = [attempt(live.client(), "chutri", WRONG, f"198.51.100.{i}") for i in range(25)]
    assert sorted({r.status for r in await asyncio.gather(*bots)}) == [401, 429]
    stranger = live.client()
    resp = await attempt(stranger, "chutri", PASSWORD, "10.3.3.3")
    wait = retry_after(resp)
    assert 1 <= wait <= live.settings.login_max_delay_seconds and SESSION_COOKIE not in resp.cookies
    # …but not the chair's known client.
    assert (await attempt(chair, "chutri", PASSWORD, chair_ip)).status == 303
    live.clock.advance(seconds=wait)
    assert (await attempt(stranger, "chutri", PASSWORD, "10.3.3.3")).status == 303


async def test_a_known_client_is_slowed_only_by_its_own_failures(server_factory: Any, sqlite_url: str) -> None:
    live: LiveServer = await server_factory(sqlite_url, trust_forwarded_for=True)
    bound = live.settings.login_known_client_max_delay_seconds
    chair = live.client()
    assert (await attempt(chair, "chutri", PASSWORD, "10.1.1.1")).status == 303
    # The chair mistypes, many times: its own failures slow it down, never beyond the bound.
    waits = []
    for _ in range(12):
        resp = await attempt(chair, "chutri", WRONG, "10.1.1.1")
        if resp.status == 429:
            waits.append(retry_after(resp))
            live.clock.advance(seconds=waits[-1])
            assert (await attempt(chair, "chutri", WRONG, "10.1.1.1")).status == 401
    assert waits and max(waits) <= bound and waits[-1] == bound
    resp = await attempt(chair, "chutri", PASSWORD, "10.1.1.1")
    live.clock.advance(seconds=retry_after(resp))  # at most `bound` seconds
    assert (await attempt(chair, "chutri", PASSWORD, "10.1.1.1")).status == 303
    # The success resets its counter: the next mistake costs nothing.
    assert (await attempt(chair, "chutri", WRONG, "10.1.1.1")).status == 401
    # A device cookie of another account makes nobody a known client.
    other = live.client()
    assert (await attempt(other, "phutho", PASSWORD, "10.2.2.2")).status == 303
    for _ in range(live.settings.login_max_failures):
        assert (await attempt(other, "chutri", WRONG, "10.2.2.2")).status == 401
    assert (await attempt(other, "chutri", PASSWORD, "10.2.2.2")).status == 429


async def test_a_forged_device_cookie_is_an_unknown_client(server_factory: Any, sqlite_url: str) -> None:
    live: LiveServer = await server_factory(sqlite_url, login_max_failures=2)
    chair = live.client()
    first = await attempt(chair, "chutri", PASSWORD)
    assert first.status == 303
    real = first.cookies[DEVICE_COOKIE].value
    forger = live.client()
    body, _mac = real.rsplit(".", 1)
    forger.cookie_jar.update_cookies({DEVICE_COOKIE: f"{body}.AAAA"})
    for _ in range(2):
        assert (await attempt(forger, "chutri", WRONG)).status == 401
    assert (await attempt(forger, "chutri", PASSWORD)).status == 429
    assert (await attempt(chair, "chutri", PASSWORD)).status == 303  # the real one still works


# ---------------------------------------------------------------------------------------------
# Finding 13(c): the language cookie


async def test_language_cookie_is_secure_when_cookies_are(server_factory: Any, sqlite_url: str) -> None:
    plain: LiveServer = await server_factory(sqlite_url)
    secure: LiveServer = await server_factory(sqlite_url.replace("test.sqlite3", "secure.sqlite3"), cookie_secure=True)
    for live, expected in ((plain, False), (secure, True)):
        resp = await live.client().get("/lang/en?next=/login", allow_redirects=False)
        assert resp.status == 303
        (raw,) = [h for h in resp.headers.getall("Set-Cookie") if h.startswith("hn_lang=")]
        flags = {part.strip().split("=")[0].lower() for part in raw.split(";")}
        assert {"httponly", "samesite"} <= flags and "samesite=lax" in raw.lower(), raw
        assert ("secure" in flags) is expected, raw
