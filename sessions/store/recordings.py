"""Recordings of meetings (issue #17): the chair's wish, what the bridge reports, the index of
segments. SQL only; the rules of who may do what live in server.services.recordings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models.org import Unit
from sessions.models.recordings import MeetingRecording, Recording, RecordingSegment

__all__ = ["MeetingRecording", "Recording", "RecordingSegment"]


async def status(db: AsyncSession, meeting_id: int) -> dict[str, Any]:
    """The meeting's ``recording`` field: the chair wants it (default yes), a bridge is writing, what
    the chair was last told ("" = nothing), and the provincial bridges asked to record too."""
    row = await db.get(MeetingRecording, meeting_id)
    if row is None:
        return {"wanted": True, "active": False, "notice": "", "bridges": []}
    return {"wanted": row.wanted, "active": row.active, "notice": row.notice, "bridges": list(row.bridges or [])}


async def _row(db: AsyncSession, meeting_id: int, at: datetime) -> MeetingRecording:
    row = await db.get(MeetingRecording, meeting_id)
    if row is None:
        row = MeetingRecording(meeting_id=meeting_id, wanted=True, active=False, notice="", bridges=[], updated_at=at)
        db.add(row)
    return row


async def set_wanted(db: AsyncSession, meeting_id: int, wanted: bool, at: datetime, notice: str = "") -> bool:
    """The chair's wish; True if it changed."""
    row = await _row(db, meeting_id, at)
    changed = row.wanted != wanted or row.notice != notice
    row.wanted, row.notice, row.updated_at = wanted, notice, at
    return changed


async def set_bridge(db: AsyncSession, meeting_id: int, code: str, on: bool, at: datetime) -> bool:
    """A provincial bridge records (``on``) or not; True if it changed."""
    row = await _row(db, meeting_id, at)
    bridges = [c for c in (row.bridges or []) if c != code] + ([code] if on else [])
    changed = sorted(bridges) != sorted(row.bridges or [])
    row.bridges, row.updated_at = sorted(bridges), at
    return changed


async def set_active(db: AsyncSession, meeting_id: int, active: bool, notice: str, at: datetime) -> bool:
    """What the bridge says it does; True if it changed."""
    row = await _row(db, meeting_id, at)
    changed = row.active != active or row.notice != notice
    row.active, row.notice, row.updated_at = active, notice, at
    return changed


async def recording(db: AsyncSession, meeting_id: int, bridge_unit_id: int, name: str, at: datetime) -> Recording:
    """The recording the bridge calls ``name`` (created at its first report)."""
    row = (await db.execute(select(Recording).where(Recording.meeting_id == meeting_id, Recording.name == name,
                                                    Recording.bridge_unit_id == bridge_unit_id))).scalar_one_or_none()
    if row is None:
        row = Recording(meeting_id=meeting_id, bridge_unit_id=bridge_unit_id, name=name, started_at=at,
                        status="recording", chapters=[])
        db.add(row)
        await db.flush()
    return row


async def add_segment(db: AsyncSession, rec: Recording, *, idx: int, path: str, offset: float, duration: float,
                      size: int, started_at: datetime, chapters: list[dict[str, Any]]) -> bool:
    """Index one closed segment; False if it was already (a report said twice)."""
    exists = (await db.execute(select(RecordingSegment.id).where(RecordingSegment.recording_id == rec.id,
                                                                 RecordingSegment.idx == idx))).first()
    if exists is not None:
        return False
    db.add(RecordingSegment(recording_id=rec.id, idx=idx, path=path, offset_s=offset, duration_s=duration,
                            bytes=size, started_at=started_at, chapters=chapters))
    return True


async def any_open(db: AsyncSession, meeting_id: int) -> bool:
    """Some bridge is still writing a recording of the meeting."""
    return (await db.execute(select(Recording.id).where(Recording.meeting_id == meeting_id,
                                                        Recording.status == "recording").limit(1))).first() is not None


async def open_of_bridge(db: AsyncSession, bridge_unit_id: int) -> list[Recording]:
    """The recordings a bridge has not said the end of."""
    return list((await db.execute(select(Recording).where(Recording.bridge_unit_id == bridge_unit_id,
                                                          Recording.status == "recording")
                                  .order_by(Recording.id))).scalars().all())


def finish(rec: Recording, status_: str, chapters: list[dict[str, Any]] | None, at: datetime) -> None:
    rec.status, rec.ended_at = status_, at
    if chapters is not None:
        rec.chapters = chapters


@dataclass(frozen=True)
class SegmentRow:
    id: int
    recording_id: int
    meeting_id: int
    idx: int
    path: str
    offset: float
    duration: float
    size: int


async def listing(db: AsyncSession, meeting_id: int) -> list[dict[str, Any]]:
    """The meeting's recordings, oldest first, each with its segments and chapters."""
    recs = (await db.execute(select(Recording).where(Recording.meeting_id == meeting_id)
                             .order_by(Recording.started_at, Recording.id))).scalars().all()
    if not recs:
        return []
    segs = (await db.execute(select(RecordingSegment).where(RecordingSegment.recording_id.in_([r.id for r in recs]))
                             .order_by(RecordingSegment.recording_id, RecordingSegment.idx))).scalars().all()
    units = {uid: code for uid, code in (await db.execute(select(Unit.id, Unit.code).where(
        Unit.id.in_({r.bridge_unit_id for r in recs})))).all()}
    out = []
    for r in recs:
        mine = [s for s in segs if s.recording_id == r.id]
        chapters = r.chapters or merge_chapters([c for s in mine for c in s.chapters])
        out.append({"id": r.id, "name": r.name, "bridge": units.get(r.bridge_unit_id, ""), "status": r.status,
                    "started_at": r.started_at.isoformat(),
                    "ended_at": r.ended_at.isoformat() if r.ended_at else None, "chapters": chapters,
                    "segments": [{"id": s.id, "index": s.idx, "offset": s.offset_s, "duration": s.duration_s,
                                  "bytes": s.bytes, "started_at": s.started_at.isoformat()} for s in mine]})
    return out


def merge_chapters(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Segments' chapters as one history: a turn cut by a segment boundary is one turn again."""
    out: list[dict[str, Any]] = []
    for c in parts:
        last = out[-1] if out else None
        if last is not None and last["unit"] == c["unit"] and last["end"] is not None and (
                abs(last["end"] - c["start"]) < 0.5):
            last["end"] = c["end"]
        else:
            out.append(dict(c))
    return out


async def segment(db: AsyncSession, segment_id: int) -> SegmentRow | None:
    row = (await db.execute(select(RecordingSegment, Recording.meeting_id)
                            .join(Recording, Recording.id == RecordingSegment.recording_id)
                            .where(RecordingSegment.id == segment_id))).first()
    if row is None:
        return None
    s, meeting_id = row
    return SegmentRow(s.id, s.recording_id, meeting_id, s.idx, s.path, s.offset_s, s.duration_s, s.bytes)


async def expired(db: AsyncSession, before: datetime) -> list[tuple[int, list[str]]]:
    """Recordings that ended before ``before``: (id, their segments' paths)."""
    recs = (await db.execute(select(Recording.id).where(Recording.ended_at.is_not(None),
                                                        Recording.ended_at < before))).scalars().all()
    out = []
    for rec_id in recs:
        paths = (await db.execute(select(RecordingSegment.path).where(
            RecordingSegment.recording_id == rec_id))).scalars().all()
        out.append((rec_id, list(paths)))
    return out


async def delete_recordings(db: AsyncSession, ids: list[int]) -> None:
    if ids:
        await db.execute(delete(RecordingSegment).where(RecordingSegment.recording_id.in_(ids)))
        await db.execute(delete(Recording).where(Recording.id.in_(ids)))
