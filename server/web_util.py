"""Small request helpers shared by the views: language, client IP, rendering, JSON."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.i18n import LANGUAGES, language_context
from server.state import CSRF_TOKEN, LOGIN_INFO, PRINCIPAL, SETTINGS
from sessions.errors import ValidationFailed
from sessions.roles import Permission, Principal

LANG_COOKIE = "hn_lang"


def lang_of(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in LANGUAGES else request.app[SETTINGS].default_language


def client_ip(request: web.Request) -> str:
    if request.app[SETTINGS].trust_forwarded_for:
        fwd = request.headers.get("X-Forwarded-For", "")
        if fwd:
            return fwd.split(",")[0].strip()[:64]
    return (request.remote or "")[:64]


def principal_of(request: web.Request) -> Principal | None:
    p = request.get(PRINCIPAL)
    return p if isinstance(p, Principal) else None


def require_principal(request: web.Request) -> Principal:
    p = principal_of(request)
    if p is None:
        raise web.HTTPUnauthorized()
    return p


def require_permission(request: web.Request, permission: Permission) -> Principal:
    p = require_principal(request)
    if not p.can(permission):
        raise web.HTTPForbidden()
    return p


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


NAV = (
    ("/", "nav.home", None),
    ("/meetings", "nav.meetings", None),
    ("/directives", "nav.directives", None),
    ("/admin/users", "nav.users", Permission.MANAGE_USERS),
    ("/admin/tokens", "nav.tokens", Permission.MANAGE_TOKENS),
    ("/admin/units/import", "nav.import", Permission.MANAGE_UNITS),
    ("/admin/indicators", "nav.indicators", Permission.MANAGE_UNITS),
    ("/admin/audit", "nav.audit", Permission.VIEW_AUDIT),
)


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    lang = lang_of(request)
    principal = principal_of(request)
    login = request.get(LOGIN_INFO)
    base = {
        **language_context(lang),
        "principal": principal,
        "login_info": login,
        "csrf_token": request.get(CSRF_TOKEN, ""),
        "path": request.path,
        "nav": [(href, key) for href, key, perm in NAV
                if principal is not None and (perm is None or principal.can(perm))],
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a stable validation error (nothing else is accepted)."""
    if request.content_type != "application/json":
        raise ValidationFailed("Cần gửi JSON (Content-Type: application/json)", code="json_required")
    try:
        body = await request.json()
    except ValueError:
        raise ValidationFailed("Nội dung JSON không hợp lệ", code="json_invalid") from None
    if not isinstance(body, dict):
        raise ValidationFailed("Nội dung JSON phải là một đối tượng", code="json_invalid")
    return body


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)
