"""A fault drill, shared by tests/test_faults_presence.py and bench/faults.py: two ``hoinghi serve``
processes on a private PostgreSQL and a private Redis (tests.faults_util), a few hundred simulated
sites (each a websocket with its own ``bridge`` machine token that ``join``s the meeting, reconnecting
by itself — to the other process when its own is gone — as a bridge does), the chair's console on
each process, and KPI reports flowing at a small steady rate. ``check`` compares what everyone sees
with the database and with the connections actually open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server import commands as cli
from server.db import make_engine, sessionmaker
from server.services.access import mint_machine_token
from server.settings import load_settings
from sessions.models import AttendanceInterval, KpiReport, Meeting, Participant, Unit, utcnow
from tests.conftest import LiveServer, _reset_postgres
from tests.faults_util import PrivatePostgres, PrivateRedis
from tests.live_util import NATIONWIDE, WsClient, free_port, schedule, set_state, spawn_server, wait_healthy

CHAIR, PASSWORD = "chutri_drill", "mat-khau-dien-tap"
HEARTBEAT_S, EXPIRY_S = 0.5, 3.0


@dataclass(eq=False)
class Site:
    """One site's bridge: keeps one socket joined to the meeting while ``wanted``."""

    code: str
    token: str
    home: int  # which server process it prefers
    wanted: bool = True
    joined: bool = False  # its socket is open and its join was answered
    dropped: int = 0  # sockets the server (or the network) ended, not the site
    task: asyncio.Task[None] | None = None
    ws: aiohttp.ClientWebSocketResponse | None = None
    floor: str | None = None
    answer: dict[str, Any] | None = None  # its join's last answer (for failure messages)


@dataclass
class Drill:
    pg: PrivatePostgres
    redis: PrivateRedis
    root: Path
    sites_n: int = 300
    kpi_per_s: float = 10.0
    env: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[str] | None] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    consoles: list[WsClient] = field(default_factory=list)
    chairs: list[Any] = field(default_factory=list)
    meeting: int = 0
    acked: set[str] = field(default_factory=set)
    unacked: set[str] = field(default_factory=set)
    kpi_token: str = ""
    _kpi_task: asyncio.Task[None] | None = None
    _http: aiohttp.ClientSession | None = None
    _engine: AsyncEngine | None = None

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    # ------------------------------------------------------------------ setup

    async def prepare(self) -> None:
        await _reset_postgres(self.pg.url)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")},
                    "HOINGHI_DATABASE_URL": self.pg.url, "HOINGHI_SECRET_KEY": "drill-secret-shared-by-both",
                    "HOINGHI_BUS_URL": self.redis.url, "HOINGHI_VAR_DIR": str(self.root / "var"),
                    "HOINGHI_LOG_LEVEL": "ERROR", "HOINGHI_PRESENCE_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
                    "HOINGHI_PRESENCE_EXPIRY_SECONDS": str(EXPIRY_S)}
        settings = load_settings(environ=self.env)
        await cli.import_units(settings, cli.unit_rows(settings, "synthetic",
                                                       spec=f"provinces=2,communes={self.sites_n - 2}"), quiet=True)
        await cli.add_user(settings, CHAIR, "BCA", "chair", "Chủ trì (diễn tập)", PASSWORD)
        key = settings.signing_key()

        async def tokens(db: Any) -> list[tuple[str, str]]:
            units = (await db.execute(select(Unit.id, Unit.code).order_by(Unit.id))).all()
            out = []
            for uid, code in units:
                scopes = frozenset({"kpi:write"} if code == "BCA" else {"bridge"})
                _tid, tok = await mint_machine_token(db, key=key, max_days=1, now=utcnow(), name=f"drill {code}",
                                                     unit_id=uid, scopes=scopes, days=1, created_by_id=None)
                out.append((code, tok))
            return out

        for code, tok in await cli.with_db(settings, tokens):
            if code == "BCA":
                self.kpi_token = tok
            else:
                self.sites.append(Site(code, tok, home=len(self.sites) % 2))
        self.ports = [free_port(), free_port()]
        self.procs = [None, None]
        for i in range(2):
            await self.start_server(i)
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for i in range(2):
            self.chairs.append(await LiveServer(self.url(i), None, None, None).login(CHAIR, PASSWORD))  # type: ignore[arg-type]
        self.meeting = await schedule(self.chairs[0], NATIONWIDE, title="Diễn tập sự cố")
        await set_state(self.chairs[0], self.meeting, "rehearsal", "live")
        await self.open_consoles()
        for site in self.sites:
            site.task = asyncio.create_task(self._keep(site))
        await self.until(lambda: all(s.joined for s in self.sites), 60,
                         lambda: f"every site joined: {[s.answer for s in self.sites if not s.joined][:3]}")
        self._kpi_task = asyncio.create_task(self._reports())

    async def open_consoles(self) -> None:
        """The chair's console on each process (again, after the processes were restarted)."""
        for console in self.consoles:
            with contextlib.suppress(Exception):
                await console.close()
        self.consoles = []
        for chair in self.chairs:
            console = await WsClient.open(chair)
            await console.request({"type": "subscribe", "topic": f"meeting:{self.meeting}"})
            await console.request({"type": "subscribe", "topic": f"rollcall:{self.meeting}:BCA"})
            self.consoles.append(console)

    async def start_server(self, i: int) -> None:
        proc = spawn_server(self.env, self.ports[i])
        self.procs[i] = proc
        await wait_healthy(self.url(i), proc)

    def alive(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    async def close(self) -> None:
        if self._kpi_task is not None:
            self._kpi_task.cancel()
        for site in self.sites:
            site.wanted = False
            if site.task is not None:
                site.task.cancel()
        for console in self.consoles:
            with contextlib.suppress(Exception):
                await console.close()
        for chair in self.chairs:
            await chair.http.close()
        if self._http is not None:
            await self._http.close()
        if self._engine is not None:
            await self._engine.dispose()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()

    # ------------------------------------------------------------------ simulated sites

    async def _keep(self, site: Site) -> None:
        assert self._http is not None
        attempt = 0
        while True:
            if not site.wanted:
                await asyncio.sleep(0.1)
                continue
            target = site.home if self.alive(site.home) else 1 - site.home
            attempt += 1
            try:
                async with self._http.ws_connect(self.url(target) + "/ws", heartbeat=None,
                                                 headers={"Authorization": f"Bearer {site.token}"}) as ws:
                    site.ws = ws
                    await ws.send_str(json.dumps({"type": "subscribe", "topic": f"meeting:{self.meeting}", "id": 1}))
                    await ws.send_str(json.dumps({"type": "join", "meeting": self.meeting, "id": 2}))
                    async for raw in ws:
                        if raw.type != aiohttp.WSMsgType.TEXT:
                            break
                        msg = json.loads(raw.data)
                        if msg.get("id") == 2:
                            site.answer = msg
                            site.joined = msg["type"] == "result"
                            attempt = 0 if site.joined else attempt
                            if not site.joined:  # unavailable: try the join again in a moment
                                await asyncio.sleep(0.5)
                                await ws.send_str(json.dumps({"type": "join", "meeting": self.meeting, "id": 2}))
                        self._follow(site, msg)
                        if not site.wanted:
                            break
                    if site.wanted:
                        site.dropped += 1
            except (aiohttp.ClientError, OSError):
                pass
            finally:
                site.joined, site.ws = False, None
            await asyncio.sleep(min(0.2 * attempt, 1.0) if site.wanted else 0)

    @staticmethod
    def _follow(site: Site, msg: dict[str, Any]) -> None:
        data: dict[str, Any] | None = None
        if msg["type"] == "snapshot" and msg.get("topic", "").startswith("meeting:"):
            data = msg["data"]["meeting"]
        elif msg["type"] == "event" and msg.get("kind") == "meeting":
            data = msg["data"]
        if data is not None:
            site.floor = (data.get("floor") or {}).get("code")

    async def drop(self, sites: list[Site]) -> None:
        """These sites close their sockets (and stay away until ``back``)."""
        for site in sites:
            site.wanted = False
            if site.ws is not None:
                await site.ws.close()

    def back(self, sites: list[Site]) -> None:
        for site in sites:
            site.wanted = True

    # ------------------------------------------------------------------ KPI reports

    async def _reports(self) -> None:
        assert self._http is not None
        i = 0
        while True:
            i += 1
            site = self.sites[i % len(self.sites)]
            rid = f"drill-{i}"
            report = {"report_id": rid, "unit": site.code, "indicator": "DVC_TY_LE_DUNG_HAN",
                      "period": f"{2000 + i // (12 * len(self.sites))}-{(i // len(self.sites)) % 12 + 1:02d}",
                      "value": 1, "denominator": 2}
            target = i % 2 if self.alive(i % 2) else 1 - i % 2
            try:
                async with self._http.post(self.url(target) + "/api/kpi/reports", json={"reports": [report]},
                                           headers={"Authorization": f"Bearer {self.kpi_token}"}) as resp:
                    (self.acked if resp.status == 200 else self.unacked).add(rid)
            except (aiohttp.ClientError, OSError):
                self.unacked.add(rid)
            await asyncio.sleep(1 / self.kpi_per_s)

    # ------------------------------------------------------------------ faults

    async def sigkill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)

    async def sigterm_all(self) -> None:
        procs = [p for p in self.procs if p is not None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await asyncio.to_thread(proc.wait, 60)

    # ------------------------------------------------------------------ checks

    async def until(self, predicate: Any, within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {within:.0f} s: {what() if callable(what) else what}")
            await asyncio.sleep(0.1)

    async def stored(self) -> dict[str, Any]:
        """What the database says: seats' online, the floor holder, attendance, KPI reports."""
        mid = self.meeting

        async def read(db: Any) -> dict[str, Any]:
            online = dict((await db.execute(select(Unit.code, Participant.online).join(
                Unit, Unit.id == Participant.unit_id).where(Participant.meeting_id == mid))).all())
            floor_id = (await db.execute(select(Meeting.floor_unit_id).where(Meeting.id == mid))).scalar_one()
            floor = (await db.execute(select(Unit.code).where(Unit.id == floor_id))).scalar_one_or_none()
            intervals: dict[str, list[tuple[Any, Any]]] = {}
            for code, joined, left in (await db.execute(select(Unit.code, AttendanceInterval.joined_at,
                                                               AttendanceInterval.left_at)
                                                        .join(Unit, Unit.id == AttendanceInterval.unit_id)
                                                        .where(AttendanceInterval.meeting_id == mid)
                                                        .order_by(AttendanceInterval.joined_at))).all():
                intervals.setdefault(code, []).append((joined, left))
            reports = dict((await db.execute(select(KpiReport.report_id, func.count()).where(
                KpiReport.report_id.like("drill-%")).group_by(KpiReport.report_id))).all())
            return {"online": online, "floor": floor, "intervals": intervals, "reports": reports}

        if self._engine is None:
            self._engine = make_engine(self.pg.url)
        # Reports keep flowing while this reads: one acknowledged after the read began may have
        # committed after it too. Only those acknowledged before it must be in it.
        acked_before = frozenset(self.acked)
        async with sessionmaker(self._engine)() as db:
            return {**await read(db), "acked": acked_before}

    def open_sites(self) -> set[str]:
        return {s.code for s in self.sites if s.joined}

    def phantoms(self, online: dict[str, int]) -> list[str]:
        """Seats whose online state differs from the connections actually open."""
        open_ = self.open_sites()
        return sorted(code for code, n in online.items() if (code != "BCA" and (n > 0) != (code in open_))
                      or n > 1)

    def stale_consoles(self, db: dict[str, Any]) -> int:
        stale = 0
        for console in self.consoles:
            seats = {s["code"]: s["online"] for s in console.seats.values()}
            floor = ((console.meeting or {}).get("floor") or {}).get("code")
            if console.ws.closed or floor != db["floor"] or any(
                    seats.get(code) != n for code, n in db["online"].items()):
                stale += 1
        return stale

    def stale_sites(self, db: dict[str, Any]) -> list[str]:
        return [s.code for s in self.sites if s.joined and s.floor != db["floor"]]

    async def settled(self, within: float) -> dict[str, Any]:
        """Wait until the database, both consoles and every open site agree with the truth (the
        sites that are meant to be connected are joined); the last reading if they never do."""
        deadline = time.monotonic() + within
        while True:
            wanted_in = all(s.joined for s in self.sites if s.wanted)
            try:
                db = await self.stored()
            except Exception:  # a pooled connection from before the restart, say: read again
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            if wanted_in and not self.phantoms(db["online"]) and not self.stale_consoles(db) \
                    and not self.stale_sites(db):
                return db
            if time.monotonic() > deadline:
                return db
            await asyncio.sleep(0.2)

    def lost_reports(self, db: dict[str, Any]) -> tuple[int, int, int]:
        """(acknowledged but not stored once, not acknowledged but stored, stored more than once)."""
        reports = db["reports"]
        lost = sum(1 for rid in db.get("acked", self.acked) if reports.get(rid) != 1)
        extra = sum(1 for rid in self.unacked - self.acked if rid in reports)
        twice = sum(1 for n in reports.values() if n > 1)
        return lost, extra, twice


def has_gap(intervals: list[tuple[Any, Any]]) -> bool:
    """Attendance shows the site was away: an interval closed and a later one opened."""
    return len(intervals) >= 2 and intervals[0][1] is not None and intervals[-1][0] >= intervals[0][1]
