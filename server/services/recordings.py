"""Recordings of meetings (issue #17): the chair's toggle, the bridge's reports, who may watch.

- The chair turns recording on or off (``set_wanted``); a meeting records at the central bridge
  while it is live and its chair wants it (the default), and at each provincial bridge the chair
  names (``bridge``: the meeting's ``recording.bridges``). Turning it on is refused while the
  recordings folder has less free space than ``recording_min_free_mb``.
- A recording bridge reports over its control channel (``report``): a recording started, a
  segment was closed (indexed here), a recording stopped (and why: a full disk is told to the
  chair through the meeting's ``recording.notice``). Each change is a meeting event.
- A bridge whose control channel closes while it records (it died, or its link did): its open
  recordings end as ``interrupted`` (``bridge_gone``); what it wrote stays listed and playable,
  and a segment it reports later (it was alive after all) opens the recording again.
- Whoever may read the minutes may watch and download (``ensure_reader``); a segment's file must
  lie inside the recordings folder.
- ``purge`` deletes recordings older than ``recording_retention_days`` (server.http.recordings
  runs it periodically).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from server.db import transaction
from server.services import meetings as meeting_service
from server.services import outbox
from server.services.access import actor_of
from server.services.deps import Deps
from server.settings import Settings, parse_bridges
from sessions.errors import Conflict, Forbidden, NotFound, ValidationFailed
from sessions.roles import Principal
from sessions.store import audit, live
from sessions.store import recordings as store
from sessions.store import units as units_store
from sessions.store.meetings import bump_seq

log = logging.getLogger("hoinghi.recordings")

NOTICES = {
    "disk_low": "Không đủ dung lượng đĩa để ghi hình: điểm cầu chưa ghi. Hãy giải phóng dung lượng rồi bật lại.",
    "disk_full": "Đĩa đầy: đã dừng ghi hình. Các đoạn đã ghi vẫn xem được.",
    "error": "Ghi hình gặp lỗi và đã dừng. Các đoạn đã ghi vẫn xem được.",
    "stopped": "",
    "interrupted": "Điểm cầu {bridge} mất kết nối khi đang ghi hình: bản ghi bị gián đoạn. Các đoạn đã ghi vẫn "
                   "xem được.",
}
MAX_CHAPTERS = 2000


def free_mb(path: Path) -> int:
    target = path
    while not target.exists() and target.parent != target:
        target = target.parent
    return shutil.disk_usage(target).free // (1024 * 1024)


async def _publish_meeting(deps: Deps, db: Any, meeting_id: int) -> outbox.Staged:
    seq = await bump_seq(db, meeting_id)
    event = await live.meeting_event(db, meeting_id, seq)
    return await outbox.stage(db, meeting_service.messages([event]))


async def set_wanted(deps: Deps, principal: Principal, meeting_id: int, wanted: bool, ip: str = "",
                     bridge: str | None = None) -> dict[str, Any]:
    """The chair turns recording on or off — of the meeting, or (``bridge``: a unit code) at that
    provincial bridge too; answers the meeting's ``recording`` field."""
    settings = deps.settings
    if bridge is not None:
        return await _set_bridge(deps, principal, meeting_id, bridge, wanted, ip)
    if wanted:
        free = await asyncio.to_thread(free_mb, settings.recordings_path)
        if free < settings.recording_min_free_mb:
            async with deps.db() as db:
                await meeting_service.ensure_chair(db, principal, meeting_id)
            raise Conflict(f"Không đủ dung lượng đĩa để ghi hình: còn {free:,} MB, cần ít nhất "
                           f"{settings.recording_min_free_mb:,} MB".replace(",", "."), code="disk_low",
                           free_mb=free, min_free_mb=settings.recording_min_free_mb)
    now = deps.clock()
    staged = outbox.Staged()
    async with transaction(deps.db) as db:
        await meeting_service.ensure_chair(db, principal, meeting_id)
        if await store.set_wanted(db, meeting_id, wanted, now):
            await audit.record(db, actor_of(principal), "recording_on" if wanted else "recording_off",
                               f"meeting:{meeting_id}", ip, at=now)
            staged = await _publish_meeting(deps, db, meeting_id)
        answer = await store.status(db, meeting_id)
    await outbox.deliver(deps, staged)
    return answer


async def _set_bridge(deps: Deps, principal: Principal, meeting_id: int, code: str, on: bool,
                      ip: str) -> dict[str, Any]:
    now = deps.clock()
    staged = outbox.Staged()
    async with transaction(deps.db) as db:
        await meeting_service.ensure_chair(db, principal, meeting_id)  # anyone else: 403, before any check
        known = parse_bridges(deps.settings.bridges)
        try:
            unit = await units_store.get_by_code(db, code) if len(code) <= 32 else None
        except NotFound:
            unit = None
        if unit is None or (known and code not in known):
            raise ValidationFailed(f"Đơn vị '{code[:32]}' không có điểm cầu để ghi hình", code="bridge_invalid",
                                   field="bridge")
        if await store.set_bridge(db, meeting_id, code, on, now):
            await audit.record(db, actor_of(principal), "recording_bridge_on" if on else "recording_bridge_off",
                               f"meeting:{meeting_id}:{code}", ip, at=now)
            staged = await _publish_meeting(deps, db, meeting_id)
        answer = await store.status(db, meeting_id)
    await outbox.deliver(deps, staged)
    return answer


async def provincial_bridges(deps: Deps, principal: Principal, meeting_id: int) -> dict[str, Any]:
    """For the chair's controls: the meeting's ``recording`` field and the bridges below the central
    one (the ``bridges`` setting) the chair may ask to record, ``[{code, name}]``."""
    async with deps.db() as db:
        await meeting_service.ensure_chair(db, principal, meeting_id)
        out = []
        for code in sorted(parse_bridges(deps.settings.bridges)):
            try:
                unit = await units_store.get_by_code(db, code)
            except NotFound:
                continue
            if unit.parent_id is not None:
                out.append({"code": unit.code, "name": unit.name})
        return {"recording": await store.status(db, meeting_id), "bridges": out}


def _text(report: dict[str, Any], key: str, limit: int = 200) -> str:
    value = report.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValidationFailed(f"Báo cáo ghi hình thiếu trường '{key}'", code="recording_invalid", field=key)
    return value


def _number(report: dict[str, Any], key: str) -> float:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 10**12:
        raise ValidationFailed(f"Báo cáo ghi hình: '{key}' không hợp lệ", code="recording_invalid", field=key)
    return float(value)


def _chapters(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_CHAPTERS:
        raise ValidationFailed("Báo cáo ghi hình: 'chapters' không hợp lệ", code="recording_invalid", field="chapters")
    out = []
    for c in value:
        if not isinstance(c, dict):
            raise ValidationFailed("Báo cáo ghi hình: 'chapters' không hợp lệ", code="recording_invalid",
                                   field="chapters")
        unit = c.get("unit")
        end = c.get("end")
        out.append({"unit": unit if isinstance(unit, str) and len(unit) <= 32 else None,
                    "start": _number(c, "start"), "end": None if end is None else _number(c, "end")})
    return out


def _segment_path(meeting_id: int, path: str) -> str:
    """A segment's path as the bridge says it: relative, inside the meeting's own folder."""
    parts = PurePosixPath(path).parts
    if (path.startswith("/") or "\\" in path or len(parts) < 2 or parts[0] != str(meeting_id)
            or any(p in ("", ".", "..") for p in parts)):
        raise ValidationFailed("Báo cáo ghi hình: đường dẫn tệp không hợp lệ", code="recording_invalid", field="file")
    return path


async def report(deps: Deps, principal: Principal, meeting_id: int, report: dict[str, Any]) -> None:
    """A bridge's word on a recording (docs/protocol.md, "Recording")."""
    if not principal.has_scope("bridge"):
        raise Forbidden("Chỉ điểm cầu (bridge) được báo cáo ghi hình", code="forbidden")
    kind = _text(report, "type", 40)
    name = _text(report, "recording", 40)
    now = deps.clock()
    staged = outbox.Staged()
    async with transaction(deps.db) as db:
        await meeting_service.ensure_visible(db, principal, meeting_id)
        rec = await store.recording(db, meeting_id, principal.unit_id, name, now)
        changed = False
        if kind in ("recording_started", "recording_segment") and rec.status == "interrupted":
            rec.status, rec.ended_at = "recording", None  # its bridge was alive after all: it goes on
            changed = await store.set_active(db, meeting_id, True, "", now)
        if kind == "recording_started":
            changed = await store.set_active(db, meeting_id, True, "", now) or changed
        elif kind == "recording_segment":
            started = report.get("started_at")
            try:
                started_at = datetime.fromisoformat(started) if isinstance(started, str) else now
            except ValueError:
                started_at = now
            await store.add_segment(db, rec, idx=int(_number(report, "index")),
                                    path=_segment_path(meeting_id, _text(report, "file", 300)),
                                    offset=_number(report, "offset"), duration=_number(report, "duration"),
                                    size=int(_number(report, "bytes")), started_at=started_at,
                                    chapters=_chapters(report.get("chapters", [])))
        elif kind == "recording_stopped":
            reason = _text(report, "reason", 40)
            if reason not in NOTICES or reason == "interrupted":
                raise ValidationFailed("Báo cáo ghi hình: lý do dừng không xác định", code="recording_invalid",
                                       field="reason")
            chapters = _chapters(report["chapters"]) if "chapters" in report else None
            store.finish(rec, reason, chapters, now)
            await db.flush()
            changed = await store.set_active(db, meeting_id, await store.any_open(db, meeting_id), NOTICES[reason],
                                             now)
            if reason != "stopped":
                log.warning("meeting %s: recording %s stopped: %s", meeting_id, name, reason)
        else:
            raise ValidationFailed("Báo cáo ghi hình không xác định", code="recording_invalid", field="type")
        if changed:
            staged = await _publish_meeting(deps, db, meeting_id)
    await outbox.deliver(deps, staged)


async def bridge_gone(deps: Deps, principal: Principal) -> int:
    """A bridge's control channel closed: the recordings it was writing end as ``interrupted`` (the
    chair is told; the segments it reported stay). Answers how many."""
    if principal.kind != "machine" or not principal.has_scope("bridge") or principal.unit_id is None:
        return 0
    now = deps.clock()
    staged = outbox.Staged()
    async with transaction(deps.db) as db:
        open_ = await store.open_of_bridge(db, principal.unit_id)
        if not open_:
            return 0
        unit = await db.get(store.Unit, principal.unit_id)
        notice = NOTICES["interrupted"].format(bridge=unit.name if unit is not None else "")
        meetings = sorted({rec.meeting_id for rec in open_})
        for rec in open_:
            store.finish(rec, "interrupted", None, now)
            log.warning("meeting %s: recording %s interrupted: its bridge is gone", rec.meeting_id, rec.name)
        await db.flush()
        for meeting_id in meetings:
            await store.set_active(db, meeting_id, await store.any_open(db, meeting_id), notice, now)
            staged.extend(await _publish_meeting(deps, db, meeting_id))
    await outbox.deliver(deps, staged)
    return len(open_)


async def ensure_reader(db: Any, principal: Principal, meeting_id: int) -> None:
    """Whoever may read the minutes (server.http.minutes): a user whose unit sees the meeting."""
    if principal.kind != "user":
        raise Forbidden("Bản ghi hình chỉ dành cho tài khoản người dùng", code="forbidden")
    await meeting_service.ensure_visible(db, principal, meeting_id)


async def listing(deps: Deps, principal: Principal, meeting_id: int) -> list[dict[str, Any]]:
    async with deps.db() as db:
        await ensure_reader(db, principal, meeting_id)
        return await store.listing(db, meeting_id)


async def segment_file(deps: Deps, principal: Principal, segment_id: int) -> tuple[Path, store.SegmentRow]:
    """The file of one segment the caller may read (404 otherwise, as for a missing one)."""
    async with deps.db() as db:
        row = await store.segment(db, segment_id)
        if row is None:
            raise NotFound("Không tìm thấy bản ghi hình", code="recording_not_found")
        await ensure_reader(db, principal, row.meeting_id)
    root = deps.settings.recordings_path.resolve()
    path = (root / row.path).resolve()
    if not path.is_relative_to(root) or not await asyncio.to_thread(path.is_file):
        raise NotFound("Tệp ghi hình không còn trên máy chủ", code="recording_file_missing")
    return path, row


async def purge(deps: Deps, now: datetime | None = None) -> int:
    """Delete recordings that ended more than ``recording_retention_days`` ago (files, then rows)."""
    settings: Settings = deps.settings
    if settings.recording_retention_days <= 0:
        return 0
    before = (now or deps.clock()) - timedelta(days=settings.recording_retention_days)
    root = settings.recordings_path.resolve()
    async with transaction(deps.db) as db:
        old = await store.expired(db, before)
        for _rec_id, paths in old:
            for rel in paths:
                path = (root / rel).resolve()
                if path.is_relative_to(root):
                    await asyncio.to_thread(path.unlink, True)
            if paths:  # the recording's folder (its chapters.json with it) once it holds nothing else
                folder = (root / paths[0]).resolve().parent
                await asyncio.to_thread(_remove_folder, folder, root)
        await store.delete_recordings(db, [rec_id for rec_id, _ in old])
    return len(old)


def _remove_folder(folder: Path, root: Path) -> None:
    if not folder.is_relative_to(root) or folder == root:
        return
    sidecar = folder / "chapters.json"
    if sidecar.exists():
        sidecar.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass
