"""KPI reports from CSV: the pure parser, the operators' upload page and the text/csv API (all or
nothing, every bad line named, within the uploader's subtree)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from server.state import DB
from sessions.kpi_csv import CSV_COLUMNS, KpiCsvRejected, parse_kpi_csv
from sessions.models import KpiReport
from tests.conftest import Client, LiveServer
from tests.test_kpi_api import token

HEADER = ",".join(CSV_COLUMNS) + "\n"
GOOD = ("00070,DVC_TY_LE_DUNG_HAN,2022-06,9,10,r1\n"
        "00004,DVC_TIEP_NHAN,2022-Q2,120,,r2\n")


def problems(data: bytes) -> list[tuple[int, str, str]]:
    with pytest.raises(KpiCsvRejected) as info:
        parse_kpi_csv(data)
    return [(p.line, p.field, p.message) for p in info.value.problems]


# ---------------------------------------------------------------------------------------------
# Parser


def test_parses_rows_with_their_lines() -> None:
    parsed = parse_kpi_csv((HEADER + "\n" + GOOD).encode())  # a blank line is skipped, lines still count
    assert parsed.lines == [3, 4]
    assert parsed.reports == [
        {"unit": "00070", "indicator": "DVC_TY_LE_DUNG_HAN", "period": "2022-06", "value": 9, "denominator": 10,
         "report_id": "r1"},
        {"unit": "00004", "indicator": "DVC_TIEP_NHAN", "period": "2022-Q2", "value": 120, "denominator": None,
         "report_id": "r2"},
    ]


def test_bom_column_order_and_case_do_not_matter() -> None:
    text = " REPORT_ID ,value,denominator,period,indicator,unit_code\r\nr1,9,10,2022-06,DVC_TY_LE_DUNG_HAN,00070\r\n"
    parsed = parse_kpi_csv(b"\xef\xbb\xbf" + text.encode())
    assert parsed.reports[0]["report_id"] == "r1" and parsed.reports[0]["unit"] == "00070"
    assert parsed.lines == [2]


def test_non_utf8_is_refused_naming_the_line() -> None:
    data = (HEADER + GOOD).encode() + "00070,DVC_TIEP_NHAN,2022-06,1,,Hà Tây\n".encode("cp1258")
    [(line, fld, message)] = problems(data)
    assert (line, fld) == (4, "") and "UTF-8" in message


def test_unknown_missing_and_repeated_columns_are_named() -> None:
    [(line, _f, message)] = problems(b"unit_code,indicator,period,value,value,ma_bao_cao\n1,2,3,4,5,6\n")
    assert line == 1
    assert "cột không xác định: ma_bao_cao" in message
    assert "thiếu cột: denominator, report_id" in message
    assert "cột bị lặp: value" in message
    assert problems(b"") == [(1, "", "tệp trống")]
    assert problems(HEADER.encode() + b"\n\n")[0][:2] == (2, "")


def test_every_bad_line_is_listed_with_its_field() -> None:
    data = (HEADER + "00070,DVC_TIEP_NHAN,2022-06,1.000,,a\n"
                     "00070,DVC_TIEP_NHAN,2022-06,5\n"
                     + GOOD +
                     "00004,DVC_TY_LE_DUNG_HAN,2022-06,,x,b\n").encode()
    assert [(line, fld) for line, fld, _m in problems(data)] == [
        (2, "value"), (3, ""), (6, "value"), (6, "denominator")]


# ---------------------------------------------------------------------------------------------
# Over HTTP


async def count(live: LiveServer) -> int:
    async with live.app[DB]() as db:
        return int((await db.execute(select(func.count()).select_from(KpiReport))).scalar_one())


async def upload(c: Client, text: str | bytes, name: str = "so-lieu.csv") -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("csrf_token", c.csrf)
    form.add_field("file", text.encode() if isinstance(text, str) else text, filename=name, content_type="text/csv")
    resp = await c.http.post("/kpi/upload", params={"csrf": c.csrf}, data=form, allow_redirects=False)  # as the form
    return resp.status, await resp.text()


async def post_csv(http: aiohttp.ClientSession, text: str | bytes, **headers: str) -> tuple[int, Any]:
    resp = await http.post("/api/kpi/reports.csv", data=text.encode() if isinstance(text, str) else text,
                           headers={"Content-Type": "text/csv", **headers})
    return resp.status, await resp.json()


async def test_upload_page_accepts_then_counts_duplicates_and_corrections(live: LiveServer) -> None:
    hanoi = await live.login("hanoi")
    page = await (await hanoi.get("/kpi/upload")).text()
    assert 'name="csrf_token"' in page and ",".join(CSV_COLUMNS) in page
    status, page = await upload(hanoi, HEADER + GOOD)
    assert status == 200, page
    assert re.search(r"2 báo cáo mới,\s*0 báo cáo trùng \(bỏ qua\), 0 báo cáo đính chính", page)
    status, page = await upload(hanoi, HEADER + GOOD.replace(",9,10,", ",8,10,"))
    assert status == 200 and re.search(r"0 báo cáo mới,\s*1 báo cáo trùng \(bỏ qua\), 1 báo cáo đính chính", page)
    assert await count(live) == 3  # two reports, one of them in two versions
    body = await (await hanoi.get("/api/kpi/01?period=2022-06")).json()
    on_time = next(i for i in body["indicators"] if i["code"] == "DVC_TY_LE_DUNG_HAN")
    assert (on_time["num"], on_time["den"]) == (8, 10)


async def test_upload_refuses_whole_file_listing_lines(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    hanoi = await live.login("hanoi")
    bad = HEADER + GOOD + ("00070,KHONG_CO,2022-06,1,,r3\n"
                           "08707,DVC_TIEP_NHAN,2022-06,1,,r4\n"
                           "00070,DVC_TY_LE_DUNG_HAN,2099-01,11,10,r5\n")
    status, page = await upload(hanoi, bad)
    assert status == 403  # a unit outside Hà Nội makes it a scope refusal
    for needle in ("Dòng 4", "indicator", "Dòng 5", "nằm ngoài phạm vi", "Dòng 6", "period", "4 lỗi"):
        assert needle in page, needle
    status, page = await upload(hanoi, HEADER.replace("report_id", "ma") + GOOD)
    assert status == 400 and "thiếu cột: report_id" in page and "cột không xác định: ma" in page
    status, page = await upload(hanoi, HEADER.encode() + "00070,DVC_TIEP_NHAN,2022-06,1,,Hà\n".encode("cp1258"))
    assert status == 400 and "UTF-8" in page
    assert await count(live) == 0


async def test_upload_size_limit_and_roles(server_factory: Any, sqlite_url: str) -> None:
    live = await server_factory(sqlite_url, max_upload_bytes=2000)
    hanoi = await live.login("hanoi")
    big = HEADER + "".join(f"00070,DVC_TIEP_NHAN,2022-06,{i},,big-{i}\n" for i in range(100))
    status, page = await upload(hanoi, big)
    assert status == 413 and "Tệp quá lớn: giới hạn là 2.000 byte" in page
    status, body = await post_csv(hanoi.http, big, **{"X-CSRF-Token": hanoi.csrf})
    assert status == 413 and body["error"]["code"] == "payload_too_large" and "2.000 byte" in body["error"]["message"]
    for name, ok in (("vinhyen", 200), ("chutri", 200), ("qt_hanoi", 200), ("xem_hanoi", 403)):
        c = await live.login(name)
        assert (await c.get("/kpi/upload")).status == ok, name
    viewer = await live.login("xem_hanoi")
    assert (await upload(viewer, HEADER + GOOD))[0] == 403
    assert await count(live) == 0


async def test_csv_api_for_scripts(live_sqlite: LiveServer) -> None:
    live = live_sqlite
    http = live.client()
    writer = {"Authorization": f"Bearer {await token(live, '01', frozenset({'kpi:write'}))}"}
    reader = {"Authorization": f"Bearer {await token(live, '01', frozenset({'units:read'}))}"}
    assert (await post_csv(http, HEADER + GOOD, **reader))[0] == 403
    status, body = await post_csv(http, b"\xef\xbb\xbf" + (HEADER + GOOD).encode(), **writer)
    assert (status, body) == (200, {"accepted": 2, "duplicates": 0, "corrected": 0})
    status, body = await post_csv(http, HEADER + GOOD + "00070,DVC_TIEP_NHAN,2022-06,-1,,r9\n", **writer)
    assert status == 400 and body["error"]["code"] == "value_negative"
    assert [(e["line"], e["field"]) for e in body["error"]["errors"]] == [(4, "value")]
    status, body = await post_csv(http, HEADER + "00070,DVC_TIEP_NHAN,2022-06,abc,,r9\n", **writer)
    assert status == 400 and body["error"]["code"] == "kpi_csv_invalid"
    assert body["error"]["errors"] == [{"line": 2, "field": "value", "code": "kpi_csv_invalid",
                                        "message": "value 'abc' không phải số nguyên"}]
    resp = await http.post("/api/kpi/reports.csv", json={"reports": []}, headers=writer)
    assert resp.status == 415 and (await resp.json())["error"]["code"] == "csv_required"
    assert await count(live) == 2
    anon = live.client()
    assert (await anon.post("/api/kpi/reports.csv", data=HEADER + GOOD, headers={"Content-Type": "text/csv"})
            ).status == 401
