"""The meeting rules as plain Python: state machine, seats, floor queue, tallies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sessions.errors import ValidationFailed
from sessions.meetings import (
    TRANSITIONS,
    Attendance,
    Floor,
    IllegalTransition,
    MeetingState,
    Seat,
    WrongState,
    require_open,
    tally,
    transition,
)

T0 = datetime(2022, 8, 17, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("current", list(MeetingState))
@pytest.mark.parametrize("target", list(MeetingState))
def test_every_transition(current: MeetingState, target: MeetingState) -> None:
    legal = {(MeetingState.SCHEDULED, MeetingState.REHEARSAL), (MeetingState.SCHEDULED, MeetingState.CANCELLED),
             (MeetingState.REHEARSAL, MeetingState.LIVE), (MeetingState.REHEARSAL, MeetingState.CANCELLED),
             (MeetingState.LIVE, MeetingState.CONCLUDED)}
    assert (target in TRANSITIONS[current]) == ((current, target) in legal)
    if (current, target) in legal:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as err:
            transition(current, target)
        assert err.value.code == "illegal_transition" and "Không thể chuyển" in err.value.message


def test_actions_need_an_open_meeting() -> None:
    require_open(MeetingState.LIVE, "giơ tay")
    require_open(MeetingState.REHEARSAL, "giơ tay")
    for st in (MeetingState.SCHEDULED, MeetingState.CONCLUDED, MeetingState.CANCELLED):
        with pytest.raises(WrongState):
            require_open(st, "giơ tay")


def test_seat_connection_follows_presence() -> None:
    seat = Seat(1)
    assert seat.connect() is True and seat.status is Attendance.PRESENT_ONLINE
    assert seat.connect() is False  # a second tab opens no new interval
    assert seat.disconnect() is False and seat.online == 1
    seat.hand_at = T0
    assert seat.disconnect() is True and seat.online == 0 and seat.hand_at is None
    assert seat.disconnect() is False  # never negative
    assert seat.status is Attendance.PRESENT_ONLINE  # it attended


def test_absence_needs_reason_and_an_offline_site() -> None:
    seat = Seat(1)
    with pytest.raises(ValidationFailed) as err:
        seat.mark_absent("   ")
    assert err.value.code == "reason_required" and seat.status is Attendance.NOT_CALLED
    seat.mark_absent("Mất điện")
    assert seat.status is Attendance.ABSENT and seat.reason == "Mất điện"
    seat.connect()  # the site turns up after all
    assert seat.status is Attendance.PRESENT_ONLINE and seat.reason == ""
    with pytest.raises(ValidationFailed) as err2:
        seat.mark_absent("x")
    assert err2.value.code == "site_online"


def test_in_person_is_kept_when_a_connection_opens() -> None:
    seat = Seat(1)
    seat.mark_in_person()
    seat.connect()
    assert seat.status is Attendance.PRESENT_IN_PERSON


def test_floor_queue() -> None:
    floor = Floor()
    assert floor.raise_hand(5) and floor.raise_hand(7)
    assert not floor.raise_hand(5)  # no duplicates
    assert floor.hands == [5, 7]
    assert floor.next() == (None, 5) and floor.holder == 5 and floor.hands == [7]
    with pytest.raises(ValidationFailed):
        floor.raise_hand(5)  # the holder cannot queue
    assert floor.grant(9) == 5 and floor.holder == 9  # grant directly, not from the queue
    assert floor.lower_hand(7) and floor.hands == []
    with pytest.raises(ValidationFailed) as err:
        floor.next()
    assert err.value.code == "queue_empty"
    assert floor.revoke() == 9 and floor.holder is None


def test_tally_per_level_and_province() -> None:
    rows = [("province", 10, Attendance.PRESENT_ONLINE, 1), ("commune", 10, Attendance.ABSENT, 0),
            ("commune", 10, Attendance.PRESENT_IN_PERSON, 0), ("commune", 20, Attendance.NOT_CALLED, 0)]
    t = tally(rows)
    assert t["all"] == {"expected": 4, "present": 2, "online": 1, "in_person": 1, "absent": 1, "not_called": 1}
    assert t["province:10"]["expected"] == 3 and t["province:10"]["present"] == 2
    assert t["level:commune"]["expected"] == 3 and t["level:commune"]["absent"] == 1


def test_a_mute_is_lifted_only_by_the_same_authority_or_a_higher_one() -> None:
    from sessions.meetings import MuteBy, MuteLocked, Seat

    seat = Seat(1)
    assert seat.mute(MuteBy.SITE) and seat.muted_by is MuteBy.SITE
    assert not seat.mute(MuteBy.SITE)
    assert seat.mute(MuteBy.CHAIR) and seat.muted_by is MuteBy.CHAIR, "the chair's mute takes over"
    assert not seat.mute(MuteBy.OPERATOR), "a lower authority changes nothing"
    for lower in (MuteBy.SITE, MuteBy.OPERATOR):
        with pytest.raises(MuteLocked) as refused:
            seat.unmute(lower)
        assert refused.value.code == "muted_by_higher" and "chủ trì" in refused.value.message
        assert seat.muted and seat.muted_by is MuteBy.CHAIR, "a refused unmute changes nothing"
    assert seat.unmute(MuteBy.CHAIR) and not seat.muted and seat.muted_by is None
    assert not seat.unmute(MuteBy.CHAIR)
    seat.mute(MuteBy.OPERATOR)
    with pytest.raises(MuteLocked):
        seat.unmute(MuteBy.SITE)
    assert seat.unmute(MuteBy.CHAIR)
    seat.mute(MuteBy.SITE)
    assert seat.unmute(MuteBy.OPERATOR), "above a site's own mute, the province may lift it"
