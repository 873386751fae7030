"""Finding units by name the way people type them: without diacritics or with them, any case,
any part of a word ("vinh yen" finds "Phường Vĩnh Yên"), or by code. Pure: it ranks rows it is
given; the caller hands it the asker's subtree, so it can never find a unit outside it."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sessions.unit_tree import UnitView
from sessions.units import Level
from sessions.values import CONTROL

MAX_QUERY = 100
# Vietnamese letters that are not a base letter plus combining marks.
_PLAIN = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """Lower case, no diacritics, single spaces: what a search compares."""
    decomposed = unicodedata.normalize("NFD", text.translate(_PLAIN).translate(CONTROL))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


@dataclass(frozen=True, slots=True)
class Found:
    unit: UnitView
    province: UnitView | None  # the province it lies in (itself for a province), None above

    def as_dict(self) -> dict[str, object]:
        return {**self.unit.as_dict(), "province": None if self.province is None else
                {"code": self.province.code, "name": self.province.name}}


def search(units: Iterable[UnitView], query: str, *, province_of: Callable[[UnitView], UnitView | None],
           levels: frozenset[Level] | None = None, limit: int = 20) -> list[Found]:
    """Units whose code equals the query, or whose name holds every word of it (code first,
    then names starting with the query, then the rest; higher levels before lower ones)."""
    q = fold(query)
    if not q:
        return []
    words = q.split()
    ranked: list[tuple[tuple[int, int, str, str], UnitView]] = []
    for u in units:
        if levels is not None and u.level not in levels:
            continue
        name = fold(u.name)
        if u.code.casefold() == q:
            tier = 0
        elif name.startswith(q) or f" {q}" in f" {name}":
            tier = 1
        elif all(w in name for w in words) or u.code.casefold().startswith(q):
            tier = 2
        else:
            continue
        ranked.append(((tier, u.level.rank, name, u.code), u))
    ranked.sort(key=lambda pair: pair[0])
    return [Found(u, province_of(u)) for _key, u in ranked[:limit]]
