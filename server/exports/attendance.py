"""The attendance export: one row per site of the meeting (within the caller's subtree), as CSV
(with a BOM, so Excel reads Vietnamese) or XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from server.exports.cells import safe_row
from server.timefmt import local
from sessions.meetings import ATTENDANCE_LABEL_VI, Attendance
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


def to_csv(rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(safe_row(row) for row in rows)  # no cell may start a formula
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel opens Vietnamese text correctly


def to_xlsx(title: str, rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook  # loaded when a spreadsheet is asked for, not at start-up

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Điểm danh"
    # Quoted text (cells.safe_cell) never starts with "=": openpyxl stores it as a string, not a formula.
    ws.append(safe_row([title]))
    ws.append(list(COLUMNS))
    for row in rows:
        ws.append(safe_row(row))
    ws.freeze_panes = "A3"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
