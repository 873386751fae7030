"""The KPI catalog in force: built-in indicators plus those an admin added (``kpi_indicators``).

Read on every intake and slide render, so it is cached per database and per process; the cache
key is the table's row count and newest row (indicators are only ever added), one cheap query —
a second server process sees an indicator added on the first at its next read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import ValidationFailed
from sessions.kpi import BUILTIN, Catalog, Direction, Indicator, Kind, Thresholds, indicator_from_spec
from sessions.models import KpiIndicator

_cache: dict[str, tuple[tuple[int, str | None], Catalog]] = {}


def _indicator(row: KpiIndicator) -> Indicator:
    thresholds = Thresholds(row.green_at, row.amber_at) if row.green_at is not None and row.amber_at is not None \
        else None
    by_level = {level: Thresholds(float(g), float(a)) for level, (g, a) in (row.by_level or {}).items()}
    return Indicator(row.code, row.name, Kind(row.kind), row.unit, Direction(row.direction), row.target,
                     thresholds, by_level, row.period)


async def load(db: AsyncSession) -> Catalog:
    count, last_code, last_at = (await db.execute(
        select(func.count(), func.max(KpiIndicator.code), func.max(KpiIndicator.created_at)))).one()
    key = str(db.get_bind().engine.url)
    stamp = (int(count), f"{last_code}|{last_at}")
    hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    if not count:
        catalog = Catalog()
    else:
        rows = (await db.execute(select(KpiIndicator).order_by(KpiIndicator.position, KpiIndicator.code))).scalars()
        catalog = Catalog(_indicator(r) for r in rows)
    _cache[key] = (stamp, catalog)
    return catalog


async def covering(db: AsyncSession, codes: Iterable[object]) -> Catalog:
    """A catalog that knows ``codes`` if the database does. Built-in indicators are in code and
    never change, so a batch naming only those needs no table check; one naming an added
    indicator reads the table's stamp (``load``) — the intake path stays one query shorter for
    the Đề án 06 reports."""
    if all(code in BUILTIN for code in codes):
        return BUILTIN
    return await load(db)


def _row(ind: Indicator, position: int, now: datetime, user_id: int | None) -> KpiIndicator:
    t = ind.thresholds
    return KpiIndicator(
        code=ind.code, name=ind.name, kind=ind.kind.value, unit=ind.unit, direction=ind.direction.value,
        target=ind.target, green_at=t.green_at if t else None, amber_at=t.amber_at if t else None,
        by_level={level: [x.green_at, x.amber_at] for level, x in ind.by_level.items()}, period=ind.period,
        position=position, created_at=now, created_by=user_id)


async def add(db: AsyncSession, specs: Sequence[Mapping[str, str]], now: datetime, user_id: int | None,
              lines: Sequence[int] | None = None) -> list[Indicator]:
    """Validate every spec (a form, or the rows of a file), then add them all — or nothing: the
    first bad one raises ValidationFailed prefixed with its line ("Dòng 3: …")."""
    if not specs:
        raise ValidationFailed("Tệp không có chỉ tiêu nào", code="kpi_indicator_invalid", field="file")
    catalog = await load(db)
    taken = set(catalog.by_code)
    made: list[Indicator] = []
    for i, spec in enumerate(specs):
        try:
            ind = indicator_from_spec(spec, taken)
        except ValidationFailed as exc:
            if lines is None:
                raise
            raise ValidationFailed(f"Dòng {lines[i]}: {exc.message}", code=exc.code,
                                   field=exc.detail.get("field"), line=lines[i]) from None
        taken.add(ind.code)
        made.append(ind)
    start = int((await db.execute(select(func.coalesce(func.max(KpiIndicator.position), 0)))).scalar_one())
    db.add_all(_row(ind, start + n, now, user_id) for n, ind in enumerate(made, 1))
    await db.flush()
    return made
