"""Benchmark of the chair's directive dashboard: 100,000 assignments across a legacy-sized tree
(63 provinces, 700 districts, 10,000 communes; synthetic), counted per bucket per province.

    python bench/directives.py                    # SQLite (a temporary file)
    python bench/directives.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/bench --wipe

The assignments are made through the store (``create_directive`` with "every commune under the
ministry", ten directives), then some are completed, some late, some overdue, so every bucket is
populated. The dashboard (``sessions.store.directive_views.dashboard``, the function behind
``GET /api/directives/dashboard``) is then timed, for the ministry and for one province.
Target on this 2-core machine: ministry dashboard p99 < 200 ms. It then renders the minutes PDF
of a meeting with 3,355 sites (the synthetic minutes of ``bench/minutes_pdf.py``, median of 3;
target < 10 s). Last, the seed meeting (the demo's concluded conference of 17/8/2022 on the current
tree: 34 provinces, 3,321 communes) is frozen into its minutes, in a SQLite file of its own: the
pages of its PDF, and the time of a second export of the same version — what every reader after
the first gets: the version looked up, then the file from the export cache
(``server/exports/cache.py``, the route's own path). The issue's figures come out on one line:

    RESULT dashboard_p50_ms=… dashboard_p99_ms=… minutes_pdf_s=… dashboard_province_p50_ms=… create_100k_s=…
           minutes_pdf_pages=… minutes_pdf_first_s=… minutes_pdf_cached_ms=…
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import func, select, update  # noqa: E402

from server import db as dbmod  # noqa: E402
from sessions.directives import AssigneeSpec, DirectiveInput, Priority  # noqa: E402
from sessions.meetings import MeetingState  # noqa: E402
from sessions.models import Assignment, Meeting  # noqa: E402
from sessions.store import directive_views, units  # noqa: E402
from sessions.store import directives as store  # noqa: E402
from sessions.store.audit import CLI  # noqa: E402
from sessions.unit_sources import root_row, synthetic  # noqa: E402
from sessions.units import Level  # noqa: E402

TARGET_P99_MS = 200.0
NOW = datetime(2022, 8, 17, 8, 0, tzinfo=UTC)


async def reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def prepare(url: str, directives: int) -> tuple[float, int, int]:
    await dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    async with dbmod.transaction(factory) as db:
        root = root_row()
        await units.import_units(db, synthetic(63, 700, 10_000, root))
        ministry = await units.get_by_code(db, root.code)
        meeting = Meeting(title="Bench", agenda=[], scheduled_start=NOW, chair_unit_id=ministry.id,
                          selectors=[], state=MeetingState.LIVE.value, seq=0)
        db.add(meeting)
        await db.flush()
        cid = await store.add_conclusion(db, meeting.id, "Kết luận", CLI, NOW)
        province = (await units.subtree(db, ministry.id, Level.PROVINCE))[0].id
    started = time.perf_counter()
    for i in range(directives):
        async with dbmod.transaction(factory) as db:
            given = DirectiveInput(f"Chỉ đạo {i + 1}", date(2022, 9 + i % 4, 28), Priority.NORMAL,
                                   AssigneeSpec(every_under=root.code, every_level=Level.COMMUNE), True)
            await store.create_directive(db, cid, given, actor=CLI, now=NOW)
    created = time.perf_counter() - started
    async with dbmod.transaction(factory) as db:  # a third done on time, a tenth done late
        await db.execute(update(Assignment).where(Assignment.id % 3 == 0)
                         .values(completed_at=NOW + timedelta(days=5), percent=100, outcome="done_on_time"))
        await db.execute(update(Assignment).where(Assignment.id % 10 == 1)
                         .values(completed_at=NOW + timedelta(days=200), percent=100, outcome="done_late"))
        total = int((await db.execute(select(func.count()).select_from(Assignment))).scalar_one())
    await engine.dispose()
    return created, total, province


async def measure(url: str, unit_id: int | None, runs: int) -> list[float]:
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    at = datetime(2022, 11, 1, 3, 0, tzinfo=UTC)  # some deadlines passed, some not
    times = []
    async with factory() as db:
        root = unit_id if unit_id is not None else (await units.root(db)).id  # type: ignore[union-attr]
        await directive_views.dashboard(db, root, at)  # warm: tree cache, statement cache
    for _ in range(runs):
        async with factory() as db:
            t0 = time.perf_counter()
            data = await directive_views.dashboard(db, root, at)
            times.append((time.perf_counter() - t0) * 1000)
    assert data["total"] > 0 and all(data["totals"].values()), data["totals"]
    await engine.dispose()
    return times


def minutes_pdf_seconds(rounds: int = 3) -> float:
    """Median seconds to render the PDF minutes of a 3,355-site meeting (see bench/minutes_pdf.py)."""
    sys.path.insert(0, str(REPO / "bench"))
    from minutes_pdf import synthetic_minutes  # type: ignore[import-not-found]

    from server.exports.fonts import find_serif_font
    from server.exports.minutes_pdf import render_pdf

    doc, font = synthetic_minutes(3355, 20), find_serif_font()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        render_pdf(doc, font=font)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def seed_minutes_export(tmp: Path) -> tuple[int, float, float]:
    """(pages, first export s, median second export ms) of the seed meeting's minutes PDF."""
    import io

    from pypdf import PdfReader

    from demo import directives as demo_seed
    from server.exports.cache import ExportCache
    from server.exports.minutes_pdf import render_pdf
    from server.unit_data import current_tree_json
    from sessions.store import minutes as minutes_store
    from sessions.unit_sources import DEFAULT_ROOT_CODE, from_current_tree

    url = f"sqlite+aiosqlite:///{tmp / 'seed.sqlite3'}"
    await dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    async with dbmod.transaction(factory) as db:
        await units.import_units(db, from_current_tree(current_tree_json(), root_row()))
    async with dbmod.transaction(factory) as db:
        mid = await demo_seed.load(db, DEFAULT_ROOT_CODE)
    cache = ExportCache()

    async def export() -> bytes:
        async with factory() as db:  # as the route: the version looked up, then the cache
            version = await minutes_store.latest_version(db, mid)

        async def make() -> bytes:
            async with factory() as db:
                doc = await minutes_store.get(db, mid, version)
            return await asyncio.get_running_loop().run_in_executor(None, render_pdf, doc)

        return await cache.get((mid, version, "pdf"), make)

    t0 = time.perf_counter()
    pdf = await export()
    first = time.perf_counter() - t0
    again = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert await export() == pdf
        again.append((time.perf_counter() - t0) * 1000)
    await engine.dispose()
    assert cache.rendered == 1 and cache.served == 20
    return len(PdfReader(io.BytesIO(pdf)).pages), first, statistics.median(again)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        if args.db:
            await reset_postgres(url)
        created, total, province = await prepare(url, args.directives)
        print(f"created {total:,} assignments in {created:.1f} s ({args.directives} directives to every commune)")
        nation = await measure(url, None, args.runs)
        prov = await measure(url, province, args.runs)
    p50, p99 = statistics.median(nation), pct(nation, 0.99)
    flag = "ok" if p99 < TARGET_P99_MS else "OVER TARGET"
    print(f"ministry dashboard: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < {TARGET_P99_MS:.0f} ms: {flag})")
    print(f"one province: p50 {statistics.median(prov):.1f} ms")
    pdf_s = minutes_pdf_seconds()
    print(f"minutes PDF, 3,355 sites: {pdf_s:.2f} s (target < 10 s: {'ok' if pdf_s < 10 else 'OVER TARGET'})")
    with tempfile.TemporaryDirectory() as tmp:
        pages, first_s, cached_ms = await seed_minutes_export(Path(tmp))
    print(f"seed meeting's minutes PDF: {pages} pages (target < 25: {'ok' if pages < 25 else 'OVER TARGET'}), "
          f"first export {first_s:.2f} s, a second export of the same version {cached_ms:.2f} ms (cached)")
    return (f"RESULT dashboard_p50_ms={p50:.1f} dashboard_p99_ms={p99:.1f} minutes_pdf_s={pdf_s:.2f} "
            f"dashboard_province_p50_ms={statistics.median(prov):.1f} create_100k_s={created:.1f} "
            f"minutes_pdf_pages={pages} minutes_pdf_first_s={first_s:.2f} minutes_pdf_cached_ms={cached_ms:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--wipe", action="store_true", help="allow dropping the PostgreSQL schema")
    parser.add_argument("--directives", type=int, default=10, help="directives to every commune (10 → 100,000)")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    if args.db and not args.wipe:
        parser.error("--db drops the public schema of that database: add --wipe")
    print(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
