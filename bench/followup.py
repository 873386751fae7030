"""Benchmark of the directive follow-up reads (issue #15) on bench/directives.py's data: 100,000
assignments (ten directives to each of 10,000 synthetic communes; a third done on time, a tenth
late, the rest open, some overdue at the clock used). Times, for the ministry: the on-time rate by
month (the chart beside the dashboard, read with every dashboard refresh), the XLSX follow-up
export (dashboard + overdue list + months + the workbook itself), the "Theo dõi" list; and for one
province, its directive trees (the page a dashboard row opens).

    python bench/followup.py                      # SQLite (a temporary file)
    python bench/followup.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/bench --wipe

    RESULT trend_p50_ms=… export_s=… export_rows=… followed_p50_ms=… province_trees_p50_ms=…
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from directives import prepare, reset_postgres  # type: ignore[import-not-found]  # noqa: E402

from server import db as dbmod  # noqa: E402
from server.exports import followup as followup_xlsx  # noqa: E402
from sessions.store import directive_followup as followup  # noqa: E402
from sessions.store import directive_views, units  # noqa: E402

AT = datetime(2022, 11, 1, 3, 0, tzinfo=UTC)  # as bench/directives.py: some deadlines passed, some not


async def timed(factory: Any, runs: int, fn: Callable[[Any], Awaitable[Any]]) -> tuple[list[float], Any]:
    async with factory() as db:
        out = await fn(db)  # warm: tree cache, statement cache
    times = []
    for _ in range(runs):
        async with factory() as db:
            t0 = time.perf_counter()
            out = await fn(db)
            times.append((time.perf_counter() - t0) * 1000)
    return times, out


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        if args.db:
            await reset_postgres(url)
        created, total, province = await prepare(url, args.directives)
        print(f"created {total:,} assignments in {created:.1f} s")
        engine = dbmod.make_engine(url)
        factory = dbmod.sessionmaker(engine)
        async with factory() as db:
            root = (await units.root(db)).id  # type: ignore[union-attr]
        trend, months = await timed(factory, args.runs, lambda db: followup.on_time_trend(db, root, AT))
        followed, given = await timed(factory, args.runs, lambda db: followup.followed(db, root, AT))
        trees, (_, n_trees) = await timed(factory, max(1, args.runs // 10),
                                          lambda db: followup.trees_within(db, root, province, AT))
        t0 = time.perf_counter()
        async with factory() as db:
            board = await directive_views.dashboard(db, root, AT)
            late, late_total = await followup.overdue(db, root, AT)
            months = await followup.on_time_trend(db, root, AT)
        data = followup_xlsx.to_xlsx(board, late, late_total, months, AT)
        export_s = time.perf_counter() - t0
        await engine.dispose()
    print(f"on-time trend ({len(months)} months): p50 {statistics.median(trend):.1f} ms")
    print(f"followed list ({len(given)} directives): p50 {statistics.median(followed):.1f} ms")
    print(f"one province's trees ({n_trees} cascades): p50 {statistics.median(trees):.1f} ms")
    print(f"XLSX export: {export_s:.2f} s, {len(late):,} overdue rows, {len(data):,} bytes")
    return (f"RESULT trend_p50_ms={statistics.median(trend):.1f} export_s={export_s:.2f} export_rows={len(late)} "
            f"followed_p50_ms={statistics.median(followed):.1f} province_trees_p50_ms={statistics.median(trees):.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--wipe", action="store_true", help="allow dropping the PostgreSQL schema")
    parser.add_argument("--directives", type=int, default=10, help="directives to every commune (10 → 100,000)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    if args.db and not args.wipe:
        parser.error("--db drops the schema first: pass --wipe to confirm")
    print(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
