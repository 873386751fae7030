"""The KPI catalog beyond the built-in Đề án 06 indicators: an admin of the ministry adds indicators
from the page or a CSV file; they are reported on and shown on slides at once; bad definitions are
refused naming the line and field, and a refused file adds nothing. Slides also show the change
since the unit's previous concluded meeting and a trend of its last months."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from server import db as dbmod
from server.db import transaction
from server.services import kpi_slides
from server.state import DB
from sessions.errors import ValidationFailed
from sessions.kpi import BUILTIN, Direction, Kind, Thresholds, indicator_from_spec
from sessions.store import kpi_catalog, units
from tests.conftest import Client, LiveServer
from tests.live_util import schedule, set_state

# ---------------------------------------------------------------------------------------------
# Rules


def spec(**over: str) -> dict[str, str]:
    base = {"code": "CCCD_CAP_MOI", "name": "Căn cước công dân cấp mới / kế hoạch", "kind": "ratio", "unit": "%",
            "direction": "higher", "target": "100", "green_at": "95", "amber_at": "80", "period": "month",
            "level_thresholds": "commune=90/70; province = 92,5/80"}
    return {**base, **over}


def test_a_ratio_from_percent_text() -> None:
    ind = indicator_from_spec(spec())
    assert (ind.code, ind.kind, ind.direction, ind.period) == ("CCCD_CAP_MOI", Kind.RATIO, Direction.HIGHER, "month")
    assert ind.target == 1.0 and ind.thresholds == Thresholds(0.95, 0.80)
    assert ind.by_level == {"commune": Thresholds(0.9, 0.7), "province": Thresholds(0.925, 0.8)}
    count = indicator_from_spec(spec(code="vu_viec", kind="count", unit="vụ", direction="lower", target="0",
                                     green_at="0", amber_at="3", level_thresholds=""))
    assert (count.code, count.thresholds, count.target) == ("VU_VIEC", Thresholds(0, 3), 0)


@pytest.mark.parametrize(("over", "fld", "words"), [
    ({"code": "1ABC"}, "code", "Mã chỉ tiêu"),
    ({"code": "DVC_TY_LE_DUNG_HAN"}, "code", "đã có"),
    ({"name": "  "}, "name", "Tên chỉ tiêu"),
    ({"kind": "average"}, "kind", "Loại"),
    ({"kind": "count", "unit": ""}, "unit", "Đơn vị tính"),
    ({"direction": "up"}, "direction", "Chiều"),
    ({"period": "week"}, "period", "Kỳ"),
    ({"target": "120"}, "target", "không quá 100"),
    ({"target": "-1"}, "target", "không âm"),
    ({"target": "nhiều"}, "target", "không phải là số"),
    ({"green_at": "80", "amber_at": "95"}, "green_at", "kém hơn"),
    ({"amber_at": ""}, "green_at", "cả ngưỡng"),
    ({"level_thresholds": "village=1/2"}, "level_thresholds", "cấp"),
    ({"level_thresholds": "commune=70/90"}, "level_thresholds", "kém hơn"),
])
def test_bad_definitions_are_refused_naming_the_field(over: dict[str, str], fld: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        indicator_from_spec(spec(**over))
    assert err.value.detail["field"] == fld and words in err.value.message, err.value.message


def test_taken_codes_and_unknown_columns() -> None:
    with pytest.raises(ValidationFailed, match="đã có"):
        indicator_from_spec(spec(), taken={"CCCD_CAP_MOI"})
    with pytest.raises(ValidationFailed, match="Cột không được hỗ trợ"):
        indicator_from_spec({**spec(), "colour": "red"})


# ---------------------------------------------------------------------------------------------
# Through the server


async def upload(c: Client, text: str) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("csrf_token", c.csrf)
    form.add_field("file", text.encode(), filename="chi-tieu.csv", content_type="text/csv")
    # Like the page's form: the CSRF token rides the action's query (an upload is checked before its body is read).
    return await c.http.post("/admin/indicators/upload", params={"csrf": c.csrf}, data=form, allow_redirects=False)


def ratio_report(rid: str, code: str, indicator: str, num: int, den: int, period: str = "campaign") -> dict[str, Any]:
    return {"report_id": rid, "unit": code, "indicator": indicator, "period": period, "value": num,
            "denominator": den}


async def slide_row(c: Client, unit: str, code: str) -> dict[str, Any] | None:
    resp = await c.api("GET", f"/api/kpi/{unit}")
    assert resp.status == 200, await resp.text()
    return next((i for i in (await resp.json())["indicators"] if i["code"] == code), None)


async def test_admin_adds_an_indicator_and_sites_report_it(live: LiveServer) -> None:
    admin, site = await live.login("quantri"), await live.login("vinhyen")
    # Before it exists, a report naming it is refused.
    refused = await site.api("POST", "/api/kpi/reports",
                             json={"reports": [ratio_report("cc-1", "08707", "CCCD_CAP_MOI", 45, 50)]})
    assert refused.status == 400 and (await refused.json())["error"]["code"] == "kpi_indicator_unknown"

    page = await admin.post_form("/admin/indicators", spec())
    text = await page.text()
    assert page.status == 200 and "Đã thêm chỉ tiêu CCCD_CAP_MOI" in text, text
    assert 'data-code="CCCD_CAP_MOI"' in text

    ok = await site.api("POST", "/api/kpi/reports",
                        json={"reports": [ratio_report("cc-1", "08707", "CCCD_CAP_MOI", 45, 50)]})
    assert ok.status == 200, await ok.text()
    row = await slide_row(site, "08707", "CCCD_CAP_MOI")
    assert row is not None and (row["num"], row["den"], row["percent"], row["colour"]) == (45, 50, 90.0, "green")
    national = await slide_row(admin, "BCA", "CCCD_CAP_MOI")
    assert national is not None and (national["num"], national["den"], national["colour"]) == (45, 50, "amber")

    # The same code again: refused, what was typed is kept in the form.
    again = await admin.post_form("/admin/indicators", spec(name="Tên khác"))
    text = await again.text()
    assert again.status == 400 and "đã có trong danh mục" in text and 'value="Tên khác"' in text


async def test_a_file_is_added_whole_or_not_at_all(live: LiveServer) -> None:
    admin = await live.login("quantri")
    header = "code,name,kind,unit,direction,target,green_at,amber_at,period\n"
    bad = header + ("VU_AN_MOI,Vụ án khởi tố mới,count,vụ,lower,0,0,3,month\n"
                    "TY_LE_X,Tỷ lệ X,ratio,%,higher,150,95,80,month\n")
    resp = await upload(admin, bad)
    text = await resp.text()
    assert resp.status == 400 and "Dòng 3: Mục tiêu: tỷ lệ không quá 100 %" in text, text
    async with live.app[DB]() as db:
        assert "VU_AN_MOI" not in await kpi_catalog.load(db)
    for broken, words in (("code;name;kind\nA;b;count\n", "Dòng 1"), ("\ufeffcode,name\nAB,x\n", "thiếu cột: kind"),
                          (header + "AB,x,count\n", "Dòng 2: có 3 cột"), (header, "Dòng 2: tệp không có chỉ tiêu")):
        resp = await upload(admin, broken)
        assert resp.status == 400 and words in await resp.text(), broken
    resp = await upload(admin, "\ufeff" + header + "VU_AN_MOI,Vụ án khởi tố mới,count,vụ,lower,0,0,3,month\n"
                                                   "TY_LE_X,Tỷ lệ X,ratio,%,higher,95,95,80,quarter\n")
    assert resp.status == 200 and "Đã thêm 2 chỉ tiêu: VU_AN_MOI, TY_LE_X" in await resp.text()
    async with live.app[DB]() as db:
        catalog = await kpi_catalog.load(db)
    assert [i.code for i in catalog][-2:] == ["VU_AN_MOI", "TY_LE_X"]
    assert len(catalog) == len(BUILTIN) + 2 and catalog.by_code["TY_LE_X"].period == "quarter"


async def test_only_the_ministry_admin_changes_the_catalog(live: LiveServer) -> None:
    for username in ("qt_hanoi", "chutri", "hanoi"):
        c = await live.login(username)
        assert (await c.get("/admin/indicators")).status == 403, username
        assert (await c.post_form("/admin/indicators", spec(code=f"X_{username.upper()}"))).status == 403
    async with live.app[DB]() as db:
        assert len(await kpi_catalog.load(db)) == len(BUILTIN)


# ---------------------------------------------------------------------------------------------
# Change since the previous meeting, trend


async def test_change_since_the_previous_concluded_meeting(live: LiveServer) -> None:
    admin, chair = await live.login("quantri"), await live.login("chutri")
    post = [ratio_report("vy-on-time", "08707", "DVC_TY_LE_DUNG_HAN", 80, 100),
            {"report_id": "vy-late", "unit": "08707", "indicator": "NV_CHAM_TIEN_DO", "period": "campaign",
             "value": 4}]
    assert (await admin.api("POST", "/api/kpi/reports", json={"reports": post})).status == 200
    row = await slide_row(admin, "08707", "DVC_TY_LE_DUNG_HAN")
    assert row is not None and row["change"] is None  # no meeting yet
    mid = await schedule(chair, title="Giao ban tháng 7")
    await set_state(chair, mid, "rehearsal", "live", "concluded")
    # After the meeting: better on-time rate, more tasks behind schedule.
    post = [ratio_report("vy-on-time", "08707", "DVC_TY_LE_DUNG_HAN", 93, 100),
            {"report_id": "vy-late", "unit": "08707", "indicator": "NV_CHAM_TIEN_DO", "period": "campaign",
             "value": 6}]
    assert (await admin.api("POST", "/api/kpi/reports", json={"reports": post})).status == 200
    async with live.app[DB]() as db:
        unit = await units.get_by_code(db, "08707")
        slide = (await kpi_slides.slides(db, [unit.id]))[unit.id]
    rows = {i["code"]: i for i in slide["indicators"]}
    assert slide["previous"]["meeting"] == "Giao ban tháng 7"
    assert {k: rows["DVC_TY_LE_DUNG_HAN"]["change"][k] for k in ("delta", "points", "better", "previous")} == {
        "delta": 13.0, "points": True, "better": True, "previous": 80.0}
    assert {k: rows["NV_CHAM_TIEN_DO"]["change"][k] for k in ("delta", "points", "better")} == {
        "delta": 2.0, "points": False, "better": False}
    # The province rolled up the same change; an indicator with no data then has no change.
    province = await slide_row(admin, "25", "DVC_TY_LE_DUNG_HAN")
    assert province is not None and province["change"]["delta"] == 13.0
    assert rows["CU_TRU_TRUC_TUYEN"]["change"] is None

    # A later meeting becomes the reference.
    mid2 = await schedule(chair, title="Giao ban tháng 8")
    await set_state(chair, mid2, "rehearsal", "live", "concluded")
    row = await slide_row(admin, "08707", "DVC_TY_LE_DUNG_HAN")
    assert row is not None and row["change"]["meeting"] == "Giao ban tháng 8" and row["change"]["delta"] == 0


async def test_trend_holds_the_last_six_months(live: LiveServer) -> None:
    site = await live.login("vinhyen")
    months = [f"2021-{m:02d}" for m in range(5, 13)]  # eight months
    reports = [ratio_report(f"t-{p}", "08707", "CU_TRU_TRUC_TUYEN", 50 + i * 5, 100, p) for i, p in enumerate(months)]
    reports.append(ratio_report("t-q", "08707", "CU_TRU_TRUC_TUYEN", 1, 2, "2021-Q4"))  # quarters are not months
    resp = await site.api("POST", "/api/kpi/reports", json={"reports": reports})
    assert resp.status == 200, await resp.text()
    row = await slide_row(site, "08707", "CU_TRU_TRUC_TUYEN")
    assert row is not None
    assert row["trend"] == [{"period": p, "value": float(50 + i * 5)} for i, p in enumerate(months)][-6:]
    assert row["has_data"] is False  # the campaign figure is separate from monthly ones


async def test_catalog_seen_by_a_second_engine(live: LiveServer, db_url: str) -> None:
    """Another server process (its own engine and cache) sees an added indicator at its next read."""
    engine = dbmod.make_engine(db_url)
    other = dbmod.sessionmaker(engine)
    try:
        async with other() as db:
            before = len(await kpi_catalog.load(db))
        async with transaction(live.app[DB]) as db:
            await kpi_catalog.add(db, [spec()], datetime.now(UTC), None)
        async with other() as db:
            assert len(await kpi_catalog.load(db)) == before + 1
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_slide_page_shows_change_and_trend_chart_live(live_sqlite: LiveServer) -> None:
    from playwright.async_api import expect

    from tests.browser_util import chromium, login, new_page

    srv = live_sqlite
    admin, chair = await srv.login("quantri"), await srv.login("chutri")
    first = [ratio_report("b-on-time", "08707", "DVC_TY_LE_DUNG_HAN", 80, 100)]
    first += [ratio_report(f"b-{m}", "08707", "CU_TRU_TRUC_TUYEN", 60 + m, 100, f"2021-0{m}") for m in (1, 2, 3)]
    assert (await admin.api("POST", "/api/kpi/reports", json={"reports": first})).status == 200
    mid = await schedule(chair, title="Giao ban tháng 3")
    await set_state(chair, mid, "rehearsal", "live", "concluded")
    async with chromium() as browser:
        page = await new_page(browser)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await login(page, srv.url, "vinhyen")
        await page.goto(f"{srv.url}/slides/08707")
        await expect(page.locator("#slide-status")).to_have_text("đã kết nối", timeout=5000)
        await expect(page.locator("#slide-previous")).to_contain_text("Hội nghị trước: Giao ban tháng 3")
        trend = page.locator('#slide tr[data-code="CU_TRU_TRUC_TUYEN"] td[data-field="trend"]')
        await expect(trend.locator("canvas")).to_have_count(1)  # drawn by uPlot
        assert "2021-03: 63,00 %" in (await trend.get_attribute("title") or "")
        change = page.locator('#slide tr[data-code="DVC_TY_LE_DUNG_HAN"] td[data-field="change"]')
        await expect(change).to_have_text("±0,00 điểm %")
        await page.evaluate("window.__kept = 1")
        more = [ratio_report("b-on-time", "08707", "DVC_TY_LE_DUNG_HAN", 93, 100),
                ratio_report("b-4", "08707", "CU_TRU_TRUC_TUYEN", 70, 100, "2021-04")]
        assert (await admin.api("POST", "/api/kpi/reports", json={"reports": more})).status == 200
        await expect(change).to_have_text("+13,00 điểm %", timeout=1000)
        await expect(change).to_have_class("num change-better")
        await expect(trend).to_have_attribute("title", "2021-01: 61,00 %\n2021-02: 62,00 %\n2021-03: 63,00 %\n"
                                                       "2021-04: 70,00 %", timeout=1000)
        await expect(trend.locator("canvas")).to_have_count(1)
        assert await page.evaluate("window.__kept") == 1
        assert errors == []
