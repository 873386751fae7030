"""Minutes exports cost what they must once (#13, finding 12; #15): a correction may name at most
500 recipients (over the cap: refused, nothing stored), and a version's PDF or DOCX, once
rendered, is served from a bounded cache — a new version is rendered afresh. Counted through the
cache's Prometheus counter, never by timing."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client, LiveServer
from tests.test_kpi_api import token
from tests.test_minutes_flow import concluded_meeting


async def exports(client: Client) -> dict[tuple[str, str], float]:
    text = await (await client.get("/metrics")).text()
    return {(s.labels["format"], s.labels["outcome"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "hoinghi_minutes_exports_total"}


async def versions(chair: Client, mid: int) -> list[Any]:
    return list((await (await chair.api("GET", f"/api/meetings/{mid}/minutes")).json())["versions"])


async def test_recipients_are_capped(live_sqlite: LiveServer) -> None:
    mid, chair = await concluded_meeting(live_sqlite)
    many = [f"Công an xã số {i}" for i in range(501)]
    resp = await chair.api("POST", f"/api/meetings/{mid}/minutes/corrections",
                           json={"changes": {"recipients": many}, "reason": "Bổ sung nơi nhận"})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (400, "recipients_too_many"), body
    assert body["error"]["message"] == "Tối đa 500 nơi nhận (đã gửi 501)"
    resp = await chair.post_form(f"/meetings/{mid}/minutes/corrections", {
        "reason": "Bổ sung nơi nhận", "number": "", "title": "Hội nghị giao ban Đề án 06 tháng 8",
        "chair_name": "chutri", "chair_title": "Chủ trì hội nghị", "recipients": "\n".join(many)})
    assert resp.status == 400 and "Tối đa 500 nơi nhận" in await resp.text()
    assert len(await versions(chair, mid)) == 1  # nothing stored
    # At the cap: a correction like any other.
    resp = await chair.api("POST", f"/api/meetings/{mid}/minutes/corrections",
                           json={"changes": {"recipients": many[:500]}, "reason": "Bổ sung nơi nhận"})
    assert resp.status == 201, await resp.text()


async def test_exports_are_cached_per_version(live_sqlite: LiveServer) -> None:
    mid, chair = await concluded_meeting(live_sqlite)
    first = await chair.get(f"/meetings/{mid}/minutes.pdf")
    assert first.status == 200 and first.headers["Content-Disposition"].endswith(f'-{mid}-v1.pdf"')
    data = await first.read()
    assert await exports(chair) == {("pdf", "rendered"): 1}
    # Again, by the chair and by another unit that took part: the same bytes, not rendered again.
    phutho = await live_sqlite.login("phutho")
    for client, path in ((chair, f"/meetings/{mid}/minutes.pdf"), (phutho, f"/meetings/{mid}/minutes.pdf?version=1")):
        resp = await client.get(path)
        assert resp.status == 200 and await resp.read() == data
    assert await exports(chair) == {("pdf", "rendered"): 1, ("pdf", "cached"): 2}
    # Access is checked on every request, cached or not (minutes are for user accounts).
    bearer = await token(live_sqlite, "01", frozenset({"units:read"}))
    resp = await live_sqlite.client().get(f"/meetings/{mid}/minutes.pdf", allow_redirects=False,
                                          headers={"Authorization": f"Bearer {bearer}"})
    assert resp.status in (302, 303, 401, 403) and resp.content_type != "application/pdf"
    assert (await exports(chair)).get(("pdf", "cached")) == 2
    # A format is its own file; parallel first downloads render it once.
    answers = await asyncio.gather(*(chair.get(f"/meetings/{mid}/minutes.docx") for _ in range(4)))
    assert {r.status for r in answers} == {200}
    assert len({await r.read() for r in answers}) == 1
    assert (await exports(chair))[("docx", "rendered")] == 1
    # A correction is a new version: rendered afresh; version 1 stays served from the cache.
    resp = await chair.api("POST", f"/api/meetings/{mid}/minutes/corrections",
                           json={"changes": {"number": "15"}, "reason": "Ghi số văn bản"})
    assert resp.status == 201, await resp.text()
    latest = await chair.get(f"/meetings/{mid}/minutes.pdf")
    assert latest.status == 200 and latest.headers["Content-Disposition"].endswith(f'-{mid}-v2.pdf"')
    assert await latest.read() != data
    assert (await exports(chair))[("pdf", "rendered")] == 2
    assert await (await chair.get(f"/meetings/{mid}/minutes.pdf?version=1")).read() == data
    assert await exports(chair) == {("pdf", "rendered"): 2, ("pdf", "cached"): 3, ("docx", "rendered"): 1,
                                    ("docx", "cached"): 3}


async def test_the_cache_is_bounded_and_shares_one_rendering() -> None:
    from server.exports.cache import ExportCache

    made: list[tuple[int, ...]] = []

    def maker(key: tuple[int, ...], size: int, gate: asyncio.Event | None = None) -> Any:
        async def make() -> bytes:
            made.append(key)
            if gate is not None:
                await gate.wait()
            return bytes(size)
        return make

    cache = ExportCache(max_entries=2, max_bytes=400)
    for key in ((1,), (2,), (1,), (3,)):  # (2,) is the least recently used when (3,) comes
        await cache.get(key, maker(key, 10))
    assert made == [(1,), (2,), (3,)] and len(cache) == 2
    await cache.get((2,), maker((2,), 10))
    assert made[-1] == (2,) and (cache.rendered, cache.served) == (4, 1)
    await cache.get((4,), maker((4,), 100))
    await cache.get((5,), maker((5,), 100))  # by bytes too: 100 + 100 fit, ...
    assert cache.size <= 400 and len(cache) == 2
    await cache.get((6,), maker((6,), 101))  # ... a file over a quarter of the budget is not kept
    await cache.get((6,), maker((6,), 101))
    assert made[-2:] == [(6,), (6,)]
    # Three requests while the first renders: one rendering, three answers.
    gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get((7,), maker((7,), 5, gate))) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    assert [len(x) for x in await asyncio.gather(*waiting)] == [5, 5, 5]
    assert made.count((7,)) == 1
