"""Small request helpers shared by the views: language, client IP, rendering, JSON, ids."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy

from server.i18n import LANGUAGES, language_context
from server.state import CSRF_TOKEN, LOGIN_INFO, PRINCIPAL, SETTINGS
from sessions.errors import NotFound, ValidationFailed
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


MAX_ID = 2**63 - 1  # the database's BIGINT: an id beyond it names nothing
MAX_JSON_DEPTH = 32
MAX_FORM_FIELDS = 100
_ID_TEXT = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes "²" and "١٢٣"
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_id(raw: object, field: str, *, minimum: int = 1) -> int:
    """An id (or a small count) from a path, a query or JSON: ASCII digits or a JSON integer,
    ``minimum``..2⁶³−1; anything else is a validation error naming ``field``."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _ID_TEXT.fullmatch(raw):
        value = int(raw)
    if value is None or not minimum <= value <= MAX_ID:
        raise ValidationFailed(f"'{field}' phải là số nguyên từ {minimum} đến {MAX_ID}", code="id_invalid",
                               field=field)
    return value


def path_id(request: web.Request, key: str) -> int:
    """An id from the path: one that cannot exist names nothing (404, like a missing one)."""
    try:
        return parse_id(request.match_info[key], key)
    except ValidationFailed:
        raise NotFound("Không tìm thấy đối tượng được yêu cầu", code="not_found") from None


def query_id(request: web.Request, key: str, *, minimum: int = 1) -> int | None:
    """An optional id (or count) from the query string; present but malformed → 400."""
    raw = request.query.get(key)
    return None if raw is None else parse_id(raw, key, minimum=minimum)


def _json_number(text: str) -> int:
    value = int(text)
    if not -MAX_ID - 1 <= value <= MAX_ID:
        raise ValidationFailed("Số nguyên trong JSON vượt quá giới hạn 64 bit", code="json_number_too_large")
    return value


def _json_constant(name: str) -> float:
    raise ValidationFailed(f"JSON không chấp nhận {name}", code="json_invalid")


def check_json_value(value: Any) -> None:
    """Refuse what JSON lets through but nothing downstream can hold: nesting deeper than
    MAX_JSON_DEPTH, and lone surrogates (``"\\ud800"``) in strings or keys (not UTF-8)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ValidationFailed("Chuỗi chứa ký tự Unicode không hợp lệ (surrogate)", code="text_invalid")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValidationFailed(f"JSON lồng quá {MAX_JSON_DEPTH} cấp", code="json_too_deep")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_json(raw: bytes) -> Any:
    """JSON text (UTF-8) → value, with every malformed input a ValidationFailed (never a 500)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_json_number, parse_constant=_json_constant)
    except RecursionError:
        raise ValidationFailed(f"JSON lồng quá {MAX_JSON_DEPTH} cấp", code="json_too_deep") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError among them
        raise ValidationFailed("Nội dung JSON không hợp lệ", code="json_invalid") from None
    check_json_value(value)
    return value


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a stable validation error (nothing else is accepted)."""
    if request.content_type != "application/json":
        raise ValidationFailed("Cần gửi JSON (Content-Type: application/json)", code="json_required")
    body = parse_json(await request.read())
    if not isinstance(body, dict):
        raise ValidationFailed("Nội dung JSON phải là một đối tượng", code="json_invalid")
    return body


async def form_body(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form, or a stable validation error for one that cannot be read (text that is
    not UTF-8, an unknown charset, a broken multipart body). aiohttp caps its size
    (``client_max_size``) and its number of fields (``client_max_fields``): 413."""
    try:
        return await request.post()
    except (UnicodeDecodeError, LookupError):
        raise ValidationFailed("Biểu mẫu phải được gửi bằng UTF-8", code="form_invalid") from None
    except ValueError:
        raise ValidationFailed("Biểu mẫu không đọc được", code="form_invalid") from None


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)
