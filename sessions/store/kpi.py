"""KPI reports: all-or-nothing intake, idempotent by report id, with corrections that keep history,
and the rolled-up totals (a unit's own reports plus all its descendants') kept incrementally.

``ingest`` validates the whole batch before writing anything; a refused batch raises
``KpiRejected`` listing every bad item (index or line, field, code, message). Accepted reports
change ``kpi_totals`` of their unit and every ancestor by the report's delta (a correction by
new minus old): the ancestors of all units of a batch come from the closure table in one query
per chunk, deltas are summed per (ancestor, indicator, period) in Python and written as one
batched upsert. ``recompute_all`` rebuilds the same totals from scratch (the reference): the
same additive roll-up as ``sessions.kpi.rollup`` (deepest units first, along ``parent_id``, not
the closure table), its rows written through the driver's executemany.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import DomainError, ValidationFailed
from sessions.kpi import Catalog, Value, validate_value
from sessions.models import KpiReport, KpiTotal, Unit, UnitClosure
from sessions.store import kpi_catalog
from sessions.timezone import VN
from sessions.units import deepest_first

MAX_REPORTS = 10_000
_CHUNK = 2000
_TOTALS = cast(Table, KpiTotal.__table__)
_REPORTS = cast(Table, KpiReport.__table__)
_PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")
_REPORT_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")

Key = tuple[int, str, str]  # (unit id, indicator code, period)


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


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    corrected: int = 0
    affected: set[Key] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "corrected": self.corrected}


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
class _Parsed:
    index: int
    report_id: str
    unit_code: str
    indicator: str
    period: str
    value: Value


def _label(index: int, line: int | None) -> str:
    return f"Dòng {line}" if line is not None else f"Mục {index + 1}"


def _parse(index: int, line: int | None, item: object, now: datetime, errors: list[ItemError],
           catalog: Catalog) -> _Parsed | None:
    def bad(fld: str, code: str, message: str) -> None:
        errors.append(ItemError(index, line, fld, code, f"{_label(index, line)}: {message}"))

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
        bad("indicator", "kpi_indicator_unknown", f"chỉ tiêu '{code}' không có trong danh mục")
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
    return _Parsed(index, cast(str, rid), cast(str, unit).strip(), cast(str, code), period, value)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def _resolve(db: AsyncSession, codes: Iterable[str]) -> tuple[dict[str, int], dict[int, list[int]]]:
    """Unit ids by code and each unit's ancestors and itself: one query per chunk of codes (the
    units' closure rows), so a single report costs one round trip here, not three."""
    ids: dict[str, int] = {}
    chains: dict[int, list[int]] = defaultdict(list)
    for chunk in _chunks(sorted(set(codes))):
        rows = await db.execute(select(Unit.code, Unit.id, UnitClosure.ancestor_id)
                                .join(UnitClosure, UnitClosure.descendant_id == Unit.id)
                                .where(Unit.code.in_(chunk)))
        for code, uid, anc in rows.all():
            ids[code] = uid
            chains[uid].append(anc)
    return ids, chains


@dataclass(slots=True)
class _Current:
    key: Key
    value: Value
    version: int
    row_id: int | None  # stored row, or None for a version added earlier in this batch
    pending: dict[str, Any] | None = None


async def ingest(db: AsyncSession, reports: Sequence[object], reporter_unit_id: int, reporter_name: str,
                 now: datetime, lines: Sequence[int] | None = None) -> IngestResult:
    """Validate the whole batch, then store it and update the totals; all or nothing (the caller's
    transaction). Same report id with the same values: a duplicate (counted once); with other
    values: a correction (new version, old one superseded, totals change by the difference)."""
    if not reports:
        raise ValidationFailed("Không có báo cáo nào", code="kpi_reports_required", field="reports")
    if len(reports) > MAX_REPORTS:
        raise ValidationFailed(f"Tối đa {MAX_REPORTS:,} báo cáo mỗi lần gửi".replace(",", "."),
                               code="kpi_too_many", field="reports")
    errors: list[ItemError] = []
    catalog = await kpi_catalog.covering(
        db, {item.get("indicator") for item in reports if isinstance(item, Mapping)})
    parsed = [p for i, item in enumerate(reports)
              if (p := _parse(i, lines[i] if lines else None, item, now, errors, catalog)) is not None]

    def line_of(i: int) -> int | None:
        return lines[i] if lines else None

    unit_of, chains = await _resolve(db, (p.unit_code for p in parsed))
    reach = {uid for uid, ancestors in chains.items() if reporter_unit_id in ancestors}
    good: list[tuple[_Parsed, int]] = []
    for p in parsed:
        uid = unit_of.get(p.unit_code)
        label = _label(p.index, line_of(p.index))
        if uid is None:
            errors.append(ItemError(p.index, line_of(p.index), "unit", "kpi_unit_unknown",
                                    f"{label}: không có đơn vị mã '{p.unit_code}'"))
        elif uid not in reach:
            errors.append(ItemError(p.index, line_of(p.index), "unit", "out_of_scope",
                                    f"{label}: đơn vị '{p.unit_code}' nằm ngoài phạm vi của bạn"))
        else:
            good.append((p, uid))

    current: dict[str, _Current] = {}
    for chunk in _chunks(sorted({p.report_id for p, _ in good})):
        rows = await db.execute(select(KpiReport.report_id, KpiReport.id, KpiReport.version, KpiReport.unit_id,
                                       KpiReport.indicator, KpiReport.period, KpiReport.num, KpiReport.den)
                                .where(KpiReport.report_id.in_(chunk), KpiReport.superseded.is_(False)))
        for rid, row_id, version, uid, ind, period, num, den in rows.all():
            current[rid] = _Current((uid, ind, period), Value(int(num), int(den)), version, row_id)

    result = IngestResult()
    supersede: list[int] = []
    inserts: list[dict[str, Any]] = []
    deltas: dict[Key, Value] = defaultdict(Value)
    name = reporter_name[:100]
    for p, uid in good:
        key: Key = (uid, p.indicator, p.period)
        old = current.get(p.report_id)
        if old is not None and old.key != key:
            errors.append(ItemError(p.index, line_of(p.index), "report_id", "kpi_report_id_conflict",
                                    f"{_label(p.index, line_of(p.index))}: mã báo cáo '{p.report_id}' đã dùng cho "
                                    "một báo cáo khác (đơn vị, chỉ tiêu hoặc kỳ khác)"))
            continue
        if old is not None and old.value == p.value:
            result.duplicates += 1
            continue
        row = {"report_id": p.report_id, "version": 1, "superseded": False, "unit_id": uid, "indicator": p.indicator,
               "period": p.period, "num": p.value.num, "den": p.value.den, "received_at": now, "reporter": name}
        if old is None:
            result.accepted += 1
            deltas[key] = deltas[key] + p.value
        else:
            result.corrected += 1
            deltas[key] = deltas[key] + (p.value - old.value)
            row["version"] = old.version + 1
            if old.pending is not None:
                old.pending["superseded"] = True
            elif old.row_id is not None:
                supersede.append(old.row_id)
        inserts.append(row)
        current[p.report_id] = _Current(key, p.value, old.version + 1 if old else 1, None, row)
    if errors:
        errors.sort(key=lambda e: e.index)
        raise KpiRejected(errors)

    for chunk in _chunks(supersede):
        await db.execute(update(_REPORTS).where(_REPORTS.c.id.in_(chunk)).values(superseded=True))
    for chunk in _chunks(inserts):
        await db.execute(_REPORTS.insert(), list(chunk))
    rolled: dict[Key, Value] = defaultdict(Value)
    for (uid, ind, period), delta in deltas.items():
        for anc in chains[uid]:
            rolled[(anc, ind, period)] = rolled[(anc, ind, period)] + delta
    await _upsert_add(db, rolled)
    result.affected = set(rolled)
    return result


@cache
def _upsert_statement(dialect: str) -> Any:
    """Built once per dialect: constructing it costs about as much as running it for one report."""
    ins = pg_insert(_TOTALS) if dialect == "postgresql" else sqlite_insert(_TOTALS)
    return ins.on_conflict_do_update(
        index_elements=[_TOTALS.c.unit_id, _TOTALS.c.indicator, _TOTALS.c.period],
        set_={"num": _TOTALS.c.num + ins.excluded.num, "den": _TOTALS.c.den + ins.excluded.den},
    )


async def _upsert_add(db: AsyncSession, deltas: Mapping[Key, Value]) -> None:
    """Add each delta to its totals row (created at zero when missing): one batched upsert."""
    if not deltas:
        return
    stmt = _upsert_statement(db.get_bind().dialect.name)
    # Sorted: concurrent batches lock rows in the same order (no deadlock on PostgreSQL).
    rows = [{"unit_id": u, "indicator": i, "period": p, "num": v.num, "den": v.den}
            for (u, i, p), v in sorted(deltas.items())]
    for chunk in _chunks(rows):
        await db.execute(stmt, list(chunk))


async def recompute_all(db: AsyncSession) -> int:
    """Rebuild every total from the current (non-superseded) reports by a full roll-up, then make
    the table equal to it — rows that differ are updated, missing ones inserted, extra ones
    deleted (a consistent table is only read, not rewritten). Returns the number of totals rows.
    Rows exist for each unit with a report of that indicator and period in its subtree — exactly
    the rows ``ingest`` creates."""
    nums: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    dens: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    r = _REPORTS.c  # Core columns: no ORM row processing for ~100,000 rows
    for uid, ind, period, n, d in (await db.execute(
            select(r.unit_id, r.indicator, r.period, r.num, r.den).where(r.superseded.is_(False)))).all():
        num, den = nums[(ind, period)], dens[(ind, period)]
        num[uid] = num.get(uid, 0) + n
        den[uid] = den.get(uid, 0) + d
    units_t = cast(Table, Unit.__table__)
    parent_of: dict[int, int | None] = dict((await db.execute(select(units_t.c.id, units_t.c.parent_id))).all())
    order = deepest_first(parent_of)
    want: dict[tuple[int, str, str], tuple[int, int]] = {}
    for (ind, period), num in sorted(nums.items()):
        den = dens[(ind, period)]
        for uid in order:  # units without a report in their subtree stay out (no row)
            if uid in num:
                parent = parent_of[uid]
                if parent is not None:
                    num[parent] = num.get(parent, 0) + num[uid]
                    den[parent] = den.get(parent, 0) + den[uid]
        want.update(((uid, ind, period), (n, den[uid])) for uid, n in num.items())
    t = _TOTALS.c
    have = {(u, i, p): (n, d) for u, i, p, n, d in (await db.execute(
        select(t.unit_id, t.indicator, t.period, t.num, t.den))).all()}
    if have == want:  # already consistent: nothing to write
        return len(want)
    await _reconcile(db, have, want)
    return len(want)


async def _reconcile(db: AsyncSession, have: Mapping[tuple[int, str, str], tuple[int, int]],
                     want: Mapping[tuple[int, str, str], tuple[int, int]]) -> None:
    inserts = sorted((*k, *v) for k, v in want.items() if k not in have)
    updates = [(*v, *k) for k, v in want.items() if k in have and have[k] != v]
    deletes = [k for k in have if k not in want]
    if inserts:
        await _insert_totals(db, inserts)
    for chunk in _chunks(updates):
        await db.execute(update(_TOTALS).where(_TOTALS.c.unit_id == bindparam("u"), _TOTALS.c.indicator == bindparam(
            "i"), _TOTALS.c.period == bindparam("p")).values(num=bindparam("n"), den=bindparam("d")).execution_options(
            synchronize_session=False), [{"n": n, "d": d, "u": u, "i": i, "p": p} for n, d, u, i, p in chunk])
    for chunk in _chunks(deletes):
        await db.execute(delete(_TOTALS).where(_TOTALS.c.unit_id == bindparam("u"), _TOTALS.c.indicator == bindparam(
            "i"), _TOTALS.c.period == bindparam("p")), [{"u": u, "i": i, "p": p} for u, i, p in chunk])


_MARKS = {"qmark": "?, ?, ?, ?, ?", "numeric_dollar": "$1, $2, $3, $4, $5", "format": "%s, %s, %s, %s, %s"}


async def _insert_totals(db: AsyncSession, rows: list[tuple[int, str, str, int, int]]) -> None:
    """Plain inserts of many totals rows through the driver's executemany (a full roll-up writes
    ~100,000 rows: SQLAlchemy's per-row parameter processing would be most of its time)."""
    conn = await db.connection()
    marks = _MARKS.get(conn.dialect.paramstyle)
    if marks is None:  # an unexpected driver: the portable (slower) way
        names = ("unit_id", "indicator", "period", "num", "den")
        for chunk in _chunks(rows):
            await db.execute(_TOTALS.insert(), [dict(zip(names, r, strict=True)) for r in chunk])
        return
    sql = f"INSERT INTO {_TOTALS.name} (unit_id, indicator, period, num, den) VALUES ({marks})"
    for chunk in _chunks(rows, 20_000):
        await conn.exec_driver_sql(sql, list(chunk))


async def totals_of(db: AsyncSession, unit_ids: Iterable[int], period: str) -> dict[int, dict[str, Value]]:
    """Rolled-up values of these units for one period: unit id → indicator code → value."""
    out: dict[int, dict[str, Value]] = defaultdict(dict)
    for chunk in _chunks(sorted(set(unit_ids))):
        rows = await db.execute(select(KpiTotal.unit_id, KpiTotal.indicator, KpiTotal.num, KpiTotal.den).where(
            KpiTotal.unit_id.in_(chunk), KpiTotal.period == period))
        for uid, ind, num, den in rows.all():
            out[uid][ind] = Value(int(num), int(den))
    return dict(out)


async def totals_for(db: AsyncSession, unit_id: int, period: str) -> dict[str, Value]:
    return (await totals_of(db, [unit_id], period)).get(unit_id, {})


async def all_totals(db: AsyncSession) -> dict[Key, Value]:
    """Every totals row (tests and checks: compare incremental totals with ``recompute_all``)."""
    rows = await db.execute(select(KpiTotal.unit_id, KpiTotal.indicator, KpiTotal.period, KpiTotal.num, KpiTotal.den))
    return {(u, i, p): Value(int(n), int(d)) for u, i, p, n, d in rows.all()}
