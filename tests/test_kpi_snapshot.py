"""The meeting's KPI record: totals frozen when it goes live and when it concludes; later
reports change the slides but never the frozen values."""

from __future__ import annotations

from server.state import DB
from sessions.models import Meeting
from sessions.store import kpi_snapshots, units
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state
from tests.test_kpi_store import seed_reports


async def test_snapshot_at_live_and_at_conclusion(live: LiveServer) -> None:
    admin, chair = await live.login("quantri"), await live.login("chutri")
    resp = await admin.api("POST", "/api/kpi/reports", json={"reports": seed_reports()})
    assert resp.status == 200, await resp.text()
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    async with live.app[DB]() as db:
        bca = (await units.get_by_code(db, "BCA")).id
        c08707 = (await units.get_by_code(db, "08707")).id
        at_live = await kpi_snapshots.values(db, mid, "live")
        assert await db.get(Meeting, mid) is not None
    # The seed's national figures are in the ministry's frozen row.
    assert at_live[(bca, "DVC_TY_LE_DUNG_HAN", "2022-06")] == (74_336, 74_587)
    assert at_live[(bca, "CU_TRU_TRUC_TUYEN", "2022-06")] == (50_579, 70_758)
    before = at_live[(c08707, "HO_CHIEU_TRUC_TUYEN", "2022-06")]

    # A correction during the meeting: the concluded snapshot sees it, the live one does not.
    fix = [r for r in seed_reports() if r["unit"] == "08707" and r["indicator"] == "HO_CHIEU_TRUC_TUYEN"]
    fix[0]["value"] += 10  # 1,000 → 1,010 of 1,050
    resp = await admin.api("POST", "/api/kpi/reports", json={"reports": fix})
    assert resp.status == 200, await resp.text()
    await set_state(chair, mid, "concluded")
    async with live.app[DB]() as db:
        at_live2 = await kpi_snapshots.values(db, mid, "live")
        at_end = await kpi_snapshots.values(db, mid, "concluded")
    assert at_live2 == at_live
    assert at_end[(c08707, "HO_CHIEU_TRUC_TUYEN", "2022-06")] == (before[0] + 10, before[1])
    key = (bca, "HO_CHIEU_TRUC_TUYEN", "2022-06")
    assert at_end[key][0] == at_live[key][0] + 10
    # Only the chair's unit and participants are frozen: every row's unit took part.
    assert {u for u, _i, _p in at_end} <= {u for u, _i, _p in at_live} | {bca}
