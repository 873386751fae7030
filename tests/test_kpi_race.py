"""The same KPI batch sent many times at once — a source system's retry racing its first try, or
one batch reaching two server processes — is stored once and every sender is told so: the first
to commit gets ``accepted``, the others the idempotent ``duplicates`` (docs/protocol.md), never
409 ``conflict``. The totals equal a roll-up from scratch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.state import DB
from sessions.store import kpi
from tests.conftest import FakeClock, LiveServer, make_settings
from tests.test_kpi_api import report_count, token
from tests.test_kpi_store import seed_reports

BATCH = [r for period in ("2022-03", "2022-04", "2022-05", "2022-06") for r in seed_reports(period)]
SENDERS = 10


async def send_all(urls: list[str], bearer: str) -> list[tuple[int, Any]]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {bearer}"}) as http:
        async def one(i: int) -> tuple[int, Any]:
            async with http.post(urls[i % len(urls)] + "/api/kpi/reports", json={"reports": BATCH}) as resp:
                return resp.status, await resp.json()
        return list(await asyncio.gather(*(one(i) for i in range(SENDERS))))


async def check_stored_once(live: LiveServer, answers: list[tuple[int, Any]]) -> None:
    assert [status for status, _ in answers] == [200] * SENDERS, answers
    assert all(body["accepted"] + body["duplicates"] == len(BATCH) and body["corrected"] == 0
               for _, body in answers), answers
    assert sum(body["accepted"] for _, body in answers) == len(BATCH), answers  # each report accepted once
    assert await report_count(live) == len(BATCH)
    async with live.app[DB]() as db:
        incremental = await kpi.all_totals(db)
        await kpi.recompute_all(db)
        assert await kpi.all_totals(db) == incremental


async def test_one_batch_sent_ten_times_at_once_is_stored_once(live: LiveServer) -> None:
    bearer = await token(live, "BCA", frozenset({"kpi:write"}))
    await check_stored_once(live, await send_all([live.url], bearer))


async def test_one_batch_racing_on_two_processes_is_stored_once(live: LiveServer, tmp_path: Path) -> None:
    other = TestServer(create_app(make_settings(tmp_path / "second", live.settings.effective_database_url()),
                                  clock=FakeClock()), host="127.0.0.1", port=0)
    await other.start_server()
    try:
        bearer = await token(live, "BCA", frozenset({"kpi:write"}))
        answers = await send_all([live.url, str(other.make_url("")).rstrip("/")], bearer)
    finally:
        await other.close()
    await check_stored_once(live, answers)
