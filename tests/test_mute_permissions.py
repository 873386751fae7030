"""Issue #13, finding 8: only the chair and the operators (a site's own, a province's over its
communes) mute or unmute a site. A viewer — even for its own unit — and a machine token of any
scope are refused with 403 and a code, over HTTP and over the websocket's ``mute``/``unmute``
actions, and nothing changes."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from server.services.access import MACHINE_SCOPES
from tests.conftest import LiveServer
from tests.live_util import schedule, set_state
from tests.test_scope import changed, issue_token, session_client, snapshot

OWN, COMMUNE = "01", "00070"  # the viewer's own unit (Hà Nội) and a commune below it


async def _ws_request(ws: aiohttp.ClientWebSocketResponse, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps({**msg, "id": 1}))
    async for raw in ws:
        assert raw.type == aiohttp.WSMsgType.TEXT, raw
        answer = json.loads(raw.data)
        if answer.get("id") == 1:
            return answer
    raise AssertionError("the socket closed without an answer")


async def test_viewers_and_machine_tokens_never_mute(live: LiveServer) -> None:
    chair = await session_client(live, "chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    viewer = await session_client(live, "xem_hanoi")
    tokens = {scope: (await issue_token(live, OWN, frozenset({scope})))[1] for scope in MACHINE_SCOPES}
    tokens["every scope"] = (await issue_token(live, OWN, frozenset(MACHINE_SCOPES)))[1]
    bodies = [{"muted": True}, {"muted": True, "unit": OWN}, {"muted": True, "unit": COMMUNE},
              {"muted": False, "unit": OWN}, {"muted": True, "all": True}]
    actions = [{"action": "mute"}, {"action": "mute", "unit": OWN}, {"action": "unmute", "unit": COMMUNE},
               {"action": "mute_all"}]
    before = await snapshot(live)
    refused: list[str] = []

    # HTTP: the viewer's cookie, and each machine token.
    callers: list[tuple[str, aiohttp.ClientSession, dict[str, str]]] = [
        ("viewer", viewer.http, {"X-CSRF-Token": viewer.csrf})]
    for scope, token in tokens.items():
        callers.append((f"token {scope}", live.client(), {"Authorization": f"Bearer {token}"}))
    for who, http, headers in callers:
        for body in bodies:
            resp = await http.post(f"/api/meetings/{mid}/mute", json=body, headers=headers)
            answer = await resp.json()
            if resp.status != 403 or not answer["error"].get("code") or not answer["error"].get("message"):
                refused.append(f"HTTP {who} {body}: {resp.status} {answer}")

    # The websocket's actions: the viewer's socket, and each token's.
    # (A token whose scopes do not reach the socket may already be refused at the handshake.)
    sockets = [("viewer", await viewer.http.ws_connect("/ws", origin=live.url))]
    for scope, token in tokens.items():
        try:
            sockets.append((f"token {scope}", await live.client().ws_connect(
                "/ws", headers={"Authorization": f"Bearer {token}"})))
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403, (scope, exc)
    assert any(who == "token bridge" for who, _ws in sockets), "a bridge token opens the socket"
    try:
        for who, ws in sockets:
            for action in actions:
                answer = await _ws_request(ws, {"type": "action", "meeting": mid, **action})
                if answer["type"] != "error" or answer.get("code") not in ("forbidden", "chair_only", "mute_forbidden"):
                    refused.append(f"ws {who} {action}: {answer}")
    finally:
        for _who, ws in sockets:
            await ws.close()
    assert not refused, "\n".join(refused)
    assert changed(before, await snapshot(live)) == set()

    # The positive control: the same requests from the chair and an operator do mute.
    hanoi = await session_client(live, "hanoi")
    resp = await hanoi.api("POST", f"/api/meetings/{mid}/mute", json={"muted": True, "unit": COMMUNE})
    assert resp.status == 200, await resp.text()
    console = await chair.http.ws_connect("/ws", origin=live.url)
    try:
        ok = await _ws_request(console, {"type": "action", "meeting": mid, "action": "mute", "unit": OWN})
        assert ok["type"] == "result", ok
    finally:
        await console.close()
    seats = {k[1]: v for k, v in (await snapshot(live)).items() if k[0] == "seat"}
    assert sum(1 for v in seats.values() if v[4]) == 2  # Participant.muted
