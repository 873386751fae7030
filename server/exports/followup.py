"""The directive follow-up table as XLSX, the shape a ministry sends to the Government Office:
one sheet per province with its counts per status bucket (Decision 42/2014/QĐ-TTg as amended by
23/2018/QĐ-TTg) and the on-time rate, one sheet listing every overdue assignment with its days
late, and one with the on-time rate month by month. Numbers stay numbers (the spreadsheet shows
them in its own locale, 3.355 and 99,66 in a Vietnamese one); every cell goes through
``cells.safe_cell``, so no unit name or directive text can become a formula."""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from server.exports.cells import safe_cell, safe_row
from server.timefmt import local
from sessions.directives import BUCKET_LABEL_VI, Bucket
from sessions.store.directive_followup import OverdueRow

# Column order of the summary: done first, as the Government Office's tables read.
SUMMARY_BUCKETS = (Bucket.DONE_ON_TIME, Bucket.DONE_LATE, Bucket.OPEN_WITHIN, Bucket.OPEN_OVERDUE)
SUMMARY_COLUMNS = ("STT", "Đơn vị", "Tổng số nhiệm vụ", *(BUCKET_LABEL_VI[b] for b in SUMMARY_BUCKETS),
                   "Tỷ lệ hoàn thành đúng hạn (%)")
OVERDUE_COLUMNS = ("STT", "Tỉnh/Thành phố", "Mã đơn vị", "Đơn vị", "Vai trò", "Nội dung nhiệm vụ", "Đơn vị giao",
                   "Thời hạn", "Số ngày quá hạn", "Tiến độ (%)")
TREND_COLUMNS = ("Tháng", "Số nhiệm vụ hoàn thành", "Trong đó đúng hạn", "Tỷ lệ đúng hạn (%)")
SHEETS = ("Tổng hợp", "Quá hạn", "Theo tháng")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def on_time_rate(counts: dict[str, int]) -> float | None:
    """Done on time over all done, in % (two decimals); None while nothing is done."""
    done = counts[Bucket.DONE_ON_TIME] + counts[Bucket.DONE_LATE]
    return round(100 * counts[Bucket.DONE_ON_TIME] / done, 2) if done else None


def _summary_row(n: Any, name: str, counts: dict[str, int], total: int) -> list[Any]:
    return [n, name, total, *(counts[b] for b in SUMMARY_BUCKETS), on_time_rate(counts)]


def to_xlsx(board: dict[str, Any], overdue: Iterable[OverdueRow], overdue_total: int,
            trend: list[dict[str, Any]], now: datetime) -> bytes:
    """``board``: ``directive_views.dashboard``; ``overdue``: ``directive_followup.overdue``
    (at most a cap of them, ``overdue_total`` in all); ``trend``: ``on_time_trend``."""
    from openpyxl import Workbook  # loaded when a spreadsheet is asked for, not at start-up
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)  # streamed: a national overdue list runs to tens of thousands of rows
    unit = board["unit"]["name"]
    at = local(now, "%H:%M ngày %d/%m/%Y")

    def percent_cell(ws: Any, value: float | None) -> Any:
        cell = WriteOnlyCell(ws, value=safe_cell(value))
        cell.number_format = "0.00"
        return cell

    ws = wb.create_sheet(SHEETS[0])
    ws.column_dimensions["B"].width = 36
    ws.freeze_panes = "C6"
    ws.append(safe_row(["BẢNG TỔNG HỢP TÌNH HÌNH THỰC HIỆN NHIỆM VỤ ĐƯỢC GIAO"]))
    ws.append(safe_row([f"Đơn vị: {unit}"]))
    ws.append(safe_row([f"Số liệu đến {at}"]))
    ws.append([])
    ws.append(list(SUMMARY_COLUMNS))
    for i, row in enumerate(board["rows"], 1):
        *cells, rate = _summary_row(i, row["unit"]["name"], row["counts"], row["total"])
        ws.append([*safe_row(cells), percent_cell(ws, rate)])
    *cells, rate = _summary_row("", "Cộng", board["totals"], board["total"])
    ws.append([*safe_row(cells), percent_cell(ws, rate)])

    od = wb.create_sheet(SHEETS[1])
    od.column_dimensions["D"].width = 30
    od.column_dimensions["F"].width = 60
    od.freeze_panes = "A4"
    od.append(safe_row([f"DANH SÁCH NHIỆM VỤ QUÁ HẠN CHƯA HOÀN THÀNH · {unit}"]))
    rows = list(overdue)
    note = f"Số liệu đến {at}: {overdue_total} nhiệm vụ"
    if overdue_total > len(rows):
        note += f" (bảng liệt kê {len(rows)} nhiệm vụ quá hạn lâu nhất)"
    od.append(safe_row([note]))
    od.append(list(OVERDUE_COLUMNS))
    for i, r in enumerate(rows, 1):
        od.append(safe_row([i, r.province, r.unit_code, r.unit, r.role, r.text, r.assigner, r.deadline, r.days_late,
                            r.percent]))

    tr = wb.create_sheet(SHEETS[2])
    tr.append(safe_row([f"TỶ LỆ HOÀN THÀNH ĐÚNG HẠN THEO THÁNG · {unit}"]))
    tr.append(list(TREND_COLUMNS))
    for m in trend:
        tr.append([*safe_row([m["label"], m["done"], m["on_time"]]), percent_cell(tr, m["rate"])])

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
