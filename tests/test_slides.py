"""Live KPI slides: a report changes the open slides of its commune, province and the ministry at
once (websocket topic ``kpi:<unit code>``); nobody follows or opens a slide outside their subtree;
the demo loads the seed report's figures so that the ministry's totals match it exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from demo import kpi as demo_kpi
from server.db import transaction
from server.services import kpi_slides
from sessions.store import kpi as kpi_store
from sessions.store import units as units_store
from tests.browser_util import chromium, login, new_page
from tests.conftest import LiveServer
from tests.live_util import WsClient


def report(rid: str, code: str, num: int, den: int) -> dict[str, Any]:
    return {"report_id": rid, "unit": code, "indicator": "DVC_TY_LE_DUNG_HAN", "period": "campaign",
            "value": num, "denominator": den}


def on_time(slide: dict[str, Any] | None) -> tuple[int, int] | None:
    if slide is None:
        return None
    ind = next(i for i in slide["indicators"] if i["code"] == "DVC_TY_LE_DUNG_HAN")
    return (ind["num"], ind["den"]) if ind["has_data"] else None


async def test_report_updates_three_slides_and_scope_is_kept(live: LiveServer) -> None:
    site, province, chair = await live.login("vinhyen"), await live.login("phutho"), await live.login("chutri")
    subs = [(await WsClient.open(c), code) for c, code in ((site, "08707"), (province, "25"), (chair, "BCA"))]
    try:
        for ws, code in subs:
            answer = await ws.request({"type": "subscribe", "topic": f"kpi:{code}"})
            assert answer["type"] == "result", answer
            assert ws.slides[code]["unit"]["code"] == code and on_time(ws.slides[code]) is None
        resp = await site.api("POST", "/api/kpi/reports", json={"reports": [report("vy-1", "08707", 90, 100)]})
        assert resp.status == 200, await resp.text()
        for ws, code in subs:
            await ws.until(lambda ws=ws, code=code: on_time(ws.slides.get(code)) == (90, 100), within=2)
        slide = subs[0][0].slides["08707"]
        row = next(i for i in slide["indicators"] if i["code"] == "DVC_TY_LE_DUNG_HAN")
        assert (row["percent"], row["colour"], row["rank"], row["siblings"]) == (90.0, "amber", 1, 2)
        ranking = subs[2][0].slides["BCA"]["children"]["rows"]
        assert ranking[0]["code"] == "25" and ranking[0]["percent"] == 90.0

        # A correction changes all three again; the ministry's table follows.
        await province.api("POST", "/api/kpi/reports", json={"reports": [report("vy-1", "08707", 80, 100)]})
        for ws, code in subs:
            await ws.until(lambda ws=ws, code=code: on_time(ws.slides.get(code)) == (80, 100), within=2)
        assert subs[2][0].slides["BCA"]["children"]["rows"][0]["colour"] == "red"

        # Out of reach: another commune, the province above, the ministry, an unknown unit.
        ws = subs[0][0]
        for topic, code in (("kpi:08740", "out_of_scope"), ("kpi:25", "out_of_scope"), ("kpi:BCA", "out_of_scope"),
                            ("kpi:99999", "unit_not_found")):
            answer = await ws.request({"type": "subscribe", "topic": topic})
            assert (answer["type"], answer.get("code")) == ("error", code), answer
        assert "08740" not in ws.slides
    finally:
        for ws, _ in subs:
            await ws.close()


async def test_slide_page_scoped(live: LiveServer) -> None:
    site = await live.login("vinhyen")
    own = await site.get("/slides/08707")
    assert own.status == 200
    assert "Phường Vĩnh Yên" in await own.text()
    for code in ("08740", "25", "BCA"):
        resp = await site.get(f"/slides/{code}")
        assert resp.status == 403
        text = await resp.text()
        assert "ngoài phạm vi" in text and "Phúc Yên" not in text
    home = await (await site.get("/")).text()
    assert 'href="/slides/08707"' in home


@pytest.mark.browser
async def test_three_open_slides_follow_a_report(live_sqlite: LiveServer, tmp_path: Path) -> None:
    srv = live_sqlite
    async with chromium() as browser:
        pages = {}
        for username, code in (("vinhyen", "08707"), ("phutho", "25"), ("chutri", "BCA")):
            page = await new_page(browser)
            await login(page, srv.url, username)
            await page.goto(f"{srv.url}/slides/{code}")
            await expect(page.locator("#slide-status")).to_have_text("đã kết nối", timeout=5000)
            pages[code] = page
        row = '#slide tr[data-code="DVC_TY_LE_DUNG_HAN"] td[data-field="value"]'
        for page in pages.values():
            await expect(page.locator(row)).to_have_text("—")
        site = await srv.login("vinhyen")
        resp = await site.api("POST", "/api/kpi/reports",
                              json={"reports": [report("tr-1", "08707", 74336, 74587)]})
        assert resp.status == 200, await resp.text()
        for page in pages.values():
            await expect(page.locator(row)).to_have_text("99,66 % (74.336/74.587)", timeout=1000)
        await expect(pages["BCA"].locator('.kpi-ranking tr[data-code="25"]')).to_contain_text("99,66 %",
                                                                                              timeout=1000)
        # Never reloaded: the page still holds the marker set before the report.
        await pages["08707"].evaluate("window.__kept = 1")
        await site.api("POST", "/api/kpi/reports", json={"reports": [report("tr-1", "08707", 100, 200)]})
        await expect(pages["08707"].locator(row)).to_have_text("50,00 % (100/200)", timeout=1000)
        assert await pages["08707"].evaluate("window.__kept") == 1
        await expect(pages["08707"].locator('#slide tr[data-code="DVC_TY_LE_DUNG_HAN"] .badge')).to_have_attribute(
            "data-colour", "red")


async def test_demo_figures_match_seed_report(session_factory: Any) -> None:
    from server import unit_data
    from sessions import unit_sources as src
    from sessions.unit_sources import DEFAULT_ROOT_CODE, DEFAULT_ROOT_NAME

    rows = src.from_current_tree(unit_data.current_tree_json(), src.root_row(DEFAULT_ROOT_CODE, DEFAULT_ROOT_NAME))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with transaction(session_factory) as db:
        await units_store.import_units(db, rows)
    async with transaction(session_factory) as db:
        first = await demo_kpi.load(db, DEFAULT_ROOT_CODE, now)
    reports = 3321 * 6 + 2 + 3321 * 6 * len(demo_kpi.MONTHS)  # campaign + six months per commune
    assert first == {"accepted": reports, "duplicates": 0, "corrected": 0}
    async with transaction(session_factory) as db:  # a second demo run counts nothing twice
        assert await demo_kpi.load(db, DEFAULT_ROOT_CODE, now) == {"accepted": 0, "duplicates": reports,
                                                                   "corrected": 0}
    async with session_factory() as db:
        root = await units_store.get_by_code(db, DEFAULT_ROOT_CODE)
        totals = {k: (v.num, v.den) for k, v in (await kpi_store.totals_for(db, root.id, "campaign")).items()}
        recomputed = await kpi_store.all_totals(db)
    assert totals == {
        "DVC_TIEP_NHAN": (201_884, 0), "DVC_GIAI_QUYET": (74_587, 0), "DVC_DUNG_HAN": (74_336, 0),
        "DVC_TY_LE_DUNG_HAN": (74_336, 74_587), "CU_TRU_TRUC_TUYEN": (50_579, 70_758),
        "HO_CHIEU_TRUC_TUYEN": (5_862, 6_302), "DVC_HOAN_THANH": (9, 11), "NV_CHAM_TIEN_DO": (10, 0),
    }
    async with transaction(session_factory) as db:  # the incremental totals equal a full roll-up
        await kpi_store.recompute_all(db)
        assert await kpi_store.all_totals(db) == recomputed

    # The previous meeting (July, concluded) froze the campaign as it stood then: today's minus August's.
    async with session_factory() as db:
        slide = (await kpi_slides.slides(db, [root.id]))[root.id]
        august = {k: (v.num, v.den) for k, v in (await kpi_store.totals_for(db, root.id, "2022-08")).items()}
    assert slide["previous"] == {"meeting": demo_kpi.PREVIOUS_TITLE, "date": "29/07/2022"}
    rows = {i["code"]: i for i in slide["indicators"]}
    on_time, solved = rows["DVC_TY_LE_DUNG_HAN"], august["DVC_TY_LE_DUNG_HAN"]
    july = (74_336 - solved[0]) / (74_587 - solved[1]) * 100
    assert on_time["change"]["previous"] == round(july, 2)
    assert on_time["change"]["delta"] == round(round(74_336 / 74_587 * 100, 2) - round(july, 2), 2)
    assert rows["DVC_TIEP_NHAN"]["change"]["delta"] == august["DVC_TIEP_NHAN"][0]
    assert rows["NV_CHAM_TIEN_DO"]["change"] == {"delta": -4.0, "points": False, "better": True, "previous": 14.0,
                                                 "meeting": demo_kpi.PREVIOUS_TITLE, "date": "29/07/2022"}
    # Six months of trend, the last one August's.
    trend = on_time["trend"]
    assert [p["period"] for p in trend] == list(demo_kpi.MONTHS)
    assert trend[-1]["value"] == round(solved[0] / solved[1] * 100, 2)


def test_apportion_sums_exactly_within_caps() -> None:
    parts = demo_kpi.apportion(1000, [0.5, 3.0, 1.2, 0.0, 2.2], [10, 900, 900, 5, 900])
    assert sum(parts) == 1000 and parts[0] <= 10 and parts[3] <= 5
    assert demo_kpi.apportion(7, [1.0, 1.0, 1.0]) == [3, 2, 2]
