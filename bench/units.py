"""Benchmark of the unit tree: import the legacy tree (63 provinces, 696 districts, 10,051 communes)
into a fresh database, then query the whole nation's subtree and one province's.

    python bench/units.py                      # SQLite (a temporary file)
    python bench/units.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/bench --wipe

Every figure is the median of repeated runs. Targets on a 2-core machine: import < 10 s, nation
subtree < 20 ms. The subtree figures of the RESULT line go through the application's
``subtree()``: the per-engine in-memory tree, warm, with its version check (one primary-key read
of ``unit_tree_version``) included in every call. An earlier line gives the cold paths for
comparison: the closure-table query ``subtree_sql()``, and the first ``subtree()`` call of a fresh
engine (version read, whole-tree load in one query, tree build, subtree sort). The last line is
machine-readable:

    RESULT import_legacy_s=… subtree_nation_ms=… subtree_province_ms=…

With ``--db`` pointing at PostgreSQL, the ``public`` schema of that database is dropped and made
again before every import run, hence the required ``--wipe``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy.engine import make_url  # noqa: E402

from server import db as dbmod  # noqa: E402
from server import unit_data  # noqa: E402
from sessions.store import units as units_store  # noqa: E402
from sessions.unit_sources import from_legacy_tree, root_row  # noqa: E402
from sessions.units import UnitRow  # noqa: E402

PROVINCE = "01"  # Hà Nội: 30 districts, 579 communes in the legacy tree
TARGET_IMPORT_S = 10.0
TARGET_NATION_MS = 20.0


async def reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def fresh_database(base_url: str | None, workdir: Path, run: int) -> str:
    if base_url is None:
        return f"sqlite+aiosqlite:///{workdir / f'bench-{run}.sqlite3'}"
    if make_url(base_url).get_backend_name() == "postgresql":
        await reset_postgres(base_url)
    return base_url


async def import_once(url: str, rows: list[UnitRow]) -> float:
    await dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    try:
        started = time.perf_counter()
        async with dbmod.transaction(dbmod.sessionmaker(engine)) as db:
            result = await units_store.import_units(db, rows)
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    if result.added != len(rows):
        raise SystemExit(f"import added {result.added} units, expected {len(rows)}")
    return elapsed


async def time_cold_first_call(url: str, runs: int, unit_id: int, expected: int) -> list[float]:
    """The first subtree() of a new engine (an empty tree cache), its connection already open."""
    times = []
    for _ in range(runs):
        engine = dbmod.make_engine(url)
        try:
            async with dbmod.sessionmaker(engine)() as db:
                await units_store.tree_version(db)  # open the connection: not part of the figure
                started = time.perf_counter()
                n = len(await units_store.subtree(db, unit_id))
                times.append((time.perf_counter() - started) * 1000)
        finally:
            await engine.dispose()
        if n != expected:
            raise SystemExit(f"subtree returned {n} units, expected {expected}")
    return times


async def time_query(runs: int, call: Callable[[], Awaitable[int]], expected: int) -> list[float]:
    await call()  # warm the connection, statement cache and page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        n = await call()
        times.append((time.perf_counter() - started) * 1000)
        if n != expected:
            raise SystemExit(f"subtree returned {n} units, expected {expected}")
    return times


def fmt(values: list[float], unit: str) -> str:
    return (f"median {statistics.median(values):.3f} {unit} (min {min(values):.3f}, max {max(values):.3f}, "
            f"{len(values)} runs)")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file per run)")
    parser.add_argument("--wipe", action="store_true", help="allow dropping the public schema of a --db PostgreSQL")
    parser.add_argument("--runs", type=int, default=5, help="import runs, each into a fresh database (default 5)")
    parser.add_argument("--query-runs", type=int, default=25, help="runs of each subtree query (default 25)")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache",
                        help="where the vietnam-provinces 0.6.0 wheel is kept (default var/cache)")
    args = parser.parse_args(argv)
    if args.db and make_url(args.db).get_backend_name() == "postgresql" and not args.wipe:
        parser.error("--db PostgreSQL: every run drops and recreates its public schema; add --wipe to confirm")

    started = time.perf_counter()
    rows = from_legacy_tree(unit_data.legacy_tree_json(args.cache), root_row())
    district_parent = {r.code: r.parent_code for r in rows if r.parent_code == PROVINCE}
    expected_province = 1 + len(district_parent) + sum(1 for r in rows if r.parent_code in district_parent)
    print(f"Legacy tree: {len(rows)} units, read in {time.perf_counter() - started:.2f} s", flush=True)
    backend = make_url(args.db).get_backend_name() if args.db else "sqlite"
    print(f"Database: {backend} ({'given URL' if args.db else 'temporary file per run'})", flush=True)

    import_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="hoinghi-bench-") as tmp:
        url = ""
        for run in range(1, args.runs + 1):
            url = await fresh_database(args.db, Path(tmp), run)
            import_times.append(await import_once(url, rows))
            print(f"  import run {run}/{args.runs}: {import_times[-1]:.3f} s", flush=True)

        # Query the database of the last import run.
        engine = dbmod.make_engine(url)
        try:
            async with dbmod.sessionmaker(engine)() as db:
                nation = await units_store.root(db)
                province = await units_store.get_by_code(db, PROVINCE)
                assert nation is not None

                async def nation_subtree() -> int:
                    return len(await units_store.subtree(db, nation.id))

                async def province_subtree() -> int:
                    return len(await units_store.subtree(db, province.id))

                async def nation_sql() -> int:
                    return len(await units_store.subtree_sql(db, nation.id))

                async def province_sql() -> int:
                    return len(await units_store.subtree_sql(db, province.id))

                nation_sql_ms = await time_query(args.query_runs, nation_sql, len(rows))
                province_sql_ms = await time_query(args.query_runs, province_sql, expected_province)
                nation_ms = await time_query(args.query_runs, nation_subtree, len(rows))
                province_ms = await time_query(args.query_runs, province_subtree, expected_province)
        finally:
            await engine.dispose()
        cold_runs = max(3, args.query_runs // 5)
        nation_cold_ms = await time_cold_first_call(url, cold_runs, nation.id, len(rows))
        province_cold_ms = await time_cold_first_call(url, cold_runs, province.id, expected_province)

    import_s = statistics.median(import_times)
    print(f"Import of the legacy tree into a fresh database: {fmt(import_times, 's')}"
          f"  [target < {TARGET_IMPORT_S:.0f} s: {'ok' if import_s < TARGET_IMPORT_S else 'MISSED'}]")
    print(f"Cold paths, for comparison. subtree_sql() (closure-table query, no cache): nation "
          f"{fmt(nation_sql_ms, 'ms')}; province {PROVINCE} {fmt(province_sql_ms, 'ms')}. "
          f"First subtree() call of a fresh engine (version read + whole-tree load + build): nation "
          f"{fmt(nation_cold_ms, 'ms')}; province {PROVINCE} {fmt(province_cold_ms, 'ms')}")
    print("Through subtree() (in-memory tree, warm cache, version check of one primary-key read included):")
    print(f"Subtree of the nation ({len(rows)} units): {fmt(nation_ms, 'ms')}"
          f"  [target < {TARGET_NATION_MS:.0f} ms: "
          f"{'ok' if statistics.median(nation_ms) < TARGET_NATION_MS else 'MISSED'}]")
    print(f"Subtree of province {PROVINCE} ({expected_province} units): {fmt(province_ms, 'ms')}")
    print(f"RESULT import_legacy_s={import_s:.3f} subtree_nation_ms={statistics.median(nation_ms):.3f} "
          f"subtree_province_ms={statistics.median(province_ms):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
