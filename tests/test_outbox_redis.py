"""Events are not lost between commit and publish (issue #18): a change and its event are stored
together (server.services.outbox), so what the bus could not take when the change committed is
published once the bus is back — by the process that made the change, or, if that process died in
between, by another one. Real ``hoinghi serve`` processes on the shared test PostgreSQL and a
``redis-server`` of the test's own (tests/faults_util.PrivateRedis), stopped and started again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from server.live.bus import RedisBus
from tests.conftest import Client, LiveServer
from tests.deployment import Spawn, postgres_url, prepare, server_processes
from tests.faults_util import PrivateRedis
from tests.live_util import WsClient, schedule, set_state

PREFIX = "outboxtest"


@pytest.fixture
async def deployment(tmp_path: Path, pg_database: str | BaseException,
                     own_redis: PrivateRedis) -> AsyncIterator[Spawn]:
    """Starts ``hoinghi serve`` processes on one PostgreSQL database and the test's Redis."""
    env = await prepare(tmp_path, postgres_url(pg_database), own_redis.url,
                        [("chutri", "BCA", "chair"), ("hoankiem", "00070", "site_operator")], "mat-khau-thu-nghiem",
                        bus_channel_prefix=PREFIX)
    async with server_processes(env) as spawn:
        yield spawn


async def _login(url: str, username: str) -> Client:
    return await LiveServer(url, None, None, None).login(username, "mat-khau-thu-nghiem")  # type: ignore[arg-type]


class Listener:
    """A bus subscriber of the test's own: every meeting event that went over Redis."""

    def __init__(self, url: str) -> None:
        self.bus = RedisBus(url, PREFIX)
        self.frames: list[dict[str, Any]] = []
        self.kpi_topics: list[str] = []  # every slide event (``kpi.<unit id>``) that went over Redis
        self.changed = asyncio.Event()

        async def on_meeting(topic: str, message: bytes) -> None:
            self.frames.append(json.loads(message.split(b"\n", 1)[1]))
            self.changed.set()
        self.bus.subscribe("meeting.", on_meeting)

        async def on_kpi(topic: str, message: bytes) -> None:
            self.kpi_topics.append(topic)
            self.changed.set()
        self.bus.subscribe("kpi.", on_kpi)

    async def until_true(self, predicate: Callable[[], Any], within: float) -> Any:
        """Wait until ``predicate()`` is truthy (checked at each event), and return it."""
        async def wait() -> Any:
            while not (value := predicate()):
                self.changed.clear()
                await self.changed.wait()
            return value
        return await asyncio.wait_for(wait(), within)

    async def until(self, predicate: Callable[[dict[str, Any]], bool], within: float) -> dict[str, Any]:
        """The first meeting event that ``predicate`` accepts, waited for."""
        found: dict[str, Any] = await self.until_true(lambda: next((f for f in self.frames if predicate(f)), None),
                                                      within)
        return found


def _floor_event(mid: int, code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: (f["meeting"] == mid and f["kind"] == "meeting"
                      and ((f["data"].get("floor") or {}).get("code") == code))


REPORT = {"report_id": "outbox-1", "unit": "00070", "indicator": "DVC_TY_LE_DUNG_HAN", "period": "2026-03",
          "value": 990, "denominator": 1000}


async def test_changes_made_while_redis_is_down_are_announced_when_it_is_back(
        deployment: Callable[[], Any], own_redis: PrivateRedis) -> None:
    (url_a, _), (url_b, _) = await deployment(), await deployment()
    chair_a, chair_b, site_a = (await _login(url_a, "chutri"), await _login(url_b, "chutri"),
                                await _login(url_a, "hoankiem"))
    console: WsClient | None = None
    listener = Listener(own_redis.url)
    try:
        mid = await schedule(chair_a)
        await set_state(chair_a, mid, "rehearsal", "live")
        console = await WsClient.open(chair_b)  # the other process
        for topic in (f"meeting:{mid}", f"rollcall:{mid}:BCA", "kpi:00070"):
            assert (await console.request({"type": "subscribe", "topic": topic}))["type"] == "result"
        before = console.slides["00070"]

        own_redis.stop()
        resp = await chair_a.api("POST", f"/api/meetings/{mid}/floor",
                                 json={"action": "grant", "unit": "00070", "confirm": True})
        assert resp.status == 200, await resp.text()  # committed: a success (its event comes later)
        resp = await site_a.api("POST", "/api/kpi/reports", json={"reports": [REPORT]})
        assert resp.status == 200 and (await resp.json())["accepted"] == 1, await resp.text()
        await asyncio.sleep(1.5)  # past the dispatcher's age: it tries, and the bus still refuses
        assert (console.meeting or {}).get("floor") is None and console.slides["00070"] == before

        own_redis.start()
        await listener.bus.start()
        floor = await listener.until(_floor_event(mid, "00070"), within=15)  # the event itself, late
        # and the slides' events too (the only report since the listener subscribed)
        await listener.until_true(lambda: len(listener.kpi_topics) >= 3, within=10)
        # The other process's console sees both: by the late events if its own subscription was back
        # before they went out, else by the fresh snapshots it is sent when it is back (server.live.resync;
        # on a loaded machine that can come after the dispatcher's SETTLE).
        await console.until(lambda: ((console.meeting or {}).get("floor") or {}).get("code") == "00070", within=10)
        await console.until(lambda: console.slides["00070"] != before, within=10)  # with the outage's report
        assert floor["seq"] <= console.meeting["seq"]  # type: ignore[index]
        # Published once: the fast path failed, the dispatcher published it and marked it.
        await asyncio.sleep(1.5)
        assert len([f for f in listener.frames if _floor_event(mid, "00070")(f)]) == 1
        # one slide event per unit the report rolls up to (commune, province, nation), each once
        assert len(listener.kpi_topics) == len(set(listener.kpi_topics)) == 3, listener.kpi_topics
    finally:
        await listener.bus.close()
        if console is not None:
            await console.close()
        for http in (chair_a, chair_b, site_a):
            await http.http.close()


async def test_an_event_a_killed_process_never_published_is_published_by_another(
        deployment: Callable[[], Any], own_redis: PrivateRedis) -> None:
    url_a, proc_a = await deployment()
    chair_a = await _login(url_a, "chutri")
    listener = Listener(own_redis.url)
    try:
        mid = await schedule(chair_a)
        await set_state(chair_a, mid, "rehearsal", "live")
        own_redis.stop()  # the fast publish after the commit fails ...
        resp = await chair_a.api("POST", f"/api/meetings/{mid}/floor",
                                 json={"action": "grant", "unit": "00070", "confirm": True})
        assert resp.status == 200, await resp.text()
        proc_a.kill()  # ... and the process dies before its dispatcher could publish it
        proc_a.wait(timeout=10)
        own_redis.start()
        await listener.bus.start()
        await deployment()  # another process: its dispatcher finds the row nobody delivered
        await listener.until(_floor_event(mid, "00070"), within=15)
    finally:
        await listener.bus.close()
        await chair_a.http.close()
