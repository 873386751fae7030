"""Live KPI slides: a unit's indicators (value, target, colour, rank among siblings) and, for
the ministry, the ranking of its child units on the on-time rate. Built for many units at once
(a few queries per batch) and pushed on the bus as ``kpi.<unit id>`` after every ingest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.live.wire import dumps
from server.state import BUS
from sessions.kpi import CATALOG_BY_CODE, Kind, Value, colour, display, rank
from sessions.models import Unit
from sessions.store import kpi as kpi_store

PERIOD = "campaign"
RANKED = "DVC_TY_LE_DUNG_HAN"  # the ministry's table of child units


def indicator_row(code: str, values: dict[int, dict[str, Value]], unit_id: int, level: str,
                   siblings: list[int]) -> dict[str, Any]:
    ind = CATALOG_BY_CODE[code]
    has = code in values.get(unit_id, {})
    v = values.get(unit_id, {}).get(code, Value())
    ranks = rank({s: display(ind, values[s][code]) if code in values.get(s, {}) else None for s in siblings},
                 ind.direction)
    shown = display(ind, v) if has else None
    ratio = v.ratio() if ind.kind is Kind.RATIO else None
    return {
        "code": ind.code, "name": ind.name, "kind": ind.kind.value, "unit": ind.unit,
        "direction": ind.direction.value, "target": ind.target, "has_data": has,
        "num": v.num, "den": v.den if ind.kind is Kind.RATIO else None, "value": shown,
        "ratio": ratio, "percent": round(ratio * 100, 2) if ratio is not None else None,
        "colour": colour(ind, v, level).value if has else "none",
        "rank": ranks[unit_id], "siblings": len(siblings),
    }




async def slides(db: AsyncSession, unit_ids: Iterable[int], period: str = PERIOD) -> dict[int, dict[str, Any]]:
    """Slide data per unit: few queries whatever the number of units."""
    wanted = sorted(set(unit_ids))
    if not wanted:
        return {}
    units: dict[int, Any] = {}
    for start in range(0, len(wanted), 2000):
        rows = await db.execute(select(Unit.id, Unit.code, Unit.name, Unit.level, Unit.parent_id)
                                .where(Unit.id.in_(wanted[start:start + 2000])))
        units |= {r.id: r for r in rows.all()}
    parents = sorted({u.parent_id for u in units.values() if u.parent_id is not None})
    roots = [u.id for u in units.values() if u.parent_id is None]
    family: dict[int | None, list[Any]] = {}
    for start in range(0, len(parents), 2000):
        rows = await db.execute(select(Unit.id, Unit.code, Unit.name, Unit.parent_id)
                                .where(Unit.parent_id.in_(parents[start:start + 2000])))
        for r in rows.all():
            family.setdefault(r.parent_id, []).append(r)
    children: dict[int, list[Any]] = {}
    if roots:
        rows = await db.execute(select(Unit.id, Unit.code, Unit.name, Unit.parent_id).where(Unit.parent_id.in_(roots)))
        for r in rows.all():
            children.setdefault(r.parent_id, []).append(r)
    ids = set(units) | {r.id for rs in family.values() for r in rs} | {r.id for rs in children.values() for r in rs}
    values = await kpi_store.totals_of(db, ids, period)
    out: dict[int, dict[str, Any]] = {}
    for uid, u in units.items():
        siblings = [r.id for r in family.get(u.parent_id, [])] if u.parent_id is not None else [uid]
        data: dict[str, Any] = {
            "unit": {"id": u.id, "code": u.code, "name": u.name, "level": str(u.level)}, "period": period,
            "indicators": [indicator_row(code, values, uid, str(u.level), siblings) for code in CATALOG_BY_CODE],
        }
        kids = children.get(uid)
        if kids is not None:
            ind = CATALOG_BY_CODE[RANKED]
            shown = {k.id: display(ind, values[k.id][RANKED]) if RANKED in values.get(k.id, {}) else None
                     for k in kids}
            places = rank(shown, ind.direction)
            table = []
            for k in kids:
                v = values.get(k.id, {}).get(RANKED)
                ratio = v.ratio() if v is not None else None
                table.append({"code": k.code, "name": k.name, "rank": places[k.id], "num": v.num if v else 0,
                              "den": v.den if v else 0,
                              "percent": round(ratio * 100, 2) if ratio is not None else None,
                              "colour": colour(ind, v, "province").value if v is not None else "none"})
            table.sort(key=lambda t: (t["rank"], t["code"]))
            data["children"] = {"indicator": RANKED, "name": ind.name, "rows": table}
        out[uid] = data
    return out


def frame(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event", "kind": "kpi", "topic": f"kpi:{data['unit']['code']}", "unit": data["unit"]["code"],
            "data": data}


def encode(unit_id: int, data: dict[str, Any]) -> bytes:
    """Bus message: routing header (seq 0: slides are whole, not deltas), newline, client frame."""
    return dumps({"m": 0, "s": 0, "k": "kpi", "u": unit_id, "p": []}) + b"\n" + dumps(frame(data))


async def publish(app: web.Application, db: AsyncSession, affected: Iterable[kpi_store.Key]) -> int:
    """One event per unit whose slide period changed; returns how many were published."""
    unit_ids = {uid for uid, _ind, period in affected if period == PERIOD}
    if not unit_ids:
        return 0
    bus = app[BUS]
    data = await slides(db, unit_ids)
    for uid, slide in sorted(data.items()):
        await bus.publish(f"kpi.{uid}", encode(uid, slide))
    return len(data)
