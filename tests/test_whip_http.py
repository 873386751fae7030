"""RFC 9725's small print on a real bridge (127.0.0.1:0): OPTIONS says what the endpoints take,
a wrong method gets 405 with ``Allow``, an offer without a usable codec gets 422 (415 is for a
wrong ``Content-Type`` only), and the 201 hands the bridge's ICE servers out in ``Link`` headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aioice import stun

from bridge import ice_servers
from bridge.app import STATE, create_app
from bridge.room import BridgeConfig, BridgeState
from tests.conftest import MEDIA_BRIDGE
from tests.media_util import KEY, offer_sdp, post_sdp, token

BRIDGE = MEDIA_BRIDGE


async def _request(method: str, url: str, **kw: Any) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as resp:
        return resp.status, resp.headers, await resp.text()


async def test_options_says_the_endpoints_take_sdp_and_keeps_the_cors_preflight(
        bridge: tuple[str, BridgeState]) -> None:
    base, _ = bridge
    for endpoint in ("whip", "whep"):
        status, headers, _ = await _request("OPTIONS", f"{base}/meetings/1/{endpoint}", headers={
            "Origin": "https://hoinghi.example.vn", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 204
        assert headers["Accept-Post"] == "application/sdp"
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert {"Location", "Link"} <= {h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")}
    status, headers, _ = await _request("OPTIONS", f"{base}/sessions/abc")
    assert status == 204 and "Accept-Post" not in headers  # a session URL takes no POST


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PATCH", "/sessions/abc", {"DELETE", "OPTIONS"}),  # no trickle ICE / ICE restart (docs/protocol.md)
    ("GET", "/sessions/abc", {"DELETE", "OPTIONS"}),
    ("GET", "/meetings/1/whip", {"POST", "OPTIONS"}),
    ("PUT", "/meetings/1/whep", {"POST", "OPTIONS"}),
    ("DELETE", "/meetings/1/whep", {"POST", "OPTIONS"}),
])
async def test_a_wrong_method_gets_405_with_allow(bridge: tuple[str, BridgeState], method: str, path: str,
                                                  allowed: set[str]) -> None:
    base, state = bridge
    status, headers, body = await _request(method, f"{base}{path}",
                                           headers={"Authorization": f"Bearer {token(BRIDGE, 'B')}"})
    assert status == 405, body
    assert {m.strip() for m in headers["Allow"].split(",")} == allowed
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    assert not state.peers and not state.rooms


async def test_unusable_codecs_get_422_and_a_wrong_content_type_415(bridge: tuple[str, BridgeState]) -> None:
    base, state = bridge
    play = await offer_sdp(("video", "audio"), "recvonly")
    url = f"{base}/meetings/1/whep"
    status, body, _ = await post_sdp(url, token(BRIDGE, "B"), play.replace("VP8/90000", "VP9/90000")
                                     .replace("H264/90000", "AV1/90000"))
    assert status == 422 and json.loads(body)["error"]["code"] == "codec_unsupported"
    status, body, _ = await post_sdp(url, token(BRIDGE, "B"), play.replace("opus/48000/2", "ISAC/16000"))
    assert status == 422 and json.loads(body)["error"]["code"] == "codec_unsupported"
    status, body, _ = await post_sdp(url, token(BRIDGE, "B"), play, content_type="text/plain")
    assert status == 415 and json.loads(body)["error"]["code"] == "sdp_required"
    assert not state.peers and state.room(1).video_codec is None  # bad input changed nothing


class StunResponder(asyncio.DatagramProtocol):
    """A STUN server on loopback that answers Binding requests (so a bridge configured with it
    gathers at once instead of waiting out an unreachable server)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method == stun.Method.BINDING and request.message_class == stun.Class.REQUEST:
            response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, request.transaction_id)
            response.attributes["XOR-MAPPED-ADDRESS"] = addr
            self.transport.sendto(bytes(response), addr)


@pytest.fixture
async def stun_bridge() -> AsyncIterator[tuple[str, str]]:
    """A bridge whose ICE server is a real (loopback) STUN server: (its URL, the STUN URL)."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(StunResponder,
                                                                             local_addr=("127.0.0.1", 0))
    stun_url = f"stun:127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    server = TestServer(create_app(BridgeConfig(unit=BRIDGE, key=KEY, ice_servers=(stun_url,))),
                        host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), stun_url
        assert server.app[STATE].config.ice_servers == (stun_url,)
    finally:
        await server.close()
        transport.close()


async def test_the_201_names_the_ice_servers_in_link_headers(stun_bridge: tuple[str, str]) -> None:
    base, stun_url = stun_bridge
    offer = await offer_sdp(("video", "audio"), "recvonly")
    status, headers, answer = await _request("POST", f"{base}/meetings/1/whep", data=offer.encode(), headers={
        "Content-Type": "application/sdp", "Authorization": f"Bearer {token(BRIDGE, 'B')}"})
    assert status == 201, answer
    assert headers.getall("Link") == [f'<{stun_url}>; rel="ice-server"']
    status, _, _ = await _request("DELETE", f"{base}{headers['Location']}",
                                  headers={"Authorization": f"Bearer {token(BRIDGE, 'B')}"})
    assert status == 200


def test_turn_servers_carry_their_credentials_in_the_link_header() -> None:
    """RFC 9725 §4.6's format; a TURN server is written as the Link header's own attributes."""
    turn = ice_servers.parse("turn:turn.example.vn:3478?transport=udp;username=hoinghi;credential=bi-mat")
    assert ice_servers.link_value(turn) == ('<turn:turn.example.vn:3478?transport=udp>; rel="ice-server"; '
                                            'username="hoinghi"; credential="bi-mat"; credential-type="password"')
    assert "bi-mat" not in repr(turn)
    rtc = ice_servers.rtc(turn)
    assert (rtc.urls, rtc.username, rtc.credential) == ("turn:turn.example.vn:3478?transport=udp", "hoinghi", "bi-mat")
    assert ice_servers.link_value(ice_servers.parse("stun:stun.example.vn:3478")) == \
        '<stun:stun.example.vn:3478>; rel="ice-server"'
    for bad in ("http://stun.example.vn", "stun:a b", "turn:t.vn;password=x", 'turn:t.vn;username="x"'):
        with pytest.raises(ice_servers.IceServerInvalid):
            ice_servers.parse(bad)
