"""Minutes in the database: frozen when a meeting concludes, corrected only by new versions.

``freeze`` gathers the meeting's record — title and times, chair, the roll call, the floor
history, the KPI snapshot frozen at conclusion, the conclusions and the directives they gave —
into a :class:`sessions.minutes.Minutes`, and stores it as version 1, published. ``correct``
stores version n + 1 with its reason (``sessions.minutes.correct``); no function here, and no
route, updates or deletes a stored version.

The presiding official and the signer (``set_presiding``) are kept on the meeting until the
conclusion freezes them into version 1; after that only a correction changes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions import minutes as doc_rules
from sessions.errors import Conflict, NotFound
from sessions.kpi import Kind
from sessions.meetings import Attendance, MeetingState
from sessions.minutes import Minutes, Presiding
from sessions.minutes_rules import check_correction
from sessions.models import (
    Assignment,
    Conclusion,
    Directive,
    FloorTurn,
    Meeting,
    MeetingKpiSnapshot,
    MeetingMinutes,
    MeetingTransition,
    Unit,
)
from sessions.store import kpi_catalog, live, units
from sessions.units import Level

RECIPIENTS = ("Các đơn vị dự hội nghị",)
# Until the chair names the presiding official, the notice names the chairing unit's leadership
# ("Kết luận của Lãnh đạo Bộ Công an"), never an account's display name.
UNNAMED_TITLE = "Lãnh đạo"


async def presiding(db: AsyncSession, meeting_id: int) -> Presiding | None:
    """The presiding official and signer set on the meeting (None until set)."""
    row = (await db.execute(select(Meeting.presiding_title, Meeting.presiding_name, Meeting.signer_authority,
                                   Meeting.signer_title, Meeting.signer_name)
                            .where(Meeting.id == meeting_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    title, name, authority, signer_title, signer_name = row
    if not name:
        return None
    return Presiding(title, name, authority, signer_title, signer_name)


async def set_presiding(db: AsyncSession, meeting_id: int, who: Presiding) -> None:
    """Name the presiding official and the signer, before or at the conclusion. Once the
    minutes are published they change only through a correction (a new version)."""
    meeting = await db.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    if await latest_version(db, meeting_id):
        raise Conflict("Biên bản đã công bố: người chủ trì và người ký chỉ đổi được bằng cách đính chính biên bản",
                       code="minutes_published")
    meeting.presiding_title, meeting.presiding_name = who.title, who.name
    meeting.signer_authority, meeting.signer_title, meeting.signer_name = (who.signer_authority, who.signer_title,
                                                                           who.signer_name)
    await db.flush()


async def gather(db: AsyncSession, meeting_id: int, now: datetime, *, chair_name: str = "",
                 chair_title: str = "") -> Minutes:
    """The meeting's record as a minutes document (not stored)."""
    meeting = await db.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("Không tìm thấy hội nghị", code="meeting_not_found")
    chair_unit = await units.get_by_id(db, meeting.chair_unit_id)
    moves = (await db.execute(select(MeetingTransition.to_state, MeetingTransition.at, MeetingTransition.by_user_id)
                              .where(MeetingTransition.meeting_id == meeting_id)
                              .order_by(MeetingTransition.at, MeetingTransition.id))).all()
    started = next((at for to, at, _ in moves if to == MeetingState.LIVE.value), meeting.scheduled_start)
    ended_by = next(((at, uid) for to, at, uid in moves if to == MeetingState.CONCLUDED.value), (now, None))
    named = await presiding(db, meeting_id)
    chair = {"title": chair_title or (named.title if named else UNNAMED_TITLE),
             "name": chair_name or (named.name if named else chair_unit.name), "unit": chair_unit.name}
    signer = named.signer if named is not None and not chair_name else None

    seats = await _official_order(db, await live.attendance_rows(db, meeting_id))
    attendance = [{"unit_code": s["code"], "unit_name": s["name"], "level": s["level"], "status": s["status"],
                   "reason": s["reason"] if s["status"] == Attendance.ABSENT.value else "",
                   "parent": s["province"][1] if s["level"] != Level.PROVINCE.value else ""} for s in seats]

    names = dict((await db.execute(select(Unit.id, Unit.name).where(Unit.id.in_(
        select(FloorTurn.unit_id).where(FloorTurn.meeting_id == meeting_id))))).all())
    floor = [{"speaker": names.get(uid, ""), "unit_name": names.get(uid, ""), "started_at": a, "ended_at": b or now}
             for uid, a, b in (await db.execute(
                 select(FloorTurn.unit_id, FloorTurn.started_at, FloorTurn.ended_at)
                 .where(FloorTurn.meeting_id == meeting_id).order_by(FloorTurn.started_at, FloorTurn.id))).all()]

    catalog = await kpi_catalog.load(db)
    kpis: list[dict[str, Any]] = []
    order = {code: i for i, code in enumerate(catalog.by_code)}
    for code, _period, num, den in (await db.execute(
            select(MeetingKpiSnapshot.indicator, MeetingKpiSnapshot.period, MeetingKpiSnapshot.num,
                   MeetingKpiSnapshot.den)
            .where(MeetingKpiSnapshot.meeting_id == meeting_id, MeetingKpiSnapshot.phase == "concluded",
                   MeetingKpiSnapshot.unit_id == meeting.chair_unit_id, MeetingKpiSnapshot.period == "campaign")
            )).all():
        ind = catalog.get(code)
        if ind is None or (ind.kind is Kind.RATIO and not den):
            continue
        kpis.append({"code": code, "name": ind.name, "unit": ind.unit, "num": int(num),
                     "den": int(den) if ind.kind is Kind.RATIO else None, "phase": "concluded",
                     "scope": chair_unit.name})
    kpis.sort(key=lambda k: order[k["code"]])

    conclusions = []
    rows = (await db.execute(select(Conclusion.id, Conclusion.text).where(Conclusion.meeting_id == meeting_id)
                             .order_by(Conclusion.created_at, Conclusion.id))).all()
    directives = (await db.execute(
        select(Directive.id, Directive.conclusion_id, Directive.text, Directive.deadline, Directive.priority,
               Directive.lead_unit_id)
        .where(Directive.conclusion_id.in_([r.id for r in rows]), Directive.parent_assignment_id.is_(None))
        .order_by(Directive.id))).all() if rows else []
    assignees: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    if directives:
        for did, uid, name, role in (await db.execute(
                select(Assignment.directive_id, Unit.id, Unit.name, Assignment.role)
                .join(Unit, Unit.id == Assignment.unit_id)
                .where(Assignment.directive_id.in_([d.id for d in directives]))
                .order_by(Assignment.directive_id, Unit.code))).all():
            assignees[did].append((uid, name, role))
    by_conclusion: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in directives:
        given = assignees.get(d.id, [])
        lead = next((name for uid, name, _role in given if uid == d.lead_unit_id), "")
        by_conclusion[d.conclusion_id].append({
            "text": d.text, "assignees": [name for _uid, name, _role in given], "deadline": d.deadline,
            "lead": lead, "cooperating": [name for _uid, name, role in given if role == "cooperate"],
            "priority": d.priority, "directive_id": d.id})
    for r in rows:
        conclusions.append({"text": r.text, "directives": by_conclusion.get(r.id, [])})

    return doc_rules.build_minutes(
        title=meeting.title, started_at=started, ended_at=max(ended_by[0], started),
        chair=chair, signer=signer,
        agency=chair_unit.name, symbol=f"TB-{chair_unit.code}", attendance=attendance, floor=floor, kpis=kpis,
        conclusions=conclusions, recipients=list(RECIPIENTS), meeting_id=meeting_id)


async def _official_order(db: AsyncSession, seats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seats province by province in the unit tree's official order (the order of
    ``units.subtree``: by depth, then code), each province's own seat before its communes; seats
    above the provinces first. Raw code order would mix levels ("00004" before "01")."""
    top = await units.root(db)
    if top is None:
        return seats
    everything = (await units.unit_tree(db)).subtree(top.id)
    pos = {v.id: i for i, v in enumerate(everything)}
    provinces = {v.id: i for i, v in enumerate(v for v in everything if v.level is Level.PROVINCE)}
    return sorted(seats, key=lambda s: (provinces.get(s["province_id"], -1), pos.get(s["unit_id"], len(pos))))


async def freeze(db: AsyncSession, meeting_id: int, now: datetime, by: str, **chair: str) -> int:
    """Store the concluded meeting's minutes as version 1, published now; returns the version.
    Called once, in the transaction that concludes the meeting."""
    if await latest_version(db, meeting_id):
        raise Conflict("Biên bản hội nghị đã được công bố", code="minutes_exist")
    doc = replace(await gather(db, meeting_id, now, **chair), published_at=now)
    await _store(db, doc, reason="", by=by)
    return 1


async def _store(db: AsyncSession, doc: Minutes, *, reason: str, by: str) -> None:
    assert doc.meeting_id is not None and doc.published_at is not None
    db.add(MeetingMinutes(meeting_id=doc.meeting_id, version=doc.version, document=doc_rules.to_json(doc),
                          content_hash=doc_rules.content_hash(doc), reason=reason, published_at=doc.published_at,
                          published_by=by[:100]))
    await db.flush()


async def latest_version(db: AsyncSession, meeting_id: int) -> int:
    found = (await db.execute(select(func.max(MeetingMinutes.version))
                              .where(MeetingMinutes.meeting_id == meeting_id))).scalar_one_or_none()
    return int(found or 0)


async def get(db: AsyncSession, meeting_id: int, version: int | None = None) -> Minutes:
    """A stored version (default: the latest)."""
    number = version if version is not None else await latest_version(db, meeting_id)
    text = (await db.execute(select(MeetingMinutes.document).where(
        MeetingMinutes.meeting_id == meeting_id, MeetingMinutes.version == number))).scalar_one_or_none()
    if text is None:
        raise NotFound("Hội nghị chưa có biên bản" if version is None else f"Không có biên bản phiên bản {version}",
                       code="minutes_not_found")
    return doc_rules.from_json(text)


async def versions(db: AsyncSession, meeting_id: int) -> list[dict[str, Any]]:
    rows = (await db.execute(select(MeetingMinutes.version, MeetingMinutes.content_hash, MeetingMinutes.reason,
                                    MeetingMinutes.published_at, MeetingMinutes.published_by)
                             .where(MeetingMinutes.meeting_id == meeting_id)
                             .order_by(MeetingMinutes.version))).all()
    return [{"version": v, "hash": h, "reason": r, "published_at": at.isoformat(), "published_by": by}
            for v, h, r, at, by in rows]


async def correct(db: AsyncSession, meeting_id: int, changes: Mapping[str, Any], reason: str, at: datetime,
                  by: str) -> Minutes:
    """A new version correcting the latest one; the stored versions stay as they are."""
    check_correction(changes)  # before anything is read or built from it
    current = await get(db, meeting_id)
    fixed = doc_rules.correct(current, changes, reason, at=at)
    await _store(db, fixed, reason=fixed.correction_reason, by=by)
    return fixed
