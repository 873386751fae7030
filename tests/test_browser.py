"""What a person sees in a real browser: headless Chromium against the live server.

Every scenario goes through the pages as a user would (forms, links, keyboard), on the small
seeded tree of conftest (the ministry, Hà Nội, Phú Thọ, Hồ Chí Minh City).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser_util import chromium, login, new_page, shot
from tests.conftest import PASSWORD, LiveServer

pytestmark = pytest.mark.browser

PROVINCES = ("Thành phố Hà Nội", "Phú Thọ", "Thành phố Hồ Chí Minh")


async def html_lang(page: Page) -> str:
    return str(await page.evaluate("document.documentElement.lang"))


async def test_chair_logs_in_and_browses_units(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await page.goto(f"{live_sqlite.url}/")
        # Anonymous: sent to the login form, which remembers where we were going.
        await expect(page).to_have_url(f"{live_sqlite.url}/login?next=/")
        assert await html_lang(page) == "vi"
        await shot(page, tmp_path, "01-login")

        await login(page, live_sqlite.url, "chutri")
        await expect(page).to_have_url(f"{live_sqlite.url}/")
        await expect(page.locator("#my-unit")).to_have_text("Bộ Công an")
        await expect(page.locator("#my-role")).to_have_text("Chủ trì hội nghị")
        rows = page.locator("table#children tbody tr")
        await expect(rows).to_have_count(len(PROVINCES))
        for name in PROVINCES:
            await expect(page.locator("table#children").get_by_role("link", name=name, exact=True)).to_be_visible()
        await expect(page.get_by_role("heading", name="Đơn vị trực thuộc (3)")).to_be_visible()
        await expect(page.locator("main ul.counts li")).to_have_text(["3 Tỉnh/Thành phố", "1 Quận/Huyện",
                                                                      "5 Xã/Phường"])
        await shot(page, tmp_path, "02-home-chair")

        # Into a province: breadcrumbs start at the ministry and end on the current unit.
        await page.locator("table#children").get_by_role("link", name="Thành phố Hồ Chí Minh").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/units/79")
        crumbs = page.get_by_role("navigation", name="breadcrumb").locator("li")
        await expect(crumbs).to_have_text(["Bộ Công an", "Thành phố Hồ Chí Minh"])
        await expect(page.locator("[aria-current=page]")).to_have_text("Thành phố Hồ Chí Minh")
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Thành phố Hồ Chí Minh")
        # Counts are of the units below: the province does not count itself.
        await expect(page.locator("main ul.counts li")).to_have_text(["1 Quận/Huyện", "1 Xã/Phường"])

        # Three tiers deep (a legacy district), then back up through a breadcrumb link.
        await page.locator("table#children").get_by_role("link", name="Quận 1 (cũ)").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/units/760")
        await expect(crumbs).to_have_text(["Bộ Công an", "Thành phố Hồ Chí Minh", "Quận 1 (cũ)"])
        await expect(page.locator("table#children tbody tr")).to_have_count(1)
        await shot(page, tmp_path, "03-unit-district")
        await page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Bộ Công an").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/units/BCA")
        await expect(page.locator("table#children tbody tr")).to_have_count(len(PROVINCES))


async def test_language_switch_and_back(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, live_sqlite.url, "chutri")
        await page.goto(f"{live_sqlite.url}/units/25")
        assert await html_lang(page) == "vi"
        await expect(page.locator("table#children thead")).to_contain_text("Tên đơn vị")

        await page.get_by_role("link", name="English").click()
        # Stays on the same page, now in English.
        await expect(page).to_have_url(f"{live_sqlite.url}/units/25")
        assert await html_lang(page) == "en"
        await expect(page.locator("table#children thead")).to_contain_text("Unit")
        await expect(page.locator("table#children thead")).not_to_contain_text("Tên đơn vị")
        await expect(page.get_by_role("button", name="Log out")).to_be_visible()
        await shot(page, tmp_path, "04-unit-english")

        # The choice sticks across pages.
        await page.goto(f"{live_sqlite.url}/")
        await expect(page.locator("#my-role")).to_have_text("Chair")

        await page.get_by_role("link", name="Tiếng Việt").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/")
        assert await html_lang(page) == "vi"
        await expect(page.locator("#my-role")).to_have_text("Chủ trì hội nghị")
        await expect(page.get_by_role("button", name="Đăng xuất")).to_be_visible()


async def test_keyboard_only_login_and_skip_link(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await page.goto(f"{live_sqlite.url}/login")
        # The username field has autofocus: type, Tab to the password, Enter submits.
        username = page.get_by_label("Tên đăng nhập")
        await expect(username).to_be_focused()
        await page.keyboard.type("chutri")
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Mật khẩu")).to_be_focused()
        await page.keyboard.type(PASSWORD)
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{live_sqlite.url}/")
        await expect(page.locator("#my-role")).to_have_text("Chủ trì hội nghị")

        # On a page without autofocus, the first Tab stop is the skip link, and it is visible then.
        await page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Bỏ qua đến nội dung chính")
        await expect(skip).to_be_focused()
        box = await skip.bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0 and box["width"] > 0, box
        await shot(page, tmp_path, "05-skip-link-focused")
        # Following it lands in <main>: the next Tab stop is the first link of the content, not the header.
        await page.keyboard.press("Enter")
        await expect(page.locator("main#main")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.locator("#my-unit")).to_be_focused()


async def test_wrong_password_shows_error_and_keeps_username(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, live_sqlite.url, "chutri", "khong-dung-mat-khau")
        await expect(page).to_have_url(f"{live_sqlite.url}/login")
        await expect(page.get_by_role("alert")).to_have_text("Tên đăng nhập hoặc mật khẩu không đúng.")
        await expect(page.get_by_label("Tên đăng nhập")).to_have_value("chutri")
        await expect(page.get_by_label("Mật khẩu")).to_have_value("")
        # The cursor waits in the password field: typing again does not append to the username.
        await expect(page.get_by_label("Mật khẩu")).to_be_focused()
        await shot(page, tmp_path, "06-login-wrong-password")
        # The form still works after the error (same CSRF cookie and field), keyboard only.
        await page.keyboard.type(PASSWORD)
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{live_sqlite.url}/")


async def test_province_operator_is_refused_outside_scope(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, live_sqlite.url, "hanoi")
        await expect(page.locator("#my-unit")).to_have_text("Thành phố Hà Nội")
        await expect(page.locator("#my-role")).to_have_text("Vận hành điểm cầu tỉnh")
        await expect(page.locator("table#children tbody tr")).to_have_count(2)
        await expect(page.locator("main ul.counts li")).to_have_text(["2 Xã/Phường"])

        resp = await page.goto(f"{live_sqlite.url}/units/25")
        assert resp is not None and resp.status == 403
        assert await html_lang(page) == "vi"
        await expect(page.get_by_role("heading", level=1)).to_have_text("Lỗi 403")
        await expect(page.get_by_role("alert")).to_have_text("Đơn vị này nằm ngoài phạm vi của bạn")
        await expect(page.get_by_text("Phú Thọ")).to_have_count(0)
        await shot(page, tmp_path, "07-forbidden-403")
        await page.get_by_role("link", name="Về trang chủ").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/")

        # Inside the scope, breadcrumbs start at the operator's own province (nothing above it).
        await page.goto(f"{live_sqlite.url}/units/00070")
        crumbs = page.get_by_role("navigation", name="breadcrumb").locator("li")
        await expect(crumbs).to_have_text(["Thành phố Hà Nội", "Phường Hoàn Kiếm"])


async def open_add_user_form(page: Page) -> None:
    summary = page.locator("details.card > summary")
    if await page.locator("details.card").get_attribute("open") is None:
        await summary.click()
    await expect(page.get_by_label("Tên đăng nhập")).to_be_visible()


async def test_admin_creates_user_through_form(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, live_sqlite.url, "quantri")
        await page.get_by_role("link", name="Tài khoản").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/admin/users")
        await open_add_user_form(page)
        await page.get_by_label("Tên đăng nhập").fill("canbo.hanoi")
        await page.get_by_label("Họ và tên").fill("Nguyễn Thị Hằng")
        await page.get_by_label("Mã đơn vị").fill("01")
        await page.get_by_label("Vai trò").select_option("viewer")
        await page.get_by_label("Mật khẩu").fill("mot-mat-khau-du-dai")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Thêm tài khoản").click()
        await expect(page.get_by_role("status")).to_have_text("Đã tạo tài khoản canbo.hanoi.")
        row = page.locator("tbody tr", has=page.get_by_role("cell", name="canbo.hanoi", exact=True))
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("Nguyễn Thị Hằng")
        await expect(row).to_contain_text("Thành phố Hà Nội")
        await expect(row).to_contain_text("Người dự / theo dõi")
        await expect(row).to_contain_text("Đang hoạt động")
        await shot(page, tmp_path, "08-admin-user-created")

    # The new account really works.
    client = await live_sqlite.login("canbo.hanoi", "mot-mat-khau-du-dai")
    assert "Thành phố Hà Nội" in await (await client.get("/")).text()


async def test_failed_user_creation_keeps_what_was_typed(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, live_sqlite.url, "quantri")
        await page.goto(f"{live_sqlite.url}/admin/users")
        await open_add_user_form(page)
        await page.get_by_label("Tên đăng nhập").fill("canbo.phutho")
        await page.get_by_label("Họ và tên").fill("Trần Văn Bình")
        await page.get_by_label("Mã đơn vị").fill("25")
        await page.get_by_label("Vai trò").select_option("bridge_operator")
        await page.get_by_label("Mật khẩu").fill("ngan")

        # The browser itself refuses the short password first: no request, nothing cleared.
        await page.get_by_role("button", name="Thêm tài khoản").click()
        assert await page.get_by_label("Mật khẩu").evaluate("el => el.validity.tooShort")
        await expect(page.get_by_role("status")).to_have_count(0)
        await expect(page.get_by_label("Tên đăng nhập")).to_have_value("canbo.phutho")

        # Without browser validation (an old browser, a script), the server refuses it and the page
        # comes back with the error and everything typed except the password.
        await page.locator("form[action='/admin/users']").evaluate("f => { f.noValidate = true; }")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Thêm tài khoản").click()
        await expect(page.get_by_role("alert")).to_have_text("Mật khẩu phải có ít nhất 8 ký tự")
        await expect(page.get_by_label("Tên đăng nhập")).to_be_visible()
        await expect(page.get_by_label("Tên đăng nhập")).to_have_value("canbo.phutho")
        await expect(page.get_by_label("Họ và tên")).to_have_value("Trần Văn Bình")
        await expect(page.get_by_label("Mã đơn vị")).to_have_value("25")
        await expect(page.get_by_label("Vai trò")).to_have_value("bridge_operator")
        await expect(page.get_by_label("Mật khẩu")).to_have_value("")
        await expect(page.locator("tbody").get_by_role("cell", name="canbo.phutho", exact=True)).to_have_count(0)
        await shot(page, tmp_path, "09-admin-user-error")

        # A unit code that does not exist: same — error, nothing lost; then fix it and succeed.
        await page.get_by_label("Mã đơn vị").fill("99999")
        await page.get_by_label("Mật khẩu").fill("mot-mat-khau-du-dai")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Thêm tài khoản").click()
        await expect(page.get_by_role("alert")).to_be_visible()
        await expect(page.get_by_label("Tên đăng nhập")).to_have_value("canbo.phutho")
        await expect(page.get_by_label("Họ và tên")).to_have_value("Trần Văn Bình")
        await expect(page.get_by_label("Mã đơn vị")).to_have_value("99999")
        await page.get_by_label("Mã đơn vị").fill("25")
        await page.get_by_label("Mật khẩu").fill("mot-mat-khau-du-dai")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Thêm tài khoản").click()
        await expect(page.get_by_role("status")).to_have_text("Đã tạo tài khoản canbo.phutho.")
        await expect(page.locator("tbody").get_by_role("cell", name="canbo.phutho", exact=True)).to_have_count(1)


async def test_logout_returns_to_login(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser)
        await login(page, live_sqlite.url, "chutri")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Đăng xuất").click()
        await expect(page).to_have_url(f"{live_sqlite.url}/login?m=out")
        await expect(page.get_by_role("status")).to_have_text("Bạn đã đăng xuất.")
        await expect(page.get_by_role("button", name="Đăng nhập")).to_be_visible()
        await shot(page, tmp_path, "10-logged-out")
        # The session is gone: the home page asks for a login again.
        await page.goto(f"{live_sqlite.url}/")
        await expect(page).to_have_url(f"{live_sqlite.url}/login?next=/")


MOBILE_WIDTH = 375


async def horizontal_overflow(page: Page) -> int:
    """How far the page scrolls sideways beyond a 375 px phone (tables may scroll inside .table-wrap).
    Compared with the fixed width, not innerWidth: a mobile browser widens its layout viewport when
    content overflows, which would hide the very thing measured."""
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    return int(width) - MOBILE_WIDTH


async def test_mobile_has_no_horizontal_scroll(live_sqlite: LiveServer, tmp_path: Path) -> None:
    async with chromium() as browser:
        page = await new_page(browser, width=MOBILE_WIDTH, height=740, mobile=True)
        await page.goto(f"{live_sqlite.url}/login")
        assert await page.evaluate("window.innerWidth") == MOBILE_WIDTH
        assert await horizontal_overflow(page) <= 1
        await shot(page, tmp_path, "11-mobile-login")
        await login(page, live_sqlite.url, "quantri")
        await expect(page.locator("table#children")).to_be_visible()
        # Nothing hides overflow on the document: a hidden overflow would make the check meaningless.
        assert await page.evaluate("getComputedStyle(document.body).overflowX") == "visible"
        overflow = await horizontal_overflow(page)
        await shot(page, tmp_path, "12-mobile-home")
        assert overflow <= 1, f"home page scrolls sideways by {overflow}px at 375px"
        for path in ("/units/79", "/admin/users"):
            await page.goto(f"{live_sqlite.url}{path}")
            overflow = await horizontal_overflow(page)
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 375px"
        await shot(page, tmp_path, "13-mobile-admin-users")
