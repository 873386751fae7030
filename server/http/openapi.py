"""``GET /api/openapi.json``: the OpenAPI 3.1 document of the JSON API, built from the router and
the routes' declarations (server.http.contract), so it cannot drift from what is served.

Served to any logged-in principal (every machine-token scope included), not anonymously: it holds
no data, but it maps every operation and who may call it, and the rest of the API is behind a
login too (docs/protocol.md, "Authentication"). tests/test_openapi.py checks it against the router.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from server.http.contract import EVERY_SCOPE, Contract, api, contract_of
from server.http.schemas import COMPONENTS, ID, Schema, obj, ref

routes = web.RouteTableDef()

API_PREFIX = "/api/"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")
_WORDS = re.compile(r"[a-z_]+(\|[a-z_]+)*")
STATUS_TEXT = {200: "Thành công", 201: "Đã tạo", 400: "Dữ liệu không hợp lệ", 401: "Chưa đăng nhập",
               403: "Không có quyền (ngoài phạm vi, sai vai trò, sai phạm vi mã truy cập, CSRF)",
               404: "Không tìm thấy", 405: "Phương thức không được hỗ trợ", 409: "Xung đột trạng thái",
               413: "Nội dung quá lớn", 415: "Sai kiểu nội dung", 429: "Quá nhiều yêu cầu"}
DESCRIPTION = (
    "API JSON của hệ thống hội nghị trực tuyến (hoinghi). Người dùng: cookie phiên `hn_session` và "
    "tiêu đề `X-CSRF-Token` cho mọi yêu cầu thay đổi dữ liệu. Máy: `Authorization: Bearer <mã>`; "
    "`x-scopes` của mỗi thao tác là các phạm vi mã truy cập được chấp nhận (không có: chỉ người dùng, "
    "mã truy cập nhận 403 `token_scope`), `x-roles` là các vai trò có thể nhận kết quả thành công. "
    "Lỗi: `{\"error\": {\"code\", \"message\", ...}}` với mã ổn định (docs/protocol.md).")


def _path_parameter(name: str, regex: str) -> dict[str, Any]:
    schema: Schema
    if regex == r"\d+":
        schema = ID
    elif _WORDS.fullmatch(regex):
        schema = {"type": "string", "enum": regex.split("|")}
    else:
        schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _path_parameters(resource: web.AbstractResource) -> list[dict[str, Any]]:
    pattern = resource.get_info().get("pattern")
    if pattern is None:
        return []
    return [_path_parameter(name, regex) for name, regex in _GROUP.findall(pattern.pattern)]


def _security(method: str, c: Contract) -> list[dict[str, list[str]]]:
    person: dict[str, list[str]] = {"session": [], **({"csrf": []} if method in UNSAFE else {})}
    return [person, *([{"bearer": sorted(c.scopes)}] if c.scopes else [])]


def _operation(method: str, resource: web.AbstractResource, handler: Any, c: Contract) -> dict[str, Any]:
    module = handler.__module__.rsplit(".", 1)[-1]
    success: dict[str, Any] = {"description": STATUS_TEXT.get(c.status, "Thành công")}
    if c.response is not None:
        success["content"] = {c.response_type: {"schema": c.response}}
    responses: dict[str, Any] = {str(c.status): success}
    for status in sorted(c.errors):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op: dict[str, Any] = {
        "operationId": f"{module}.{handler.__name__}", "summary": c.summary, "tags": [module],
        "parameters": [*_path_parameters(resource),
                       *({"name": name, "in": "query", "required": False, "schema": schema}
                         for name, schema in c.query.items())],
        "responses": responses, "security": _security(method, c),
        "x-scopes": sorted(c.scopes), "x-roles": sorted(role.value for role in c.roles),
    }
    if c.description:
        op["description"] = c.description
    if c.request is not None:
        op["requestBody"] = {"required": True, "content": {c.request_type: {"schema": c.request}}}
    return op


def api_routes(app: web.Application) -> list[tuple[str, str, web.AbstractResource, Any]]:
    """(method, path, resource, handler) of every JSON API route (HEAD rides along with GET)."""
    out = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD" or not resource.canonical.startswith(API_PREFIX):
            continue
        out.append((route.method, resource.canonical, resource, route.handler))
    return out


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s JSON API. A route without a declaration is left out
    (tests/test_openapi.py fails on it) — and refuses every machine token meanwhile."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, resource, handler in api_routes(app):
        c = contract_of(handler)
        if c is not None:
            paths.setdefault(path, {})[method.lower()] = _operation(method, resource, handler, c)
    error = {"content": {"application/json": {"schema": ref("Error")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "hoinghi — API JSON", "version": "1", "description": DESCRIPTION},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": COMPONENTS,
            "responses": {f"E{status}": {"description": text, **error}
                          for status, text in STATUS_TEXT.items() if status >= 400},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "hn_session",
                            "description": "Phiên đăng nhập (đăng nhập tại /login)"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "Mã CSRF của phiên, bắt buộc khi thay đổi dữ liệu bằng cookie"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "hn1.<payload>.<hmac>",
                           "description": "Mã truy cập máy; phạm vi: units:read, bridge, kpi:write"},
            },
        },
    }


@routes.get("/api/openapi.json")
@api(summary="Tài liệu OpenAPI 3.1 của API JSON", scopes=EVERY_SCOPE,
     response=obj({"openapi": {"const": "3.1.0"}, "paths": {"type": "object"}}))
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return web.json_response(document(request.app), headers={"Cache-Control": "no-store"})
