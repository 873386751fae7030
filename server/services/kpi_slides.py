"""Live KPI slides: a unit's indicators (value, target, colour, rank among siblings) and, for
the ministry, the ranking of its child units on the on-time rate. Built for many units at once
(a few queries per batch) and pushed on the bus as ``kpi.<unit id>`` after every ingest (staged
with it: server.services.outbox)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.live.wire import dumps
from server.services import outbox
from sessions.kpi import Direction, Indicator, Kind, Value, colour, display, rank
from sessions.store import kpi as kpi_store
from sessions.store import kpi_catalog
from sessions.store import kpi_slides as slide_store
from sessions.store.kpi_slides import Previous

PERIOD = "campaign"
RANKED = "DVC_TY_LE_DUNG_HAN"  # the ministry's table of child units
MONTH = re.compile(r"^\d{4}-\d{2}$")


def indicator_row(ind: Indicator, values: dict[int, dict[str, Value]], unit_id: int, level: str,
                  siblings: list[int], previous: Previous | None = None,
                  trend: dict[str, list[tuple[str, Value]]] | None = None) -> dict[str, Any]:
    code = ind.code
    has = code in values.get(unit_id, {})
    v = values.get(unit_id, {}).get(code, Value())
    ranks = rank({s: display(ind, values[s][code]) if code in values.get(s, {}) else None for s in siblings},
                 ind.direction)
    shown = display(ind, v) if has else None
    ratio = v.ratio() if ind.kind is Kind.RATIO else None
    row: dict[str, Any] = {
        "code": ind.code, "name": ind.name, "kind": ind.kind.value, "unit": ind.unit,
        "direction": ind.direction.value, "target": ind.target, "has_data": has,
        "num": v.num, "den": v.den if ind.kind is Kind.RATIO else None, "value": shown,
        "ratio": ratio, "percent": round(ratio * 100, 2) if ratio is not None else None,
        "colour": colour(ind, v, level).value if has else "none",
        "rank": ranks[unit_id], "siblings": len(siblings), "change": None,
        "trend": [{"period": period, "value": _shown(ind, x)} for period, x in (trend or {}).get(code, [])],
    }
    before = previous.values.get(code) if previous is not None else None
    if previous is not None and before is not None and has:
        now_x, then_x = _shown(ind, v), _shown(ind, before)
        delta = None if now_x is None or then_x is None else round(now_x - then_x, 2)
        better = None if not delta else (delta > 0) == (ind.direction is Direction.HIGHER)
        row["change"] = {"delta": delta, "points": ind.kind is Kind.RATIO, "better": better,
                         "previous": then_x, "meeting": previous.title, "date": previous.date}
    return row


def _shown(ind: Indicator, v: Value) -> float | None:
    """What a slide shows: a ratio in percent (2 decimals), a count as is."""
    if ind.kind is Kind.RATIO:
        r = v.ratio()
        return round(r * 100, 2) if r is not None else None
    return float(v.num)


async def slides(db: AsyncSession, unit_ids: Iterable[int], period: str = PERIOD) -> dict[int, dict[str, Any]]:
    """Slide data per unit: few queries whatever the number of units."""
    wanted = sorted(set(unit_ids))
    if not wanted:
        return {}
    units, family, children = await slide_store.unit_family(db, wanted)
    ids = set(units) | {r.id for rs in family.values() for r in rs} | {r.id for rs in children.values() for r in rs}
    values = await kpi_store.totals_of(db, ids, period)
    catalog = await kpi_catalog.load(db)
    previous = await slide_store.previous_meeting(db, wanted, period)
    trends = await slide_store.monthly_trend(db, wanted)
    out: dict[int, dict[str, Any]] = {}
    for uid, u in units.items():
        siblings = [r.id for r in family.get(u.parent_id, [])] if u.parent_id is not None else [uid]
        data: dict[str, Any] = {
            "unit": {"id": u.id, "code": u.code, "name": u.name, "level": str(u.level)}, "period": period,
            "indicators": [indicator_row(ind, values, uid, str(u.level), siblings, previous.get(uid),
                                         trends.get(uid)) for ind in catalog],
        }
        if uid in previous:
            data["previous"] = {"meeting": previous[uid].title, "date": previous[uid].date}
        kids = children.get(uid)
        if kids is not None:
            ind = catalog.by_code[RANKED]
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


async def stage(db: AsyncSession, affected: Iterable[kpi_store.Key]) -> outbox.Staged:
    """One event per unit whose slide period changed, built from ``db``'s transaction (the ingest
    it announces) and staged in it; ``outbox.deliver`` publishes them once it committed."""
    # The campaign figures, and the monthly ones (the trend charts), are on the slide.
    unit_ids = {uid for uid, _ind, period in affected if period == PERIOD or MONTH.match(period)}
    if not unit_ids:
        return outbox.Staged()
    data = await slides(db, unit_ids)
    return await outbox.stage(db, [(f"kpi.{uid}", encode(uid, slide)) for uid, slide in sorted(data.items())])
