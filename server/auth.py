"""Who is asking: login sessions (cookie), machine tokens (bearer), CSRF (the login attempt itself:
``server.login``).

The middleware resolves the principal once per request, refuses anonymous requests outside
the public paths, and checks the CSRF token on every state-changing request that rides a
cookie. Scope (which units a principal reaches) is checked by the views through
``ensure_reaches`` — the rule itself lives in ``sessions.roles``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction
from server.services.access import MACHINE_TOKEN_TYPE, mint_machine_token
from server.state import CLOCK, CSRF_TOKEN, DB, LOGIN_INFO, PRINCIPAL, SETTINGS, SIGNING_KEY, TOKEN_CHECKS
from server.web_util import client_ip, form_body, is_api
from sessions import signing
from sessions.errors import Forbidden
from sessions.roles import Principal
from sessions.store import audit
from sessions.store import auth as auth_store

SESSION_COOKIE = "hn_session"
PRELOGIN_CSRF_COOKIE = "hn_csrf"
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/metrics", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/", "/lang/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSED = "Phiên biểu mẫu không hợp lệ hoặc đã hết hạn (CSRF). Hãy tải lại trang và thử lại."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def _machine_principal(request: web.Request, token: str) -> Principal:
    now = request.app[CLOCK]()
    claims = signing.verify(request.app[SIGNING_KEY], token, MACHINE_TOKEN_TYPE, now)
    # Checked against the database with the other bearers arriving now (one query for all).
    return await request.app[TOKEN_CHECKS].call(None, (int(claims.get("tid", 0)), token, now))


async def check_tokens(app: web.Application, _key: None,
                       items: list[tuple[int, str, datetime]]) -> list[Principal | Exception]:
    """Signed bearer tokens (token id, token, now) against the database: known, same secret, not
    revoked, not expired; each use is recorded. One result (principal or error) per item."""
    results: list[Principal | Exception] = []
    async with transaction(app[DB]) as db:
        found = await auth_store.tokens_with_digest(db, {tid for tid, _token, _now in items if tid})
        used: dict[int, datetime] = {}
        for tid, token, now in items:
            tok, secret_digest = found.get(tid, (None, ""))
            if tok is None or not secrets.compare_digest(secret_digest, auth_store.digest(token)):
                results.append(signing.BadToken("token_invalid", "Mã truy cập không hợp lệ"))
            elif tok.revoked_at is not None:
                results.append(signing.BadToken("token_revoked", "Mã truy cập đã bị thu hồi"))
            elif tok.expires_at <= now:
                results.append(signing.BadToken("token_expired", "Mã truy cập đã hết hạn"))
            else:
                used[tid] = max(now, used.get(tid, now))
                results.append(Principal(kind="machine", id=tok.id, name=tok.name, unit_id=tok.unit_id,
                                         unit_code=tok.unit_code, scopes=tok.scopes))
        await auth_store.touch_tokens(db, used)
    return results


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[PRINCIPAL] = None
    authz = request.headers.get("Authorization", "")
    cookie_auth = False
    if authz.startswith("Bearer ") and (is_api(request) or request.path == "/ws"):
        try:
            request[PRINCIPAL] = await _machine_principal(request, authz[7:].strip())
        except signing.BadToken as exc:
            # Logged without the token itself.
            async with transaction(request.app[DB]) as db:
                await audit.record(db, audit.ANONYMOUS, "token_refused", exc.code, client_ip(request))
            raise
    elif secret := request.cookies.get(SESSION_COOKIE):
        async with request.app[DB]() as db:
            info = await auth_store.load_login(db, secret, request.app[CLOCK]())
        if info is not None:
            request[PRINCIPAL] = info.principal
            request[LOGIN_INFO] = info
            request[CSRF_TOKEN] = info.csrf_token
            cookie_auth = True

    if request[PRINCIPAL] is None and not is_public(request.path):
        raise web.HTTPUnauthorized()

    if cookie_auth and request.method not in SAFE_METHODS:
        await _check_csrf(request, request[CSRF_TOKEN])
    return await handler(request)


async def _check_csrf(request: web.Request, expected: str) -> None:
    supplied = request.headers.get("X-CSRF-Token", "")
    if not supplied and request.content_type == "multipart/form-data":
        # An upload is checked before its body is read: the token rides the header (scripts) or
        # the query of a plain HTML form's action (``?csrf=…``), never a field inside the body.
        supplied = request.query.get("csrf", "")
        if not supplied:
            raise Forbidden(CSRF_REFUSED, code="csrf_required")
    elif not supplied and request.content_type == "application/x-www-form-urlencoded":
        form = await form_body(request)
        value = form.get("csrf_token", "")
        supplied = value if isinstance(value, str) else ""
    if not supplied or not secrets.compare_digest(supplied, expected):
        raise web.HTTPForbidden(text=CSRF_REFUSED)


def prelogin_token(request: web.Request) -> str:
    """Double-submit token for the login form (there is no session yet)."""
    return request.cookies.get(PRELOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_prelogin_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(PRELOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=request.app[SETTINGS].cookie_secure)


def check_prelogin_csrf(request: web.Request, supplied: str) -> None:
    expected = request.cookies.get(PRELOGIN_CSRF_COOKIE, "")
    if not expected or not supplied or not secrets.compare_digest(expected, supplied):
        raise web.HTTPForbidden(text="Phiên biểu mẫu đăng nhập đã hết hạn (CSRF). Hãy tải lại trang và thử lại.")


def set_session_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="Lax", path="/",
                        secure=settings.cookie_secure, max_age=settings.session_ttl_minutes * 60)


async def issue_machine_token(app: web.Application, db: AsyncSession, *, name: str, unit_id: int,
                              scopes: frozenset[str], days: int, created_by_id: int | None) -> tuple[int, str]:
    """:func:`mint_machine_token` with the running server's key, limit and clock."""
    return await mint_machine_token(db, key=app[SIGNING_KEY], max_days=app[SETTINGS].machine_token_max_days,
                                    now=app[CLOCK](), name=name, unit_id=unit_id, scopes=scopes, days=days,
                                    created_by_id=created_by_id)
