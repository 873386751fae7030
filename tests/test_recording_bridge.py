"""Recording through a real central bridge process (issue #17): the server moves the meeting, the
bridge records its programme while live, reports each segment over its control channel, the
server indexes them — and the relay path never creates a video encoder or decoder."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from server.auth import issue_machine_token
from server.db import transaction
from server.services import recordings as recording_service
from server.services.media import bridge_key
from server.state import DB, DEPS
from sessions.store import recordings as recording_store
from sessions.store import units as units_store
from tests.audio_util import ToneTrack
from tests.conftest import LiveServer
from tests.media_util import STEP, EncodedVideoTrack, Player, Publisher, close_peers, token, whep, whip
from tests.recording_util import read_segment
from tests.test_media_server import bridge_socket

ROOT = Path(__file__).resolve().parent.parent
FPS = 30
SEGMENT_SECONDS = 8
VIDEO_CODECS = ("vp8", "libvpx", "h264", "libx264", "aiortc:")


async def machine_token(srv: LiveServer, code: str) -> str:
    async with transaction(srv.app[DB]) as db:
        unit = await units_store.get_by_code(db, code)
        _tid, tok = await issue_machine_token(srv.app, db, name=f"bridge-{code}", unit_id=unit.id,
                                              scopes=frozenset({"bridge"}), days=1, created_by_id=None)
    return tok


async def recording_status(srv: LiveServer, mid: int) -> dict[str, Any]:
    async with srv.app[DB]() as db:
        return await recording_store.status(db, mid)


async def listing(srv: LiveServer, mid: int) -> list[dict[str, Any]]:
    async with srv.app[DB]() as db:
        return await recording_store.listing(db, mid)


async def counts(proc: asyncio.subprocess.Process) -> dict[str, int]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"counts\n")
    await proc.stdin.drain()
    return dict(json.loads(await asyncio.wait_for(proc.stdout.readline(), STEP)))


async def poll(check: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def grant(chair: Any, mid: int, unit: str) -> None:
    resp = await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": unit,
                                                                        "confirm": True})
    assert resp.status == 200, await resp.text()


async def publish_when_granted(url: str, mid: int, tok: str, tone: float) -> Publisher:
    """The floor reaches the bridge over its control channel: publish once it lets the camera in."""
    deadline = time.monotonic() + STEP
    while True:
        try:
            return await whip(url, mid, tok, EncodedVideoTrack("vp8", fps=FPS), ToneTrack(tone))
        except AssertionError as exc:
            if "floor_required" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_a_live_conference_is_recorded_at_the_central_bridge(server_factory: Any, sqlite_url: str,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(folder), recording_min_free_mb=1)
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị ghi hình", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province", "district", "commune"]}]})
    assert resp.status == 201, await resp.text()
    mid = int((await resp.json())["meeting"]["id"])
    for st in ("rehearsal", "live"):
        resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": st})
        assert resp.status == 200, await resp.text()

    key = bridge_key(srv.settings, "BCA")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOINGHI_BRIDGE_TOKEN": await machine_token(srv, "BCA"),
           "HOINGHI_BRIDGE_RECORDINGS_DIR": str(folder),
           "HOINGHI_BRIDGE_RECORDING_SEGMENT_SECONDS": str(SEGMENT_SECONDS),
           "HOINGHI_BRIDGE_RECORDING_MIN_FREE_MB": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "recording_bridge.py"), "BCA", key.decode(), srv.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
    peers: list[Publisher | Player] = []
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        published = time.monotonic()  # the recording cannot start before the chair's media arrives
        peers.append(await whip(url, mid, token("BCA", "BCA", "chair", mid, key),
                                EncodedVideoTrack("vp8", fps=FPS), ToneTrack(440)))
        player = await whep(url, mid, token("BCA", "00004", "site", mid, key))
        peers.append(player)
        await player.wait_frames(10)

        async def active() -> bool:
            return bool((await recording_status(srv, mid))["active"])

        await poll(active, STEP, "the bridge to say it records")
        started = time.monotonic()
        # (unit, granted, the bridge let its camera in): the bridge learnt of the floor in between
        floor_at: list[tuple[str | None, float, float]] = [(None, 0.0, 0.0)]
        for unit, tone in (("00070", 660.0), ("08707", 880.0)):
            await asyncio.sleep(7.0)
            granted = time.monotonic() - started
            await grant(chair, mid, unit)
            if len(peers) > 2:  # the floor moved on: its last holder stops sending (as its page does)
                await close_peers(peers.pop())
            peers.append(await publish_when_granted(url, mid, token("BCA", unit, "site", mid, key), tone))
            floor_at.append((unit, granted, time.monotonic() - started))
        await asyncio.sleep(20.0 - (time.monotonic() - started))
        resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": "concluded"})
        assert resp.status == 200, await resp.text()
        elapsed = time.monotonic() - started
        since_published = time.monotonic() - published

        async def finished() -> list[dict[str, Any]]:
            recs = await listing(srv, mid)
            return recs if recs and recs[0]["status"] != "recording" else []

        recs = await poll(finished, 3 * STEP, "the recording to be closed and indexed")
        codec_counts = await counts(proc)
    finally:
        await close_peers(*peers)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    assert len(recs) == 1 and recs[0]["status"] == "stopped", recs
    segments = recs[0]["segments"]
    assert len(segments) >= 3, segments  # ~20 s in segments of 8 s
    # The frame rate the programme actually carried (cameras in a loaded test process skip frames,
    # as real ones do): every frame it sent while recorded is in the files, none re-encoded away.
    sent = codec_counts["programme_frames_recorded"]
    total = sum(s["duration"] for s in segments)
    # it ran from between the chair's first packets and the bridge saying so, to the conclusion
    assert elapsed - 1.0 <= total <= since_published + 1.0, (total, elapsed, since_published)
    rate = sent / total
    total_frames = 0
    files = await asyncio.to_thread(lambda: sorted((folder / str(mid) / recs[0]["name"]).glob("segment-*.webm")))
    assert [f.name for f in files] == [f"segment-{s['index']:04d}.webm" for s in segments]
    for seg, file in zip(segments, files, strict=True):
        facts = await asyncio.to_thread(read_segment, file)
        assert facts.width == 160
        # each segment at the rate the programme carried (a camera in this loaded test process skips
        # frames, as real ones do: 8–30 fps), never above the camera's
        assert 0.5 * rate * seg["duration"] <= facts.video_frames <= 1.1 * FPS * seg["duration"], (seg, facts, rate)
        # first to last frame: short of the segment by the last frame's time on screen, longer when a
        # loaded test process's camera stalled before the keyframe that opened the next segment
        assert facts.duration == pytest.approx(seg["duration"], abs=1.0)
        assert facts.audio_rms > 0.01, f"segment {seg['index']} is silent"
        total_frames += facts.video_frames
    assert sent - FPS <= total_frames <= sent, (total_frames, sent)  # at most the wait for the first keyframe

    # The chapters are the floor history: the chair, then each floor holder, back to back, spaced as
    # the floor moved (this process's clock and the bridge's start apart: their spacing is compared).
    chapters = recs[0]["chapters"]
    assert [c["unit"] for c in chapters] == [u for u, _, _ in floor_at], chapters
    assert chapters[0]["start"] < 1.0 and chapters[-1]["end"] == pytest.approx(total, abs=1.0), chapters
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(chapters)), chapters
    spacing = chapters[2]["start"] - chapters[1]["start"]
    (_, granted1, seen1), (_, granted2, seen2) = floor_at[1:]
    assert granted2 - seen1 - 0.5 <= spacing <= seen2 - granted1 + 0.5, (chapters, floor_at)

    video_codecs = {k: v for k, v in codec_counts.items() if k.startswith(VIDEO_CODECS)}
    assert video_codecs == {}, codec_counts  # the relay and the recorder never touch a picture
    assert any(k.startswith("opus:") for k in codec_counts), codec_counts  # the recorder decoded sound


async def test_only_the_chair_turns_recording_on_or_off(server_factory: Any, sqlite_url: str, tmp_path: Path) -> None:
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(tmp_path / "rec"), recording_min_free_mb=1)
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province", "district", "commune"]}]})
    mid = int((await resp.json())["meeting"]["id"])
    for username in ("vinhyen", "hanoi", "xem_hanoi"):
        other = await srv.login(username)
        resp = await other.api("POST", f"/api/meetings/{mid}/recording", json={"on": False})
        body = await resp.json()
        assert resp.status in (403, 404), body
        assert body["error"]["message"] and body["error"]["code"] in ("chair_only", "meeting_not_found", "forbidden")
        assert (await recording_status(srv, mid))["wanted"] is True  # nothing changed
    bad = await chair.api("POST", f"/api/meetings/{mid}/recording", json={"on": "có"})
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "field_invalid"
    resp = await chair.api("POST", f"/api/meetings/{mid}/recording", json={"on": False})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["recording"]["wanted"] is False
    assert (await recording_status(srv, mid))["wanted"] is False


async def test_recording_refuses_to_start_when_the_disk_is_short(server_factory: Any, sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(tmp_path / "rec"),
                                           recording_min_free_mb=10**9)  # a petabyte: never free here
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province"]}]})
    mid = int((await resp.json())["meeting"]["id"])
    async with transaction(srv.app[DB]) as db:
        await recording_store.set_wanted(db, mid, False, srv.clock())
    resp = await chair.api("POST", f"/api/meetings/{mid}/recording", json={"on": True})
    body = await resp.json()
    assert resp.status == 409 and body["error"]["code"] == "disk_low", body
    assert "dung lượng đĩa" in body["error"]["message"]
    assert (await recording_status(srv, mid))["wanted"] is False


async def test_a_bridge_report_of_a_full_disk_tells_the_chair(server_factory: Any, db_url: str,
                                                              tmp_path: Path) -> None:
    srv: LiveServer = await server_factory(db_url, recordings_dir=str(tmp_path / "rec"), recording_min_free_mb=1)
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province"]}]})
    mid = int((await resp.json())["meeting"]["id"])
    bridge = await bridge_socket(srv, "BCA")
    try:
        for report in ({"type": "recording_started", "recording": "r1"},
                       {"type": "recording_segment", "recording": "r1", "index": 1,
                        "file": f"{mid}/r1/segment-0001.webm", "offset": 0.0, "duration": 8.0, "bytes": 1000,
                        "chapters": [{"unit": None, "start": 0, "end": 8}]},
                       {"type": "recording_stopped", "recording": "r1", "reason": "disk_full"}):
            answer = await bridge.request({"type": "recording", "meeting": mid, "report": report})
            assert answer["type"] == "result", answer
        traversal = await bridge.request({"type": "recording", "meeting": mid, "report": {
            "type": "recording_segment", "recording": "r1", "index": 2, "file": f"{mid}/../../etc/passwd",
            "offset": 8.0, "duration": 1.0, "bytes": 1, "chapters": []}})
        assert traversal["type"] == "error" and traversal["code"] == "recording_invalid", traversal
    finally:
        await bridge.close()
    status = await recording_status(srv, mid)
    assert status["active"] is False and "Đĩa đầy" in status["notice"]
    recs = await listing(srv, mid)
    assert [s["index"] for s in recs[0]["segments"]] == [1] and recs[0]["status"] == "disk_full"
    # a site (not a bridge) may not report recordings
    site = await srv.login("vinhyen")
    async with site.http.ws_connect("/ws") as ws:
        await ws.send_json({"type": "recording", "meeting": mid, "id": 1, "report": {
            "type": "recording_started", "recording": "r2"}})
        msg = await ws.receive_json(timeout=STEP)
        assert msg["type"] == "error" and msg["code"] == "forbidden", msg


async def test_recordings_are_read_by_minutes_readers_only(server_factory: Any, db_url: str,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    srv: LiveServer = await server_factory(db_url, recordings_dir=str(folder), recording_min_free_mb=1)
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị Phú Thọ", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "25", "levels": ["commune"]}]})
    mid = int((await resp.json())["meeting"]["id"])
    (folder / str(mid) / "r1").mkdir(parents=True)
    (folder / str(mid) / "r1" / "segment-0001.webm").write_bytes(bytes(range(256)) * 40)
    bridge = await bridge_socket(srv, "BCA")
    try:
        for report in ({"type": "recording_started", "recording": "r1"},
                       {"type": "recording_segment", "recording": "r1", "index": 1,
                        "file": f"{mid}/r1/segment-0001.webm", "offset": 0.0, "duration": 1.0, "bytes": 10240,
                        "chapters": [{"unit": "08707", "start": 0, "end": 1}]}):
            assert (await bridge.request({"type": "recording", "meeting": mid, "report": report}))["type"] == "result"
    finally:
        await bridge.close()
    reader = await srv.login("vinhyen")  # a commune that took part
    body = await (await reader.get(f"/api/meetings/{mid}/recordings")).json()
    seg = body["recordings"][0]["segments"][0]
    assert body["recordings"][0]["chapters"][0]["name"] == "Phường Vĩnh Yên"
    ranged = await reader.get(seg["url"], headers={"Range": "bytes=100-199"})
    assert ranged.status == 206 and len(await ranged.read()) == 100
    assert ranged.headers["Content-Type"] == "video/webm"
    page = await reader.get(f"/meetings/{mid}/recordings")
    assert page.status == 200 and seg["url"] in await page.text()

    outsider = await srv.login("hoankiem")  # Hà Nội: not in this meeting
    for path in (seg["url"], f"/api/meetings/{mid}/recordings", f"/meetings/{mid}/recordings"):
        resp = await outsider.get(path)
        assert resp.status == 404, (path, resp.status)
    anon = aiohttp.ClientSession(base_url=srv.url)
    try:
        assert (await anon.get(seg["url"], allow_redirects=False)).status in (302, 303, 401)
    finally:
        await anon.close()


async def test_recordings_past_their_retention_are_purged(server_factory: Any, db_url: str,
                                                          tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    srv: LiveServer = await server_factory(db_url, recordings_dir=str(folder), recording_retention_days=30)
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province"]}]})
    mid = int((await resp.json())["meeting"]["id"])
    files = {}
    async with transaction(srv.app[DB]) as db:
        bca = await units_store.get_by_code(db, "BCA")
        for name in ("old", "new"):
            path = folder / str(mid) / name / "segment-0001.webm"
            await asyncio.to_thread(path.parent.mkdir, parents=True)
            await asyncio.to_thread(path.write_bytes, b"segment")
            files[name] = path
            rec = await recording_store.recording(db, mid, bca.id, name, srv.clock())
            await recording_store.add_segment(db, rec, idx=1, path=f"{mid}/{name}/segment-0001.webm", offset=0.0,
                                              duration=1.0, size=7, started_at=srv.clock(), chapters=[])
            recording_store.finish(rec, "stopped", None, srv.clock())
        srv.clock.advance(days=20)
    async with transaction(srv.app[DB]) as db:  # the newer one ended 20 days later
        recs = {r.name: r for r in (await db.execute(select(recording_store.Recording))).scalars()}
        recs["new"].ended_at = srv.clock()
    srv.clock.advance(days=15)  # "old" ended 35 days ago, "new" 15
    assert await recording_service.purge(srv.app[DEPS]) == 1
    assert [r["name"] for r in await listing(srv, mid)] == ["new"]
    assert not await asyncio.to_thread(files["old"].exists) and await asyncio.to_thread(files["new"].exists)
    assert not await asyncio.to_thread(files["old"].parent.exists)
