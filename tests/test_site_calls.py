"""#14: a province operator "calls" one of its communes over the live websocket (action ``call``):
the commune's own page gets a ``call`` event, and so does the province's roll-call console; the
chair's console and other sites do not. Anyone else — another province, the commune itself, the
chair — is refused with a clear message and nothing is sent; a unit outside the meeting, the
province itself, an unknown or odd unit and a meeting that is not open are refused too."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state

VY, PY = "08707", "08740"  # Vĩnh Yên and Phúc Yên, communes of Phú Thọ (25)


def calls(ws: WsClient) -> list[dict[str, Any]]:
    return [m["data"] for m in ws.messages if m.get("type") == "event" and m.get("kind") == "call"]


async def call(ws: WsClient, mid: int, **target: Any) -> dict[str, Any]:
    return await ws.request({"type": "action", "meeting": mid, "action": "call", **target})


async def test_province_calls_its_commune_and_nobody_else_may(live_sqlite: LiveServer) -> None:
    srv = live_sqlite
    chair = await srv.login("chutri")
    mid = await schedule(chair, title="Hội nghị thử gọi điểm cầu")
    names = ("phutho", "hanoi", "vinhyen", "hoankiem", "chutri")
    who = {name: await WsClient.open(await srv.login(name)) for name in names}
    try:
        site, other_site = who["vinhyen"], who["hoankiem"]
        for ws in (site, other_site):
            assert (await ws.request({"type": "subscribe", "topic": f"meeting:{mid}"}))["type"] == "result"
        for name, root in (("phutho", "25"), ("chutri", "BCA")):
            answer = await who[name].request({"type": "subscribe", "topic": f"rollcall:{mid}:{root}"})
            assert answer["type"] == "result", answer

        # Not open yet: refused.
        answer = await call(who["phutho"], mid, unit=VY)
        assert (answer["type"], answer["code"]) == ("error", "wrong_state"), answer
        await set_state(chair, mid, "rehearsal", "live")

        # Refused: another province's operator, the commune itself, the chair, the province itself,
        # an unknown unit, odd input.
        refusals = [
            ("hanoi", {"unit": VY}, "out_of_scope"),
            ("vinhyen", {"unit": PY}, "forbidden"),
            ("chutri", {"unit": VY}, "forbidden"),
            ("phutho", {"unit": "25"}, "out_of_scope"),
            ("phutho", {"unit": "00070"}, "out_of_scope"),  # a commune of Hà Nội
            ("phutho", {"unit": "99999"}, "unit_not_found"),
            ("phutho", {"unit": "<script>alert(1)</script>%_*"}, "unit_not_found"),
            ("phutho", {"unit_id": 10**9}, "unit_not_found"),
        ]
        for name, target, code in refusals:
            answer = await call(who[name], mid, **target)
            assert answer["type"] == "error" and answer["code"] == code, (name, target, answer)
            assert not answer["message"].isascii(), answer  # a sentence in Vietnamese
        await asyncio.sleep(0.3)
        assert [calls(ws) for ws in who.values()] == [[]] * len(who), "a refused call sent nothing"

        # Phú Thọ calls Vĩnh Yên: its page and Phú Thọ's console get the call, nobody else.
        answer = await call(who["phutho"], mid, unit=VY)
        assert answer["type"] == "result", answer
        got = await site.until(lambda: calls(site), within=5)
        assert got[0]["code"] == VY and got[0]["by"] == "25" and got[0]["by_name"] == "Phú Thọ", got
        await who["phutho"].until(lambda: calls(who["phutho"]), within=5)
        await asyncio.sleep(0.3)
        assert calls(other_site) == [] and calls(who["chutri"]) == [] and calls(who["hanoi"]) == []
        # The roll call is untouched by a call (it is a nudge, not a state of the meeting).
        assert who["phutho"].seat(VY)["status"] == "not_called"
    finally:
        for ws in who.values():
            await ws.close()
