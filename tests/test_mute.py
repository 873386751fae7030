"""Issue #11 on the real server: who may mute and unmute whom, mute all / unmute all, lower all
hands, a grant to a site that is not connected, and what bridges learn and report (mutes they
enforce, speaking levels read from RFC 6464 headers, the programme's on-air source)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bridge.app import STATE, create_app
from bridge.room import BridgeConfig, BridgeState
from server.auth import issue_machine_token
from server.db import transaction
from server.services.media import bridge_key
from server.state import DB
from sessions.store import live as live_store
from sessions.store import units as units_store
from tests.audio_util import ToneTrack
from tests.conftest import Client, LiveServer
from tests.live_util import WsClient, schedule, set_state
from tests.media_browser_util import bridge_token
from tests.media_util import EncodedVideoTrack, Publisher, post_sdp, token, until, whip
from tests.test_media_server import bridge_socket

A, B = "08707", "08740"


async def _seats(live: LiveServer, mid: int) -> dict[str, dict[str, Any]]:
    async with live.app[DB]() as db:
        return {r["code"]: r for r in await live_store.attendance_rows(db, mid)}


async def _live_meeting(live: LiveServer) -> tuple[Client, int]:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    return chair, mid


async def _mute(c: Client, mid: int, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await c.api("POST", f"/api/meetings/{mid}/mute", json=body)
    return resp.status, await resp.json()


async def test_who_may_mute_and_unmute_whom(live: LiveServer) -> None:
    chair, mid = await _live_meeting(live)
    site, province, hanoi, viewer = [await live.login(u) for u in ("vinhyen", "phutho", "hanoi", "xem_hanoi")]
    before = await _seats(live, mid)

    # Refused, and nothing changes: a viewer (even for its own unit), an operator outside its
    # province, a site muting another site, a bad flag, a unit that is not in the meeting.
    refused = [
        (viewer, {"muted": True}, 403, "forbidden"),
        (viewer, {"muted": True, "unit": "01"}, 403, "forbidden"),
        (hanoi, {"muted": True, "unit": A}, 403, "chair_only"),
        (site, {"muted": True, "unit": B}, 403, "chair_only"),
        (chair, {"muted": "có", "unit": A}, 400, "bad_request"),
        (chair, {"muted": True, "unit": "99999"}, 404, None),
    ]
    for client, body, status, code in refused:
        got, answer = await _mute(client, mid, **body)
        assert got == status, (client.username, body, answer)
        if code is not None:
            assert answer["error"]["code"] == code, (client.username, body, answer)
        assert answer["error"]["message"], answer  # a clear message, in Vietnamese
    assert await _seats(live, mid) == before

    # A machine token (KPI intake of Phú Thọ) mutes nothing.
    async with transaction(live.app[DB]) as db:
        unit = await units_store.get_by_code(db, "25")
        _tid, kpi_token = await issue_machine_token(live.app, db, name="kpi-25", unit_id=unit.id,
                                                    scopes=frozenset({"kpi:write"}), days=1, created_by_id=None)
    resp = await live.client().post(f"/api/meetings/{mid}/mute", json={"unit": A},
                                    headers={"Authorization": f"Bearer {kpi_token}"})
    assert resp.status == 403, await resp.text()
    assert await _seats(live, mid) == before

    # The province operator mutes its commune: the site cannot lift it, the operator (or chair) can.
    assert (await _mute(province, mid, muted=True, unit=A))[0] == 200
    assert (await _seats(live, mid))[A]["muted_by"] == "operator"
    status, answer = await _mute(site, mid, muted=False)
    assert (status, answer["error"]["code"]) == (403, "muted_by_higher"), answer
    assert (await _mute(province, mid, muted=False, unit=A))[0] == 200

    # The chair's mute outranks the operator's: the operator cannot lift it either.
    assert (await _mute(chair, mid, muted=True, unit=A))[0] == 200
    for client in (site, province):
        status, answer = await _mute(client, mid, muted=False, unit=A)
        assert (status, answer["error"]["code"]) == (403, "muted_by_higher"), (client.username, answer)
        assert "chủ trì" in answer["error"]["message"]
    assert (await _seats(live, mid))[A]["muted_by"] == "chair"

    # Granting the floor is the chair's word that the site may speak: the chair's mute is lifted.
    resp = await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": A, "confirm": True})
    assert resp.status == 200, await resp.text()
    assert not (await _seats(live, mid))[A]["muted"]


async def test_mute_all_unmute_all_and_lower_all_hands(live: LiveServer) -> None:
    chair, mid = await _live_meeting(live)
    site = await live.login("vinhyen")
    console = await WsClient.open(chair)
    try:
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
        await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": "25", "confirm": True})
        await site.api("POST", f"/api/meetings/{mid}/hand", json={"up": True})
        hoankiem = await live.login("hoankiem")
        await hoankiem.api("POST", f"/api/meetings/{mid}/hand", json={"up": True})
        await console.until(lambda: all((console.seat(c) or {}).get("hand_at") for c in (A, "00070")))

        # Only the chair mutes all / lowers all hands.
        status, answer = await _mute(site, mid, muted=True, all=True)
        assert (status, answer["error"]["code"]) == (403, "chair_only"), answer
        reply = await WsClient.open(site)
        try:
            err = await reply.request({"type": "action", "meeting": mid, "action": "lower_all_hands"})
            assert (err["type"], err["code"]) == ("error", "chair_only"), err
        finally:
            await reply.close()

        ok = await console.request({"type": "action", "meeting": mid, "action": "mute_all"})
        assert ok["type"] == "result", ok
        seats = await _seats(live, mid)
        assert not seats["25"]["muted"], "the floor holder is never muted by mute all"
        assert all(s["muted"] and s["muted_by"] == "chair" for c, s in seats.items() if c != "25")
        await console.until(lambda: (console.seat(A) or {}).get("muted"))

        # The site cannot lift the chair's mute; unmute all lifts the chair's mutes only.
        assert (await _mute(site, mid, muted=False))[1]["error"]["code"] == "muted_by_higher"
        ok = await console.request({"type": "action", "meeting": mid, "action": "unmute_all"})
        assert ok["type"] == "result", ok
        assert not any(s["muted"] for s in (await _seats(live, mid)).values())
        assert (await _mute(site, mid, muted=True))[0] == 200  # the site mutes itself…
        ok = await console.request({"type": "action", "meeting": mid, "action": "mute_all"})
        ok = await console.request({"type": "action", "meeting": mid, "action": "unmute_all"})
        # …the chair's mute all took it over (a higher authority), so unmute all lifted it too
        assert not (await _seats(live, mid))[A]["muted"]
        assert (await _mute(site, mid, muted=True))[0] == 200
        ok = await console.request({"type": "action", "meeting": mid, "action": "unmute_all"})
        assert (await _seats(live, mid))[A]["muted_by"] == "site", "unmute all left the site's own mute alone"

        resp = await chair.api("POST", f"/api/meetings/{mid}/hand", json={"up": False, "all": True})
        assert resp.status == 200 and (await resp.json())["lowered"] == 2
        await console.until(lambda: not any((console.seat(c) or {}).get("hand_at") for c in (A, "00070")))
    finally:
        await console.close()


async def test_a_grant_to_a_site_that_is_not_connected_asks_the_chair_to_confirm(live: LiveServer) -> None:
    chair, mid = await _live_meeting(live)
    console = await WsClient.open(chair)
    try:
        await console.request({"type": "subscribe", "topic": f"meeting:{mid}"})
        seq = console.meeting["seq"] if console.meeting else 0
        answer = await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": A})
        assert (answer["type"], answer["code"]) == ("error", "confirm_required"), answer
        assert answer["detail"]["warning"] == "not_connected" and "chưa kết nối" in answer["message"]
        async with live.app[DB]() as db:
            state = await live_store.meeting_state(db, mid)
        assert state["floor"] is None and state["seq"] == seq, "nothing changed before the chair confirmed"
        resp = await chair.api("POST", f"/api/meetings/{mid}/floor", json={"action": "grant", "unit": A})
        assert resp.status == 409 and (await resp.json())["error"]["warning"] == "not_connected"
        # a unit that does not take part (the ministry itself is not a seat of this meeting), or does
        # not exist, is refused whatever the confirmation, and nothing changes
        for unit, code in (("BCA", "not_participant"), ("99999", "unit_not_found")):
            err = await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": unit,
                                         "confirm": True})
            assert (err["type"], err["code"]) == ("error", code), err
            assert err["message"], err
        async with live.app[DB]() as db:
            assert (await live_store.meeting_state(db, mid))["floor"] is None
        ok = await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": A, "confirm": True})
        assert ok["type"] == "result", ok
        await console.until(lambda: console.meeting and (console.meeting["floor"] or {}).get("code") == A)
    finally:
        await console.close()


# ---------------------------------------------------------------- bridges: mutes, speaking, on air


@pytest.fixture
async def bridge_on_server(live: LiveServer) -> AsyncIterator[tuple[str, BridgeState, str]]:
    """The central bridge (BCA, no upstream: it serves the chair) in this process, tied to the
    real server by its control channel: (base URL, its state, its unit)."""
    config = BridgeConfig(unit="BCA", key=bridge_key(live.settings, "BCA"), server_url=live.url,
                          token=await bridge_token(live, "BCA"))
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), server.app[STATE], "BCA"
    finally:
        await server.close()


async def test_bridges_enforce_mutes_and_report_speaking_and_on_air(
        live: LiveServer, bridge_on_server: tuple[str, BridgeState, str]) -> None:
    url, state, unit = bridge_on_server
    key = bridge_key(live.settings, unit)
    chair, mid = await _live_meeting(live)
    console = await WsClient.open(chair)
    peers: list[Publisher] = []
    try:
        await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
        chair_pub = await whip(url, mid, token(unit, "BCA", "chair", mid, key), EncodedVideoTrack("vp8"),
                               ToneTrack(440))
        peers.append(chair_pub)

        # A site without the floor may send its microphone (not its camera): the bridge reads its
        # speaking level from the RFC 6464 header, the chair's console sees it speak.
        tone = ToneTrack(1000, speaking=False)
        mic = await whip(url, mid, token(unit, A, "site", mid, key), None, tone)
        peers.append(mic)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.5)
        started = loop.time()
        tone.speaking = True
        await console.until(lambda: (console.speaking.get(A) or {}).get("speaking") is True, within=3)
        shown = loop.time() - started
        assert console.speaking[A]["level"] is not None and console.speaking[A]["level"] < 30
        started = loop.time()
        tone.speaking = False
        await console.until(lambda: (console.speaking.get(A) or {}).get("speaking") is False, within=3)
        hidden = loop.time() - started
        # Issue #11 asks for 1 s each way; measured ~0.1–0.6 s (the meter's 0.4 s hold, 0.2 s polling).
        # Printed, not asserted: the bound above is the functional one.
        print(f"speaking shown after {shown:.2f} s, cleared after {hidden:.2f} s")

        # Its camera needs the floor.
        status, answer, _ = await post_sdp(f"{url}/meetings/{mid}/whip", token(unit, B, "site", mid, key),
                                           await _video_offer())
        assert status == 403 and "floor_required" in answer, answer

        # The chair's mute reaches the bridge through the roll call, and the bridge drops the sound.
        await console.request({"type": "action", "meeting": mid, "action": "mute", "unit": A})
        room = state.room(mid)
        await until(lambda: A in room.programme.muted, 2.0, "the bridge to learn of the mute")
        source = room.programme.sites[A].audio
        assert source is not None
        await until(lambda: source.muted, 1.0, "A's microphone muted at the bridge")
        await console.request({"type": "action", "meeting": mid, "action": "unmute", "unit": A})
        await until(lambda: A not in room.programme.muted and not source.muted, 2.0, "the mute lifted at the bridge")

        # On air, not just granted: the console hears from the bridge when A's media reaches the
        # programme (its microphone now; its picture once it publishes its camera).
        await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": A, "confirm": True})
        await console.until(lambda: (console.on_air or {}).get("code") == A and console.on_air["audio"], within=3)
        assert console.on_air is not None and console.on_air["video"] is False
        camera = await whip(url, mid, token(unit, A, "site", mid, key), EncodedVideoTrack("vp8", 176, 144),
                            ToneTrack(1000))
        peers.append(camera)
        # (a functional wait: the picture needs a keyframe through a loaded test machine; the delay
        # itself is bench/audio.py's figure)
        await console.until(lambda: (console.on_air or {}).get("video") is True, within=8)
        await console.request({"type": "action", "meeting": mid, "action": "revoke"})
        await console.until(lambda: (console.on_air or {}).get("code") is None, within=3)
    finally:
        for peer in peers:
            await peer.pc.close()
        await console.close()


async def _video_offer() -> str:
    from tests.media_util import offer_sdp

    return await offer_sdp(("video", "audio"), "sendonly")


async def test_speaking_and_on_air_reports_are_checked(live: LiveServer) -> None:
    """Only a bridge reports, only for sites of its subtree in the meeting; on air only the bridge
    that serves the chair."""
    _chair, mid = await _live_meeting(live)
    site = await WsClient.open(await live.login("vinhyen"))
    province = await bridge_socket(live, "25")
    try:
        err = await site.request({"type": "speaking", "meeting": mid, "sites": [{"unit": A, "speaking": True}]})
        assert (err["type"], err["code"]) == ("error", "forbidden"), err
        err = await province.request({"type": "speaking", "meeting": mid,
                                      "sites": [{"unit": "00070", "speaking": True, "level": 10}]})
        assert (err["type"], err["code"]) == ("error", "out_of_scope"), err
        err = await province.request({"type": "speaking", "meeting": mid,
                                      "sites": [{"unit": A, "speaking": "vâng", "level": 10}]})
        assert (err["type"], err["code"]) == ("error", "speaking_invalid"), err
        err = await province.request({"type": "on_air", "meeting": mid, "unit": A, "video": True, "audio": True})
        assert (err["type"], err["code"]) == ("error", "forbidden"), err
        ok = await province.request({"type": "speaking", "meeting": mid,
                                     "sites": [{"unit": A, "speaking": True, "level": 12}]})
        assert ok["type"] == "result", ok
    finally:
        await site.close()
        await province.close()



async def test_a_bridge_that_starts_after_the_mute_enforces_it(
        live: LiveServer, bridge_on_server: tuple[str, BridgeState, str]) -> None:
    """Mute state lives in the roll call, not in the bridge: a bridge (re)started after the chair
    muted a site learns it from the roll-call snapshot as soon as the site sends again."""
    url, state, unit = bridge_on_server
    key = bridge_key(live.settings, unit)
    chair, mid = await _live_meeting(live)
    assert (await _mute(chair, mid, muted=True, unit=A))[0] == 200
    mic = await whip(url, mid, token(unit, A, "site", mid, key), None, ToneTrack(1000))
    try:
        room = state.room(mid)
        await until(lambda: A in room.programme.muted, 3.0, "the new bridge to learn the earlier mute")
        source = room.programme.sites[A].audio
        assert source is not None
        await until(lambda: source.dropped_muted > 10, 3.0, "the muted site's packets dropped at the bridge")
        assert source.frames == 0, "nothing of a muted site reached the programme"
    finally:
        await mic.pc.close()
