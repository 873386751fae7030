"""The items of one KPI batch, read and checked before anything is stored. Plain Python.

``parse_item`` turns one report object (from JSON or a CSV line) into a :class:`Parsed` or adds
an :class:`ItemError` naming its index (or CSV line), field and code; ``KpiRejected`` refuses a
whole batch with every error. ``related_errors`` checks the figures of one unit and period that
bound each other (``sessions.kpi.RELATED``) as they would stand after the batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sessions.errors import DomainError, ValidationFailed
from sessions.kpi import Catalog, Value, contradictions, validate_value
from sessions.timezone import VN

# ASCII digits only: "\d" (and int()) would also read "٢٠٢٢" or "²".
_PERIOD = re.compile(r"^([0-9]{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))\Z", re.ASCII)
_REPORT_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,64}\Z", re.ASCII)  # \Z: no trailing newline


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int  # 0-based position in the batch
    line: int | None  # CSV line, when the batch came from a file
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "field": self.field, "code": self.code, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        return out


class KpiRejected(DomainError):
    """A KPI batch refused as a whole; nothing was written. The code is ``out_of_scope`` (403) when
    any item names a unit outside the reporter's subtree, else the first bad item's code (400)."""

    def __init__(self, errors: list[ItemError]) -> None:
        scope = [e for e in errors if e.code == "out_of_scope"]
        first = scope[0] if scope else errors[0]
        more = f" (và {len(errors) - 1} lỗi khác)" if len(errors) > 1 else ""
        super().__init__(f"{first.message}{more}", code=first.code)
        self.status = 403 if scope else 400
        self.errors = errors


def check_period(raw: object, now: datetime | None = None) -> str:
    """``YYYY-MM``, ``YYYY-Qn`` or ``campaign`` (to date); with ``now``, not after the current
    month/quarter in Asia/Ho_Chi_Minh. Raises ValidationFailed (field ``period``)."""
    if raw == "campaign":
        return "campaign"
    m = _PERIOD.match(raw) if isinstance(raw, str) else None
    if m is None or not (2000 <= int(m.group(1)) <= 2100):
        raise ValidationFailed(f"Kỳ báo cáo '{raw}' không hợp lệ (dạng 2022-06, 2022-Q2 hoặc campaign)",
                               code="kpi_period_invalid", field="period")
    period = str(raw)
    if now is not None:
        local = now.astimezone(VN)
        year = int(m.group(1))
        if m.group(2):
            future = (year, int(m.group(2))) > (local.year, local.month)
        else:
            future = (year, int(m.group(3))) > (local.year, (local.month - 1) // 3 + 1)
        if future:
            raise ValidationFailed(f"Kỳ báo cáo {period} chưa tới", code="kpi_period_future", field="period")
    return period


@dataclass(frozen=True, slots=True)
class Parsed:
    index: int
    report_id: str
    unit_code: str
    indicator: str
    period: str
    value: Value


def label(index: int, line: int | None) -> str:
    return f"Dòng {line}" if line is not None else f"Mục {index + 1}"


def parse_item(index: int, line: int | None, item: object, now: datetime, errors: list[ItemError],
               catalog: Catalog) -> Parsed | None:
    def bad(fld: str, code: str, message: str) -> None:
        errors.append(ItemError(index, line, fld, code, f"{label(index, line)}: {message}"))

    if not isinstance(item, Mapping):
        bad("", "kpi_report_invalid", "mỗi báo cáo phải là một đối tượng")
        return None
    rid, unit, code = item.get("report_id"), item.get("unit"), item.get("indicator")
    ok = True
    if not isinstance(rid, str) or not _REPORT_ID.match(rid):
        bad("report_id", "kpi_report_id_invalid", "mã báo cáo phải có 1–64 ký tự chữ, số hoặc . _ : / -")
        ok = False
    if not isinstance(unit, str) or not unit.strip():
        bad("unit", "kpi_unit_unknown", "thiếu mã đơn vị")
        ok = False
    ind = catalog.get(code)
    if ind is None:
        shown = code if isinstance(code, str) else type(code).__name__
        bad("indicator", "kpi_indicator_unknown", f"chỉ tiêu '{shown}' không có trong danh mục")
        ok = False
    try:
        period = check_period(item.get("period"), now)
    except ValidationFailed as exc:
        bad("period", exc.code, exc.message)
        ok = False
    value = Value()
    if ind is not None:
        try:
            value = validate_value(ind, item.get("value"), item.get("denominator"))  # type: ignore[arg-type]
        except ValidationFailed as exc:
            bad(str(exc.detail.get("field", "value")), exc.code, exc.message)
            ok = False
    if not ok:
        return None
    return Parsed(index, cast(str, rid), cast(str, unit).strip(), cast(str, code), period, value)


def related_errors(own: Mapping[tuple[int, str, str], int], first: Mapping[tuple[int, str, str], Parsed],
                   catalog: Catalog, lines: Sequence[int] | None = None) -> list[ItemError]:
    """``own``: one unit's own figure per (unit id, indicator, period) as it would stand after the
    batch (its current reports plus the batch's); ``first``: the batch's first item for each key.
    One error per contradicted pair of a unit and period the batch touches, on that item."""
    by_group: dict[tuple[int, str], dict[str, int]] = {}
    for (uid, code, period), x in own.items():
        by_group.setdefault((uid, period), {})[code] = x
    out: list[ItemError] = []
    for (uid, period), figures in sorted(by_group.items()):
        for part, whole in contradictions(figures):
            item = first.get((uid, part, period)) or first.get((uid, whole, period))
            if item is None:  # both figures were already stored: this batch did not touch them
                continue
            line = lines[item.index] if lines else None
            p_ind, w_ind = catalog.get(part), catalog.get(whole)
            out.append(ItemError(item.index, line, "value", "kpi_values_contradict",
                                 f"{label(item.index, line)}: đơn vị {item.unit_code}, kỳ {period}: "
                                 f"{part} ({p_ind.name if p_ind else part}) = {figures[part]} lớn hơn "
                                 f"{whole} ({w_ind.name if w_ind else whole}) = {figures[whole]}"))
    return out
