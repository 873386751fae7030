"""Demo KPI figures: the seed report's ministry totals, spread over every commune of the tree
(deterministic seeded weights, integer apportionment that sums exactly); the ministry-level
figures are reported at the ministry itself. Report ids are fixed, so a second run is all
duplicates.

Each commune also reports its last six months (2022-03 … 2022-08: the slides' trend charts), a
share of its campaign figures that grows month by month, on-time and online rates improving. The
previous meeting — the July 2022 briefing, concluded — is recorded with its KPI snapshot: the
campaign figures as they stood then, i.e. today's minus August's, so every slide shows the change
since that meeting."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sessions.meetings import MeetingState
from sessions.store import backfill, meetings, units
from sessions.store import kpi as kpi_store
from sessions.store import minutes as minutes_store
from sessions.units import Level

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
MONTHS = ("2022-03", "2022-04", "2022-05", "2022-06", "2022-07", "2022-08")
SHARE = (0.09, 0.11, 0.13, 0.15, 0.17, 0.19)  # of the campaign figures, per month
RATE = (0.95, 0.96, 0.98, 0.99, 1.01, 1.02)  # of the campaign rate, per month (capped at 100 %)
PREVIOUS_TITLE = "Hội nghị giao ban trực tuyến Đề án 06 tháng 7/2022"
PREVIOUS_START = datetime(2022, 7, 29, 7, 0, tzinfo=UTC)  # 14:00 in Hà Nội
PREVIOUS_END = datetime(2022, 7, 29, 9, 30, tzinfo=UTC)
PREVIOUS_MINISTRY = {"DVC_HOAN_THANH": (7, 11), "NV_CHAM_TIEN_DO": (14, 0)}  # as reported in July
MONTHLY = ("DVC_TIEP_NHAN", "DVC_GIAI_QUYET", "DVC_DUNG_HAN", "DVC_TY_LE_DUNG_HAN", "CU_TRU_TRUC_TUYEN",
           "HO_CHIEU_TRUC_TUYEN")


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

    def monthly(code: str, indicator: str, month: str, value: int, den: int | None = None) -> None:
        item: dict[str, Any] = {"report_id": f"demo:{code}:{indicator}:{month}", "unit": code,
                                "indicator": indicator, "period": month, "value": value}
        if den is not None:
            item["denominator"] = den
        out.append(item)

    def months(total: int) -> list[int]:
        """A commune's last six months: SHARE of its campaign figure, apportioned in whole numbers."""
        return apportion(int(total * sum(SHARE)), SHARE)

    def rates(num: int, dens: list[int]) -> list[int]:
        """Monthly numerators: the campaign's share of ``num``, weighted to improve month by month,
        each at most its month's denominator."""
        return apportion(min(int(num * sum(SHARE)), sum(dens)), [w * r for w, r in zip(SHARE, RATE, strict=True)],
                         dens)

    for i, code in enumerate(communes):
        got, solved_m, res_m, pass_m = (months(received[i]), months(solved[i]), months(res_den[i]),
                                        months(pass_den[i]))
        on_time_m, res_num_m, pass_num_m = rates(on_time[i], solved_m), rates(res_num[i], res_m), rates(
            pass_num[i], pass_m)
        for m, month in enumerate(MONTHS):
            monthly(code, "DVC_TIEP_NHAN", month, max(got[m], solved_m[m]))
            monthly(code, "DVC_GIAI_QUYET", month, solved_m[m])
            monthly(code, "DVC_DUNG_HAN", month, on_time_m[m])
            monthly(code, "DVC_TY_LE_DUNG_HAN", month, on_time_m[m], solved_m[m])
            monthly(code, "CU_TRU_TRUC_TUYEN", month, res_num_m[m], res_m[m])
            monthly(code, "HO_CHIEU_TRUC_TUYEN", month, pass_num_m[m], pass_m[m])
    return out


async def load(db: AsyncSession, ministry_code: str, now: datetime) -> dict[str, int]:
    """Report the demo figures (the caller's transaction); returns accepted/duplicates/corrected."""
    ministry = (await units.get_by_code(db, ministry_code)).id
    communes = sorted(u.code for u in await units.subtree(db, ministry, Level.COMMUNE))
    reports = demo_reports(communes, ministry_code)
    total = {"accepted": 0, "duplicates": 0, "corrected": 0}
    for start in range(0, len(reports), kpi_store.MAX_REPORTS):
        result = await kpi_store.ingest(db, reports[start:start + kpi_store.MAX_REPORTS], ministry, "demo", now)
        for k, v in result.counts().items():
            total[k] += v
    await previous_meeting(db, ministry, ministry_code)
    return total


async def previous_meeting(db: AsyncSession, ministry_id: int, ministry_code: str) -> int:
    """The concluded July briefing and its KPI snapshot (created once; later runs reuse it)."""
    found = await meetings.latest_titled(db, PREVIOUS_TITLE)
    if found is not None:
        return found
    mid = await meetings.schedule(db, title=PREVIOUS_TITLE, agenda=["Tình hình triển khai Đề án 06 tháng 7/2022"],
                                  start=PREVIOUS_START, chair_unit_id=ministry_id, created_by_id=None,
                                  selectors=[meetings.Selector(ministry_code, (Level.PROVINCE, Level.COMMUNE))])
    for target, at in ((MeetingState.REHEARSAL, PREVIOUS_START), (MeetingState.LIVE, PREVIOUS_START),
                       (MeetingState.CONCLUDED, PREVIOUS_END)):
        await meetings.change_state(db, mid, target, at=at, by_user_id=None, by_name="demo")
    now: dict[tuple[int, str], tuple[int, int]] = {}
    august: dict[tuple[int, str], tuple[int, int]] = {}
    for uid, ind, period, num, den in await backfill.totals(db, (PERIOD, MONTHS[-1])):
        (now if period == PERIOD else august)[(uid, ind)] = (num, den)
    snapshot: list[dict[str, Any]] = []
    for (uid, ind), (num, den) in sorted(now.items()):
        if ind in MONTHLY:
            a_num, a_den = august.get((uid, ind), (0, 0))
            num, den = num - a_num, den - a_den
            num = min(num, den) if den else num
        elif uid == ministry_id and ind in PREVIOUS_MINISTRY:
            num, den = PREVIOUS_MINISTRY[ind]
        for phase, at in (("live", PREVIOUS_START), ("concluded", PREVIOUS_END)):
            snapshot.append({"meeting_id": mid, "phase": phase, "unit_id": uid, "indicator": ind,
                             "period": PERIOD, "num": num, "den": den, "taken_at": at})
    await backfill.kpi_snapshot(db, snapshot)
    await minutes_store.freeze(db, mid, PREVIOUS_END, "demo")  # a concluded meeting has its minutes
    return mid
