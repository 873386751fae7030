"""KPI intake and roll-up on a real database (SQLite, and PostgreSQL when configured): seed figures
roll up exactly, resends count once, corrections apply their delta and keep history, bad batches
change nothing, and the incremental totals always equal a full recompute."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from server import db as dbmod
from sessions.errors import ValidationFailed
from sessions.kpi import Value
from sessions.models import KpiReport, KpiTotal
from sessions.store import kpi
from sessions.store import units as units_store
from tests.conftest import TREE, seed

NOW = datetime(2022, 7, 15, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội
COMMUNES = ["00070", "00004", "08707", "08740", "26734"]

# Đề án 06 figures of the ministry's units, split over the communes of the fixture tree.
SEED = {
    "DVC_TY_LE_DUNG_HAN": [(20000, 20100), (14336, 14400), (15000, 15050), (15000, 15037), (10000, 10000)],
    "CU_TRU_TRUC_TUYEN": [(10000, 14000), (10579, 14758), (10000, 14000), (10000, 14000), (10000, 14000)],
    "HO_CHIEU_TRUC_TUYEN": [(1000, 1100), (1862, 2002), (1000, 1050), (1000, 1050), (1000, 1100)],
}


def seed_reports(period: str = "2022-06") -> list[dict[str, Any]]:
    return [{"report_id": f"{code}-{ind}-{period}", "unit": code, "indicator": ind, "period": period,
             "value": num, "denominator": den}
            for ind, parts in SEED.items() for code, (num, den) in zip(COMMUNES, parts, strict=True)]


async def ids(s: Any) -> dict[str, int]:
    return {code: (await units_store.get_by_code(s, code)).id for code in [r.code for r in TREE]}


async def seeded(session_factory: Any) -> dict[str, int]:
    async with dbmod.transaction(session_factory) as s:
        await seed(s)
        return await ids(s)


async def ingest(session_factory: Any, reports: list[dict[str, Any]], reporter: str, uid: dict[str, int],
                 now: datetime = NOW) -> kpi.IngestResult:
    async with dbmod.transaction(session_factory) as s:
        return await kpi.ingest(s, reports, uid[reporter], "thu-nghiem", now)


async def state(session_factory: Any) -> tuple[dict[kpi.Key, Value], list[tuple[Any, ...]]]:
    async with session_factory() as s:
        totals = await kpi.all_totals(s)
        rows = (await s.execute(select(KpiReport.report_id, KpiReport.version, KpiReport.superseded,
                                       KpiReport.num, KpiReport.den).order_by(KpiReport.id))).all()
    return totals, list(rows)


async def test_seed_figures_roll_up_exactly(session_factory: Any) -> None:
    uid = await seeded(session_factory)
    result = await ingest(session_factory, seed_reports(), "BCA", uid)
    assert result.counts() == {"accepted": 15, "duplicates": 0, "corrected": 0}
    async with session_factory() as s:
        ministry = await kpi.totals_for(s, uid["BCA"], "2022-06")
        hanoi = await kpi.totals_for(s, uid["01"], "2022-06")
        district = await kpi.totals_for(s, uid["760"], "2022-06")
    assert ministry["DVC_TY_LE_DUNG_HAN"] == Value(74336, 74587)
    assert round(ministry["DVC_TY_LE_DUNG_HAN"].ratio() * 100, 2) == 99.66  # type: ignore[operator]
    assert ministry["CU_TRU_TRUC_TUYEN"] == Value(50579, 70758)
    assert ministry["HO_CHIEU_TRUC_TUYEN"] == Value(5862, 6302)
    assert ministry["HO_CHIEU_TRUC_TUYEN"].ratio() > 0.93  # type: ignore[operator]
    assert hanoi["DVC_TY_LE_DUNG_HAN"] == Value(34336, 34500)
    assert district["CU_TRU_TRUC_TUYEN"] == Value(10000, 14000)
    # Affected: every commune's chain (commune, [district], province, ministry) per indicator.
    assert (uid["760"], "HO_CHIEU_TRUC_TUYEN", "2022-06") in result.affected
    assert len(result.affected) == 3 * (5 + 1 + 3 + 1)
    incremental, _ = await state(session_factory)
    async with dbmod.transaction(session_factory) as s:
        await kpi.recompute_all(s)
    assert (await state(session_factory))[0] == incremental

    # A damaged table is repaired: a wrong row, a missing row and a stray row.
    async with dbmod.transaction(session_factory) as s:
        await s.execute(update(KpiTotal).where(KpiTotal.unit_id == uid["BCA"],
                                               KpiTotal.indicator == "CU_TRU_TRUC_TUYEN").values(num=1))
        await s.execute(delete(KpiTotal).where(KpiTotal.unit_id == uid["01"],
                                               KpiTotal.indicator == "HO_CHIEU_TRUC_TUYEN"))
        s.add(KpiTotal(unit_id=uid["25"], indicator="NV_CHAM_TIEN_DO", period="2022-06", num=7, den=0))
    assert (await state(session_factory))[0] != incremental
    async with dbmod.transaction(session_factory) as s:
        assert await kpi.recompute_all(s) == len(incremental)
    assert (await state(session_factory))[0] == incremental


async def test_resend_counts_once_and_correction_applies_delta(session_factory: Any) -> None:
    uid = await seeded(session_factory)
    await ingest(session_factory, seed_reports(), "BCA", uid)
    again = await ingest(session_factory, seed_reports(), "BCA", uid)
    assert again.counts() == {"accepted": 0, "duplicates": 15, "corrected": 0} and again.affected == set()
    totals_before, rows_before = await state(session_factory)
    assert len(rows_before) == 15

    fix = {"report_id": "00070-HO_CHIEU_TRUC_TUYEN-2022-06", "unit": "00070", "indicator": "HO_CHIEU_TRUC_TUYEN",
           "period": "2022-06", "value": 1050, "denominator": 1100}
    result = await ingest(session_factory, [fix, fix], "01", uid)
    assert result.counts() == {"accepted": 0, "duplicates": 1, "corrected": 1}
    totals, rows = await state(session_factory)
    key = ("HO_CHIEU_TRUC_TUYEN", "2022-06")
    for code in ("00070", "01", "BCA"):
        assert totals[(uid[code], *key)] == totals_before[(uid[code], *key)] + Value(50, 0)
    assert totals[(uid["25"], *key)] == totals_before[(uid["25"], *key)]
    history = [r for r in rows if r[0] == fix["report_id"]]
    assert history == [(fix["report_id"], 1, True, 1000, 1100), (fix["report_id"], 2, False, 1050, 1100)]

    # A correction back and forth inside one batch: history grows, totals follow the last value.
    back = {**fix, "value": 900}
    result = await ingest(session_factory, [back, fix, back], "BCA", uid)
    assert result.counts() == {"accepted": 0, "duplicates": 0, "corrected": 3}
    totals, rows = await state(session_factory)
    assert totals[(uid["BCA"], *key)] == Value(5862 - 100, 6302)
    assert [(r[1], r[2], r[3]) for r in rows if r[0] == fix["report_id"]] == [
        (1, True, 1000), (2, True, 1050), (3, True, 900), (4, True, 1050), (5, False, 900)]
    async with dbmod.transaction(session_factory) as s:
        await kpi.recompute_all(s)
    assert (await state(session_factory))[0] == totals


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"indicator": "KHONG_CO"}, "kpi_indicator_unknown", "indicator"),
    ({"unit": "99999"}, "kpi_unit_unknown", "unit"),
    ({"unit": 70}, "kpi_unit_unknown", "unit"),
    ({"value": -1}, "value_negative", "value"),
    ({"denominator": -5}, "value_negative", "denominator"),
    ({"value": 11, "denominator": 10}, "numerator_above_denominator", "value"),
    ({"value": 1.5}, "value_invalid", "value"),
    ({"value": "7"}, "value_invalid", "value"),
    ({"denominator": None}, "denominator_required", "denominator"),
    ({"indicator": "DVC_TIEP_NHAN", "denominator": 10}, "denominator_unexpected", "denominator"),
    ({"period": "2022-13"}, "kpi_period_invalid", "period"),
    ({"period": "2022-Q5"}, "kpi_period_invalid", "period"),
    ({"period": "06/2022"}, "kpi_period_invalid", "period"),
    ({"period": "2022-08"}, "kpi_period_future", "period"),
    ({"period": "2022-Q4"}, "kpi_period_future", "period"),
    ({"report_id": ""}, "kpi_report_id_invalid", "report_id"),
    ({"report_id": "a b"}, "kpi_report_id_invalid", "report_id"),
    ({"report_id": "x" * 65}, "kpi_report_id_invalid", "report_id"),
    ({"unit": "25"}, "out_of_scope", "unit"),
    ({"unit": "BCA"}, "out_of_scope", "unit"),
    # The seed's report id, at its own commune for another period: not a correction, refused. (At
    # another commune the same id names another report: tests/test_kpi_bounds.py.)
    ({"report_id": "00070-HO_CHIEU_TRUC_TUYEN-2022-06", "unit": "00070"}, "kpi_report_id_conflict", "report_id"),
]


async def test_every_bad_input_is_refused_and_nothing_changes(session_factory: Any) -> None:
    uid = await seeded(session_factory)
    await ingest(session_factory, seed_reports(), "BCA", uid)
    before = await state(session_factory)
    good = {"report_id": "moi-1", "unit": "00004", "indicator": "HO_CHIEU_TRUC_TUYEN", "period": "2022-07",
            "value": 5, "denominator": 10}
    for change, code, fld in BAD:
        batch = [good, {**good, "report_id": "moi-2", **change}]
        with pytest.raises(kpi.KpiRejected) as info:
            await ingest(session_factory, batch, "01", uid)
        assert info.value.code == code, change
        assert info.value.status == (403 if code == "out_of_scope" else 400)
        assert [(e.index, e.field, e.code) for e in info.value.errors] == [(1, fld, code)], change
        assert info.value.message.startswith("Mục 2: ")
        assert await state(session_factory) == before, change
    # Several bad items: all listed; scope wins the status; lines label the messages.
    with pytest.raises(kpi.KpiRejected) as info:
        async with dbmod.transaction(session_factory) as s:
            await kpi.ingest(s, [{**good, "value": -1}, "x", {**good, "unit": "79"}], uid["01"], "t", NOW,
                             lines=[2, 3, 4])
    assert info.value.code == "out_of_scope" and info.value.status == 403
    assert [(e.line, e.code) for e in info.value.errors] == [(2, "value_negative"), (3, "kpi_report_invalid"),
                                                             (4, "out_of_scope")]
    assert info.value.errors[0].message.startswith("Dòng 2: ")
    for reports, code in (([], "kpi_reports_required"), ([good] * (kpi.MAX_REPORTS + 1), "kpi_too_many")):
        with pytest.raises(ValidationFailed) as err:
            await ingest(session_factory, reports, "01", uid)
        assert err.value.code == code
    assert await state(session_factory) == before


async def test_period_is_not_in_the_future_in_vietnam_time(session_factory: Any) -> None:
    uid = await seeded(session_factory)
    july = {"report_id": "r", "unit": "00070", "indicator": "DVC_TIEP_NHAN", "period": "2022-07", "value": 3}
    late_june_utc = datetime(2022, 6, 30, 17, 30, tzinfo=UTC)  # already 1 July, 00:30 in Hà Nội
    assert (await ingest(session_factory, [july], "01", uid, now=late_june_utc)).accepted == 1
    with pytest.raises(kpi.KpiRejected):
        await ingest(session_factory, [{**july, "report_id": "s", "period": "2022-08"}], "01", uid,
                     now=late_june_utc)
    assert kpi.check_period("campaign") == "campaign"


async def test_many_reports_in_one_batch(session_factory: Any) -> None:
    """10,000 reports (the API's maximum): batched queries, one upsert; totals still exact."""
    uid = await seeded(session_factory)
    reports = [{"report_id": f"n-{i}", "unit": COMMUNES[i % 5], "indicator": "DVC_TIEP_NHAN", "period": "campaign",
                "value": i % 7} for i in range(kpi.MAX_REPORTS)]
    result = await ingest(session_factory, reports, "BCA", uid)
    assert result.accepted == kpi.MAX_REPORTS
    async with session_factory() as s:
        assert (await kpi.totals_for(s, uid["BCA"], "campaign"))["DVC_TIEP_NHAN"].num == sum(
            i % 7 for i in range(kpi.MAX_REPORTS))
        assert (await s.execute(select(func.count()).select_from(KpiTotal))).scalar_one() == 10


# ---------------------------------------------------------------------------------------------
# Incremental totals == full recompute, for random sequences of batches (resends, corrections,
# reports at every level, refused batches).

UNITS = [r.code for r in TREE]
report = st.builds(
    lambda unit, ind, period, n, num, extra: {
        "report_id": f"{unit}-{ind}-{period}-{n}", "unit": unit, "indicator": ind, "period": period, "value": num,
        **({"denominator": num + extra} if ind != "DVC_TIEP_NHAN" else {})},
    st.sampled_from(UNITS), st.sampled_from(["DVC_TIEP_NHAN", "CU_TRU_TRUC_TUYEN"]),
    st.sampled_from(["2022-06", "campaign"]), st.integers(0, 2), st.integers(0, 40), st.integers(0, 40))
bad_report = st.builds(lambda r: {**r, "value": -1}, report)
batch = st.lists(st.one_of(report, report, report, bad_report), min_size=1, max_size=8)


async def _run_batches(url: str, batches: list[list[dict[str, Any]]]) -> None:
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    try:
        async with dbmod.transaction(factory) as s:
            await s.execute(KpiReport.__table__.delete())
            await s.execute(KpiTotal.__table__.delete())
            root = (await units_store.get_by_code(s, "BCA")).id
        model: dict[str, tuple[tuple[str, str, str], Value]] = {}
        for reports in batches:
            try:
                async with dbmod.transaction(factory) as s:
                    await kpi.ingest(s, reports, root, "p", NOW)
            except kpi.KpiRejected:
                assert any(r["value"] < 0 for r in reports)
                continue
            for r in reports:
                model[r["report_id"]] = ((r["unit"], r["indicator"], r["period"]),
                                         Value(r["value"], r.get("denominator", 0)))
        async with factory() as s:
            incremental = await kpi.all_totals(s)
        async with dbmod.transaction(factory) as s:
            await kpi.recompute_all(s)
        async with factory() as s:
            assert await kpi.all_totals(s) == incremental
            for ind, period in {k[1:] for k, _ in model.values()}:
                expected = sum((v for k, v in model.values() if k[1:] == (ind, period)), Value())
                assert (await kpi.totals_for(s, root, period))[ind] == expected
    finally:
        await engine.dispose()


@pytest.fixture
def prepared_url(db_url: str) -> str:
    async def prepare() -> None:
        await dbmod.upgrade(db_url)
        engine = dbmod.make_engine(db_url)
        async with dbmod.transaction(dbmod.sessionmaker(engine)) as s:
            await seed(s)
        await engine.dispose()

    asyncio.run(prepare())
    return db_url


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(batch, min_size=1, max_size=5))
def test_incremental_totals_equal_recompute(prepared_url: str, batches: list[list[dict[str, Any]]]) -> None:
    asyncio.run(_run_batches(prepared_url, batches))
