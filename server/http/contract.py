"""What each route promises, declared next to its handler: the machine-token scopes it accepts,
the roles that may succeed on it, a summary, its query parameters, and the JSON schemas of its
request and answer. Two things are built from these declarations:

- the scope rule for machine tokens (``scope_middleware``): a bearer whose scopes share none with
  the route's is refused with 403 ``token_scope`` before the handler runs. A route that declares
  no scopes — or declares nothing at all — refuses every machine token (fail closed);
- the OpenAPI 3.1 document at ``/api/openapi.json`` (``server.http.openapi``).

Roles are documentation with teeth: the handlers and services enforce them (with their own codes,
e.g. ``chair_only``); the fuzz test (tests/test_fuzz_api.py) fails when a role outside ``roles``
gets a success.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from server.services.access import MACHINE_SCOPES
from server.web_util import principal_of
from sessions.errors import Forbidden
from sessions.roles import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]

EVERY_ROLE = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
CHAIR = frozenset({Role.CHAIR})
OPERATORS = frozenset({Role.CHAIR, Role.BRIDGE_OPERATOR, Role.SITE_OPERATOR})  # who acts in a meeting
EVERY_SCOPE = frozenset(MACHINE_SCOPES)
# Errors every JSON route may answer: bad input, no login, refused (scope, role, CSRF), not found.
COMMON_ERRORS = frozenset({400, 401, 403, 404})


@dataclass(frozen=True, slots=True)
class Contract:
    """One route's declaration (see the module docstring)."""

    summary: str
    scopes: frozenset[str]
    roles: frozenset[Role]
    request: Schema | None = None
    request_type: str = "application/json"
    response: Schema | None = None
    response_type: str = "application/json"
    status: int = 200
    query: Mapping[str, Schema] = field(default_factory=dict)
    errors: frozenset[int] = COMMON_ERRORS
    description: str = ""


_CONTRACTS: dict[Handler, Contract] = {}


def api(*, summary: str, scopes: Iterable[str] = (), roles: Iterable[Role] = EVERY_ROLE,
        request: Schema | None = None, request_type: str = "application/json", response: Schema | None = None,
        response_type: str = "application/json", status: int = 200, query: Mapping[str, Schema] | None = None,
        errors: Iterable[int] = (), description: str = "") -> Callable[[Handler], Handler]:
    """Declare a route's contract; put it under ``@routes.get(...)``. ``scopes``: the machine-token
    scopes it accepts (none: people only); ``roles``: the roles that may get a success."""
    accepted = frozenset(scopes)
    unknown = accepted - EVERY_SCOPE
    if unknown:
        raise ValueError(f"unknown machine-token scopes: {sorted(unknown)}")
    declared = Contract(summary=summary, scopes=accepted, roles=frozenset(roles), request=request,
                        request_type=request_type, response=response, response_type=response_type, status=status,
                        query=dict(query or {}), errors=COMMON_ERRORS | frozenset(errors), description=description)

    def record(handler: Handler) -> Handler:
        _CONTRACTS[handler] = declared
        return handler

    return record


def contract_of(handler: object) -> Contract | None:
    """The declaration of a route's handler, if it has one."""
    try:
        return _CONTRACTS.get(handler)  # type: ignore[call-overload]
    except TypeError:  # an unhashable handler (a class-based view instance) declares nothing
        return None


class TokenScope(Forbidden):
    code = "token_scope"


def check_scope(contract: Contract | None, scopes: frozenset[str]) -> None:
    """Refuse a machine token whose scopes the route does not accept."""
    accepted = contract.scopes if contract is not None else frozenset()
    if accepted & scopes:
        return
    if not accepted:
        raise TokenScope("Thao tác này chỉ dành cho tài khoản người dùng, không nhận mã truy cập máy", required="")
    needed = ", ".join(sorted(accepted))
    raise TokenScope(f"Mã truy cập không có phạm vi quyền cho thao tác này (cần một trong: {needed})",
                     required=" ".join(sorted(accepted)))


@web.middleware
async def scope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After the auth middleware: a machine principal reaches only routes that accept its scopes.
    Unmatched paths (404/405) are left to the router, so a token learns nothing more than a user."""
    p = principal_of(request)
    if p is not None and p.kind == "machine" and request.match_info.http_exception is None:
        check_scope(contract_of(request.match_info.handler), p.scopes)
    return await handler(request)
