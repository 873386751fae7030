"""Benchmark of KPI intake and roll-up on the legacy-sized tree (63 provinces, 696 districts,
10,051 communes: the synthetic tree of that shape, as in bench/live.py, so no download is needed).

    python bench/kpi.py                 # SQLite (a temporary directory), the real server as a subprocess
    python bench/kpi.py --quick         # smaller figures, for a smoke run

1. **ingest_batch_per_s**: every commune reports every catalog indicator (10,051 × 12 = 120,612
   reports: the 9 built-in indicators plus 3 added through the admin's catalog store, as an admin
   adds them) through the real API (``POST /api/kpi/reports``
   with a machine token of scope ``kpi:write`` for the ministry) in batches of 1,000; reports per
   second over the whole run. Target ≥ 2,000.
2. **rollup_full_legacy_s**: ``sessions.store.kpi.recompute_all`` from a fresh engine (cold) over
   those reports: every total recomputed from the reports along the tree, then the table made equal
   to it (only differing rows written; here none differ); median of 3 runs. The result is checked
   against the incremental totals. Target < 2 s. An earlier line also prints the time to rebuild
   into an emptied totals table (every row inserted), the worst case of a repair.
3. **incremental_p50_ms / incremental_p99_ms**: one report (a new one, or a correction) ingested
   in its own transaction through ``sessions.store.kpi.ingest`` (commit included). Target p50 < 5 ms.
4. **push_p99_ms**: 3,355 websockets subscribed to the ministry's live slide (``kpi:BCA``); one
   report posted through the API; the time from the POST to the arrival of the new slide at the
   *last* of the 3,355 sockets, p99 over the rounds. ``nan`` when the ``kpi:`` topic is missing.

The last line is machine-readable:

    RESULT ingest_batch_per_s=… rollup_full_legacy_s=… incremental_p50_ms=… incremental_p99_ms=… push_p99_ms=…
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from bench.live import (  # noqa: E402
    SECRET_KEY,
    BenchError,
    ServerProcess,
    free_port,
    log,
    percentile,
    raise_fd_limit,
)
from server import commands as cli  # noqa: E402
from server import db as dbmod  # noqa: E402
from server.services.access import mint_machine_token  # noqa: E402
from server.settings import Settings, load_settings  # noqa: E402
from sessions.kpi import Indicator, Kind  # noqa: E402
from sessions.models import KpiTotal, Unit, utcnow  # noqa: E402
from sessions.store import kpi as kpi_store  # noqa: E402
from sessions.store import kpi_catalog  # noqa: E402
from sessions.unit_sources import DEFAULT_ROOT_CODE  # noqa: E402
from sessions.units import Level  # noqa: E402

LEGACY = "provinces=63,districts=696,communes=10051"
QUICK = "provinces=10,districts=60,communes=600"
BATCH = 1000
PERIOD = "2022-06"
SLIDE_PERIOD = "campaign"  # the period the live slides show
SLIDES = 3355
TARGET_INGEST_PER_S = 2000.0
TARGET_ROLLUP_S = 2.0
TARGET_INCR_P50_MS = 5.0
# The 12 indicators: the 9 built-in ones plus 3 added the way an admin adds them.
EXTRA_INDICATORS = [
    {"code": "CCCD_CAP_MOI", "name": "Căn cước công dân cấp mới / kế hoạch", "kind": "ratio", "target": "100",
     "green_at": "95", "amber_at": "80", "period": "month"},
    {"code": "DINH_DANH_MUC_2", "name": "Tài khoản định danh điện tử mức 2 kích hoạt / đăng ký", "kind": "ratio",
     "target": "90", "green_at": "90", "amber_at": "70"},
    {"code": "VU_VIEC_TON_DONG", "name": "Vụ việc tồn đọng chưa giải quyết", "kind": "count", "unit": "vụ",
     "direction": "lower", "target": "0", "green_at": "0", "amber_at": "5"},
]
CATALOG: list[Indicator] = []  # filled by prepare() from the database: what the server uses


def report(code: str, ind_code: str, kind: Kind, seq: int, period: str = PERIOD, tag: str = "") -> dict[str, Any]:
    num = 50 + seq % 50
    return {"report_id": f"{tag}{code}-{ind_code}-{period}", "unit": code, "indicator": ind_code, "period": period,
            "value": num, "denominator": num + seq % 7 if kind is Kind.RATIO else None}


async def prepare(settings: Settings, spec: str) -> tuple[list[str], str]:
    rows = cli.unit_rows(settings, "synthetic", spec=spec)
    started = time.perf_counter()
    result = await cli.import_units(settings, rows, quiet=True)
    log(f"  imported {result.added} units ({spec}) in {time.perf_counter() - started:.1f} s")
    key = settings.signing_key()

    async def work(db: AsyncSession) -> tuple[list[str], str]:
        communes = list((await db.execute(select(Unit.code).where(Unit.level == Level.COMMUNE)
                                          .order_by(Unit.id))).scalars())
        root = (await db.execute(select(Unit.id).where(Unit.code == DEFAULT_ROOT_CODE))).scalar_one()
        _tid, token = await mint_machine_token(db, key=key, max_days=1, now=utcnow(), name="kpi bench", unit_id=root,
                                               # bridge: the slide watchers stand in on /ws, which
                                               # takes no other machine scope
                                               scopes=frozenset({"kpi:write", "bridge"}), days=1,
                                               created_by_id=None)
        await kpi_catalog.add(db, EXTRA_INDICATORS, utcnow(), None)
        CATALOG[:] = list(await kpi_catalog.load(db))
        return communes, token

    return await cli.with_db(settings, work)


async def post(http: aiohttp.ClientSession, token: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    async with http.post("/api/kpi/reports", json={"reports": reports},
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise BenchError(f"POST /api/kpi/reports: HTTP {resp.status} {json.dumps(body)[:300]}")
        return dict(body)


async def measure_ingest(http: aiohttp.ClientSession, token: str, communes: list[str]) -> float:
    reports = [report(code, ind.code, ind.kind, i) for i, code in enumerate(communes) for ind in CATALOG]
    log(f"Ingest: {len(reports):,} reports ({len(communes):,} communes × {len(CATALOG)} indicators) "
        f"in batches of {BATCH:,} through POST /api/kpi/reports")
    started = time.perf_counter()
    accepted = 0
    batches = math.ceil(len(reports) / BATCH)
    for n, start in enumerate(range(0, len(reports), BATCH), 1):
        accepted += (await post(http, token, reports[start:start + BATCH]))["accepted"]
        if n % 20 == 0 or n == batches:
            done = time.perf_counter() - started
            log(f"  {n}/{batches} batches, {accepted:,} accepted, {accepted / done:,.0f} reports/s")
    elapsed = time.perf_counter() - started
    if accepted != len(reports):
        raise BenchError(f"{accepted} reports accepted, expected {len(reports)}")
    return len(reports) / elapsed


async def measure_rollup(url: str, runs: int) -> float:
    engine = dbmod.make_engine(url)
    try:
        async with dbmod.sessionmaker(engine)() as db:
            incremental = await kpi_store.all_totals(db)
    finally:
        await engine.dispose()
    times = []
    for run in range(runs):
        engine = dbmod.make_engine(url)  # cold: a fresh engine and connection each run
        try:
            started = time.perf_counter()
            async with dbmod.transaction(dbmod.sessionmaker(engine)) as db:
                rows = await kpi_store.recompute_all(db)
            times.append(time.perf_counter() - started)
            async with dbmod.sessionmaker(engine)() as db:
                if run == 0 and await kpi_store.all_totals(db) != incremental:
                    raise BenchError("recompute_all differs from the incremental totals")
        finally:
            await engine.dispose()
        log(f"  run {run + 1}: {rows:,} totals rows in {times[-1]:.3f} s")
    engine = dbmod.make_engine(url)
    try:
        async with dbmod.transaction(dbmod.sessionmaker(engine)) as db:
            await db.execute(KpiTotal.__table__.delete())
    finally:
        await engine.dispose()
    engine = dbmod.make_engine(url)
    try:
        started = time.perf_counter()
        async with dbmod.transaction(dbmod.sessionmaker(engine)) as db:
            await kpi_store.recompute_all(db)
        empty = time.perf_counter() - started
        async with dbmod.sessionmaker(engine)() as db:
            if await kpi_store.all_totals(db) != incremental:
                raise BenchError("recompute_all into an empty table differs from the incremental totals")
    finally:
        await engine.dispose()
    log(f"  into an emptied totals table (every row inserted): {empty:.3f} s")
    return statistics.median(times)


async def measure_incremental(url: str, communes: list[str], rounds: int) -> list[float]:
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    ind = next(i for i in CATALOG if i.kind is Kind.RATIO)
    times: list[float] = []
    try:
        async with factory() as db:
            root = (await db.execute(select(Unit.id).where(Unit.code == DEFAULT_ROOT_CODE))).scalar_one()
        now = datetime.now(UTC)
        for i in range(rounds + 10):
            code = communes[(i * 7919) % len(communes)]
            # Half new reports, half corrections of a report of the bulk ingest.
            item = report(code, ind.code, ind.kind, i, tag="inc-") if i % 2 else \
                {**report(code, ind.code, ind.kind, i), "value": 1, "denominator": 1000 + i}
            started = time.perf_counter()
            async with dbmod.transaction(factory) as db:
                result = await kpi_store.ingest(db, [item], root, "bench", now)
            if i >= 10:  # the first ones warm the connection and statement caches
                times.append((time.perf_counter() - started) * 1000)
            if result.accepted + result.corrected != 1:
                raise BenchError(f"incremental ingest: {result.counts()}")
    finally:
        await engine.dispose()
    return times


@dataclass
class Fanout:
    expected: int
    round: int = -1
    arrivals: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict[int, int] = field(default_factory=dict)


async def slide_watcher(n: int, http: aiohttp.ClientSession, url: str, token: str, state: Fanout,
                        ready: list[int], gate: asyncio.Semaphore, errors: list[str]) -> None:
    try:
        async with gate:
            ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"}, max_msg_size=4 << 20,
                                       timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
            await ws.send_str(json.dumps({"type": "subscribe", "topic": f"kpi:{DEFAULT_ROOT_CODE}", "id": 1}))
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise BenchError(f"closed before the snapshot: {msg.type.name}")
                if msg.data.startswith('{"type":"error"'):
                    raise BenchError(msg.data[:300])
                if msg.data.startswith('{"type":"snapshot"'):
                    break
        ready.append(n)
        async with ws:
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if msg.data.startswith('{"type":"event","kind":"kpi"') and state.seen.get(n) != state.round:
                    state.seen[n] = state.round
                    state.arrivals.append(time.perf_counter())
                    if len(state.arrivals) >= state.expected:
                        state.done.set()
    except Exception as exc:  # reported by the caller
        errors.append(f"{type(exc).__name__}: {exc}")


async def measure_push(server: ServerProcess, token: str, communes: list[str], slides: int,
                       rounds: int) -> list[float]:
    raise_fd_limit(slides + 256)
    state = Fanout(slides)
    ready: list[int] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(200)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as ws_http, \
            aiohttp.ClientSession(base_url=server.url) as http:
        started = time.perf_counter()
        tasks = [asyncio.create_task(slide_watcher(n, ws_http, f"{server.url}/ws", token, state, ready, gate,
                                                   errors)) for n in range(slides)]
        for _ in range(600):  # at most 120 s
            if len(ready) >= slides or errors:
                break
            await asyncio.sleep(0.2)
        if errors:
            raise BenchError(f"slide websockets: {errors[0]} ({len(errors)} failed)")
        if len(ready) < slides:
            raise BenchError(f"only {len(ready)}/{slides} slides open after 120 s")
        log(f"  {slides:,} slides subscribed to kpi:{DEFAULT_ROOT_CODE} in {time.perf_counter() - started:.1f} s")
        ind = next(i for i in CATALOG if i.kind is Kind.COUNT)
        times: list[float] = []
        gc.disable()
        try:
            for r in range(rounds):
                state.round, state.arrivals = r, []
                state.done.clear()
                code = communes[(r * 104729) % len(communes)]
                sent = time.perf_counter()
                await post(http, token, [report(code, ind.code, ind.kind, r, SLIDE_PERIOD, tag=f"push{r}-")])
                try:
                    await asyncio.wait_for(state.done.wait(), 30)
                except TimeoutError:
                    raise BenchError(f"round {r}: {len(state.arrivals)}/{slides} slides updated after 30 s") from None
                times.append((max(state.arrivals) - sent) * 1000)
                if (r + 1) % 10 == 0:
                    log(f"  {r + 1}/{rounds} rounds, last {times[-1]:.0f} ms")
                await asyncio.sleep(0.05)
        finally:
            gc.enable()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return times


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


async def run(args: argparse.Namespace) -> str:
    spec = QUICK if args.quick else LEGACY
    slides = min(args.slides, 300) if args.quick else args.slides
    with tempfile.TemporaryDirectory(prefix="hoinghi-bench-kpi-") as tmp:
        var_dir = Path(tmp) / "var"
        settings = load_settings(environ={}, var_dir=str(var_dir), secret_key=SECRET_KEY, log_level="WARNING")
        url = settings.effective_database_url()
        log(f"Preparing data in {var_dir} (SQLite)")
        communes, token = await prepare(settings, spec)
        server = ServerProcess(var_dir, free_port(), None)
        try:
            await server.start()
            log(f"Server started at {server.url}")
            async with aiohttp.ClientSession(base_url=server.url,
                                             timeout=aiohttp.ClientTimeout(total=120)) as http:
                ingest_per_s = await measure_ingest(http, token, communes)
            log(f"  → {ingest_per_s:,.0f} reports/s (target ≥ {TARGET_INGEST_PER_S:,.0f}: "
                f"{mark(ingest_per_s >= TARGET_INGEST_PER_S)})")
            log("Full roll-up from cold (recompute_all), checked against the incremental totals")
            rollup_s = await measure_rollup(url, 3)
            log(f"  → median {rollup_s:.3f} s (target < {TARGET_ROLLUP_S} s: {mark(rollup_s < TARGET_ROLLUP_S)})")
            log(f"Incremental: {args.rounds} single-report ingests, each in its own transaction")
            incr = await measure_incremental(url, communes, args.rounds)
            p50, p99 = percentile(incr, 50), percentile(incr, 99)
            log(f"  → p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p50 < {TARGET_INCR_P50_MS} ms: "
                f"{mark(p50 < TARGET_INCR_P50_MS)})")
            push_p99 = float("nan")
            if args.no_push:
                log("Push: skipped (--no-push)")
            else:
                log(f"Push: one report → new ministry slide at {slides:,} open slides, {args.push_rounds} rounds")
                push = await measure_push(server, token, communes, slides, args.push_rounds)
                push_p99 = percentile(push, 99)
                log(f"  → p50 {percentile(push, 50):.1f} ms, p99 {push_p99:.1f} ms")
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- server log, last lines ---\n{server.log_tail()}") from None
        finally:
            await server.stop(60.0)
    return (f"RESULT ingest_batch_per_s={ingest_per_s:.0f} rollup_full_legacy_s={rollup_s:.3f} "
            f"incremental_p50_ms={p50:.2f} incremental_p99_ms={p99:.2f} push_p99_ms={push_p99:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small tree and 300 slides (smoke run)")
    parser.add_argument("--rounds", type=int, default=500, help="single-report ingests (default 500)")
    parser.add_argument("--slides", type=int, default=SLIDES, help=f"open slides (default {SLIDES})")
    parser.add_argument("--push-rounds", type=int, default=50, help="pushed updates (default 50)")
    parser.add_argument("--no-push", action="store_true", help="skip the push measurement (push_p99_ms=nan)")
    args = parser.parse_args(argv)
    args.rounds = max(1, min(args.rounds, 10_000))
    args.push_rounds = max(1, min(args.push_rounds, 1000))
    args.slides = max(1, min(args.slides, 20_000))
    try:
        line = asyncio.run(run(args))
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
