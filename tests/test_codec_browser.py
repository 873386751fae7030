"""Headless Chromium behind a provincial bridge decodes a chair who sends H.264 (as OBS always does)
through the cascade; a Chromium player answered before the chair's video arrived sees its
connection end when the meeting's codec is pinned to another, as ``web/static/media.js`` needs to
play again (it watches the DTLS transport for that).

The bridges run in this process (central, and a province with ``--upstream``); the chair is an
aiortc publisher; the page does the WHEP exchange as ``media.js`` does, from the bridge's own origin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from bridge.app import STATE, create_app
from bridge.room import BridgeConfig, BridgeState
from tests.browser_util import chromium, new_page
from tests.media_util import KEY, STEP, EncodedVideoTrack, Publisher, token, until, whip

pytestmark = pytest.mark.browser

CENTRAL, PROVINCE = "TW", "HN"
SIZE = (320, 240)

# WHEP as media.js does it (video, the chair's sound, the floor holder's), non-trickle. Records the
# states the peer connection and its DTLS transport go through.
PLAY = """async ([url, token]) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.player = {pc, states: [], dtls: []};
  pc.addEventListener("connectionstatechange", () => window.player.states.push(pc.connectionState));
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    setTimeout(resolve, 1500);
  });
  const resp = await fetch(url, {method: "POST", body: pc.localDescription.sdp,
    headers: {"Content-Type": "application/sdp", Authorization: `Bearer ${token}`}});
  const answer = await resp.text();
  if (resp.status !== 201) return {status: resp.status, answer};
  await pc.setRemoteDescription({type: "answer", sdp: answer});
  const dtls = pc.getReceivers()[0].transport;
  dtls.addEventListener("statechange", () => window.player.dtls.push(dtls.state));
  return {status: resp.status, answer, offer: pc.localDescription.sdp};
}"""

STATS = """async () => {
  const pc = window.player?.pc;
  if (!pc) return null;
  const out = {state: pc.connectionState, frames: 0, width: 0, height: 0, codec: "",
               states: window.player.states, dtls: window.player.dtls};
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.frames += s.framesDecoded || 0;
      if (s.frameWidth) { out.width = s.frameWidth; out.height = s.frameHeight; }
      if (s.codecId && report.get(s.codecId)) out.codec = report.get(s.codecId).mimeType;
    }
  });
  return out;
}"""


async def _start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE]


@pytest.fixture
async def bridges() -> AsyncIterator[tuple[str, BridgeState, str]]:
    central, central_url, central_state = await _start(BridgeConfig(unit=CENTRAL, key=KEY))
    province, province_url, _ = await _start(
        BridgeConfig(unit=PROVINCE, key=KEY, upstream_url=central_url, upstream_key=KEY))
    try:
        yield central_url, central_state, province_url
    finally:
        await province.close()
        await central.close()


async def _play(page: Page, base: str, unit: str) -> dict[str, Any]:
    await page.goto(f"{base}/healthz")  # the bridge's own origin
    result: dict[str, Any] = await page.evaluate(PLAY, [f"{base}/meetings/1/whep", token(PROVINCE, unit)])
    assert result["status"] == 201, result
    return result


async def _decodes(page: Page, size: tuple[int, int], frames: int = 30) -> dict[str, Any]:
    last: dict[str, Any] | None = None

    async def check() -> bool:
        nonlocal last
        last = await page.evaluate(STATS)
        return last is not None and last["frames"] >= frames and (last["width"], last["height"]) == size

    deadline = asyncio.get_running_loop().time() + 2 * STEP
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"Chromium decodes nothing at {size}: {last}"
        await asyncio.sleep(0.1)
    assert last is not None
    return last


async def test_chromium_behind_the_province_decodes_the_chairs_h264(bridges: tuple[str, BridgeState, str]) -> None:
    central_url, central, province_url = bridges
    chair: Publisher | None = None
    async with chromium() as browser:
        early = await new_page(browser)
        try:
            # a commune plays before the chair publishes: answered VP8 (its first choice), provisionally
            first = await _play(early, province_url, "A")
            assert "H264/90000" in first["offer"], "Debian's Chromium offers H.264 in WebRTC"
            chair = await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), EncodedVideoTrack("h264", *SIZE))
            await until(lambda: central.room(1).video_codec is not None, STEP, "the chair's H.264 to pin the codec")

            # the pin reaches the province: that early player is ended; Chromium tells the page
            # through its DTLS transport (close_notify), which media.js watches
            async def ended() -> bool:
                stats = await early.evaluate(STATS)
                return "closed" in stats["dtls"] or stats["state"] in ("failed", "closed")
            deadline = asyncio.get_running_loop().time() + STEP
            while not await ended():
                assert asyncio.get_running_loop().time() < deadline, await early.evaluate(STATS)
                await asyncio.sleep(0.1)

            # playing again (as media.js does), it is answered H.264 and decodes the chair
            again = await _play(early, province_url, "A")
            assert "H264/90000" in again["answer"].split("m=audio")[0] and "VP8" not in again["answer"]
            stats = await _decodes(early, SIZE)
            assert stats["codec"].lower() == "video/h264"
        finally:
            if chair is not None:
                await chair.pc.close()
