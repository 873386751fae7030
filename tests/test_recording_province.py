"""Recording at a provincial bridge when the chair asks (issue #17), through real bridge processes:
the central bridge records the programme; Phú Thọ's bridge (cascading from it) records its own
programme only while the chair names it; only the chair may name it; the recordings list says
which bridge made each recording; and a provincial bridge killed mid-recording (SIGKILL) leaves a
recording closed as interrupted, its segments listed and playable, while the meeting and the
central recording go on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.services.media import bridge_key
from tests.audio_util import ToneTrack
from tests.conftest import LiveServer
from tests.media_util import EncodedVideoTrack, Player, Publisher, close_peers, token, whep, whip
from tests.recording_util import RecordingBridge, read_segment
from tests.test_recording_bridge import listing, machine_token, poll, recording_status

A = "08707"  # a Phú Thọ (25) ward


async def live_meeting(srv: LiveServer) -> tuple[Any, int]:
    chair = await srv.login("chutri")
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị ghi hình tại tỉnh", "agenda": ["Khai mạc"], "start": "2030-01-01T08:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province", "district", "commune"]}]})
    assert resp.status == 201, await resp.text()
    mid = int((await resp.json())["meeting"]["id"])
    for st in ("rehearsal", "live"):
        resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": st})
        assert resp.status == 200, await resp.text()
    return chair, mid


def of_bridge(recs: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["bridge"] == code]


async def test_a_provincial_bridge_records_when_the_chair_names_it(server_factory: Any, sqlite_url: str,
                                                                     tmp_path: Path) -> None:
    folder = tmp_path / "recordings"  # both bridges write into the server's folder (one machine)
    srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(folder), recording_min_free_mb=1)
    chair, mid = await live_meeting(srv)
    central_key, province_key = bridge_key(srv.settings, "BCA"), bridge_key(srv.settings, "25")
    central = await RecordingBridge.start("BCA", central_key, srv.url, await machine_token(srv, "BCA"), folder,
                                          segment_seconds=3)
    province: RecordingBridge | None = None
    peers: list[Publisher | Player] = []
    try:
        province = await RecordingBridge.start("25", province_key, srv.url, await machine_token(srv, "25"), folder,
                                               upstream=central.url, segment_seconds=3)
        peers.append(await whip(central.url, mid, token("BCA", "BCA", "chair", mid, central_key),
                                EncodedVideoTrack("vp8", fps=30), ToneTrack(440)))
        site = await whep(province.url, mid, token("25", A, "site", mid, province_key))  # what Phú Thọ sees
        peers.append(site)
        await site.wait_frames(10, within=30)

        async def central_records() -> list[dict[str, Any]]:
            return of_bridge(await listing(srv, mid), "BCA")

        await poll(central_records, 20, "the central bridge to record")
        await asyncio.sleep(2.0)
        assert of_bridge(await listing(srv, mid), "25") == [], "a provincial bridge records only when named"

        # Nobody but the chair names a bridge: refused, nothing changed.
        for username in ("vinhyen", "hanoi"):
            other = await srv.login(username)
            resp = await other.api("POST", f"/api/meetings/{mid}/recording", json={"on": True, "bridge": "25"})
            body = await resp.json()
            assert resp.status in (403, 404), body
            assert body["error"]["code"] in ("chair_only", "meeting_not_found") and body["error"]["message"]
        assert (await recording_status(srv, mid))["bridges"] == []
        bad = await chair.api("POST", f"/api/meetings/{mid}/recording", json={"on": True, "bridge": "KHÔNG-CÓ"})
        body = await bad.json()
        assert bad.status == 400 and body["error"]["code"] == "bridge_invalid", body
        assert "điểm cầu" in body["error"]["message"]
        assert (await recording_status(srv, mid))["bridges"] == []

        resp = await chair.api("POST", f"/api/meetings/{mid}/recording", json={"on": True, "bridge": "25"})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["recording"]["bridges"] == ["25"]

        async def province_segments() -> list[dict[str, Any]]:
            recs = of_bridge(await listing(srv, mid), "25")
            return recs if recs and len(recs[0]["segments"]) >= 2 else []

        recs = await poll(province_segments, 30, "two segments recorded at the provincial bridge")
        assert recs[0]["status"] == "recording" and recs[0]["name"].endswith("-25"), recs

        await province.kill()  # a crash mid-recording: it says nothing

        async def interrupted() -> list[dict[str, Any]]:
            recs = of_bridge(await listing(srv, mid), "25")
            return recs if recs[0]["status"] != "recording" else []

        recs = await poll(interrupted, 20, "the provincial recording to be closed")
        assert recs[0]["status"] == "interrupted" and recs[0]["ended_at"], recs
        status = await recording_status(srv, mid)
        assert status["active"] is True, status  # the central bridge still records
        assert "mất kết nối" in status["notice"] and "Phú Thọ" in status["notice"], status
        # What the provincial bridge wrote before it died stays listed and plays.
        for seg in recs[0]["segments"]:
            facts = await asyncio.to_thread(read_segment, folder / str(mid) / recs[0]["name"]
                                            / f"segment-{seg['index']:04d}.webm")
            assert facts.width == 160 and facts.video_frames >= 10, facts
            assert facts.audio_rms > 0.01, f"segment {seg['index']} is silent"
        reader = await srv.login("vinhyen")
        body = await (await reader.get(f"/api/meetings/{mid}/recordings")).json()
        names = {r["bridge"]: r["bridge_name"] for r in body["recordings"]}
        assert "Phú Thọ" in names["25"] and names["BCA"] != "BCA", names
        page = await (await reader.get(f"/meetings/{mid}/recordings")).text()
        assert page.count("Ghi tại điểm cầu") == len(body["recordings"]) and "Gián đoạn" in page

        # The meeting goes on at the centre: still live, still recorded, its picture still flowing.
        meeting = await (await chair.get(f"/api/meetings/{mid}")).json()
        assert meeting["meeting"]["state"] == "live"
        player = await whep(central.url, mid, token("BCA", "00004", "site", mid, central_key))
        peers.append(player)
        await player.wait_frames(15)
        assert of_bridge(await listing(srv, mid), "BCA")[0]["status"] == "recording"

        resp = await chair.api("POST", f"/api/meetings/{mid}/state", json={"to": "concluded"})
        assert resp.status == 200, await resp.text()

        async def central_done() -> list[dict[str, Any]]:
            recs = of_bridge(await listing(srv, mid), "BCA")
            return recs if recs[0]["status"] == "stopped" else []

        await poll(central_done, 30, "the central recording to stop")
        assert (await recording_status(srv, mid))["active"] is False
    finally:
        await close_peers(*peers)
        if province is not None:
            await province.kill()
        await central.stop()
