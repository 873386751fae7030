"""Security headers (#13, finding 13c): a Content-Security-Policy that runs scripts from the site
only and never inline code, nosniff, a referrer policy and no framing — on every kind of response;
templates without inline scripts, handlers or styles; and the pages working under that policy in
real Chromium with no violation reported."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from tests.browser_util import chromium, login, new_page
from tests.conftest import LiveServer
from tests.directive_util import CONCLUSION, INSTRUCTIONS, every_province, live_meeting, ok, start_seed_server

ROOT = Path(__file__).resolve().parent.parent
BRIDGES = "BCA=https://cau-bo.example:8443/whip, 25=http://10.0.25.5:8890"
EXPECTED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                "media-src 'self' blob:; "
                "connect-src 'self' ws: wss: http://10.0.25.5:8890 https://cau-bo.example:8443; "
                "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'")


def assert_secured(resp: aiohttp.ClientResponse, what: str) -> None:
    h = resp.headers
    assert h.get("Content-Security-Policy") == EXPECTED_CSP, (what, h.get("Content-Security-Policy"))
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("X-Frame-Options") == "DENY", what
    assert h.get("Referrer-Policy") == "same-origin", what


async def test_every_kind_of_response_carries_the_security_headers(server_factory: Any, sqlite_url: str) -> None:
    live: LiveServer = await server_factory(sqlite_url, bridges=BRIDGES)
    anonymous = live.client()
    chair = await live.login("chutri")
    cases: list[tuple[str, aiohttp.ClientResponse, int]] = [
        ("login page", await anonymous.get("/login"), 200),
        ("redirect to login", await anonymous.get("/meetings", allow_redirects=False), 303),
        ("static script", await anonymous.get("/static/boot.js"), 200),
        ("HTML page", await chair.get("/"), 200),
        ("JSON API", await chair.get("/api/me"), 200),
        ("HTML error page", await chair.get("/units/khong-co"), 404),
        ("JSON error", await chair.get("/api/meetings/999999"), 404),
        ("JSON 401", await anonymous.get("/api/me"), 401),
        ("form refused (CSRF)", await chair.http.post("/logout", data={}, allow_redirects=False), 403),
        ("health", await anonymous.get("/healthz"), 200),
    ]
    for what, resp, status in cases:
        assert resp.status == status, (what, resp.status)
        assert_secured(resp, what)


# ---------------------------------------------------------------------------------------------
# Templates and scripts: nothing the policy would (rightly) refuse


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower(): v or "" for k, v in attrs}
        where = f"<{tag} {' '.join(k for k, _ in attrs)}> at line {self.getpos()[0]}"
        for name, value in names.items():
            if name.startswith("on"):
                self.problems.append(f"inline handler {name}: {where}")
            if name == "style":
                self.problems.append(f"style attribute: {where}")
            if value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL: {where}")
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.problems.append(f"inline executable script: {where}")
        if tag == "style":
            self.problems.append(f"inline <style>: {where}")


def markup_problems(text: str) -> list[str]:
    # Jinja expressions and statements are not markup; blank them out (keeping line numbers).
    text = re.sub(r"\{[{%#].*?[}%#]\}", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    parser = _Markup()
    parser.feed(text)
    return parser.problems


def test_the_scan_sees_what_csp_would_refuse() -> None:
    """The scanner below can fail: each kind of inline code is found."""
    found = markup_problems('<script type="module">go()</script><script>x()</script><a onclick="x()">'
                            '<p style="color:red"><a href="javascript:x()"><style>p{}</style>'
                            '<script type="application/json" id="d">{}</script><script src="/static/a.js"></script>')
    assert len(found) == 6, found


def test_templates_have_no_inline_script_handler_or_style() -> None:
    problems = {path.name: p for path in sorted((ROOT / "web" / "templates").glob("*.html"))
                if (p := markup_problems(path.read_text(encoding="utf-8")))}
    assert problems == {}


def test_page_scripts_never_evaluate_strings() -> None:
    pattern = re.compile(r"\beval\s*\(|new\s+Function\s*\(|set(?:Timeout|Interval)\s*\(\s*[\"'`]|\.innerHTML\s*=|"
                         r"insertAdjacentHTML|document\.write|setAttribute\(\s*[\"'](?:style|on)")
    found = {str(path.relative_to(ROOT)): pattern.findall(path.read_text(encoding="utf-8"))
             for path in sorted((ROOT / "web" / "static").rglob("*.js"))}
    assert {k: v for k, v in found.items() if v} == {}


# ---------------------------------------------------------------------------------------------
# The pages under the policy, in Chromium


def csp_watch(page: Page, seen: list[str]) -> None:
    def on_console(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
            seen.append(f"{page.url}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.append(f"{page.url}: uncaught {exc}"))


@pytest.mark.browser
async def test_pages_run_under_the_policy_without_a_violation(server_factory: Callable[..., Any],
                                                              sqlite_url: str) -> None:
    live = await start_seed_server(server_factory, sqlite_url)
    chair = await live.login("chutri")
    meeting_id = await live_meeting(chair)
    await ok(await chair.api("POST", f"/api/meetings/{meeting_id}/conclusions", json={
        "text": CONCLUSION, "directives": [every_province(INSTRUCTIONS[1])]}), 201)
    own = (await ok(await (await live.login("vinhphuc")).get("/api/directives")))["assignments"][0]
    connected = "đã kết nối"

    async with chromium() as browser:
        seen: list[str] = []
        page = await new_page(browser)
        csp_watch(page, seen)
        await login(page, live.url, "chutri")
        # Each page's script started (through /static/boot.js) and reached the live socket.
        await page.goto(f"{live.url}/meetings/{meeting_id}/chair")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        await expect(page.locator("#provinces tbody tr")).not_to_have_count(0)
        await page.goto(f"{live.url}/meetings/{meeting_id}/province/26")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        await page.goto(f"{live.url}/slides/BCA")
        await expect(page.locator("#slide-status")).to_have_text(connected)
        await page.goto(f"{live.url}/directives/dashboard")
        await expect(page.locator("#board-status")).to_have_text(connected)

        site = await new_page(browser)
        csp_watch(site, seen)
        await login(site, live.url, "tichson")
        await site.goto(f"{live.url}/meetings/{meeting_id}/site")
        await expect(site.locator("#conn")).to_have_attribute("data-state", "open")

        province = await new_page(browser)
        csp_watch(province, seen)
        await login(province, live.url, "vinhphuc")
        await province.goto(f"{live.url}/assignments/{own['id']}")
        await province.get_by_label("Nội dung báo cáo").fill("Đã xây dựng kế hoạch")
        await province.get_by_label("Tiến độ (%)").fill("40")
        async with province.expect_navigation():  # the form is sent by the page's script, then reloads
            await province.get_by_role("button", name="Gửi báo cáo").click()
        await expect(province.locator("ol.reports")).to_contain_text("Đã xây dựng kế hoạch")
        assert seen == []

        # Positive control: inline code is refused, and the refusal is seen.
        async with province.expect_event("console", lambda m: "Content Security Policy" in m.text):
            await province.evaluate("() => { const s = document.createElement('script'); "
                                    "s.textContent = 'window.inlineRan = true'; document.body.append(s); }")
        assert await province.evaluate("() => window.inlineRan === undefined")
        assert any("Content Security Policy" in line for line in seen), seen
