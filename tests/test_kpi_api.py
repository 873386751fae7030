"""KPI over HTTP: operators and source systems (machine tokens with ``kpi:write``) report for
their own subtree only; the read-out shows rolled-up values, ratios, colours and ranks."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import func, select

from server.auth import issue_machine_token
from server.db import transaction
from server.state import DB
from sessions.models import AuditEntry, KpiReport
from sessions.store import units as units_store
from tests.conftest import LiveServer
from tests.test_kpi_store import SEED, seed_reports


async def token(live: LiveServer, code: str, scopes: frozenset[str]) -> str:
    async with transaction(live.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        return (await issue_machine_token(live.app, db, name=f"nguon-{code}", unit_id=unit.id, scopes=scopes, days=1,
                                          created_by_id=None))[1]


async def report_count(live: LiveServer) -> int:
    async with live.app[DB]() as db:
        return int((await db.execute(select(func.count()).select_from(KpiReport))).scalar_one())


def by_code(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["code"]: i for i in body["indicators"]}


async def test_seed_figures_reported_and_displayed(live: LiveServer) -> None:
    hanoi, ministry = await live.login("hanoi"), await live.login("quantri")
    mine = [r for r in seed_reports() if r["unit"] in ("00070", "00004")]
    resp = await hanoi.api("POST", "/api/kpi/reports", json={"reports": mine})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 6, "duplicates": 0, "corrected": 0}
    resp = await ministry.api("POST", "/api/kpi/reports", json={"reports": seed_reports()})
    assert await resp.json() == {"accepted": 9, "duplicates": 6, "corrected": 0}

    body = await (await ministry.get("/api/kpi/BCA?period=2022-06")).json()
    assert body["unit"]["code"] == "BCA" and body["period"] == "2022-06"
    ind = by_code(body)
    on_time = ind["DVC_TY_LE_DUNG_HAN"]
    assert (on_time["num"], on_time["den"], on_time["percent"]) == (74336, 74587, 99.66)
    assert (on_time["colour"], on_time["rank"], on_time["siblings"]) == ("green", 1, 1)
    assert (ind["CU_TRU_TRUC_TUYEN"]["num"], ind["CU_TRU_TRUC_TUYEN"]["den"]) == (50579, 70758)
    assert ind["CU_TRU_TRUC_TUYEN"]["colour"] == "amber"  # 71.48 %: under the 80 % target
    passports = ind["HO_CHIEU_TRUC_TUYEN"]
    assert (passports["num"], passports["den"]) == (5862, 6302) and passports["percent"] > 93
    assert passports["colour"] == "green"
    assert ind["DVC_TIEP_NHAN"]["has_data"] is False and ind["DVC_TIEP_NHAN"]["colour"] == "none"

    # Hà Nội sees its own province, ranked among the three provinces.
    body = by_code(await (await hanoi.get("/api/kpi/01?period=2022-06")).json())
    assert (body["DVC_TY_LE_DUNG_HAN"]["num"], body["DVC_TY_LE_DUNG_HAN"]["den"]) == (34336, 34500)
    assert body["DVC_TY_LE_DUNG_HAN"]["siblings"] == 3
    ratios = {"01": 34336 / 34500, "25": 30000 / 30087, "79": 10000 / 10000}
    assert body["DVC_TY_LE_DUNG_HAN"]["rank"] == 1 + sum(r > ratios["01"] for r in ratios.values())
    assert (await (await hanoi.get("/api/kpi/25?period=2022-06")).json())["error"]["code"] == "out_of_scope"
    # Another period holds nothing yet; a malformed one is refused.
    assert not any(i["has_data"] for i in (await (await hanoi.get("/api/kpi/01")).json())["indicators"])
    resp = await hanoi.get("/api/kpi/01?period=2022-6")
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "kpi_period_invalid"
    assert sum(len(parts) for parts in SEED.values()) == await report_count(live)


async def test_province_cannot_report_for_another_province(live: LiveServer) -> None:
    hanoi = await live.login("hanoi")
    viewer = await live.login("xem_hanoi")
    outside = [r for r in seed_reports() if r["unit"] == "08707"][:1]
    inside = [r for r in seed_reports() if r["unit"] == "00070"][:1]
    resp = await hanoi.api("POST", "/api/kpi/reports", json={"reports": inside + outside})
    body = await resp.json()
    assert resp.status == 403 and body["error"]["code"] == "out_of_scope", body
    assert [(e["index"], e["field"], e["code"]) for e in body["error"]["errors"]] == [(1, "unit", "out_of_scope")]
    resp = await viewer.api("POST", "/api/kpi/reports", json={"reports": inside})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    assert await report_count(live) == 0
    async with live.app[DB]() as db:
        actions = (await db.execute(select(AuditEntry.action).where(AuditEntry.action.like("kpi_%")))).scalars().all()
    assert list(actions) == ["kpi_rejected"]


async def test_machine_token_needs_kpi_write(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    http = live.client()
    reports = [r for r in seed_reports() if r["unit"] in ("08707", "08740")]
    writer = {"Authorization": f"Bearer {await token(live, '25', frozenset({'kpi:write'}))}"}
    reader = {"Authorization": f"Bearer {await token(live, '25', frozenset({'units:read'}))}"}
    resp = await http.post("/api/kpi/reports", json={"reports": reports}, headers=reader)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "token_scope"
    resp = await http.post("/api/kpi/reports", json={"reports": reports}, headers=writer)
    assert resp.status == 200 and (await resp.json())["accepted"] == 6
    resp = await http.post("/api/kpi/reports", json={"reports": seed_reports()[:1]}, headers=writer)  # 00070
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "out_of_scope"
    # The source system reads back its subtree's figures; units:read is the unit tree, not figures.
    body = by_code(await (await http.get("/api/kpi/25?period=2022-06", headers=writer)).json())
    assert (body["HO_CHIEU_TRUC_TUYEN"]["num"], body["HO_CHIEU_TRUC_TUYEN"]["den"]) == (2000, 2100)
    assert (await http.get("/api/kpi/01", headers=writer)).status == 403
    assert (await (await http.get("/api/kpi/25", headers=reader)).json())["error"]["code"] == "token_scope"
    async with live.app[DB]() as db:
        audit = (await db.execute(select(AuditEntry.actor_kind, AuditEntry.detail)
                                  .where(AuditEntry.action == "kpi_reported"))).all()
    assert [(kind, d["accepted"]) for kind, d in audit] == [("machine", 6)]


async def test_bad_requests_are_refused_with_their_code(live_sqlite: LiveServer) -> None:
    op = await live_sqlite.login("hanoi")
    good = next(r for r in seed_reports() if r["unit"] == "00070")
    cases: list[tuple[Any, int, str]] = [
        ({"reports": []}, 400, "kpi_reports_required"),
        ({"reports": "x"}, 400, "kpi_reports_required"),
        ({}, 400, "kpi_reports_required"),
        ([good], 400, "json_invalid"),
        ({"reports": [good] * 10_001}, 400, "kpi_too_many"),
        ({"reports": [good, {**good, "report_id": "b", "value": -2}]}, 400, "value_negative"),
        ({"reports": [{**good, "indicator": "X"}]}, 400, "kpi_indicator_unknown"),
        ({"reports": [{**good, "unit": "00000"}]}, 400, "kpi_unit_unknown"),
        ({"reports": [{**good, "period": "2099-01"}]}, 400, "kpi_period_future"),
        ({"reports": [{**good, "value": good["denominator"] + 1}]}, 400, "numerator_above_denominator"),
        ({"reports": [7]}, 400, "kpi_report_invalid"),
    ]
    for body, status, code in cases:
        resp = await op.api("POST", "/api/kpi/reports", json=body)
        answer = await resp.json()
        assert (resp.status, answer["error"]["code"]) == (status, code), (str(body)[:80], answer)
    resp = await op.http.post("/api/kpi/reports", data=b"unit,value", headers={"X-CSRF-Token": op.csrf,
                                                                             "Content-Type": "text/csv"})
    assert (await resp.json())["error"]["code"] == "json_required"
    assert await report_count(live_sqlite) == 0
    anon = await aiohttp.ClientSession(base_url=live_sqlite.url).__aenter__()
    live_sqlite.sessions.append(anon)
    assert (await anon.post("/api/kpi/reports", json={"reports": [good]})).status == 401
