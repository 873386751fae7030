"""KPI arithmetic: ratios roll up as Σnum/Σden (the seed report's figures exactly), incremental
equals full, colours and ranks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions.errors import ValidationFailed
from sessions.kpi import CATALOG_BY_CODE, Colour, Direction, Value, apply_delta, colour, rank, rollup, validate_value

ON_TIME = CATALOG_BY_CODE["DVC_TY_LE_DUNG_HAN"]


def test_seed_figures_roll_up_exactly() -> None:
    # Ministry 1 ← provinces 2, 3 ← communes; the seed's 74,336 on time of 74,587 resolved.
    parent = {1: None, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3}
    own = {4: Value(30_000, 30_100), 5: Value(20_000, 20_087), 6: Value(24_336, 24_400)}
    total = rollup(parent, own)
    assert total[1] == Value(74_336, 74_587)
    assert f"{total[1].ratio():.2%}" == "99.66%"
    assert colour(ON_TIME, total[1], "central") is Colour.GREEN
    # Never the average of ratios: that would be 99.69 %, not 99.66 %.
    children = [total[2], total[3]]
    assert round(sum(c.ratio() or 0 for c in children) / 2, 4) != round(total[1].ratio() or 0, 4)


def test_residence_and_passport_ratios() -> None:
    assert f"{Value(50_579, 70_758).ratio():.2%}" == "71.48%"
    assert (Value(5_862, 6_302).ratio() or 0) > 0.93


@pytest.mark.parametrize(("num", "den", "code"), [(-1, 10, "value_negative"), (11, 10, "numerator_above_denominator"),
                                                   (5, None, "denominator_required"), (5, -2, "value_negative")])
def test_bad_values(num: int, den: int | None, code: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_value(ON_TIME, num, den)
    assert err.value.code == code


def test_lower_is_better_colours_by_level() -> None:
    behind = CATALOG_BY_CODE["NV_CHAM_TIEN_DO"]
    assert colour(behind, Value(0), "province") is Colour.GREEN
    assert colour(behind, Value(3), "province") is Colour.AMBER
    assert colour(behind, Value(10), "central") is Colour.RED
    assert colour(behind, Value(1), "commune") is Colour.AMBER  # stricter for communes


def test_rank_among_siblings() -> None:
    assert rank({1: 0.9, 2: 0.99, 3: None, 4: 0.9}, Direction.HIGHER) == {2: 1, 1: 2, 4: 2, 3: 4}
    assert rank({1: 5.0, 2: 0.0}, Direction.LOWER) == {2: 1, 1: 2}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_incremental_equals_full(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 40))
    parent = {0: None} | {i: data.draw(st.integers(0, i - 1)) for i in range(1, n)}
    reports = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 50), st.integers(0, 50)),
                                 max_size=60))
    own: dict[int, Value] = {}
    totals = rollup(parent, {})
    for uid, a, b in reports:
        delta = Value(min(a, b), max(a, b))
        own[uid] = own.get(uid, Value()) + delta
        chain, cur = [], uid
        while cur is not None:
            chain.append(cur)
            cur = parent[cur]
        apply_delta(totals, chain, delta)
    assert totals == rollup(parent, own)
