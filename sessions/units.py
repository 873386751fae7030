"""The administrative tree: levels, validation of an incoming tree, and the closure of ancestry.

An import hands us rows (code, name, level, parent code); everything here is pure: it checks
the rows as a whole, then computes every (ancestor, descendant, depth) pair so that a subtree
is one indexed SQL query and no Python ever walks the tree row by row at read time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from sessions.errors import ImportRejected
from sessions.values import REFUSED_CHARS


class Level(StrEnum):
    CENTRAL = "central"
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def label_vi(self) -> str:
        return _LABEL_VI[self]


_RANK = {Level.CENTRAL: 0, Level.PROVINCE: 1, Level.DISTRICT: 2, Level.COMMUNE: 3}
_LABEL_VI = {
    Level.CENTRAL: "Trung ương",
    Level.PROVINCE: "Tỉnh/Thành phố",
    Level.DISTRICT: "Quận/Huyện",
    Level.COMMUNE: "Xã/Phường",
}
LEVEL_ALIASES = {
    **{lv.value: lv for lv in Level},
    "trung_uong": Level.CENTRAL,
    "tinh": Level.PROVINCE,
    "huyen": Level.DISTRICT,
    "xa": Level.COMMUNE,
}
MAX_CODE_LEN = 32
MAX_NAME_LEN = 200


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One unit as an importer sees it. ``line`` is where it came from (1-based, for errors)."""

    code: str
    name: str
    level: Level
    parent_code: str | None
    line: int = 0


def parse_level(raw: str) -> Level | None:
    return LEVEL_ALIASES.get(raw.strip().lower())


def validate_tree(rows: list[UnitRow], existing: Mapping[str, tuple[Level, str | None]]) -> None:
    """Refuse the whole batch if any row is wrong. ``existing`` maps code → (level, parent code)
    of units already stored, so a batch may hang new units under stored ones.

    Checks: empty code or name, over-long fields, duplicate codes in the batch, unknown parent,
    a child whose level is not below its parent's, a root that is not central, and cycles
    (including cycles formed together with stored units).
    """
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for row in rows:
        if not row.code:
            errors.append((row.line, "mã đơn vị (code) trống"))
            continue
        if len(row.code) > MAX_CODE_LEN or not row.code.replace("-", "").replace("_", "").isalnum():
            errors.append((row.line, f"mã đơn vị '{row.code}' không hợp lệ (chỉ chữ, số, '-', '_')"))
        if REFUSED_CHARS.search(row.name):
            errors.append((row.line, f"tên đơn vị '{row.code}' chứa ký tự điều khiển (NUL, xuống dòng…)"))
        elif not row.name.strip():
            errors.append((row.line, f"tên đơn vị '{row.code}' trống"))
        elif len(row.name) > MAX_NAME_LEN:
            errors.append((row.line, f"tên đơn vị '{row.code}' dài quá {MAX_NAME_LEN} ký tự"))
        if row.code in seen:
            errors.append((row.line, f"mã '{row.code}' trùng với dòng {seen[row.code]}"))
        else:
            seen[row.code] = row.line
        if row.parent_code == row.code:
            errors.append((row.line, f"đơn vị '{row.code}' không thể là cấp trên của chính nó"))
    if errors:
        raise ImportRejected(sorted(errors))

    # The merged view: stored units overridden by the batch.
    merged: dict[str, tuple[Level, str | None, int]] = {
        code: (lv, parent, 0) for code, (lv, parent) in existing.items()
    }
    for row in rows:
        merged[row.code] = (row.level, row.parent_code, row.line)

    for row in rows:
        if row.parent_code is None:
            if row.level is not Level.CENTRAL:
                errors.append((row.line, f"đơn vị '{row.code}' cấp {row.level.label_vi} phải có cấp trên"))
            continue
        parent = merged.get(row.parent_code)
        if parent is None:
            errors.append((row.line, f"không tìm thấy đơn vị cấp trên '{row.parent_code}'"))
        elif parent[0].rank >= row.level.rank:
            errors.append(
                (row.line, f"cấp '{row.level.value}' của '{row.code}' phải thấp hơn cấp '{parent[0].value}' "
                           f"của đơn vị cấp trên '{row.parent_code}'")
            )
    if errors:
        raise ImportRejected(sorted(errors))

    # Cycle detection over the merged graph (iterative, colours by code).
    state: dict[str, int] = {}
    for row in rows:
        path: list[str] = []
        code: str | None = row.code
        while code is not None and state.get(code, 0) == 0:
            state[code] = 1
            path.append(code)
            node = merged.get(code)
            code = node[1] if node else None
        if code is not None and state.get(code) == 1:
            cycle = path[path.index(code):]
            line = min((merged[c][2] for c in cycle if merged[c][2]), default=row.line)
            raise ImportRejected([(line, "vòng lặp cấp trên: " + " → ".join([*cycle, code]))])
        for c in path:
            state[c] = 2

    # A row may change the level of a stored unit: its stored children must stay below it.
    batch_line = {row.code: row.line for row in rows}
    reported: set[str] = set()
    for code, (lv, up, _line) in merged.items():
        if up is None or code in batch_line or up not in batch_line or up in reported:
            continue
        if merged[up][0].rank >= lv.rank:
            reported.add(up)
            errors.append((batch_line[up], f"cấp '{merged[up][0].value}' của '{up}' phải cao hơn cấp "
                                           f"'{lv.value}' của đơn vị cấp dưới đã có '{code}'"))
    if errors:
        raise ImportRejected(sorted(errors))


def closure_pairs(parent_of: Mapping[int, int | None]) -> Iterable[tuple[int, int, int]]:
    """Every (ancestor id, descendant id, depth) pair, depth 0 for a unit and itself.

    ``parent_of`` maps unit id → parent id for the whole tree. Memoised per unit, so the cost is
    the size of the output (units × average depth), not units × tree height recomputed.
    """
    chains: dict[int, tuple[int, ...]] = {}

    def chain(uid: int) -> tuple[int, ...]:
        stack = []
        cur: int | None = uid
        while cur is not None and cur not in chains:
            stack.append(cur)
            cur = parent_of.get(cur)
        base = chains[cur] if cur is not None else ()
        for node in reversed(stack):
            base = (node, *base)
            chains[node] = base
        return chains[uid]

    for uid in parent_of:
        for depth, anc in enumerate(chain(uid)):
            yield anc, uid, depth


def deepest_first(parent_of: Mapping[int, int | None]) -> list[int]:
    """Every unit once, children before their parents (decreasing depth), without recursion:
    the order in which bottom-up sums add each child into its parent before the parent moves on."""
    depth: dict[int, int] = {}
    for uid in parent_of:
        chain: list[int] = []
        cur: int | None = uid
        while cur is not None and cur not in depth:
            chain.append(cur)
            cur = parent_of.get(cur)
        d = depth[cur] if cur is not None else -1
        for node in reversed(chain):
            d += 1
            depth[node] = d
    return sorted(parent_of, key=lambda u: -depth[u])
