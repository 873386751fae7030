"""Demo KPI figures: the seed report's ministry totals, spread over every commune of the tree
(deterministic seeded weights, integer apportionment that sums exactly); the ministry-level
figures are reported at the ministry itself. Report ids are fixed, so a second run is all
duplicates."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import Unit
from sessions.store import kpi as kpi_store

PERIOD = "campaign"
SEED = 6  # Đề án 06
# Ministry totals of the seed report (commune-level counts: spread over the communes).
RECEIVED = 201_884
SOLVED = 74_587
ON_TIME = 74_336
RESIDENCE = (50_579, 70_758)
PASSPORT = (5_862, 6_302)
SERVICES_DONE = (9, 11)  # at the ministry itself
TASKS_LATE = 10  # at the ministry itself


def apportion(total: int, weights: Sequence[float], caps: Sequence[int] | None = None) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` exactly (largest remainder),
    each at most its cap when ``caps`` is given (the excess goes to the others)."""
    n = len(weights)
    out = [0] * n
    open_ = [i for i in range(n) if caps is None or caps[i] > 0]
    left = total
    while left > 0 and open_:
        w = sum(weights[i] for i in open_) or float(len(open_))
        share = {i: left * ((weights[i] if w else 1.0) / w) for i in open_}
        add = {i: int(share[i]) for i in open_}
        rest = left - sum(add.values())
        for i in sorted(open_, key=lambda i: (-(share[i] - add[i]), i))[:rest]:
            add[i] += 1
        for i in open_:
            room = caps[i] - out[i] if caps is not None else add[i]
            out[i] += min(add[i], room)
        left = total - sum(out)
        open_ = [i for i in open_ if caps is None or out[i] < caps[i]]
    if left:
        raise ValueError(f"cannot apportion {total}: caps too small")
    return out


def demo_reports(communes: Sequence[str], ministry: str) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    size = [rng.uniform(0.2, 3.0) for _ in communes]  # how busy a commune is
    quality = [rng.uniform(0.85, 1.0) for _ in communes]  # how well it does
    solved = apportion(SOLVED, size)
    on_time = apportion(ON_TIME, [s * q for s, q in zip(solved, quality, strict=True)], solved)
    received = [s + x for s, x in zip(solved, apportion(RECEIVED - SOLVED, size), strict=True)]
    res_den = apportion(RESIDENCE[1], size)
    res_num = apportion(RESIDENCE[0], [d * q for d, q in zip(res_den, quality, strict=True)], res_den)
    pass_den = apportion(PASSPORT[1], size)
    pass_num = apportion(PASSPORT[0], [d * q for d, q in zip(pass_den, quality, strict=True)], pass_den)
    out: list[dict[str, Any]] = []

    def add(code: str, indicator: str, value: int, den: int | None = None) -> None:
        item: dict[str, Any] = {"report_id": f"demo:{code}:{indicator}", "unit": code, "indicator": indicator,
                                "period": PERIOD, "value": value}
        if den is not None:
            item["denominator"] = den
        out.append(item)

    for i, code in enumerate(communes):
        add(code, "DVC_TIEP_NHAN", received[i])
        add(code, "DVC_GIAI_QUYET", solved[i])
        add(code, "DVC_DUNG_HAN", on_time[i])
        add(code, "DVC_TY_LE_DUNG_HAN", on_time[i], solved[i])
        add(code, "CU_TRU_TRUC_TUYEN", res_num[i], res_den[i])
        add(code, "HO_CHIEU_TRUC_TUYEN", pass_num[i], pass_den[i])
    add(ministry, "DVC_HOAN_THANH", *SERVICES_DONE)
    add(ministry, "NV_CHAM_TIEN_DO", TASKS_LATE)
    return out


async def load(db: AsyncSession, ministry_code: str, now: datetime) -> dict[str, int]:
    """Report the demo figures (the caller's transaction); returns accepted/duplicates/corrected."""
    ministry = (await db.execute(select(Unit.id).where(Unit.code == ministry_code))).scalar_one()
    communes = sorted((await db.execute(select(Unit.code).where(Unit.level == "commune"))).scalars())
    reports = demo_reports(communes, ministry_code)
    total = {"accepted": 0, "duplicates": 0, "corrected": 0}
    for start in range(0, len(reports), kpi_store.MAX_REPORTS):
        result = await kpi_store.ingest(db, reports[start:start + kpi_store.MAX_REPORTS], ministry, "demo", now)
        for k, v in result.counts().items():
            total[k] += v
    return total
