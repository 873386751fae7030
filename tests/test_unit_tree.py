"""The in-memory unit tree behind ``sessions.store.units.subtree``: the same rows in the same order
as the closure-table query (``subtree_sql``), on SQLite and PostgreSQL, and never stale — an import
that changes the tree bumps ``unit_tree_version``, which every call checks, including from another
engine (another server process) that had the old tree cached.
"""

from __future__ import annotations

import random
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text

from server import db as dbmod
from server import unit_data
from sessions.store import units as units_store
from sessions.unit_sources import from_legacy_tree, root_row
from sessions.unit_tree import UnitTree, UnitView
from sessions.units import Level, UnitRow
from tests.conftest import TREE, need_service

REPO = Path(__file__).resolve().parent.parent
LEVELS: list[Level | None] = [None, *Level]


@pytest.fixture(scope="module")
def legacy_rows() -> list[UnitRow]:
    try:
        data = unit_data.legacy_tree_json(REPO / "var" / "cache")
    except unit_data.DataUnavailable as exc:
        need_service(f"legacy unit tree (pip download vietnam-provinces==0.6.0): {exc.message}")
    return from_legacy_tree(data, root_row())


async def import_rows(factory: Any, rows: list[UnitRow]) -> units_store.ImportResult:
    async with dbmod.transaction(factory) as db:
        return await units_store.import_units(db, rows)


async def ids_by_code(factory: Any) -> dict[str, int]:
    async with factory() as db:
        return {code: uid for uid, code in (await db.execute(text("SELECT id, code FROM units"))).all()}


async def assert_cache_matches_sql(factory: Any, unit_ids: list[int], levels: list[Level | None] = LEVELS) -> None:
    async with factory() as db:
        for uid in unit_ids:
            for level in levels:
                cached = await units_store.subtree(db, uid, level)
                assert cached == await units_store.subtree_sql(db, uid, level), (uid, level)
                assert all(type(v) is UnitView for v in cached)


def count_statements(engine: Any) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    return seen


# ---------------------------------------------------------------------------------------------
# Cache == SQL


async def test_cache_equals_sql_on_fixture_tree(session_factory: Any) -> None:
    await import_rows(session_factory, list(TREE))
    ids = await ids_by_code(session_factory)
    await assert_cache_matches_sql(session_factory, [*ids.values(), max(ids.values()) + 1000, -1])
    async with session_factory() as db:
        assert [u.code for u in await units_store.subtree(db, ids["BCA"])] == [
            "BCA", "01", "25", "79", "00004", "00070", "08707", "08740", "760", "26734"]
        assert await units_store.subtree(db, 987654) == []
        assert await units_store.subtree(db, 987654, Level.COMMUNE) == []
        # Every call is a new list: a caller mutating its result cannot corrupt the cache.
        first = await units_store.subtree(db, ids["BCA"])
        (await units_store.subtree(db, ids["79"], Level.COMMUNE)).append(first[0])
        first.clear()
        assert len(await units_store.subtree(db, ids["BCA"])) == len(TREE)
        assert [u.code for u in await units_store.subtree(db, ids["79"], Level.COMMUNE)] == ["26734"]


async def test_cache_equals_sql_on_legacy_tree(session_factory: Any, legacy_rows: list[UnitRow]) -> None:
    await import_rows(session_factory, legacy_rows)
    ids = await ids_by_code(session_factory)
    district = next(r.code for r in legacy_rows if r.level is Level.DISTRICT and r.parent_code == "79")
    commune = next(r.code for r in legacy_rows if r.parent_code == district)
    await assert_cache_matches_sql(session_factory, [ids["BCA"], ids["01"], ids["79"], ids[district], ids[commune]])
    async with session_factory() as db:
        nation = await units_store.subtree(db, ids["BCA"])
        assert len(nation) == len(legacy_rows) == 10811
        assert [u.level for u in nation[:64]] == [Level.CENTRAL] + [Level.PROVINCE] * 63


async def test_warm_call_is_one_primary_key_read(db_url: str) -> None:
    await dbmod.upgrade(db_url)
    engine = dbmod.make_engine(db_url)
    try:
        factory = dbmod.sessionmaker(engine)
        await import_rows(factory, list(TREE))
        root = (await ids_by_code(factory))["BCA"]
        seen = count_statements(engine)
        async with factory() as db:
            await units_store.subtree(db, root)  # cold in this engine: version, then the whole tree
            assert len(seen) == 2 and "unit_tree_version" in seen[0] and "unit_closure" not in seen[1]
            seen.clear()
            await units_store.subtree(db, root, Level.COMMUNE)
            await units_store.subtree(db, root)
            assert len(seen) == 2 and all("unit_tree_version" in s for s in seen), seen
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Never stale: the version


async def test_import_bumps_version_and_second_engine_sees_changes(session_factory: Any, db_url: str) -> None:
    await import_rows(session_factory, list(TREE))
    async with session_factory() as db:
        v1 = await units_store.tree_version(db)
    # A no-op re-import leaves the version (and every process's cache) alone.
    assert (await import_rows(session_factory, list(TREE))).unchanged == len(TREE)
    async with session_factory() as db:
        assert await units_store.tree_version(db) == v1

    # Another "server process": its own engine, its tree cached before the change.
    other = dbmod.make_engine(db_url)
    try:
        other_factory = dbmod.sessionmaker(other)
        ids = await ids_by_code(session_factory)
        async with other_factory() as db:
            assert [u.code for u in await units_store.subtree(db, ids["01"])] == ["01", "00004", "00070"]
            assert [u.code for u in await units_store.subtree(db, ids["79"])] == ["79", "760", "26734"]
        async with session_factory() as db:  # this engine has it cached too
            assert len(await units_store.subtree(db, ids["BCA"])) == len(TREE)

        result = await import_rows(session_factory, [
            UnitRow("00070", "Phường Hoàn Kiếm (mới)", Level.COMMUNE, "01"),  # renamed
            UnitRow("760", "Quận 1 (cũ)", Level.DISTRICT, "01"),  # moved, with its commune, to Hà Nội
            UnitRow("00001", "Phường Mới", Level.COMMUNE, "01"),  # added
        ])
        assert (result.added, result.updated) == (1, 2)
        ids = await ids_by_code(session_factory)

        for factory in (other_factory, session_factory):
            async with factory() as db:
                assert await units_store.tree_version(db) == (v1 or 0) + 1
                hanoi = await units_store.subtree(db, ids["01"])
                assert [u.code for u in hanoi] == ["01", "00001", "00004", "00070", "760", "26734"]
                assert hanoi[3].name == "Phường Hoàn Kiếm (mới)"
                assert [u.code for u in await units_store.subtree(db, ids["79"])] == ["79"]
                assert [u.code for u in await units_store.subtree(db, ids["01"], Level.DISTRICT)] == ["760"]
                assert (await units_store.subtree(db, ids["760"]))[0].parent_id == ids["01"]
        await assert_cache_matches_sql(other_factory, list(ids.values()))
    finally:
        await other.dispose()


async def test_uncommitted_and_rolled_back_imports_never_reach_the_cache(session_factory: Any) -> None:
    await import_rows(session_factory, list(TREE))
    ids = await ids_by_code(session_factory)
    async with session_factory() as db:
        v1 = await units_store.tree_version(db)
        await units_store.subtree(db, ids["25"])  # cached at v1

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with dbmod.transaction(session_factory) as db:
            await units_store.import_units(db, [UnitRow("99001", "Xã Ma", Level.COMMUNE, "25")])
            # The importing transaction sees its own change…
            assert [u.code for u in await units_store.subtree(db, ids["25"])] == ["25", "08707", "08740", "99001"]
            raise Abort
    # …nobody else ever does, and it did not leave a "version v1 + 1" tree in the cache (checked
    # without touching the cache, which a read at v1 would overwrite): the next import that really
    # commits v1 + 1 is served as it is.
    async with session_factory() as db:
        assert await units_store.tree_version(db) == v1
        assert [u.code for u in await units_store.subtree_sql(db, ids["25"])] == ["25", "08707", "08740"]
    await import_rows(session_factory, [UnitRow("99002", "Xã Thật", Level.COMMUNE, "25")])
    async with session_factory() as db:
        assert await units_store.tree_version(db) == (v1 or 0) + 1
        assert [u.code for u in await units_store.subtree(db, ids["25"])] == ["25", "08707", "08740", "99002"]


async def test_engines_on_different_databases_never_share(tmp_path: Path) -> None:
    """Same unit ids in two databases, different trees: each engine serves its own."""
    engines = []
    try:
        for name, province in (("a", "Tỉnh A"), ("b", "Tỉnh B")):
            url = f"sqlite+aiosqlite:///{tmp_path / f'{name}.sqlite3'}"
            await dbmod.upgrade(url)
            engine = dbmod.make_engine(url)
            engines.append(engine)
            await import_rows(dbmod.sessionmaker(engine), [
                UnitRow("BCA", "Bộ Công an", Level.CENTRAL, None), UnitRow("01", province, Level.PROVINCE, "BCA")])
        for _ in range(2):
            for engine, province in zip(engines, ("Tỉnh A", "Tỉnh B"), strict=True):
                async with dbmod.sessionmaker(engine)() as db:
                    assert [u.name for u in await units_store.subtree(db, 1)] == ["Bộ Công an", province]
    finally:
        for engine in engines:
            await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Randomised: random trees and random changes, cache == SQL on both databases


def _code(rng: random.Random, used: set[str]) -> str:
    # Digits and capitals (their order is the same under C and the usual glibc locales); varying
    # lengths so that string order differs from numeric order ("7" > "10").
    while True:
        code = "".join(rng.choice("0123456789AZ") for _ in range(rng.randint(1, 4)))
        if code not in used and code != "BCA":
            used.add(code)
            return code


def random_tree(rng: random.Random, used: set[str]) -> list[UnitRow]:
    rows = [UnitRow("BCA", "Bộ Công an", Level.CENTRAL, None)]
    for _ in range(rng.randint(2, 5)):
        p = UnitRow(_code(rng, used), "Tỉnh", Level.PROVINCE, "BCA")
        rows.append(p)
        for _ in range(rng.randint(0, 3)):
            d = UnitRow(_code(rng, used), "Huyện", Level.DISTRICT, p.code)
            rows.append(d)
            rows.extend(UnitRow(_code(rng, used), "Xã", Level.COMMUNE, d.code) for _ in range(rng.randint(0, 4)))
        rows.extend(UnitRow(_code(rng, used), "Xã", Level.COMMUNE, p.code) for _ in range(rng.randint(0, 3)))
    return rows


def random_changes(rng: random.Random, rows: list[UnitRow], used: set[str]) -> list[UnitRow]:
    """Renames, moves (a district to another province, a commune to another district or province)
    and additions."""
    provinces = [r.code for r in rows if r.level is Level.PROVINCE]
    parents = [r.code for r in rows if r.level in (Level.PROVINCE, Level.DISTRICT)]
    changes: dict[str, UnitRow] = {}
    for r in rng.sample(rows[1:], k=min(len(rows) - 1, 6)):
        if r.level is Level.DISTRICT:
            changes[r.code] = UnitRow(r.code, r.name, r.level, rng.choice(provinces))
        elif r.level is Level.COMMUNE:
            changes[r.code] = UnitRow(r.code, "Xã đổi", r.level, rng.choice(parents))
        else:
            changes[r.code] = UnitRow(r.code, r.name + " mới", r.level, r.parent_code)
    new = [UnitRow(_code(rng, used), "Xã mới", Level.COMMUNE, rng.choice(parents)) for _ in range(3)]
    return [*changes.values(), *new]


@pytest.mark.parametrize("seed", range(3))
async def test_random_trees_and_changes(session_factory: Any, db_url: str, seed: int) -> None:
    rng = random.Random(seed)
    used: set[str] = set()
    rows = random_tree(rng, used)
    await import_rows(session_factory, rows)
    other = dbmod.make_engine(db_url)
    try:
        other_factory = dbmod.sessionmaker(other)
        for _round in range(3):
            ids = list((await ids_by_code(session_factory)).values())
            await assert_cache_matches_sql(session_factory, ids, [None, Level.COMMUNE])
            await assert_cache_matches_sql(other_factory, ids, [None, Level.DISTRICT])
            await import_rows(session_factory, random_changes(rng, rows, used))
            async with session_factory() as db:
                rows = [UnitRow(code, name, Level(lv), parent) for code, name, lv, parent in (await db.execute(text(
                    "SELECT u.code, u.name, u.level, p.code FROM units u LEFT JOIN units p ON p.id = u.parent_id"
                ))).all()]
        ids = list((await ids_by_code(session_factory)).values())
        await assert_cache_matches_sql(other_factory, ids)
    finally:
        await other.dispose()


# ---------------------------------------------------------------------------------------------
# The pure class against an obviously-correct reference, on deeper random forests


def reference_subtree(rows: list[tuple[int, str, str, str, int | None]], unit_id: int,
                      level: Level | None) -> list[UnitView]:
    """Breadth-first from the unit, then sorted by (depth below it, code): what the SQL does."""
    by_id = {r[0]: r for r in rows}
    if unit_id not in by_id:
        return []
    kids: dict[int | None, list[int]] = {}
    for r in rows:
        kids.setdefault(r[4], []).append(r[0])
    found: list[tuple[int, str, int]] = []
    queue = deque([(unit_id, 0)])
    while queue:
        uid, depth = queue.popleft()
        found.append((depth, by_id[uid][1], uid))
        queue.extend((k, depth + 1) for k in kids.get(uid, ()))
    out = [UnitView(uid, by_id[uid][1], by_id[uid][2], Level(by_id[uid][3]), by_id[uid][4])
           for _d, _c, uid in sorted(found)]
    return [v for v in out if level is None or v.level is level]


@st.composite
def forests(draw: st.DrawFn) -> list[tuple[int, str, str, str, int | None]]:
    n = draw(st.integers(1, 60))
    codes = draw(st.lists(st.text("0123456789abcXYZ-_", min_size=1, max_size=4), min_size=n, max_size=n,
                          unique=True))
    ids = draw(st.permutations(range(1, n + 1)))
    rows: list[tuple[int, str, str, str, int | None]] = []
    for i in range(n):
        # Parent among the units listed before: a forest (several roots possible), any depth.
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        level = draw(st.sampled_from([lv.value for lv in Level]))
        rows.append((ids[i], codes[i], f"Đơn vị {i}", level, None if parent is None else ids[parent]))
    return draw(st.permutations(rows))  # the tree is built from rows in any order


@settings(max_examples=150, deadline=None)
@given(rows=forests(), level=st.sampled_from(LEVELS))
def test_unit_tree_matches_reference(rows: list[tuple[int, str, str, str, int | None]], level: Level | None) -> None:
    tree = UnitTree(rows)
    assert len(tree) == len(rows)
    for uid in [r[0] for r in rows] + [0, len(rows) + 1]:
        expected = reference_subtree(rows, uid, level)
        assert tree.subtree(uid, level) == expected
        assert tree.subtree(uid, level) == expected  # memoised: same answer again
        assert tree.subtree(uid) == reference_subtree(rows, uid, None)
