"""``/api/openapi.json`` is true to the router: every JSON API route is documented (and nothing
else), each with the machine-token scopes and roles it accepts and the schemas of its request and
answer; the document is valid OpenAPI 3.1. A route added without a declaration fails here — and
refuses every machine token meanwhile (the scope rule fails closed)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from server.http.contract import TokenScope, check_scope, contract_of
from server.http.openapi import api_routes, document
from server.services.access import MACHINE_SCOPES
from sessions.roles import Role
from tests.conftest import LiveServer
from tests.test_scope import issue_token, session_client

# POST routes that take no body (the path says it all).
NO_BODY = {("POST", "/api/users/{user_id}/{action}"), ("POST", "/api/assignments/{assignment_id}/done")}


def problems(app: web.Application, doc: dict[str, Any]) -> list[str]:
    """Everything in which the document and the router disagree, or the document says too little."""
    routed = {(method, path) for method, path, _resource, _handler in api_routes(app)}
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    out = [f"routed but not documented: {m} {p}" for m, p in sorted(routed - documented)]
    out += [f"documented but not routed: {m} {p}" for m, p in sorted(documented - routed)]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            if not isinstance(op.get("x-scopes"), list) or not set(op["x-scopes"]) <= set(MACHINE_SCOPES):
                out.append(f"{where}: x-scopes missing or unknown")
            if not op.get("x-roles") or not set(op["x-roles"]) <= {r.value for r in Role}:
                out.append(f"{where}: x-roles missing or unknown")
            if not op.get("summary"):
                out.append(f"{where}: no summary")
            success = [r for status, r in op["responses"].items() if status.startswith("2")]
            if len(success) != 1 or not any(c.get("schema") for c in success[0].get("content", {}).values()):
                out.append(f"{where}: no schema for its success answer")
            if not {"401", "403"} <= op["responses"].keys():
                out.append(f"{where}: the error answers are not documented")
            wants_body = method in ("post", "put", "patch") and (method.upper(), path) not in NO_BODY
            if wants_body and not op.get("requestBody", {}).get("content"):
                out.append(f"{where}: no request schema")
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            if names != {part[1:-1] for part in path.split("/") if part.startswith("{")}:
                out.append(f"{where}: path parameters {sorted(names)} do not match the path")
            if op["x-scopes"] and {"bearer": op["x-scopes"]} not in op["security"]:
                out.append(f"{where}: x-scopes disagree with security")
    return out


async def test_the_document_is_true_to_the_router(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    reader = await session_client(live, "xem_hanoi")
    resp = await reader.get("/api/openapi.json")
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    validate(doc)  # OpenAPI 3.1 (openapi-spec-validator): structure and every schema
    assert doc["openapi"] == "3.1.0"
    assert problems(live.app, doc) == []
    assert sum(len(ops) for ops in doc["paths"].values()) == len(api_routes(live.app))
    # Served to people and to every kind of machine token, never anonymously.
    assert (await live.client().get("/api/openapi.json")).status == 401
    for scope in MACHINE_SCOPES:
        _tid, token = await issue_token(live, "01", frozenset({scope}))
        resp = await live.client().get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200, (scope, await resp.text())


async def test_an_undeclared_route_is_caught_and_refuses_machine_tokens(live_sqlite: LiveServer) -> None:
    """Positive control: the comparison above sees a route nobody declared, and the scope rule
    refuses every machine token on it (a route must opt in to tokens)."""
    live = live_sqlite
    doc = document(live.app)
    assert problems(live.app, doc) == []
    broken = {**doc, "paths": {p: ops for p, ops in doc["paths"].items() if p != "/api/me"}}
    assert problems(live.app, broken) == ["routed but not documented: GET /api/me"]
    op = doc["paths"]["/api/units/{code}"]["get"]
    stripped = {**op, "x-roles": [], "responses": {"200": {"description": "ok"}}}
    assert len(problems(live.app, {**doc, "paths": {**doc["paths"], "/api/units/{code}": {"get": stripped}}})) == 3

    async def undeclared(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/api/khong-khai-bao", undeclared)
    assert problems(app, document(app)) == ["routed but not documented: GET /api/khong-khai-bao"]
    with pytest.raises(TokenScope):  # what scope_middleware runs for a machine principal
        check_scope(contract_of(undeclared), frozenset(MACHINE_SCOPES))
