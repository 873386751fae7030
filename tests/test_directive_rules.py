"""Directive rules as plain Python: buckets (Decision 42/2014 as amended by 23/2018), deadlines in
Vietnam time, validation, the cascade rule and the roll-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessions.directives import (
    BUCKET_ORDER,
    VN,
    AssigneeRole,
    Bucket,
    ChildrenOpen,
    Priority,
    assignee_roles,
    bucket,
    check_can_complete,
    check_deadline,
    check_percent,
    clean_text,
    days_overdue,
    due_at,
    parse_deadline,
    parse_priority,
    rollup,
    today_vn,
)
from sessions.errors import ValidationFailed

DEADLINE = date(2022, 12, 31)
DUE = due_at(DEADLINE)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2029, 12, 31))


def test_deadline_is_the_end_of_the_day_in_vietnam() -> None:
    assert DUE == datetime(2022, 12, 31, 17, 0, tzinfo=UTC)  # 00:00 on 1 January, UTC+7
    last_minute = datetime(2022, 12, 31, 23, 59, 59, tzinfo=VN)
    assert bucket(DUE, last_minute, last_minute) is Bucket.DONE_ON_TIME
    assert bucket(DUE, None, last_minute) is Bucket.OPEN_WITHIN
    new_year = datetime(2023, 1, 1, 0, 0, tzinfo=VN)
    assert bucket(DUE, new_year, new_year) is Bucket.DONE_LATE
    assert bucket(DUE, None, new_year) is Bucket.OPEN_OVERDUE
    # 20:00 UTC on the 31st is already 1 January in Hà Nội.
    assert bucket(DUE, None, datetime(2022, 12, 31, 20, 0, tzinfo=UTC)) is Bucket.OPEN_OVERDUE


def test_the_four_buckets() -> None:
    before, after = DUE - timedelta(days=3), DUE + timedelta(days=3)
    assert bucket(DUE, before, after) is Bucket.DONE_ON_TIME
    assert bucket(DUE, after, after) is Bucket.DONE_LATE
    assert bucket(DUE, None, before) is Bucket.OPEN_WITHIN
    assert bucket(DUE, None, after) is Bucket.OPEN_OVERDUE
    assert BUCKET_ORDER[0] is Bucket.OPEN_OVERDUE  # overdue first


@given(dates, instants)
def test_on_time_iff_completed_on_or_before_the_deadline_day_in_vietnam(deadline: date, done: datetime) -> None:
    b = bucket(due_at(deadline), done, done + timedelta(days=400))
    assert (b is Bucket.DONE_ON_TIME) == (today_vn(done) <= deadline)
    assert b in (Bucket.DONE_ON_TIME, Bucket.DONE_LATE)


@given(dates, instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)))
def test_open_moves_only_from_within_to_overdue(deadline: date, now: datetime, later: timedelta) -> None:
    due = due_at(deadline)
    first, second = bucket(due, None, now), bucket(due, None, now + later)
    assert (first is Bucket.OPEN_WITHIN) == (today_vn(now) <= deadline)
    assert not (first is Bucket.OPEN_OVERDUE and second is Bucket.OPEN_WITHIN)
    assert days_overdue(due, now) == max(0, (today_vn(now) - deadline).days)


@given(dates, instants, instants)
def test_a_done_bucket_does_not_depend_on_now(deadline: date, done: datetime, now: datetime) -> None:
    due = due_at(deadline)
    assert bucket(due, done, now) is bucket(due, done, done)


@given(dates, instants)
def test_deadline_in_the_past_is_refused(deadline: date, now: datetime) -> None:
    if deadline >= today_vn(now):
        assert check_deadline(deadline, now) == deadline
    else:
        with pytest.raises(ValidationFailed) as err:
            check_deadline(deadline, now)
        assert err.value.code == "deadline_past" and err.value.detail["field"] == "deadline"


def test_deadline_today_in_vietnam_is_accepted_even_when_utc_is_still_yesterday() -> None:
    now = datetime(2022, 8, 16, 18, 0, tzinfo=UTC)  # 01:00 on 17/8 in Hà Nội
    assert check_deadline(date(2022, 8, 17), now) == date(2022, 8, 17)
    with pytest.raises(ValidationFailed):
        check_deadline(date(2022, 8, 16), now)


@pytest.mark.parametrize("raw", ["31/12/2022", "", None, "2022-13-01"])
def test_bad_deadline_text(raw: object) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_deadline(raw)
    assert err.value.code == "deadline_invalid"


def test_parse_deadline() -> None:
    assert parse_deadline("2022-12-31") == DEADLINE and parse_deadline(DEADLINE) == DEADLINE


@given(st.integers(min_value=-1000, max_value=1000))
def test_percent_is_0_to_100(value: int) -> None:
    if 0 <= value <= 100:
        assert check_percent(value) == value and check_percent(str(value)) == value
    else:
        with pytest.raises(ValidationFailed) as err:
            check_percent(value)
        assert err.value.code == "percent_invalid"


@pytest.mark.parametrize("raw", [True, 50.5, "năm mươi", None, [50]])
def test_percent_not_an_integer(raw: object) -> None:
    with pytest.raises(ValidationFailed):
        check_percent(raw)


def test_text() -> None:
    assert clean_text("  Số hoá hồ sơ  ") == "Số hoá hồ sơ"
    for raw in ("", "   ", None, 5):
        with pytest.raises(ValidationFailed) as err:
            clean_text(raw)
        assert err.value.code == "text_required"
    with pytest.raises(ValidationFailed) as err:
        clean_text("x" * 4001)
    assert err.value.code == "text_too_long"


def test_priority() -> None:
    assert parse_priority(None) is Priority.NORMAL and parse_priority("flash") is Priority.FLASH
    with pytest.raises(ValidationFailed) as err:
        parse_priority("rat-gap")
    assert err.value.code == "priority_invalid"


def test_assignee_roles() -> None:
    roles = assignee_roles([1, 2, 3], lead=2, cooperating=[3, 4])
    assert roles == {1: AssigneeRole.ASSIGNEE, 2: AssigneeRole.LEAD, 3: AssigneeRole.COOPERATE,
                     4: AssigneeRole.COOPERATE}
    assert assignee_roles([], lead=5, cooperating=[5]) == {5: AssigneeRole.LEAD}  # lead wins
    with pytest.raises(ValidationFailed) as err:
        assignee_roles([], None, [])
    assert err.value.code == "assignees_required"


def test_cascade_rule() -> None:
    check_can_complete(True, 0)
    check_can_complete(False, 3)  # the directive does not require its breakdown done
    with pytest.raises(ChildrenOpen) as err:
        check_can_complete(True, 2)
    assert err.value.code == "children_open" and err.value.status == 409


@given(st.lists(st.tuples(st.sampled_from(list(Bucket)), st.integers(0, 100)), max_size=50))
def test_rollup(children: list[tuple[Bucket, int]]) -> None:
    r = rollup(children)
    assert r.total == len(children) == sum(r.counts.values())
    assert r.open == sum(1 for b, _ in children if b in (Bucket.OPEN_WITHIN, Bucket.OPEN_OVERDUE))
    assert 0 <= r.percent <= 100
    if children and r.open == 0:
        assert r.percent == 100
    if not children:
        assert r.percent == 0 and r.as_dict()["open"] == 0
