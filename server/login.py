"""One login attempt: counted by the throttle first, then the password, then a session and the
device cookie that makes this browser a known client of the account (rules in ``sessions.throttle``)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from server.db import transaction
from server.settings import Settings
from server.state import CLOCK, DB, METRICS, SETTINGS, SIGNING_KEY
from sessions import signing
from sessions.errors import TooManyAttempts
from sessions.passwords import DUMMY_HASH, verify_password
from sessions.store import audit
from sessions.store import auth as auth_store
from sessions.store import throttle as throttle_store
from sessions.store import users as users_store
from sessions.throttle import LoginPolicy, Rule

DEVICE_COOKIE = "hn_device"
DEVICE_TOKEN_TYPE = "login_device"


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    ok: bool
    reason: str  # ok | failed | throttled | blank
    secret: str = ""
    retry_after: int = 0  # seconds, when throttled
    device: str = ""  # the device cookie to set, when ok


def policy(settings: Settings) -> LoginPolicy:
    forget = settings.login_window_minutes * 60_000
    cap = settings.login_max_delay_seconds * 1000
    return LoginPolicy(per_client=Rule(settings.login_max_failures, cap, forget),
                       per_account=Rule(settings.login_max_failures_account, cap, forget),
                       per_ip=Rule(settings.login_max_failures_ip, cap, forget),
                       known_client=Rule(settings.login_max_failures,
                                         settings.login_known_client_max_delay_seconds * 1000, forget))


def known_device(key: bytes, token: str, account: str, now: datetime) -> str | None:
    """The device id of a valid device cookie issued to ``account``, else None (an unknown client)."""
    if not token:
        return None
    try:
        claims = signing.verify(key, token, DEVICE_TOKEN_TYPE, now)
    except signing.BadToken:
        return None
    device = claims.get("d")
    return device if claims.get("u") == account and isinstance(device, str) and device else None


def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def login(app: web.Application, username: str, password: str, ip: str, device_cookie: str = "") -> LoginOutcome:
    """Count the attempt (refused with a wait when a counter says so), then verify the password;
    audit every attempt."""
    settings = app[SETTINGS]
    now = app[CLOCK]()
    name = username.strip().lower()[:64]
    if not name or not password:
        return LoginOutcome(False, "blank")
    device = known_device(app[SIGNING_KEY], device_cookie, name, now)
    counters = policy(settings).counters(name, ip, device)
    try:
        # Counted before the (slow) password check: concurrent attempts see each other.
        async with transaction(app[DB]) as db:
            await throttle_store.count_attempt(db, counters, _epoch_ms(now))
    except TooManyAttempts as exc:
        async with transaction(app[DB]) as db:
            await audit.record(db, audit.ANONYMOUS, "login_throttled", name, ip, at=now,
                               wait=exc.retry_after, known_client=device is not None)
        app[METRICS].logins.labels("throttled").inc()
        return LoginOutcome(False, "throttled", retry_after=exc.retry_after)
    async with app[DB]() as db:
        user = await users_store.get_by_username(db, name)
    stored = user.password_hash if user is not None and user.is_active else DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, stored, password) and user is not None and user.is_active
    async with transaction(app[DB]) as db:
        if not ok or user is None:
            await audit.record(db, audit.ANONYMOUS, "login_failed", name, ip, at=now)
            app[METRICS].logins.labels("failed").inc()
            return LoginOutcome(False, "failed")
        await throttle_store.settle_success(db, counters, _epoch_ms(now))
        # housekeeping rides on logins
        await throttle_store.purge(db, _epoch_ms(now), settings.login_window_minutes * 60_000)
        await auth_store.purge_expired_sessions(db, now)
        secret = secrets.token_urlsafe(32)
        await auth_store.create_login(db, secret, user.id, secrets.token_urlsafe(32),
                                      now + timedelta(minutes=settings.session_ttl_minutes), ip)
        await audit.record(db, audit.Actor("user", user.id, user.username, user.unit_id), "login", name, ip, at=now)
    app[METRICS].logins.labels("ok").inc()
    claims = {"u": name, "d": device or secrets.token_urlsafe(16)}
    device_token = signing.sign(app[SIGNING_KEY], DEVICE_TOKEN_TYPE, claims,
                                now + timedelta(days=settings.login_device_days))
    return LoginOutcome(True, "ok", secret, device=device_token)


def set_device_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Sent back only to the login form (path ``/login``), never readable by scripts."""
    settings = request.app[SETTINGS]
    response.set_cookie(DEVICE_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=settings.cookie_secure, max_age=settings.login_device_days * 86400)
