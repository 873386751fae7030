"""Issue #13, finding 9 (HTTP half): hostile requests across the routes, as logged-in accounts
that may use them, each answered with a 4xx and a stable JSON ``code`` (under /api/) — never a
500 — and nothing in the database changes. Deep JSON, lone surrogates, integers past 2⁶³−1,
non-ASCII digits in ids, wrong JSON types, bodies that are not objects, empty bodies, wrong
content types, forms that are not UTF-8, and multipart bodies without the CSRF header."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import aiohttp
import pytest
from sqlalchemy import select

from server.state import DB
from sessions.models import AuditEntry
from tests.conftest import LiveServer
from tests.test_scope import changed, fixture_ids, session_client, snapshot

BIG = "99999999999999999999"  # > 2⁶³−1
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Hostile:
    label: str
    who: str
    method: str
    path: str  # may name fixture ids: {meeting_shared}, {assignment_01}…
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    status: int | None = None  # exact status when it matters; else any 4xx
    code: str | None = None  # exact code when it matters; else any (under /api/)
    csrf: bool = True


def raw(text: str) -> bytes:
    """A body as written (``BIG`` stands for an integer past 2⁶³−1)."""
    return text.replace("BIG", BIG).encode("utf-8", "surrogatepass")


def multipart(*parts: tuple[str, bytes] | tuple[str, bytes, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written by hand (so it can be as wrong as a test needs): parts
    (name, value[, filename]); a part named "files" is a file (default name bao-cao.pdf)."""
    out = b""
    for name, value, *rest in parts:
        disposition = "form-data" + (f'; name="{name}"' if name else "")
        if name == "files":
            disposition += f"; filename=\"{rest[0] if rest else 'bao-cao.pdf'}\""
        out += b"--b0undary\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + value + b"\r\n"
    return out + b"--b0undary--\r\n", {"Content-Type": "multipart/form-data; boundary=b0undary"}


MEETING = "/api/meetings/{meeting_shared}"
REPORT = "/api/assignments/{assignment_01}/reports"
DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000
NESTED_40 = '{"reports":' + "[" * 40 + "]" * 40 + "}"
KPI = '{"reports":[{"report_id":"x","unit":"00070","indicator":"DVC_TY_LE_DUNG_HAN","period":"2022-06",%s}]}'

HOSTILE = [
    # JSON nesting: RecursionError in json.loads, and merely too deep
    Hostile("deep list", "chutri", "POST", "/api/meetings", raw(DEEP_LIST), status=400, code="json_too_deep"),
    Hostile("deep object", "chutri", "POST", f"{MEETING}/state", raw(DEEP_OBJECT), status=400, code="json_too_deep"),
    Hostile("40 levels", "hanoi", "POST", "/api/kpi/reports", raw(NESTED_40), status=400, code="json_too_deep"),
    # lone surrogates in strings and keys
    Hostile("surrogate title", "chutri", "POST", "/api/meetings",
            raw('{"title":"\\ud800","start":"2099-01-01T08:00","participants":[{"unit":"01","levels":["province"]}]}'),
            status=400, code="text_invalid"),
    Hostile("surrogate key", "quantri", "POST", "/api/users", raw('{"\\udfff":1}'), status=400, code="text_invalid"),
    Hostile("surrogate reason", "chutri", "POST", f"{MEETING}/rollcall",
            raw('{"unit":"00070","status":"absent","reason":"m\\ud83d"}'), status=400, code="text_invalid"),
    Hostile("surrogate conclusion", "chutri", "POST", f"{MEETING}/conclusions", raw('{"text":"\\udc00"}'),
            status=400, code="text_invalid"),
    Hostile("surrogate breakdown", "hanoi", "POST", "/api/assignments/{assignment_01}/breakdown",
            raw('{"text":"\\ud800","deadline":"2099-01-01","units":["00070"]}'), status=400, code="text_invalid"),
    Hostile("surrogate token name", "quantri", "POST", "/api/tokens",
            raw('{"name":"\\ud800","unit_code":"01","scopes":["units:read"],"days":1}'), status=400,
            code="text_invalid"),
    Hostile("surrogate correction", "chutri", "POST", "/api/meetings/{meeting_done}/minutes/corrections",
            raw('{"reason":"\\ud800","changes":{"title":"x"}}'), status=400, code="text_invalid"),
    Hostile("surrogate KPI unit", "hanoi", "POST", "/api/kpi/reports", raw(KPI % '"value":1,"x":"\\ud800"'),
            status=400, code="text_invalid"),
    Hostile("surrogate report", "hanoi", "POST", REPORT, raw('{"text":"\\ud800","percent":10}'), status=400,
            code="text_invalid"),
    # integers past 2⁶³−1 in JSON
    Hostile("huge unit_id grant", "chutri", "POST", f"{MEETING}/floor",
            raw('{"action":"grant","unit_id":BIG,"confirm":true}'), status=400, code="json_number_too_large"),
    Hostile("huge unit_id hand", "chutri", "POST", f"{MEETING}/hand", raw('{"up":false,"unit_id":BIG}'),
            status=400, code="json_number_too_large"),
    Hostile("huge unit_id mute", "chutri", "POST", f"{MEETING}/mute", raw('{"muted":true,"unit_id":BIG}'),
            status=400, code="json_number_too_large"),
    Hostile("negative huge days", "quantri", "POST", "/api/tokens",
            raw('{"name":"x","unit_code":"01","scopes":["units:read"],"days":-BIG}'), status=400,
            code="json_number_too_large"),
    Hostile("huge percent", "hanoi", "POST", REPORT, raw('{"text":"x","percent":1BIG}'), status=400),
    Hostile("KPI value 10^20", "hanoi", "POST", "/api/kpi/reports", raw(KPI % '"value":100000000000000000000'),
            status=400),
    Hostile("NaN percent", "hanoi", "POST", REPORT, raw('{"text":"x","percent":NaN}'), status=400,
            code="json_invalid"),
    # wrong JSON types
    Hostile("KPI value as list", "hanoi", "POST", "/api/kpi/reports", raw(KPI % '"value":[1,2]'), status=400),
    Hostile("KPI denominator as object", "hanoi", "POST", "/api/kpi/reports",
            raw(KPI % '"value":1,"denominator":{"a":1}'), status=400),
    Hostile("KPI report as list", "hanoi", "POST", "/api/kpi/reports", raw('{"reports":[[1,2]]}'), status=400),
    Hostile("reports as object", "hanoi", "POST", "/api/kpi/reports", raw('{"reports":{"a":1}}'), status=400),
    Hostile("participants as string", "chutri", "POST", "/api/meetings",
            raw('{"title":"x","start":"2099-01-01T08:00","participants":"01"}'), status=400),
    Hostile("participant levels as number", "chutri", "POST", "/api/meetings",
            raw('{"title":"x","start":"2099-01-01T08:00","participants":[{"unit":"01","levels":7}]}'), status=400),
    Hostile("agenda of numbers", "chutri", "POST", "/api/meetings",
            raw('{"title":"x","start":"2099-01-01T08:00","agenda":[1,2]}'), status=400, code="agenda_invalid"),
    Hostile("directives as object", "chutri", "POST", f"{MEETING}/conclusions",
            raw('{"text":"x","directives":{"a":1}}'), status=400),
    Hostile("directive units as object", "chutri", "POST", f"{MEETING}/conclusions",
            raw('{"text":"x","directives":[{"text":"y","deadline":"2099-01-01","units":{"01":1}}]}'), status=400),
    Hostile("directive every as list", "hanoi", "POST", "/api/assignments/{assignment_01}/breakdown",
            raw('{"text":"y","deadline":"2099-01-01","every":["01"]}'), status=400),
    Hostile("changes as list", "chutri", "POST", "/api/meetings/{meeting_done}/minutes/corrections",
            raw('{"reason":"x","changes":[1]}'), status=400),
    Hostile("chair as string", "chutri", "POST", "/api/meetings/{meeting_done}/minutes/corrections",
            raw('{"reason":"x","changes":{"chair":"x"}}'), status=400),
    Hostile("scopes as string", "quantri", "POST", "/api/tokens",
            raw('{"name":"x","unit_code":"01","scopes":"units:read","days":1}'), status=400),
    Hostile("percent as list", "hanoi", "POST", REPORT, raw('{"text":"x","percent":[50]}'), status=400),
    # bodies that are not an object, empty, not JSON, not UTF-8
    Hostile("array body", "chutri", "POST", f"{MEETING}/state", raw('["live"]'), status=400, code="json_invalid"),
    Hostile("string body", "quantri", "POST", "/api/users", raw('"quantri"'), status=400, code="json_invalid"),
    Hostile("null body", "quantri", "POST", "/api/tokens", raw("null"), status=400, code="json_invalid"),
    Hostile("empty body", "chutri", "POST", f"{MEETING}/floor", b"", status=400, code="json_invalid"),
    Hostile("not UTF-8", "chutri", "POST", "/api/meetings", b'{"title":"\xff\xfe"}', status=400, code="json_invalid"),
    Hostile("unknown charset", "chutri", "POST", f"{MEETING}/state", raw('{"to":"nowhere"}'),
            headers={"Content-Type": "application/json; charset=x-bogus"}, status=400),
    Hostile("text/plain", "chutri", "POST", f"{MEETING}/mute", raw('{"muted":true}'),
            headers={"Content-Type": "text/plain"}, status=400, code="json_required"),
    Hostile("no content type", "hanoi", "POST", "/api/kpi/reports", raw('{"reports":[]}'), headers={}, status=400,
            code="json_required"),
    # ids in the path: past 2⁶³−1, or digits that are not ASCII (the route's \d takes them)
    Hostile("huge meeting id", "chutri", "GET", f"/api/meetings/{BIG}", status=404, code="not_found"),
    Hostile("huge meeting id, state", "chutri", "POST", f"/api/meetings/{BIG}/state", raw('{"to":"live"}'),
            status=404),
    Hostile("huge assignment id", "hanoi", "GET", f"/api/assignments/{BIG}", status=404),
    Hostile("huge directive id", "hanoi", "GET", "/api/directives/9223372036854775808", status=404),
    Hostile("huge attachment id", "hanoi", "GET", f"/api/attachments/{BIG}", status=404),
    Hostile("huge user id", "quantri", "POST", f"/api/users/{BIG}/lock", status=404),
    Hostile("huge token id", "quantri", "DELETE", f"/api/tokens/{BIG}", status=404),
    Hostile("huge conclusion id", "chutri", "POST", f"/api/conclusions/{BIG}/directives",
            raw('{"text":"y","deadline":"2099-01-01","units":["01"]}'), status=404),
    Hostile("Arabic-Indic meeting id", "chutri", "GET", "/api/meetings/١٢٣", status=404),
    Hostile("huge meeting page", "chutri", "GET", f"/meetings/{BIG}/chair", status=404),
    Hostile("huge assignment page", "hanoi", "GET", f"/assignments/{BIG}", status=404),
    # ids and numbers in the query
    Hostile("superscript meeting", "chutri", "GET", "/api/directives/dashboard?meeting=²", status=400,
            code="id_invalid"),
    Hostile("huge meeting query", "chutri", "GET", f"/api/directives/dashboard?meeting={BIG}", status=400,
            code="id_invalid"),
    Hostile("Arabic-Indic depth", "chutri", "GET", "/api/directives/dashboard?depth=١", status=400,
            code="id_invalid"),
    Hostile("superscript version", "chutri", "GET", "/api/meetings/{meeting_done}/minutes?version=²", status=400,
            code="version_invalid"),
    Hostile("huge version", "chutri", "GET", f"/api/meetings/{{meeting_done}}/minutes?version={BIG}", status=400,
            code="version_invalid"),
    Hostile("NUL unit code", "hanoi", "GET", "/api/units/%00", status=404),
    Hostile("NUL unit query", "hanoi", "GET", "/api/directives?unit=%00", status=404),
    Hostile("NUL rollcall unit query", "chutri", "GET", f"{MEETING}/rollcall?unit=%00", status=404),
    Hostile("NUL KPI unit", "hanoi", "GET", "/api/kpi/%00", status=404),
    # NUL in values that are looked up or stored (PostgreSQL refuses NUL in text)
    Hostile("NUL rollcall unit", "chutri", "POST", f"{MEETING}/rollcall",
            raw('{"unit":"\\u0000","status":"present_in_person"}'), status=404),
    Hostile("NUL mute unit", "chutri", "POST", f"{MEETING}/mute", raw('{"muted":true,"unit":"0\\u00007"}'),
            status=404),
    Hostile("NUL grant unit", "chutri", "POST", f"{MEETING}/floor", raw('{"action":"grant","unit":"\\u0000"}'),
            status=404),
    Hostile("NUL participant", "chutri", "POST", "/api/meetings",
            raw('{"title":"x","start":"2099-01-01T08:00","participants":[{"unit":"\\u0000","levels":["province"]}]}')),
    Hostile("NUL directive unit", "chutri", "POST", f"{MEETING}/conclusions",
            raw('{"text":"x","directives":[{"text":"y","deadline":"2099-01-01","units":["\\u0000"]}]}')),
    Hostile("NUL KPI report unit", "hanoi", "POST", "/api/kpi/reports", raw(KPI % '"value":1').replace(
        b'"unit":"00070"', b'"unit":"\\u0000"')),
    Hostile("NUL KPI report id", "hanoi", "POST", "/api/kpi/reports", raw(KPI % '"value":1').replace(
        b'"report_id":"x"', b'"report_id":"\\u0000"')),
    Hostile("NUL KPI indicator", "hanoi", "POST", "/api/kpi/reports", raw(KPI % '"value":1').replace(
        b'"indicator":"DVC_TY_LE_DUNG_HAN"', b'"indicator":"\\u0000"')),
    Hostile("NUL user unit", "quantri", "POST", "/api/users", raw(
        '{"username":"nguoimoi","full_name":"A","unit_code":"\\u0000","role":"viewer","password":"mk-dai-du-12"}')),
    Hostile("surrogate period", "hanoi", "GET", "/api/kpi/01?period=%ED%A0%80", status=400),
    # forms: not UTF-8, unknown charset, too many fields; multipart without the CSRF header
    Hostile("form not UTF-8", "chutri", "POST", "/meetings", b"title=%FF&start=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"}, status=400),
    Hostile("form unknown charset", "quantri", "POST", "/admin/users", b"username=abc",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=x-bogus"}, status=400),
    Hostile("form with 500 fields", "quantri", "POST", "/admin/users", "&".join(f"f{i}=1" for i in range(500)).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"}, status=413),
    Hostile("multipart without CSRF header", "hanoi", "POST", REPORT, *multipart(("csrf_token", b"{csrf}"),
            ("text", b"x"), ("percent", b"10"), ("files", b"%PDF-1.4")), csrf=False, status=403, code="csrf_required"),
    Hostile("import page without CSRF header", "quantri", "POST", "/admin/units/import",
            *multipart(("csrf_token", b"{csrf}"), ("file", b"code,name,level,parent_code\n")), csrf=False,
            status=403),
    Hostile("multipart broken boundary", "hanoi", "POST", REPORT, b"--x\r\nnot a part\r\n",
            {"Content-Type": "multipart/form-data; boundary=y"}, status=400),
    Hostile("multipart 30 fields", "hanoi", "POST", REPORT, *multipart(*((f"f{i}", b"x") for i in range(30))),
            status=400, code="form_too_many_fields"),
    Hostile("multipart 30 nameless parts", "hanoi", "POST", REPORT, *multipart(*(("", b"x") for i in range(30))),
            status=400, code="form_too_many_fields"),
    Hostile("multipart field not UTF-8", "hanoi", "POST", REPORT, *multipart(("text", b"\xff\xfe"),
            ("percent", b"10")), status=400, code="form_invalid"),
    Hostile("multipart filename with NUL", "hanoi", "POST", REPORT, *multipart(("text", b"x"), ("percent", b"10"),
            ("files", b"%PDF-1.4", "bao%00cao.pdf")), status=400, code="text_control_char"),
]


async def _send(http: aiohttp.ClientSession, h: Hostile, csrf: str, ids: dict[str, int]) -> aiohttp.ClientResponse:
    path = h.path.format(**ids)
    headers = dict(h.headers)
    if h.csrf:
        headers["X-CSRF-Token"] = csrf
    body = None if h.body is None else h.body.replace(b"{csrf}", csrf.encode())
    return await http.request(h.method, path, data=body, headers=headers, allow_redirects=False,
                              skip_auto_headers=() if "Content-Type" in headers else ("Content-Type",))


def _attachment_files(live: LiveServer) -> set[str]:
    root = live.settings.attachment_path
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


async def test_hostile_requests_get_a_4xx_with_a_code_and_change_nothing(
        live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    ids = await fixture_ids(live)
    clients = {name: await session_client(live, name) for name in {h.who for h in HOSTILE}}
    before, files = await snapshot(live), _attachment_files(live)
    failures = []
    with caplog.at_level(logging.ERROR, logger="hoinghi.errors"):
        for h in HOSTILE:
            c = clients[h.who]
            resp = await _send(c.http, h, c.csrf, ids)
            text = await resp.text()
            where = f"{h.label}: {h.method} {h.path} → {resp.status} {text[:160]!r}"
            if not 400 <= resp.status < 500 or (h.status is not None and resp.status != h.status):
                failures.append(where)
                continue
            if h.path.startswith("/api/"):
                try:
                    error = (await resp.json())["error"]
                except (ValueError, KeyError, aiohttp.ContentTypeError):
                    failures.append(f"{where}: no JSON error")
                    continue
                if not error.get("code") or not error.get("message") or (h.code and error["code"] != h.code):
                    failures.append(f"{where}: code {error.get('code')!r}, wanted {h.code!r}")
    assert not failures, "\n".join(failures)
    assert not [r for r in caplog.records if r.name == "hoinghi.errors"], "a hostile request reached a 500"
    assert changed(before, await snapshot(live)) == set()
    assert _attachment_files(live) == files, "a refused upload left a file behind"


def test_the_table_is_large_enough() -> None:
    assert len(HOSTILE) >= 50


async def test_hostile_text_reaching_the_audit_trail_is_recorded(live: LiveServer) -> None:
    """Text the server only records (a file name in the query, a typed user name) may hold NUL:
    the audit row is written with U+FFFD in its place instead of failing the request."""
    admin = await session_client(live, "quantri")
    resp = await admin.http.post("/api/units/import", params={"filename": "don\x00vi.csv"},
                                 data="code,name,level,parent_code\n01,Thành phố Hà Nội,province,BCA\n".encode(),
                                 headers={"Content-Type": "text/csv", "X-CSRF-Token": admin.csrf})
    assert resp.status == 200, await resp.text()
    async with live.app[DB]() as db:
        targets = (await db.execute(select(AuditEntry.target).where(AuditEntry.action == "units_imported"))).scalars()
        assert list(targets) == ["don\ufffdvi.csv"]
    http = live.client()
    page = await (await http.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    resp = await http.post("/login", data={"username": "quan\x00tri", "password": "sai", "csrf_token": token.group(1)},
                           allow_redirects=False)
    assert resp.status in (400, 401), resp.status
