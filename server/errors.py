"""One place that turns every failure into a response: JSON with a stable code under /api/,
a rendered Vietnamese page elsewhere. Logs keep the detail; users see a clear message."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from server.i18n import translator
from server.outage import RETRY_AFTER, is_outage
from server.web_util import is_api, json_error, lang_of, render
from sessions.errors import DomainError, ImportRejected
from sessions.signing import BadToken

log = logging.getLogger("hoinghi.errors")

HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(request: web.Request, status: int, code: str, message: str | None,
                    **extra: object) -> web.StreamResponse:
    t = translator(lang_of(request))
    text = message or t(f"error.{status}")
    if text == f"error.{status}":
        text = t("error.400") if status < 500 else t("error.500")
    if is_api(request):
        resp = json_error(status, code, text, **extra)
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="hoinghi"'
        return resp
    return render(request, "error.html", {"status": status, "code": code, "message": text, "extra": extra},
                  status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 401 and not is_api(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}") from None
        code = HTTP_CODES.get(exc.status, "http_error")
        message = None if exc.text in (None, "", f"{exc.status}: {exc.reason}") else exc.text
        if exc.status == 413:
            message = None
        return _error_response(request, exc.status, code, message)
    except ImportRejected as exc:
        return _error_response(request, exc.status, exc.code, exc.message,
                               errors=[{"line": ln, "message": m} for ln, m in exc.errors])
    except DomainError as exc:
        return _error_response(request, exc.status, exc.code, exc.message,
                               **{k: v for k, v in exc.detail.items() if isinstance(v, str | int)})
    except BadToken as exc:
        return _error_response(request, 401, exc.code, exc.message)
    except Exception as exc:
        if is_outage(exc):  # PostgreSQL or Redis unreachable: not our bug, and worth trying again soon
            log.warning("dependency unreachable", extra={"path": request.path, "method": request.method,
                                                          "error": f"{type(exc).__name__}: {exc}"[:300]})
            resp = _error_response(request, 503, "unavailable", None)
            resp.headers["Retry-After"] = str(RETRY_AFTER)
            return resp
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return _error_response(request, 500, "internal_error", None)
