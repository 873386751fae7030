"""Meeting rules: the lifecycle state machine, the roll call, the floor and raised hands.

Plain Python, no I/O: the store loads rows into these shapes, applies a rule, writes back.
Times are passed in (the clock is the caller's), so tests drive time explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sessions.errors import DomainError, Forbidden, ValidationFailed
from sessions.values import reject_controls


class MeetingState(StrEnum):
    SCHEDULED = "scheduled"
    REHEARSAL = "rehearsal"
    LIVE = "live"
    CONCLUDED = "concluded"
    CANCELLED = "cancelled"


STATE_LABEL_VI = {
    MeetingState.SCHEDULED: "Đã lên lịch",
    MeetingState.REHEARSAL: "Chạy thử kết nối",
    MeetingState.LIVE: "Đang diễn ra",
    MeetingState.CONCLUDED: "Đã kết thúc",
    MeetingState.CANCELLED: "Đã huỷ",
}

TRANSITIONS: dict[MeetingState, frozenset[MeetingState]] = {
    MeetingState.SCHEDULED: frozenset({MeetingState.REHEARSAL, MeetingState.CANCELLED}),
    MeetingState.REHEARSAL: frozenset({MeetingState.LIVE, MeetingState.CANCELLED}),
    MeetingState.LIVE: frozenset({MeetingState.CONCLUDED}),
    MeetingState.CONCLUDED: frozenset(),
    MeetingState.CANCELLED: frozenset(),
}

# States in which sites connect and the roll call / floor are in use.
OPEN_STATES = frozenset({MeetingState.REHEARSAL, MeetingState.LIVE})


class IllegalTransition(DomainError):
    code = "illegal_transition"
    status = 409


class WrongState(DomainError):
    code = "wrong_state"
    status = 409


def transition(current: MeetingState, target: MeetingState) -> MeetingState:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"Không thể chuyển hội nghị từ '{STATE_LABEL_VI[current]}' sang '{STATE_LABEL_VI[target]}'",
            current=current.value, target=target.value)
    return target


def require_open(state: MeetingState, action: str) -> None:
    if state not in OPEN_STATES:
        raise WrongState(f"Không thể {action} khi hội nghị ở trạng thái '{STATE_LABEL_VI[state]}'",
                         state=state.value)


class Attendance(StrEnum):
    NOT_CALLED = "not_called"
    PRESENT_ONLINE = "present_online"
    PRESENT_IN_PERSON = "present_in_person"
    ABSENT = "absent"


ATTENDANCE_LABEL_VI = {
    Attendance.NOT_CALLED: "Chưa điểm danh",
    Attendance.PRESENT_ONLINE: "Có mặt trực tuyến",
    Attendance.PRESENT_IN_PERSON: "Có mặt trực tiếp",
    Attendance.ABSENT: "Vắng",
}
MAX_REASON = 500


class MuteBy(StrEnum):
    """Who muted a site. A mute is lifted by the same authority or a higher one: a site's own
    mute by the site (or above), its province operator's by the operator or the chair, the
    chair's by the chair alone — a site the chair silenced asks for the floor instead."""

    SITE = "site"
    OPERATOR = "operator"
    CHAIR = "chair"

    @property
    def rank(self) -> int:
        return _MUTE_RANK[self]


_MUTE_RANK = {MuteBy.SITE: 1, MuteBy.OPERATOR: 2, MuteBy.CHAIR: 3}


class MuteLocked(Forbidden):
    code = "muted_by_higher"


@dataclass
class Seat:
    """One participating unit's live row: attendance, connection, hand, mute."""

    unit_id: int
    status: Attendance = Attendance.NOT_CALLED
    reason: str = ""
    online: int = 0  # open connections (tabs, bridges)
    hand_at: datetime | None = None
    muted: bool = False
    muted_by: MuteBy | None = None

    def connect(self) -> bool:
        """A connection opened. True when the unit went from offline to online (new interval)."""
        self.online += 1
        if self.online > 1:
            return False
        if self.status in (Attendance.NOT_CALLED, Attendance.ABSENT):
            self.status = Attendance.PRESENT_ONLINE
            self.reason = ""
        return True

    def disconnect(self) -> bool:
        """A connection closed. True when the unit's last connection went (interval closes)."""
        if self.online == 0:
            return False
        self.online -= 1
        if self.online == 0:
            self.hand_at = None  # a hand does not stay up for a site that left
            return True
        return False

    def mute(self, by: MuteBy) -> bool:
        """Mute the site on ``by``'s authority. True when that changed anything (a higher
        authority's mute stays as it is)."""
        if self.muted and self.muted_by is not None and self.muted_by.rank >= by.rank:
            return False
        self.muted, self.muted_by = True, by
        return True

    def unmute(self, by: MuteBy) -> bool:
        """Lift the mute on ``by``'s authority; refused when a higher authority muted the site."""
        if not self.muted:
            return False
        holder = self.muted_by or MuteBy.SITE
        if holder.rank > by.rank:
            if holder is MuteBy.CHAIR:
                raise MuteLocked("Chủ trì đã tắt tiếng điểm cầu này: chỉ chủ trì bật lại được. "
                                 "Hãy giơ tay xin phát biểu.", muted_by=holder.value)
            raise MuteLocked("Điểm cầu cấp trên đã tắt tiếng điểm cầu này: chỉ điểm cầu cấp trên hoặc chủ trì "
                             "bật lại được.", muted_by=holder.value)
        self.muted, self.muted_by = False, None
        return True

    def mark_in_person(self) -> None:
        self.status = Attendance.PRESENT_IN_PERSON
        self.reason = ""

    def mark_absent(self, reason: str) -> None:
        text = reject_controls(reason, "reason", multiline=True, label="Lý do vắng mặt").strip()
        if not text:
            raise ValidationFailed("Cần ghi lý do vắng mặt", code="reason_required", field="reason")
        if len(text) > MAX_REASON:
            raise ValidationFailed(f"Lý do vắng mặt dài quá {MAX_REASON} ký tự", code="reason_too_long",
                                   field="reason")
        if self.online:
            raise ValidationFailed("Điểm cầu đang kết nối, không thể đánh dấu vắng", code="site_online")
        self.status = Attendance.ABSENT
        self.reason = text

    def reset(self) -> None:
        if self.online:
            self.status = Attendance.PRESENT_ONLINE
        else:
            self.status = Attendance.NOT_CALLED
        self.reason = ""


@dataclass
class Floor:
    """The floor: at most one holder, an ordered hand queue with no duplicates, mutes."""

    holder: int | None = None
    hands: list[int] = field(default_factory=list)

    def raise_hand(self, unit_id: int) -> bool:
        if unit_id == self.holder:
            raise ValidationFailed("Điểm cầu đang giữ quyền phát biểu", code="already_has_floor")
        if unit_id in self.hands:
            return False
        self.hands.append(unit_id)
        return True

    def lower_hand(self, unit_id: int) -> bool:
        if unit_id not in self.hands:
            return False
        self.hands.remove(unit_id)
        return True

    def grant(self, unit_id: int) -> int | None:
        """Give the floor to ``unit_id``; returns the previous holder (whose turn ends)."""
        previous = self.holder
        if unit_id in self.hands:
            self.hands.remove(unit_id)
        self.holder = unit_id
        return previous

    def revoke(self) -> int | None:
        previous, self.holder = self.holder, None
        return previous

    def next(self) -> tuple[int | None, int | None]:
        """Grant the first raised hand; returns (previous holder, new holder)."""
        if not self.hands:
            raise ValidationFailed("Không có điểm cầu nào đang giơ tay", code="queue_empty")
        new = self.hands[0]
        return self.grant(new), new


PRESENT = frozenset({Attendance.PRESENT_ONLINE, Attendance.PRESENT_IN_PERSON})


def is_present(status: Attendance | str) -> bool:
    """The roll call's "present": online or in person (what every count and console sums)."""
    return status in PRESENT


def tally(seats: list[tuple[str, int | None, Attendance, int]]) -> dict[str, dict[str, int]]:
    """Counts at a glance: rows of (level, province id, status, online) → per level and per
    province: expected, present (online or in person), online now, absent, not called."""
    out: dict[str, dict[str, int]] = {}

    def bump(key: str, status: Attendance, online: int) -> None:
        c = out.setdefault(key, {"expected": 0, "present": 0, "online": 0, "in_person": 0, "absent": 0,
                                 "not_called": 0})
        c["expected"] += 1
        if is_present(status):
            c["present"] += 1
        if status is Attendance.PRESENT_IN_PERSON:
            c["in_person"] += 1
        if status is Attendance.ABSENT:
            c["absent"] += 1
        if status is Attendance.NOT_CALLED:
            c["not_called"] += 1
        if online:
            c["online"] += 1

    for level, province_id, status, online in seats:
        bump(f"level:{level}", status, online)
        if province_id is not None:
            bump(f"province:{province_id}", status, online)
        bump("all", status, online)
    return out
