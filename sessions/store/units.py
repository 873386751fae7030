"""Units: idempotent bulk import, and subtree/ancestor/child queries over the closure table.

Subtrees are served from an in-memory ``UnitTree`` kept per database engine and validated against
``unit_tree_version`` on every call (one primary-key read); ``import_units`` bumps that version in
its own transaction whenever it changes the tree. Anything else that ever writes ``units`` must
bump it too (``_bump_tree_version``), or other processes keep serving their old tree.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import NotFound
from sessions.models import Unit, UnitClosure, UnitTreeVersion, utcnow
from sessions.unit_tree import UnitTree, UnitTuple, UnitView
from sessions.units import Level, UnitRow, closure_pairs, validate_tree
from sessions.values import REFUSED_CHARS

Progress = Callable[[int, int], None]
_BATCH = 2000


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged


_COLS = (Unit.id, Unit.code, Unit.name, Unit.level, Unit.parent_id)
_UNITS = cast(Table, Unit.__table__)
_CLOSURE = cast(Table, UnitClosure.__table__)
_VERSION = cast(Table, UnitTreeVersion.__table__)


def _view(row: Sequence[object]) -> UnitView:
    return UnitView(int(row[0]), str(row[1]), str(row[2]), Level(str(row[3])),  # type: ignore[call-overload]
                    None if row[4] is None else int(row[4]))  # type: ignore[call-overload]


async def import_units(db: AsyncSession, rows: list[UnitRow], progress: Progress | None = None) -> ImportResult:
    """Insert new units, update renamed/moved ones, leave the rest; all or nothing.

    Validation covers the whole batch before anything is written, and the caller's transaction
    makes the write atomic, so a bad row leaves the database exactly as it was.
    """
    existing_rows = (await db.execute(select(*_COLS))).all()
    by_code = {r.code: r for r in existing_rows}
    code_of = {r.id: r.code for r in existing_rows}
    validate_tree(
        rows,
        {r.code: (Level(r.level), code_of.get(r.parent_id) if r.parent_id else None) for r in existing_rows},
    )

    total = len(rows)
    done = 0
    # Parents before children: sort by level rank (validate_tree guarantees ranks increase).
    ordered = sorted(rows, key=lambda r: r.level.rank)
    id_of = {r.code: r.id for r in existing_rows}
    parent_of: dict[int, int | None] = {r.id: r.parent_id for r in existing_rows}
    added = updated = unchanged = 0
    new_ids: list[int] = []
    moved = False
    now = utcnow()

    for rank in sorted({r.level.rank for r in ordered}):
        tier = [r for r in ordered if r.level.rank == rank]
        fresh = [r for r in tier if r.code not in by_code]
        for start in range(0, len(fresh), _BATCH):
            chunk = fresh[start:start + _BATCH]
            params = [
                {"code": r.code, "name": r.name.strip(), "level": r.level.value,
                 "parent_id": id_of[r.parent_code] if r.parent_code else None,
                 "created_at": now, "updated_at": now}
                for r in chunk
            ]
            result = await db.execute(
                insert(Unit).returning(Unit.id, Unit.code, sort_by_parameter_order=True), params
            )
            for uid, code in result.all():
                id_of[code] = uid
                new_ids.append(uid)
            for p, r in zip(params, chunk, strict=True):
                parent_of[id_of[r.code]] = p["parent_id"]  # type: ignore[assignment]
            added += len(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
        changes = []
        for r in tier:
            old = by_code.get(r.code)
            if old is None:
                continue
            pid = id_of[r.parent_code] if r.parent_code else None
            if old.name != r.name.strip() or old.level != r.level.value or old.parent_id != pid:
                moved = moved or old.parent_id != pid
                changes.append({"uid": old.id, "name": r.name.strip(), "level": r.level.value,
                                "parent_id": pid, "updated_at": now})
                parent_of[old.id] = pid
            else:
                unchanged += 1
        if changes:
            # A Core UPDATE executed per parameter set (an ORM entity here would be "bulk UPDATE by
            # primary key", which requires an "id" key in every record and refuses this statement).
            await db.execute(
                update(_UNITS).where(_UNITS.c.id == bindparam("uid")).values(
                    name=bindparam("name"), level=bindparam("level"), parent_id=bindparam("parent_id"),
                    updated_at=bindparam("updated_at"),
                ),
                changes,
            )
            updated += len(changes)
        done += len(tier) - len(fresh)
        if progress:
            progress(done, total)

    if moved:
        await db.execute(delete(UnitClosure))
        pairs = list(closure_pairs(parent_of))
    elif new_ids:
        fresh_set = set(new_ids)
        pairs = [p for p in closure_pairs(parent_of) if p[1] in fresh_set]
    else:
        pairs = []
    for start in range(0, len(pairs), 5 * _BATCH):
        await db.execute(
            insert(UnitClosure),
            [{"ancestor_id": a, "descendant_id": d, "depth": dep} for a, d, dep in pairs[start:start + 5 * _BATCH]],
        )
    if added or updated:
        await _bump_tree_version(db)
    return ImportResult(added, updated, unchanged)


async def get_by_code(db: AsyncSession, code: str) -> UnitView:
    # A code no unit can have (NUL and other control characters: PostgreSQL refuses them) names none.
    row = None if REFUSED_CHARS.search(code) else (await db.execute(select(*_COLS).where(Unit.code == code))).first()
    if row is None:
        raise NotFound(f"Không tìm thấy đơn vị '{code}'", code="unit_not_found")
    return _view(row)


async def ids_by_code(db: AsyncSession, codes: set[str]) -> dict[str, int]:
    """The stored ones of ``codes`` → their ids (unknown codes are left out)."""
    codes = {c for c in codes if not REFUSED_CHARS.search(c)}  # no unit has such a code
    return {code: uid for code, uid in (await db.execute(select(Unit.code, Unit.id).where(Unit.code.in_(codes)))).all()}


async def get_by_id(db: AsyncSession, unit_id: int) -> UnitView:
    row = (await db.execute(select(*_COLS).where(Unit.id == unit_id))).first()
    if row is None:
        raise NotFound(f"Không tìm thấy đơn vị #{unit_id}", code="unit_not_found")
    return _view(row)


async def root(db: AsyncSession) -> UnitView | None:
    row = (await db.execute(select(*_COLS).where(Unit.parent_id.is_(None)).order_by(Unit.id).limit(1))).first()
    return _view(row) if row else None


_LEVELS = {lv.value: lv for lv in Level}


# ---------------------------------------------------------------------------------------------
# The tree cache: one UnitTree per engine (so per database and per process), keyed weakly so a
# disposed and dropped engine takes its tree with it, and tests with many databases never share.

_TREES: weakref.WeakKeyDictionary[Engine, tuple[int, UnitTree]] = weakref.WeakKeyDictionary()
_WROTE_TREE = "hoinghi.units.wrote_tree"  # session.info key: the transaction that bumped the version


async def _bump_tree_version(db: AsyncSession) -> None:
    await db.execute(update(_VERSION).where(_VERSION.c.id == 1).values(version=_VERSION.c.version + 1))
    # Until this transaction ends, this session sees a tree nobody else does (and that may yet be
    # rolled back): its subtree reads go to SQL and never fill the shared cache.
    db.info[_WROTE_TREE] = db.sync_session.get_transaction()


def _wrote_tree(db: AsyncSession) -> bool:
    txn = db.info.get(_WROTE_TREE)
    return txn is not None and txn is db.sync_session.get_transaction()


async def tree_version(db: AsyncSession) -> int | None:
    """The stored tree version (None only if its row is missing: then nothing is cached)."""
    return cast("int | None", (await db.execute(
        select(_VERSION.c.version).where(_VERSION.c.id == 1)
    )).scalar_one_or_none())


async def load_tree(db: AsyncSession) -> UnitTree:
    """Every unit, in one query, as a fresh (uncached) tree."""
    u = _UNITS.c
    rows = await db.execute(select(u.id, u.code, u.name, u.level, u.parent_id))
    return UnitTree(cast("list[UnitTuple]", rows.all()))  # Rows unpack like tuples


async def unit_tree(db: AsyncSession) -> UnitTree:
    """The whole tree as this session sees it: this engine's cached tree when its version is the
    stored one, else loaded (one query) and cached. Inside a transaction that changed the tree,
    a private tree of that transaction's view, never cached."""
    if _wrote_tree(db):
        return await load_tree(db)
    # Version first, tree second: if an import commits in between, the tree is newer than the
    # version it is cached under, which costs one extra rebuild and is never stale.
    version = await tree_version(db)
    engine = db.get_bind().engine
    cached = _TREES.get(engine)
    if cached is not None and version is not None and cached[0] == version:
        return cached[1]
    tree = await load_tree(db)
    if version is not None:
        _TREES[engine] = (version, tree)
    return tree


async def subtree(db: AsyncSession, unit_id: int, level: Level | None = None) -> list[UnitView]:
    """The unit and everything below it (only ``level`` if given), by depth below the unit then
    code; ``[]`` for an unknown id. Served from this engine's cached tree after one primary-key
    read of the tree version; the first call after a change reloads the tree (one query). Same
    rows in the same order as ``subtree_sql``; a new list every call."""
    if _wrote_tree(db):
        return await subtree_sql(db, unit_id, level)
    return (await unit_tree(db)).subtree(unit_id, level)


async def subtree_sql(db: AsyncSession, unit_id: int, level: Level | None = None) -> list[UnitView]:
    """The unit and everything below it, in one indexed query on the closure table.

    The whole nation is ~10k rows, so this is written for speed: a Core select (no ORM row
    processing), rows fetched in one batch, views built straight from them (levels by dict lookup)."""
    u, c = _UNITS.c, _CLOSURE.c
    stmt = (
        select(u.id, u.code, u.name, u.level, u.parent_id)
        .join_from(_UNITS, _CLOSURE, c.descendant_id == u.id)
        .where(c.ancestor_id == unit_id)
    )
    if level is not None:
        stmt = stmt.where(u.level == level.value)
    rows = await db.execute(stmt.order_by(c.depth, u.code))
    levels, make = _LEVELS, tuple.__new__
    return [make(UnitView, (uid, code, name, levels[lv], pid)) for uid, code, name, lv, pid in rows.all()]


async def subtree_ids(db: AsyncSession, unit_id: int) -> set[int]:
    rows = await db.execute(select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == unit_id))
    return set(rows.scalars().all())


async def is_within(db: AsyncSession, ancestor_id: int, unit_id: int) -> bool:
    """The scope check for one unit: one primary-key lookup."""
    row = await db.execute(
        select(UnitClosure.depth).where(
            UnitClosure.ancestor_id == ancestor_id, UnitClosure.descendant_id == unit_id
        )
    )
    return row.first() is not None


async def ancestors(db: AsyncSession, unit_id: int) -> list[UnitView]:
    """From the root down to the unit itself (breadcrumbs)."""
    stmt = (
        select(*_COLS)
        .join(UnitClosure, UnitClosure.ancestor_id == Unit.id)
        .where(UnitClosure.descendant_id == unit_id)
        .order_by(UnitClosure.depth.desc())
    )
    return [_view(r) for r in (await db.execute(stmt)).all()]


async def children_with_counts(db: AsyncSession, unit_id: int) -> list[tuple[UnitView, int]]:
    """Direct children, each with the number of units below it (not counting itself)."""
    kids = [_view(r) for r in (await db.execute(
        select(*_COLS).where(Unit.parent_id == unit_id).order_by(Unit.code)
    )).all()]
    if not kids:
        return []
    counts = dict((await db.execute(
        select(UnitClosure.ancestor_id, func.count())
        .where(UnitClosure.ancestor_id.in_([k.id for k in kids]), UnitClosure.depth > 0)
        .group_by(UnitClosure.ancestor_id)
    )).all())
    return [(k, int(counts.get(k.id, 0))) for k in kids]


async def count_by_level(db: AsyncSession, unit_id: int | None = None) -> dict[str, int]:
    stmt = select(Unit.level, func.count()).group_by(Unit.level)
    if unit_id is not None:
        stmt = stmt.join(UnitClosure, UnitClosure.descendant_id == Unit.id).where(
            UnitClosure.ancestor_id == unit_id
        )
    return {str(lv): int(n) for lv, n in (await db.execute(stmt)).all()}
