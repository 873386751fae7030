"""Directive follow-up (issue #15): the XLSX a ministry sends to the Government Office (per
province, per bucket, the overdue list with days late, the on-time rate by month), the chair's
"Theo dõi" list, the history in words, and a filter for a unit outside the reader's subtree
refused in Vietnamese with nothing shown of it."""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from openpyxl import load_workbook

from sessions.directive_history import Audited, Given, events
from sessions.store import directive_followup
from tests.followup_util import followup_scenario

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def sheet_rows(data: bytes, name: str) -> list[list[Any]]:
    ws = load_workbook(io.BytesIO(data))[name]
    out = []
    for r in ws.iter_rows(values_only=True):
        row = list(r)
        while row and row[-1] is None:  # a sheet is as wide as its widest row
            row.pop()
        out.append(row)
    return out


async def test_followup_export_per_province_bucket_and_overdue(server_factory: Callable[..., Any],
                                                              db_url: str) -> None:
    f = await followup_scenario(server_factory, db_url)
    resp = await f.chair.get("/directives/followup.xlsx")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == XLSX
    assert "theo-doi-nhiem-vu-BCA-20220906.xlsx" in resp.headers["Content-Disposition"]
    data = await resp.read()

    summary = sheet_rows(data, "Tổng hợp")
    header = summary.index(["STT", "Đơn vị", "Tổng số nhiệm vụ", "Hoàn thành đúng hạn", "Hoàn thành quá hạn",
                            "Đang thực hiện trong hạn", "Quá hạn chưa hoàn thành", "Tỷ lệ hoàn thành đúng hạn (%)"])
    body = {r[1]: r[2:] for r in summary[header + 1:]}
    assert body == {
        "Thành phố Hà Nội": [2, 1, 0, 0, 1, 100.0],
        "Phú Thọ": [2, 0, 0, 1, 1],  # nothing done yet: no rate (the cell is empty)
        "Thành phố Hồ Chí Minh": [2, 0, 1, 1, 0, 0.0],
        "Tỉnh Vĩnh Phúc": [4, 1, 0, 3, 0, 100.0],  # the breakdown's two cities count in their province
        "Cộng": [10, 2, 1, 5, 2, 66.67],
    }

    overdue = sheet_rows(data, "Quá hạn")
    assert overdue[1] == ["Số liệu đến 15:00 ngày 06/09/2022: 2 nhiệm vụ"]
    assert overdue[2][:2] == ["STT", "Tỉnh/Thành phố"]
    rows = {r[3]: r for r in overdue[3:]}
    assert set(rows) == {"Thành phố Hà Nội", "Phú Thọ"}
    for r in rows.values():
        assert (r[6], r[7], r[8]) == ("Bộ Công an", "31/08/2022", 6)  # assigned by, deadline, days late
        assert r[5] == f.text_a

    trend = sheet_rows(data, "Theo tháng")
    assert trend[2:] == [["08/2022", 2, 2, 100.0], ["09/2022", 1, 0, 0.0]]

    # A province exports its own subtree only: its one row, nothing of the others.
    vp = await f.vp.get("/directives/followup.xlsx")
    assert vp.status == 200
    vp_data = await vp.read()
    names = {r[1] for r in sheet_rows(vp_data, "Tổng hợp")[5:]}
    assert names == {"Tỉnh Vĩnh Phúc", "Cộng"}
    assert sheet_rows(vp_data, "Quá hạn")[3:] == []


async def test_a_unit_outside_the_readers_subtree_is_refused(server_factory: Callable[..., Any],
                                                            sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    f = await followup_scenario(server_factory, sqlite_url)
    # Too many assignments for one page (the whole nation): a clear message, not a 50 MB page.
    monkeypatch.setattr(directive_followup, "TREE_ASSIGNMENTS_CAP", 3)
    resp = await f.chair.get("/directives/tree?unit=BCA")
    assert resp.status == 400
    assert "quá nhiều để hiện trên một trang (tối đa 3)" in html.unescape(await resp.text())
    monkeypatch.undo()
    for path in ("/directives/tree?unit=25", "/directives/followup.xlsx?unit=25", "/directives/dashboard?unit=25",
                 "/directives?unit=01", "/directives/tree?unit=BCA"):
        resp = await f.vp.get(path)
        text = html.unescape(await resp.text())
        assert resp.status == 403, (path, resp.status)
        assert "nằm ngoài phạm vi theo dõi của bạn" in text and "Tỉnh Vĩnh Phúc và các đơn vị cấp dưới" in text, path
        assert not any(leak in text for leak in ("Phú Thọ", "Thành phố Hà Nội", "Phường Vĩnh Yên")), path
    resp = await f.vp.get("/directives/tree?unit=99999")
    assert resp.status == 404 and "Không tìm thấy đơn vị" in html.unescape(await resp.text())
    resp = await f.vp.get("/directives?view=tat-ca")
    assert resp.status == 400 and "Chế độ xem không hợp lệ" in html.unescape(await resp.text())
    # The JSON dashboard keeps its API style.
    resp = await f.vp.get("/api/directives/dashboard?unit=25")
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "out_of_scope"


async def test_the_tree_of_one_province_and_the_followed_list(server_factory: Callable[..., Any],
                                                             db_url: str) -> None:
    f = await followup_scenario(server_factory, db_url)
    page = html.unescape(await (await f.chair.get("/directives/tree?unit=26")).text())
    assert 'data-unit="26"' in page and 'data-unit="243"' in page and 'data-unit="244"' in page
    assert 'data-unit="01"' not in page and 'data-unit="25"' not in page and 'data-unit="79"' not in page
    assert page.count('class="directive card"') == 3  # A, B and B's breakdown inside Vĩnh Phúc
    # The chair's unit was given nothing: its list opens on what it gave and follows.
    mine = html.unescape(await (await f.chair.get("/directives")).text())
    assert 'aria-current="page">Theo dõi (2)' in mine
    assert f'data-directive="{f.directive_a}"' in mine and f'data-directive="{f.directive_b}"' in mine
    given = html.unescape(await (await f.vp.get("/directives?view=followed")).text())
    assert "Giao tiếp cho cấp dưới" in given and "Triển khai tại thành phố" in given


def test_history_events_name_what_happened() -> None:
    at = datetime(2022, 8, 17, 8, 0, tzinfo=UTC)
    due = datetime(2022, 8, 31, 17, 0, tzinfo=UTC)
    got = events(assignee="Tỉnh Vĩnh Phúc", role="assignee", due_at=due,
                 given=Given(at, "", "Bộ Công an", date(2022, 8, 31)),
                 audited=[Audited(at, "vinhphuc", "assignment_progress", {"percent": 20, "completed_at": None},
                                  {"percent": 60, "attachments": ["a.pdf"]}),
                          Audited(datetime(2022, 9, 2, tzinfo=UTC), "vinhphuc", "assignment_done", {"percent": 60},
                                  {"percent": 100})])
    assert [(e["kind"], e["old"], e["new"], e["files"], e["days"]) for e in got] == [
        ("assigned_unit", 0, 0, [], 0), ("progress_up", 20, 60, ["a.pdf"], 0), ("done_late", 60, 100, [], 2)]
