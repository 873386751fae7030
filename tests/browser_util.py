"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium (or $HOINGHI_TEST_CHROMIUM),
driven by Playwright without ever downloading a browser of its own.

One browser per test: pytest-asyncio gives every test its own event loop, and a Playwright
browser belongs to the loop that launched it. A launch costs about a second.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import PASSWORD, need_service

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # media (#4): a fake camera and microphone, no permission prompt, sound without a click
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"]
# A copy of every screenshot for a human to look at (not part of the repository).
SHOTS_DIR = Path("/tmp/hoinghi-shots")


def chromium_path() -> str:
    path = os.environ.get("HOINGHI_TEST_CHROMIUM") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        need_service(f"Chromium not found at {path}: apt-get install -y chromium (or set HOINGHI_TEST_CHROMIUM)")
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, *, width: int = 1280, height: int = 800, mobile: bool = False) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN",
                                        is_mobile=mobile, has_touch=mobile)
    context.set_default_timeout(10_000)
    return await context.new_page()


async def shot(page: Page, tmp_path: Path, name: str) -> Path:
    """Full-page screenshot into the test's tmp_path, copied to /tmp/hoinghi-shots/."""
    target = tmp_path / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    await asyncio.to_thread(_copy_for_people, target)
    return target


def _copy_for_people(target: Path) -> None:
    try:
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, SHOTS_DIR / target.name)
    except OSError:
        pass  # the copy is a convenience for people; the test's own file is what counts


async def login(page: Page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the real form, as a person would; ends on the page after login."""
    await page.goto(f"{base_url}/login")
    await page.get_by_label("Tên đăng nhập").fill(username)
    await page.get_by_label("Mật khẩu").fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Đăng nhập").click()
