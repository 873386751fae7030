"""KPI reports: all-or-nothing intake, idempotent by report id (per unit: another unit's id is
another report), with corrections that keep history, and the rolled-up totals (a unit's own
reports plus all its descendants') kept incrementally. Items are read by ``sessions.kpi_items``.

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

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import ValidationFailed
from sessions.kpi import RELATED_CODES, Value
from sessions.kpi_items import ItemError, KpiRejected, Parsed, label, parse_item, related_errors
from sessions.kpi_items import check_period as check_period  # re-exported: the HTTP layer reads periods
from sessions.models import KpiReport, KpiTotal, Unit, UnitClosure
from sessions.store import kpi_catalog
from sessions.units import deepest_first

MAX_REPORTS = 10_000
_CHUNK = 2000
_TOTALS = cast(Table, KpiTotal.__table__)
_REPORTS = cast(Table, KpiReport.__table__)

Key = tuple[int, str, str]  # (unit id, indicator code, period)


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    corrected: int = 0
    affected: set[Key] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "corrected": self.corrected}


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
    catalog = await kpi_catalog.covering(  # only text: an indicator sent as a list or object is just unknown
        db, {code for item in reports if isinstance(item, Mapping) and isinstance(code := item.get("indicator"), str)})
    parsed = [p for i, item in enumerate(reports)
              if (p := parse_item(i, lines[i] if lines else None, item, now, errors, catalog)) is not None]

    def line_of(i: int) -> int | None:
        return lines[i] if lines else None

    unit_of, chains = await _resolve(db, (p.unit_code for p in parsed))
    reach = {uid for uid, ancestors in chains.items() if reporter_unit_id in ancestors}
    good: list[tuple[Parsed, int]] = []
    for p in parsed:
        uid = unit_of.get(p.unit_code)
        where = label(p.index, line_of(p.index))
        if uid is None:
            errors.append(ItemError(p.index, line_of(p.index), "unit", "kpi_unit_unknown",
                                    f"{where}: không có đơn vị mã '{p.unit_code}'"))
        elif uid not in reach:
            errors.append(ItemError(p.index, line_of(p.index), "unit", "out_of_scope",
                                    f"{where}: đơn vị '{p.unit_code}' nằm ngoài phạm vi của bạn"))
        else:
            good.append((p, uid))

    # A report id names a report of one unit: the same id at another unit (another province's, say)
    # is another report, never read here — no batch fails, or learns anything, by another's ids.
    current: dict[tuple[int, str], _Current] = {}
    for chunk in _chunks(sorted({(uid, p.report_id) for p, uid in good})):
        rows = await db.execute(select(KpiReport.report_id, KpiReport.id, KpiReport.version, KpiReport.unit_id,
                                       KpiReport.indicator, KpiReport.period, KpiReport.num, KpiReport.den)
                                .where(tuple_(KpiReport.unit_id, KpiReport.report_id).in_(chunk),
                                       KpiReport.superseded.is_(False)))
        for rid, row_id, version, uid, ind, period, num, den in rows.all():
            current[(uid, rid)] = _Current((uid, ind, period), Value(int(num), int(den)), version, row_id)

    result = IngestResult()
    supersede: list[int] = []
    inserts: list[dict[str, Any]] = []
    deltas: dict[Key, Value] = defaultdict(Value)
    name = reporter_name[:100]
    first: dict[Key, Parsed] = {}
    for p, uid in good:
        key: Key = (uid, p.indicator, p.period)
        first.setdefault(key, p)
        old = current.get((uid, p.report_id))
        if old is not None and old.key != key:
            errors.append(ItemError(p.index, line_of(p.index), "report_id", "kpi_report_id_conflict",
                                    f"{label(p.index, line_of(p.index))}: mã báo cáo '{p.report_id}' đã dùng cho "
                                    f"một báo cáo khác của đơn vị {p.unit_code} (chỉ tiêu hoặc kỳ khác)"))
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
        current[(uid, p.report_id)] = _Current(key, p.value, old.version + 1 if old else 1, None, row)
    errors += related_errors(await _own_after(db, deltas), first, catalog, lines)
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


async def _own_after(db: AsyncSession, deltas: Mapping[Key, Value]) -> dict[Key, int]:
    """Each related figure (``sessions.kpi.RELATED``) of the units and periods the batch changes,
    as it would stand after the batch: the unit's own current reports plus the batch's deltas."""
    groups = sorted({(uid, period) for uid, ind, period in deltas if ind in RELATED_CODES})
    own: dict[Key, int] = {}
    r = _REPORTS.c
    for chunk in _chunks(groups):
        for uid, ind, period, total in (await db.execute(
                select(r.unit_id, r.indicator, r.period, func.sum(r.num))
                .where(tuple_(r.unit_id, r.period).in_(chunk), r.indicator.in_(sorted(RELATED_CODES)),
                       r.superseded.is_(False)).group_by(r.unit_id, r.indicator, r.period))).all():
            own[(uid, ind, period)] = int(total)
    for (uid, ind, period), delta in deltas.items():
        if ind in RELATED_CODES:
            own[(uid, ind, period)] = own.get((uid, ind, period), 0) + delta.num
    return own


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
