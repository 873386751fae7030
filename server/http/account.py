"""Login, logout, language switch and password change."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from server import auth, login
from server.db import transaction
from server.i18n import LANGUAGES, translator
from server.services import access
from server.services import account as account_service
from server.state import DB, DEPS, SETTINGS
from server.web_util import LANG_COOKIE, client_ip, form_body, lang_of, principal_of, render, require_principal
from sessions.errors import ValidationFailed
from sessions.store import audit
from sessions.store import auth as auth_store
from sessions.values import REFUSED_CHARS

routes = web.RouteTableDef()


def _safe_next(raw: str) -> str:
    """Only local paths: never redirect a logged-in user to another site."""
    parts = urlsplit(raw)
    if not raw.startswith("/") or raw.startswith("//") or parts.scheme or parts.netloc or "\\" in raw:
        return "/"
    return raw


@routes.get("/login", name="login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if principal_of(request) is not None:
        raise web.HTTPSeeOther("/")
    notice = {"out": "login.logged_out", "expired": "login.expired"}.get(request.query.get("m", ""))
    return _login_page(request, error=None, notice=notice)


def _login_page(request: web.Request, error: str | None, notice: str | None = None, username: str = "",
                status: int = 200) -> web.StreamResponse:
    token = auth.prelogin_token(request)
    resp = render(request, "login.html", {"error": error, "notice": notice, "username": username,
                                          "next": _safe_next(request.query.get("next", "/")),
                                          "login_csrf": token}, status=status)
    auth.set_prelogin_cookie(request, resp, token)
    return resp


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await form_body(request)
    auth.check_prelogin_csrf(request, str(form.get("csrf_token", "")))
    # No account name holds a control character (PostgreSQL refuses NUL): such a name is tried —
    # and counted — as one that does not exist.
    username = REFUSED_CHARS.sub("\ufffd", str(form.get("username", "")))
    password = str(form.get("password", ""))
    outcome = await login.login(request.app, username, password, client_ip(request),
                                request.cookies.get(login.DEVICE_COOKIE, ""))
    t = translator(lang_of(request))
    if not outcome.ok:
        if outcome.reason == "throttled":
            wait = outcome.retry_after
            when = t("login.wait_seconds", n=wait) if wait < 120 else t("login.wait_minutes", n=-(-wait // 60))
            page = _login_page(request, t("login.throttled", wait=when), username=username, status=429)
            page.headers["Retry-After"] = str(wait)
            return page
        msg = t("login.blank") if outcome.reason == "blank" else t("login.failed")
        return _login_page(request, msg, username=username, status=400 if outcome.reason == "blank" else 401)
    resp = web.HTTPSeeOther(_safe_next(str(form.get("next", "/"))))
    auth.set_session_cookie(request, resp, outcome.secret)
    login.set_device_cookie(request, resp, outcome.device)
    resp.del_cookie(auth.PRELOGIN_CSRF_COOKIE, path="/login")
    raise resp


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    secret = request.cookies.get(auth.SESSION_COOKIE, "")
    async with transaction(request.app[DB]) as db:
        await auth_store.delete_login(db, secret)
        await audit.record(db, access.actor_of(principal), "logout", principal.name, client_ip(request))
    resp = web.HTTPSeeOther("/login?m=out")
    resp.del_cookie(auth.SESSION_COOKIE, path="/")
    raise resp


@routes.get("/lang/{lang}")
async def switch_language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound()
    back = _safe_next(request.query.get("next", "/"))
    resp = web.HTTPSeeOther(back)
    resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/", httponly=True,
                    secure=request.app[SETTINGS].cookie_secure)
    raise resp


@routes.get("/account/password")
async def password_form(request: web.Request) -> web.StreamResponse:
    require_principal(request)
    return render(request, "password.html", {"error": None, "done": False})


@routes.post("/account/password")
async def password_submit(request: web.Request) -> web.StreamResponse:
    principal = require_principal(request)
    if principal.kind != "user":
        raise web.HTTPForbidden()
    form = await form_body(request)
    current, new = str(form.get("current", "")), str(form.get("new", ""))
    t = translator(lang_of(request))
    try:  # the account's other sessions (and their websockets) end; this one stays
        await account_service.change_own_password(request.app[DEPS], principal, current, new,
                                                  request.cookies.get(auth.SESSION_COOKIE, ""), client_ip(request))
    except account_service.WrongPassword:
        return render(request, "password.html", {"error": t("password.wrong"), "done": False}, status=400)
    except ValidationFailed as exc:
        return render(request, "password.html", {"error": exc.message, "done": False}, status=400)
    return render(request, "password.html", {"error": None, "done": True})
