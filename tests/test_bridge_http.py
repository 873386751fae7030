"""WHIP/WHEP bad input against a real bridge on 127.0.0.1:0, while a real aiortc chair publishes
and a real aiortc site plays: every refusal has its status and code, and the site playing never
stops decoding."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bridge.room import BridgeState
from sessions import signing
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import KEY, EncodedVideoTrack, offer_sdp, post_sdp, token, until, whep, whip

BRIDGE = MEDIA_BRIDGE


async def _refused(url: str, tok: str | None, sdp: str, status: int, code: str,
                   content_type: str = "application/sdp") -> None:
    got, body, location = await post_sdp(url, tok, sdp, content_type)
    assert got == status, body
    assert location == ""
    error = json.loads(body)["error"]
    assert error["code"] == code, body
    assert error["message"] and not error["message"].isascii(), "a Vietnamese message for people"


async def _delete(url: str, tok: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with aiohttp.ClientSession() as http, http.delete(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_bad_input_is_refused_and_disturbs_nobody(bridge: tuple[str, BridgeState]) -> None:
    base, state = bridge
    whip_url, whep_url = f"{base}/meetings/1/whip", f"{base}/meetings/1/whep"
    chair = await whip(base, 1, token(BRIDGE, "CHAIR", "chair"), EncodedVideoTrack("vp8"))
    player = await whep(base, 1, token(BRIDGE, "A"))
    try:
        await player.wait_frames(10)
        good_offer = await offer_sdp(("video", "audio"), "sendonly")
        play_offer = await offer_sdp(("video", "audio"), "recvonly")
        site = token(BRIDGE, "B")

        # malformed SDP
        await _refused(whip_url, token(BRIDGE, "CHAIR", "chair"), "v=0\r\nđây không phải SDP", 400, "sdp_invalid")
        await _refused(whep_url, site, "", 400, "sdp_invalid")
        no_ice = "\r\n".join(line for line in play_offer.split("\r\n") if not line.startswith("a=ice-"))
        await _refused(whep_url, site, no_ice, 400, "sdp_invalid")
        await _refused(whep_url, site, play_offer, 415, "sdp_required", content_type="application/json")

        # unsupported codecs
        vp9_only = play_offer.replace("VP8/90000", "VP9/90000").replace("H264/90000", "AV1/90000")
        await _refused(whep_url, site, vp9_only, 422, "codec_unsupported")
        no_opus = play_offer.replace("opus/48000/2", "ISAC/16000")
        await _refused(whep_url, site, no_opus, 422, "codec_unsupported")
        h264_only = play_offer.replace("VP8/90000", "VP9/90000")  # the meeting is pinned to VP8
        await _refused(whep_url, site, h264_only, 422, "codec_unsupported")

        # join tokens
        await _refused(whep_url, None, play_offer, 401, "unauthenticated")
        expired = token(BRIDGE, "B", ttl=timedelta(seconds=-1))
        await _refused(whep_url, expired, play_offer, 401, "token_expired")
        forged = token(BRIDGE, "B", key=b"khoa-cua-ke-gia-mao-khong-phai-cua-may-chu")
        await _refused(whep_url, forged, play_offer, 401, "token_invalid")
        machine = signing.sign(KEY, "machine", {"tid": 1}, datetime.now(UTC) + timedelta(minutes=5))
        await _refused(whep_url, machine, play_offer, 401, "token_wrong_type")
        await _refused(whep_url, token("DN", "B"), play_offer, 403, "token_foreign")  # another bridge's token
        await _refused(f"{base}/meetings/2/whep", site, play_offer, 403, "token_foreign")  # another meeting's

        # publishing without the floor
        await _refused(whip_url, site, good_offer, 403, "floor_required")
        assert state.room(1).programme.on_air == "CHAIR"

        # someone else's session
        other = await whep(base, 1, token(BRIDGE, "C"))
        try:
            status, body = await _delete(f"{base}{other.location}", site)
            assert status == 403 and "session_not_yours" in body
            status, body = await _delete(f"{base}{player.location}", token(BRIDGE, "C"))
            assert status == 403 and "session_not_yours" in body
            status, body = await _delete(f"{base}/sessions/khong-co-phien-nay", site)
            assert status == 404 and "session_not_found" in body
            status, _ = await _delete(f"{base}{other.location}", token(BRIDGE, "C"))
            assert status == 200
            status, body = await _delete(f"{base}{other.location}", token(BRIDGE, "C"))
            assert status == 404 and "session_not_found" in body
        finally:
            await other.close()

        # nobody was disturbed: the chair is still on air and the site still decodes
        assert state.room(1).programme.on_air == "CHAIR"
        count = len(player.frames)
        await player.wait_frames(count + 20)
    finally:
        await player.close()
        await chair.pc.close()


async def test_the_floor_holder_may_publish_and_its_delete_ends_the_publication(
        bridge: tuple[str, BridgeState], caplog: pytest.LogCaptureFixture) -> None:
    base, state = bridge
    state.room(1).set_floor("B")
    publisher = await whip(base, 1, token(BRIDGE, "B"), EncodedVideoTrack("vp8"))
    try:
        assert state.room(1).programme.on_air == "B"
        sid = publisher.location.rsplit("/", 1)[-1]
        with caplog.at_level(logging.INFO, logger="hoinghi.bridge.room"):
            status, _ = await _delete(f"{base}{publisher.location}", token(BRIDGE, "B"))
        assert status == 200
        assert state.room(1).programme.on_air is None and not state.peers
        # the bridge's log says which peer ended and why (what an operator reads after a cut)
        assert f"peer {sid} closed (publish B, meeting 1): its owner ended it (DELETE)" in caplog.text
    finally:
        await publisher.pc.close()


async def test_a_child_bridge_playing_again_replaces_its_dead_peer(bridge: tuple[str, BridgeState]) -> None:
    """A provincial bridge that restarts plays the meeting again at once; its previous peer is
    closed then, not ~30 s later when ICE gives up. A site may play on two screens."""
    url, state = bridge
    players = []
    try:
        players.append(await whep(url, 1, token(BRIDGE, "25", "bridge")))
        first = next(p for p in state.peers.values() if p.unit == "25")
        players.append(await whep(url, 1, token(BRIDGE, "25", "bridge")))
        await until(lambda: first.closed, 5, "the old cascade peer to close")
        assert [p.unit for p in state.peers.values() if p.kind == "play"] == ["25"]
        players.append(await whep(url, 1, token(BRIDGE, "08707")))
        players.append(await whep(url, 1, token(BRIDGE, "08707")))
        assert sorted(p.unit for p in state.peers.values() if p.kind == "play") == ["08707", "08707", "25"]
    finally:
        for player in players:
            await player.close()
