"""Client → server messages of the live websocket ``/ws``, typed: one class per message (and per
meeting action), and ``parse`` to build them from a decoded frame (server.live.frames).

Nothing here does I/O: a malformed message raises ``BadMessage`` with one stable code (see
docs/protocol.md) before any handler runs. What only the domain can judge (a unit that does not
exist, a figure out of range in a bridge's report) is left to the handlers, which answer with the
domain's own codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from server.live.frames import (
    MAX_KEY,
    BadMessage,
    preview,
    read_key,
    read_optional_key,
    read_text,
    read_unit_ref,
)
from sessions.meetings import Attendance, MeetingState
from sessions.units import MAX_CODE_LEN

_KEY_TEXT = re.compile(r"[1-9][0-9]{0,9}")  # a key inside a topic: no sign, space, '_' or leading 0
UnitRef = str | int  # a unit by code, or by id


# --- Topics ------------------------------------------------------------------------------------


def _is_code(text: str) -> bool:
    """A unit code as imports accept it: 1–32 letters, digits, '-' or '_'."""
    return 0 < len(text) <= MAX_CODE_LEN and text.replace("-", "").replace("_", "").isalnum()


@dataclass(frozen=True, slots=True)
class MeetingTopic:
    """``meeting:<id>``: state, floor holder and the caller's own seat."""

    meeting: int

    @property
    def name(self) -> str:
        return f"meeting:{self.meeting}"


@dataclass(frozen=True, slots=True)
class RollcallTopic:
    """``rollcall:<id>:<unit code>``: every seat of that unit's subtree."""

    meeting: int
    unit: str

    @property
    def name(self) -> str:
        return f"rollcall:{self.meeting}:{self.unit}"


@dataclass(frozen=True, slots=True)
class KpiTopic:
    """``kpi:<unit code>``: the unit's live KPI slide."""

    unit: str

    @property
    def name(self) -> str:
        return f"kpi:{self.unit}"


@dataclass(frozen=True, slots=True)
class DirectivesTopic:
    """``directives:<unit code>``: the unit's directive dashboard."""

    unit: str

    @property
    def name(self) -> str:
        return f"directives:{self.unit}"


Topic = MeetingTopic | RollcallTopic | KpiTopic | DirectivesTopic


def parse_topic(text: str) -> Topic:
    """A topic string in its one written form (``topic.name == text``), so that one subscription
    is never held twice under two spellings."""
    match text.split(":"):
        case ["meeting", key] if _KEY_TEXT.fullmatch(key) and int(key) <= MAX_KEY:
            return MeetingTopic(int(key))
        case ["rollcall", key, code] if _KEY_TEXT.fullmatch(key) and int(key) <= MAX_KEY and _is_code(code):
            return RollcallTopic(int(key), code)
        case ["kpi", code] if _is_code(code):
            return KpiTopic(code)
        case ["directives", code] if _is_code(code):
            return DirectivesTopic(code)
    raise BadMessage(f"Chủ đề không hợp lệ: {text[:60]}", code="bad_topic", field="topic")


# --- Messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    topic: Topic


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topic: str  # any string: unsubscribing from what was never followed does nothing


@dataclass(frozen=True, slots=True)
class Join:
    """The caller's site (``unit`` None) or, for a bridge, a site it serves connected its media."""

    meeting: int
    unit: str | None


@dataclass(frozen=True, slots=True)
class Leave:
    meeting: int
    unit: str | None


@dataclass(frozen=True, slots=True)
class Stats:
    """A bridge's per-site health; ``sites`` is checked by server.media (``stats_invalid``)."""

    meeting: int
    sites: object


@dataclass(frozen=True, slots=True)
class Speaking:
    """A bridge's speaking states; ``sites`` is checked by server.media (``speaking_invalid``)."""

    meeting: int
    sites: object


@dataclass(frozen=True, slots=True)
class OnAir:
    """Whose media the programme carries; ``fields`` (unit, video, audio as sent) are checked by
    server.media (``on_air_invalid``) after it has checked who may say so."""

    meeting: int
    fields: dict[str, object]


@dataclass(frozen=True, slots=True)
class CascadeToken:
    """A bridge asks for a token of its upstream bridge (``bridge``) for ``unit``: itself or the
    floor holder it publishes up."""

    meeting: int
    unit: str
    bridge: str


@dataclass(frozen=True, slots=True)
class RecordingReport:
    """A bridge's word on a recording; ``report`` is checked by server.services.recordings."""

    meeting: int
    report: dict[str, Any]


# --- Meeting actions: one class each, ``parse`` reads its fields --------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    meeting: int

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        return cls(meeting)


@dataclass(frozen=True, slots=True)
class RaiseHand(Action):
    pass


@dataclass(frozen=True, slots=True)
class LowerHand(Action):
    unit_id: int | None  # the chair lowers another site's hand

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        return cls(meeting, read_optional_key(raw, "unit_id"))


@dataclass(frozen=True, slots=True)
class LowerAllHands(Action):
    pass


@dataclass(frozen=True, slots=True)
class Grant(Action):
    unit: UnitRef
    confirm: bool  # after confirm_required: grant to a site that is not connected

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        return cls(meeting, read_unit_ref(raw), raw.get("confirm") is True)


@dataclass(frozen=True, slots=True)
class NextSpeaker(Action):
    pass


@dataclass(frozen=True, slots=True)
class Revoke(Action):
    pass


@dataclass(frozen=True, slots=True)
class Mute(Action):
    muted: ClassVar[bool] = True
    unit: UnitRef | None  # None: the caller's own site

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        return cls(meeting, read_unit_ref(raw) if ("unit" in raw or "unit_id" in raw) else None)


@dataclass(frozen=True, slots=True)
class Unmute(Mute):
    muted: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class MuteAll(Action):
    muted: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class UnmuteAll(MuteAll):
    muted: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Mark(Action):
    unit: UnitRef
    status: Attendance
    reason: str

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        try:
            status = Attendance(read_text(raw, "status"))
        except ValueError:
            raise BadMessage("Trạng thái điểm danh không hợp lệ", code="status_invalid", field="status") from None
        return cls(meeting, read_unit_ref(raw), status, read_text(raw, "reason", ""))


@dataclass(frozen=True, slots=True)
class ChangeState(Action):
    to: MeetingState

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        try:
            target = MeetingState(read_text(raw, "to"))
        except ValueError:
            raise BadMessage("Trạng thái hội nghị không hợp lệ", code="state_invalid", field="to") from None
        return cls(meeting, target)


@dataclass(frozen=True, slots=True)
class CallSite(Action):
    """A province operator calls one of its communes (its site page shows the call)."""

    unit: UnitRef

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        return cls(meeting, read_unit_ref(raw))


@dataclass(frozen=True, slots=True)
class ShowSlide(Action):
    """The chair (or a province operator, for its subtree) shows one unit's slide on every site
    page under it; ``unit`` None: its own scope's slide (the national one for the chair)."""

    unit: str | None

    @classmethod
    def parse(cls, meeting: int, raw: dict[str, Any]) -> Self:
        unit = raw.get("unit")
        if unit is not None and not (isinstance(unit, str) and _is_code(unit)):
            raise BadMessage("Trường 'unit' phải là mã đơn vị", field="unit")
        return cls(meeting, unit)


@dataclass(frozen=True, slots=True)
class OwnSlides(Action):
    """Each site back to its own slide (the pushes of the caller's scope end)."""


ACTION_TYPES: dict[str, type[Action]] = {  # the "action" field → its message class
    "raise_hand": RaiseHand, "lower_hand": LowerHand, "lower_all_hands": LowerAllHands,
    "grant": Grant, "next": NextSpeaker, "revoke": Revoke,
    "mute": Mute, "unmute": Unmute, "mute_all": MuteAll, "unmute_all": UnmuteAll,
    "mark": Mark, "state": ChangeState, "show_slide": ShowSlide, "own_slides": OwnSlides, "call": CallSite,
}

Message = (Ping | Subscribe | Unsubscribe | Join | Leave | Stats | Speaking | OnAir | CascadeToken | RecordingReport
           | Action)


def _ping(raw: dict[str, Any]) -> Ping:
    return Ping()


def _subscribe(raw: dict[str, Any]) -> Subscribe:
    return Subscribe(parse_topic(read_text(raw, "topic")))


def _unsubscribe(raw: dict[str, Any]) -> Unsubscribe:
    return Unsubscribe(read_text(raw, "topic"))


def _site(raw: dict[str, Any]) -> str | None:
    unit = raw.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise BadMessage("Trường 'unit' phải là mã đơn vị", field="unit")
    return unit


def _join(raw: dict[str, Any]) -> Join:
    return Join(read_key(raw, "meeting"), _site(raw))


def _leave(raw: dict[str, Any]) -> Leave:
    return Leave(read_key(raw, "meeting"), _site(raw))


def _stats(raw: dict[str, Any]) -> Stats:
    return Stats(read_key(raw, "meeting"), raw.get("sites"))


def _speaking(raw: dict[str, Any]) -> Speaking:
    return Speaking(read_key(raw, "meeting"), raw.get("sites"))


def _on_air(raw: dict[str, Any]) -> OnAir:
    return OnAir(read_key(raw, "meeting"), {k: raw[k] for k in ("unit", "video", "audio") if k in raw})


def _cascade_token(raw: dict[str, Any]) -> CascadeToken:
    unit, bridge = read_text(raw, "unit"), read_text(raw, "bridge")
    for name, value in (("unit", unit), ("bridge", bridge)):
        if not _is_code(value):
            raise BadMessage(f"Trường '{name}' phải là mã đơn vị", field=name)
    return CascadeToken(read_key(raw, "meeting"), unit, bridge)


def _recording(raw: dict[str, Any]) -> RecordingReport:
    report = raw.get("report")
    if not isinstance(report, dict):
        raise BadMessage("Trường 'report' phải là một đối tượng", field="report")
    return RecordingReport(read_key(raw, "meeting"), report)


def _action(raw: dict[str, Any]) -> Action:
    name = read_text(raw, "action")
    kind = ACTION_TYPES.get(name)
    if kind is None:
        raise BadMessage(f"Thao tác không xác định: {name[:40]}", code="unknown_action", field="action")
    return kind.parse(read_key(raw, "meeting"), raw)


PARSERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "ping": _ping, "subscribe": _subscribe, "unsubscribe": _unsubscribe, "join": _join, "leave": _leave,
    "stats": _stats, "speaking": _speaking, "on_air": _on_air, "action": _action, "cascade_token": _cascade_token,
    "recording": _recording,
}


def parse(raw: dict[str, Any]) -> Message:
    """A decoded object → its typed message, or ``BadMessage`` with the code of what is wrong."""
    kind = raw.get("type")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise BadMessage(f"Loại tin nhắn không xác định: {preview(kind)}", code="unknown_type", field="type")
    return parser(raw)
