"""The administrative tree in memory: subtrees served without SQL.

Pure (no I/O): ``UnitTree`` is built from every unit row in one pass, and answers "the unit and
everything below it" in exactly the order ``sessions.store.units.subtree_sql`` returns — by depth
below the subtree's root, then by code (code-point order, as SQLite's BINARY collation and a
PostgreSQL database with the C / C.UTF-8 collation compare). The tree changes only on import, so
``sessions.store.units.subtree`` keeps one per database engine and rebuilds it when the stored
tree version moves.

How a subtree is found without walking the tree per request: the units are numbered in preorder
(with subtree sizes), so a unit's subtree is the contiguous run of positions ``[start, end)``.
Depth below the subtree's root differs from the depth below the tree's root by a constant, so
sorting that run by (depth, code) gives the SQL order. That sort happens once per unit (and once
per unit and level filter); the result is memoised as a tuple and every call gets a fresh list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sessions.units import Level

_LEVELS = {lv.value: lv for lv in Level}


class UnitView(NamedTuple):
    """Immutable like a frozen dataclass, but a tuple: a subtree builds ~10k of these, and a
    frozen dataclass's ``__init__`` (``object.__setattr__`` per field) tripled that cost."""

    id: int
    code: str
    name: str
    level: Level
    parent_id: int | None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "code": self.code, "name": self.name, "level": self.level.value,
                "parent_id": self.parent_id}


UnitTuple = tuple[int, str, str, str, int | None]  # (id, code, name, level value, parent id)


class UnitTree:
    """Every unit, indexed for subtree queries. Read-only once built (the memo aside)."""

    __slots__ = ("_codes", "_depths", "_end", "_memo", "_pos", "_views")

    def __init__(self, rows: Iterable[UnitTuple]) -> None:
        make, levels = tuple.__new__, _LEVELS
        by_id: dict[int, UnitView] = {}
        children: dict[int | None, list[int]] = {}
        for uid, code, name, lv, pid in rows:
            by_id[uid] = make(UnitView, (uid, code, name, levels[lv], pid))
            kids = children.get(pid)
            if kids is None:
                children[pid] = [uid]
            else:
                kids.append(uid)
        # Roots: units without a parent (and, defensively, any whose parent is not in the rows).
        roots = [uid for pid, kids in children.items() if pid is None or pid not in by_id for uid in kids]

        # Preorder, iteratively (no recursion limit to hit). A unit is pushed only when its parent
        # is popped, so each is visited once, and units on a cycle (which the importer refuses)
        # are never reached, as they have no way up to a root.
        order: list[int] = []
        depth: dict[int, int] = dict.fromkeys(roots, 0)
        stack = roots[::-1]
        pop, push, visit = stack.pop, stack.extend, order.append
        while stack:
            uid = pop()
            visit(uid)
            kids = children.get(uid)
            if kids:
                depth.update(dict.fromkeys(kids, depth[uid] + 1))
                push(kids)
        pos = {uid: i for i, uid in enumerate(order)}
        views = [by_id[uid] for uid in order]  # position → view

        # Subtree sizes, children before parents (reverse preorder); a subtree is [i, i + size).
        size = [1] * len(order)
        parent_pos = [pos.get(v.parent_id) for v in views]  # type: ignore[arg-type]
        for i in range(len(order) - 1, -1, -1):
            p = parent_pos[i]
            if p is not None:
                size[p] += size[i]

        self._views = views
        self._pos = pos
        self._end = [i + n for i, n in enumerate(size)]
        self._codes = [v.code for v in views]  # position → code
        self._depths = [depth[uid] for uid in order]  # position → depth below its root
        self._memo: dict[tuple[int, Level | None], tuple[UnitView, ...]] = {}

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._pos

    def get(self, unit_id: int) -> UnitView | None:
        p = self._pos.get(unit_id)
        return None if p is None else self._views[p]

    def subtree(self, unit_id: int, level: Level | None = None) -> list[UnitView]:
        """The unit and everything below it (only ``level`` if given), by depth then code; a new
        list on every call. An unknown id gives an empty list, as the SQL query does."""
        key = (unit_id, level)
        found = self._memo.get(key)
        if found is None:
            found = self._compute(unit_id, level)
            self._memo[key] = found
        return list(found)

    def _compute(self, unit_id: int, level: Level | None) -> tuple[UnitView, ...]:
        if level is not None:
            self.subtree(unit_id)  # make sure the unfiltered run is memoised, then filter it
            return tuple(v for v in self._memo[(unit_id, None)] if v.level is level)
        start = self._pos.get(unit_id)
        if start is None:
            return ()
        # By code, then (stable) by depth: (depth, code) order, with no Python-level key function.
        # Depth below the unit differs from depth below the root by a constant: same order.
        positions = sorted(range(start, self._end[start]), key=self._codes.__getitem__)
        positions.sort(key=self._depths.__getitem__)
        views = self._views
        return tuple(views[p] for p in positions)
