"""Pure tree rules, checked on random trees: the closure equals a naive ancestor walk, every
generated tree validates, every generated cycle is refused; plus the synthetic generator."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions.errors import ImportRejected
from sessions.unit_sources import parse_synthetic_spec, root_row, synthetic
from sessions.units import Level, UnitRow, closure_pairs, validate_tree

LOWER = {lv: [x for x in Level if x.rank > lv.rank] for lv in Level}


@st.composite
def trees(draw: st.DrawFn, max_units: int = 40) -> list[UnitRow]:
    """A root, then units each hung under a random earlier unit of a higher level (levels may be
    skipped, as the current two-tier tree does). Line numbers start at 2 as in a CSV file."""
    rows = [UnitRow("R", "Trung ương", Level.CENTRAL, None, 2)]
    for i in range(draw(st.integers(0, max_units))):
        parent = draw(st.sampled_from([r for r in rows if LOWER[r.level]]))
        level = draw(st.sampled_from(LOWER[parent.level]))
        rows.append(UnitRow(f"U{i}", f"Đơn vị {i}", level, parent.code, i + 3))
    return rows


def naive_closure(parent_of: dict[int, int | None]) -> set[tuple[int, int, int]]:
    out = set()
    for uid in parent_of:
        cur: int | None = uid
        depth = 0
        while cur is not None:
            out.add((cur, uid, depth))
            cur = parent_of[cur]
            depth += 1
    return out


def descendants(rows: list[UnitRow], code: str) -> set[str]:
    children: dict[str | None, list[str]] = {}
    for r in rows:
        children.setdefault(r.parent_code, []).append(r.code)
    out: set[str] = set()
    todo = list(children.get(code, []))
    while todo:
        c = todo.pop()
        out.add(c)
        todo.extend(children.get(c, []))
    return out


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_closure_equals_naive_ancestor_walk(data: st.DataObject) -> None:
    rows = data.draw(trees())
    validate_tree(rows, {})  # every generated tree is a valid one
    ids = data.draw(st.permutations(range(100, 100 + len(rows))))
    id_of = {r.code: ids[i] for i, r in enumerate(rows)}
    # Children may come before their parents: the memoised walk must not care about order.
    order = data.draw(st.permutations(rows))
    parent_of = {id_of[r.code]: id_of[r.parent_code] if r.parent_code else None for r in order}
    pairs = list(closure_pairs(parent_of))
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == naive_closure(parent_of)
    # Each unit has exactly one depth-0 pair (itself), and the root is everyone's ancestor.
    assert sorted(d for a, d, dep in pairs if dep == 0 and a == d) == sorted(parent_of)
    assert {d for a, d, _ in pairs if a == id_of["R"]} == set(parent_of)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_validate_tree_refuses_generated_cycles(data: st.DataObject) -> None:
    rows = data.draw(trees(max_units=30).filter(lambda rs: len(rs) > 1))
    # Pick a unit with something below it and hang it under one of its own descendants.
    with_kids = [r for r in rows if descendants(rows, r.code)]
    a = data.draw(st.sampled_from(with_kids))
    b = data.draw(st.sampled_from(sorted(descendants(rows, a.code))))
    b_level = next(r.level for r in rows if r.code == b)

    # The whole cycle inside one batch: refused on the moved row's line (its new parent is below it).
    batch = [UnitRow(r.code, r.name, r.level, b, r.line) if r.code == a.code else r for r in rows]
    with pytest.raises(ImportRejected) as info:
        validate_tree(batch, {})
    assert [(ln, f"'{a.code}' phải thấp hơn" in msg) for ln, msg in info.value.errors] == [(a.line, True)]

    # Half stored, half in the batch: one row moves a stored unit under its stored descendant.
    existing = {r.code: (r.level, r.parent_code) for r in rows}
    levels_below_b = LOWER[b_level]
    if levels_below_b:
        level = data.draw(st.sampled_from(levels_below_b))
        moved = UnitRow(a.code, a.name, level, b, 7)
        with pytest.raises(ImportRejected) as info:
            validate_tree([moved], existing)
        assert info.value.errors[0][0] == 7
        assert "vòng lặp cấp trên" in info.value.errors[0][1]
        assert f"{a.code} → " in info.value.errors[0][1] and f" → {a.code}" in info.value.errors[0][1]
    else:  # b is a commune: nothing can sit below it, the level rule already refuses
        with pytest.raises(ImportRejected) as info:
            validate_tree([UnitRow(a.code, a.name, Level.COMMUNE, b, 7)], existing)
        assert info.value.errors[0][0] == 7


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_stored_tree_accepts_reimport_and_new_leaves(data: st.DataObject) -> None:
    rows = data.draw(trees())
    existing = {r.code: (r.level, r.parent_code) for r in rows}
    validate_tree(rows, existing)  # re-importing the same tree is fine
    parent = data.draw(st.sampled_from([r for r in rows if LOWER[r.level]]))
    leaf = UnitRow("NEW", "Đơn vị mới", data.draw(st.sampled_from(LOWER[parent.level])), parent.code, 2)
    validate_tree([leaf], existing)


def test_validate_tree_rules() -> None:
    existing = {"R": (Level.CENTRAL, None), "P": (Level.PROVINCE, "R"), "D": (Level.DISTRICT, "P"),
                "C": (Level.COMMUNE, "D")}
    cases = [
        ([UnitRow("", "x", Level.PROVINCE, "R", 2)], 2, "mã đơn vị (code) trống"),
        ([UnitRow("a b", "x", Level.PROVINCE, "R", 2)], 2, "không hợp lệ"),
        ([UnitRow("X" * 33, "x", Level.PROVINCE, "R", 2)], 2, "không hợp lệ"),
        ([UnitRow("X", "x" * 201, Level.PROVINCE, "R", 2)], 2, "dài quá 200"),
        ([UnitRow("X", "x", Level.PROVINCE, "X", 5)], 5, "chính nó"),
        ([UnitRow("X", "x", Level.PROVINCE, None, 3)], 3, "phải có cấp trên"),
        ([UnitRow("X", "x", Level.DISTRICT, "C", 4)], 4, "phải thấp hơn"),
        ([UnitRow("X", "x", Level.PROVINCE, "P", 4)], 4, "phải thấp hơn"),
        # A stored province turned into a commune would sit above its stored district.
        ([UnitRow("P", "x", Level.COMMUNE, "R", 6)], 6, "đơn vị cấp dưới đã có 'D'"),
    ]
    for rows, line, fragment in cases:
        with pytest.raises(ImportRejected) as info:
            validate_tree(rows, existing)
        assert any(ln == line and fragment in msg for ln, msg in info.value.errors), (rows, info.value.errors)
    # Changing a level is fine while the stored children stay below.
    validate_tree([UnitRow("D", "x", Level.PROVINCE, "R", 2)], existing)


def test_synthetic_counts_exact() -> None:
    spec = parse_synthetic_spec("provinces=63,districts=700,communes=10000")
    assert spec == {"provinces": 63, "districts": 700, "communes": 10000}
    rows = synthetic(**spec, root=root_row())
    assert Counter(r.level for r in rows) == {Level.CENTRAL: 1, Level.PROVINCE: 63, Level.DISTRICT: 700,
                                              Level.COMMUNE: 10000}
    assert len({r.code for r in rows}) == len(rows)
    validate_tree(rows, {})
    by_code = {r.code: r for r in rows}
    assert all(by_code[r.parent_code or ""].level is Level.DISTRICT for r in rows if r.level is Level.COMMUNE)
    per_province = Counter(r.parent_code for r in rows if r.level is Level.DISTRICT)
    assert set(per_province.values()) == {11, 12}  # spread evenly: 700 = 63 × 11 + 7


@settings(max_examples=30, deadline=None)
@given(provinces=st.integers(1, 20), districts=st.integers(0, 60), communes=st.integers(0, 200))
def test_synthetic_any_spec(provinces: int, districts: int, communes: int) -> None:
    districts = 0 if districts < provinces else districts
    rows = synthetic(provinces, districts, communes, root_row("GOC", "Gốc"))
    expected = {Level.CENTRAL: 1, Level.PROVINCE: provinces, Level.DISTRICT: districts, Level.COMMUNE: communes}
    assert Counter(r.level for r in rows) == Counter({lv: n for lv, n in expected.items() if n})
    validate_tree(rows, {})


def test_synthetic_spec_refusals() -> None:
    for spec, fragment in [("provinces=0", "ít nhất 1 tỉnh"), ("provinces=5,districts=3", "≥ số tỉnh"),
                           ("towns=3", "không hợp lệ")]:
        with pytest.raises(ImportRejected) as info:
            parse_synthetic_spec(spec)
        assert fragment in info.value.message
