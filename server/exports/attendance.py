"""The attendance export: one row per site of the meeting (within the caller's subtree), as CSV
(with a BOM, so Excel reads Vietnamese) or XLSX; and the minutes' list of sites present (as a
version froze them), the download that replaces pages of the notice."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from server.exports.cells import safe_row
from server.exports.notice import sites_by_province
from server.timefmt import local
from sessions.meetings import ATTENDANCE_LABEL_VI, Attendance
from sessions.minutes import Minutes
from sessions.units import Level

COLUMNS = ("Mã đơn vị", "Đơn vị", "Cấp", "Tỉnh/Thành phố", "Trạng thái", "Lý do vắng",
           "Vào lần đầu", "Rời lần cuối", "Số lần kết nối", "Thời gian kết nối (giây)", "Phát biểu (giây)",
           "Các khoảng kết nối")


def table(rows: Iterable[dict[str, Any]], scope: set[int] | None, now: datetime) -> list[list[Any]]:
    """``sessions.store.live.attendance_rows`` as export rows; ``scope``: the unit ids the caller
    may see (None: all). An interval still open counts up to ``now``."""
    out = []
    for r in rows:
        if scope is not None and r["unit_id"] not in scope:
            continue
        iv: list[tuple[datetime, datetime | None]] = r["intervals"]
        total = sum(int(((left or now) - joined).total_seconds()) for joined, left in iv)
        out.append([
            r["code"], r["name"], Level(r["level"]).label_vi, r["province"][1],
            ATTENDANCE_LABEL_VI[Attendance(r["status"])], r["reason"],
            local(iv[0][0], "%Y-%m-%d %H:%M:%S") if iv else "",
            local(iv[-1][1], "%Y-%m-%d %H:%M:%S") if iv and iv[-1][1] else "",
            len(iv), total, r["spoke_seconds"],
            "; ".join(f"{local(j, '%H:%M:%S')}–{local(lft, '%H:%M:%S') if lft else '…'}" for j, lft in iv),
        ])
    return out


PRESENT_COLUMNS = ("STT", "Mã đơn vị", "Điểm cầu", "Cấp", "Tỉnh, thành phố", "Tình trạng")
PRESENT = (Attendance.PRESENT_ONLINE, Attendance.PRESENT_IN_PERSON)


def present_rows(doc: Minutes) -> list[list[Any]]:
    """The sites present in ``doc``, province by province in the notice's (official) order."""
    sites = [(group, s) for group, members in sites_by_province(doc) for s in members if s.status in PRESENT]
    return [[i, s.unit_code, s.unit_name, s.level.label_vi, group, ATTENDANCE_LABEL_VI[s.status]]
            for i, (group, s) in enumerate(sites, 1)]


def present_csv(rows: list[list[Any]]) -> bytes:
    return to_csv(rows, PRESENT_COLUMNS)


def present_xlsx(title: str, rows: list[list[Any]]) -> bytes:
    return to_xlsx(title, rows, PRESENT_COLUMNS, sheet="Điểm cầu có mặt")


def to_csv(rows: list[list[Any]], columns: tuple[str, ...] = COLUMNS) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows(safe_row(row) for row in rows)  # no cell may start a formula
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens Vietnamese text correctly


def to_xlsx(title: str, rows: list[list[Any]], columns: tuple[str, ...] = COLUMNS, sheet: str = "Điểm danh") -> bytes:
    from openpyxl import Workbook  # loaded when a spreadsheet is asked for, not at start-up

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    # Quoted text (cells.safe_cell) never starts with "=": openpyxl stores it as a string, not a formula.
    ws.append(safe_row([title]))
    ws.append(list(columns))
    for row in rows:
        ws.append(safe_row(row))
    ws.freeze_panes = "A3"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
