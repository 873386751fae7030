"""Recordings of a meeting (issue #17): the chair's toggle, the list, the player page, the files.

- ``POST /api/meetings/{id}/recording`` ``{"on": bool}``: the chair turns recording on or off
  (refused with ``disk_low`` when the recordings folder is short of space); with ``"bridge": unit
  code``, a provincial bridge records its own programme too (``on``) or no longer.
- ``GET /api/meetings/{id}/recording``: for the chair's controls, the provincial bridges (setting
  ``bridges``) the chair may name.
- ``GET /api/meetings/{id}/recordings`` and the page ``/meetings/{id}/recordings`` (a ``<video>``
  with the chapter list: who had the floor, from when to when; a click seeks there), for whoever
  may read the minutes.
- ``GET /recordings/{segment id}`` one segment's file, with Range support (aiohttp's
  ``FileResponse``), for the same readers; anyone else gets 404, as for a missing one.

``purging`` (a cleanup context) deletes recordings past ``recording_retention_days`` once an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from server.http.contract import CHAIR, api
from server.http.schemas import BOOL, STR, array, obj
from server.services import meetings as meeting_service
from server.services import recordings as service
from server.state import DB, DEPS
from server.timefmt import local
from server.web_util import client_ip, json_body, path_id, render, require_principal
from sessions.errors import ValidationFailed
from sessions.models import Unit

log = logging.getLogger("hoinghi.recordings")
routes = web.RouteTableDef()
PURGE_SECONDS = 3600.0
CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}
RECORDING = obj({"wanted": BOOL, "active": BOOL, "notice": {"type": "string"}, "bridges": array(STR)})


@routes.post("/api/meetings/{meeting_id:\\d+}/recording")
@api(summary="Bật hoặc tắt ghi hình hội nghị, hoặc tại một điểm cầu tỉnh (chỉ chủ trì)", roles=CHAIR, errors={409},
     request=obj({"on": BOOL}, {"bridge": STR}), response=obj({"recording": RECORDING}))
async def api_toggle(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    body = await json_body(request)
    on = body.get("on")
    if not isinstance(on, bool):
        raise ValidationFailed("Trường 'on' phải là true hoặc false", code="field_invalid", field="on")
    bridge = body.get("bridge")
    if bridge is not None and (not isinstance(bridge, str) or not bridge.strip()):
        raise ValidationFailed("Trường 'bridge' phải là mã đơn vị của một điểm cầu", code="field_invalid",
                               field="bridge")
    answer = await service.set_wanted(request.app[DEPS], p, path_id(request, "meeting_id"), on, client_ip(request),
                                      bridge=bridge.strip() if bridge is not None else None)
    return web.json_response({"recording": answer})


@routes.get("/api/meetings/{meeting_id:\\d+}/recording")
@api(summary="Ghi hình của hội nghị và các cầu truyền hình tỉnh có thể yêu cầu ghi (chỉ chủ trì)", roles=CHAIR,
     response=obj({"recording": RECORDING, "bridges": array(obj({"code": STR, "name": STR}))}))
async def api_recording(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    return web.json_response(await service.provincial_bridges(request.app[DEPS], p, path_id(request, "meeting_id")))


async def _with_names(request: web.Request, recordings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each chapter's unit named (a chapter of nobody's floor is the chair's)."""
    codes = {c["unit"] for r in recordings for c in r["chapters"] if c["unit"]} | {r["bridge"] for r in recordings}
    names: dict[str, str] = {}
    if codes:
        async with request.app[DB]() as db:
            rows = (await db.execute(select(Unit.code, Unit.name).where(Unit.code.in_(codes)))).all()
            names = {code: name for code, name in rows}
    for r in recordings:
        r["bridge_name"] = names.get(r["bridge"], r["bridge"])  # the bridge that made it
        for c in r["chapters"]:
            c["name"] = names.get(c["unit"], c["unit"]) if c["unit"] else None
        for s in r["segments"]:
            s["url"] = f"/recordings/{s['id']}"
    return recordings


@routes.get("/api/meetings/{meeting_id:\\d+}/recordings")
@api(summary="Các bản ghi hình của hội nghị (ai đọc được biên bản thì xem được)",
     response=obj({"recordings": array({"type": "object"})}))
async def api_list(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    recordings = await service.listing(request.app[DEPS], p, path_id(request, "meeting_id"))
    return web.json_response({"recordings": await _with_names(request, recordings)})


def _clock_text(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@routes.get("/meetings/{meeting_id:\\d+}/recordings")
async def recordings_page(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    meeting_id = path_id(request, "meeting_id")
    recordings = await service.listing(request.app[DEPS], p, meeting_id)
    async with request.app[DB]() as db:
        meeting = await meeting_service.ensure_visible(db, p, meeting_id)
    recordings = await _with_names(request, recordings)
    for r in recordings:
        r["started_local"] = local(datetime.fromisoformat(r["started_at"]))
        for c in r["chapters"]:
            c["from"], c["to"] = _clock_text(c["start"]), _clock_text(c["end"] or c["start"])
        for s in r["segments"]:
            s["length"] = _clock_text(s["duration"])
    boot = {"page": "recordings", "recordings": [{"id": r["id"], "segments": r["segments"], "chapters": r["chapters"]}
                                                 for r in recordings]}
    return render(request, "recordings.html", {"meeting": meeting, "recordings": recordings, "boot": boot})


@routes.get("/recordings/{segment_id:\\d+}")
async def segment_file(request: web.Request) -> web.StreamResponse:
    p = require_principal(request)
    path, _row = await service.segment_file(request.app[DEPS], p, path_id(request, "segment_id"))
    headers = {"Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
               "Content-Disposition": f'inline; filename="{path.parent.name}-{path.name}"',
               "Cache-Control": "private, max-age=3600"}
    return web.FileResponse(path, headers=headers)


async def purging(app: web.Application) -> AsyncIterator[None]:
    """Recordings past their retention are deleted once an hour (and once at start)."""

    async def loop() -> None:
        while True:
            try:
                count = await service.purge(app[DEPS])
                if count:
                    log.info("purged %s recordings past their retention", count)
            except Exception:
                log.exception("recording purge failed")
            await asyncio.sleep(PURGE_SECONDS)

    task = asyncio.create_task(loop(), name="recording-purge")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
