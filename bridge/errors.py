"""Bridge errors: one exception with a stable code and a Vietnamese message, and the one
middleware that turns it (and anything unexpected) into ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sessions.signing import BadToken

log = logging.getLogger("hoinghi.bridge.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BridgeError(Exception):
    """A refused request: HTTP ``status``, stable ``code``, Vietnamese ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    resp = web.json_response({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="hoinghi-bridge"'
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BridgeError as exc:
        log.info("refused %s %s: %s", request.method, request.path, exc.code)
        return error_response(exc.status, exc.code, exc.message)
    except BadToken as exc:
        return error_response(401, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(404, "not_found", "Không tìm thấy")
        if exc.status == 405:  # RFC 9110 §15.5.6: say which methods the resource takes
            resp = error_response(405, "method_not_allowed", "Phương thức không được hỗ trợ")
            if "Allow" in exc.headers:
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        return error_response(exc.status, "http_error", exc.reason)
    except Exception:
        log.exception("unhandled bridge error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal_error", "Lỗi hệ thống, vui lòng thử lại")
