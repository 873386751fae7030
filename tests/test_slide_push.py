"""Put a slide on every screen (issue #14 item 4) over the live API: the chair's and a province
operator's pushes reach exactly the sites below them, the newest applicable push wins, a
reconnecting page gets the current push in its snapshot, and every refusal changes nothing."""

from __future__ import annotations

from typing import Any

from sessions.slide_push import effective
from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state

PARTICIPANTS = [{"unit": "01", "levels": ["province", "commune"]}, {"unit": "25", "levels": ["province", "commune"]}]


def _push(scope: int, seq: int, slide: str = "X") -> dict[str, Any]:
    return {"scope": {"unit_id": scope}, "slide": {"code": slide}, "seq": seq}


def test_effective_push_is_the_newest_applicable_one() -> None:
    root, province, commune, other = 1, 2, 3, 4
    path = [root, province, commune]
    assert effective([], path) is None
    assert effective([_push(other, 5)], path) is None  # another province's push: own slide
    national, local = _push(root, 3, "BCA"), _push(province, 4, "25")
    assert effective([national, local], path) is local  # the most specific, newer
    newer_national = _push(root, 6, "BCA")
    assert effective([newer_national, local], path) is newer_national  # the chair's is newer
    assert effective([newer_national, local], [root, other]) is newer_national


def slide_state(ws: WsClient, topic: str) -> dict[str, Any] | None:
    """What the page knows of the pushes: the last snapshot's, then every ``slide`` event of a
    higher seq (as web/static/slides.js applies them)."""
    state: dict[str, Any] | None = None
    for msg in ws.messages:
        if msg["type"] == "snapshot" and msg.get("topic") == topic:
            slides = msg["data"].get("slides") or {"pushes": [], "path": []}
            state = {"seq": msg["seq"], "pushes": slides["pushes"], "path": slides["path"]}
        elif msg["type"] == "event" and msg.get("kind") == "slide" and state is not None \
                and msg["data"]["seq"] >= state["seq"]:
            state = {**state, "seq": msg["data"]["seq"], "pushes": msg["data"]["pushes"]}
    return state


def shown(ws: WsClient, topic: str) -> str | None:
    """The code of the slide the site shows instead of its own (None: its own)."""
    state = slide_state(ws, topic)
    if state is None:
        return None
    push = effective(state["pushes"], state["path"])
    return push["slide"]["code"] if push else None


async def test_pushes_reach_the_sites_below_and_refusals_change_nothing(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair, PARTICIPANTS)
    topic = f"meeting:{mid}"
    await set_state(chair, mid, "rehearsal", "live")
    clients = {name: await WsClient.open(await live.login(name))
               for name in ("chutri", "phutho", "hanoi", "vinhyen", "hoankiem")}
    for ws in clients.values():
        assert (await ws.request({"type": "subscribe", "topic": topic}))["type"] == "result"
    console, phutho, hanoi, vinhyen, hoankiem = clients.values()
    assert shown(vinhyen, topic) is None and shown(hoankiem, topic) is None

    async def act(ws: WsClient, action: str, **fields: Any) -> dict[str, Any]:
        return await ws.request({"type": "action", "meeting": mid, "action": action, **fields})

    async def both(v: str | None, h: str | None) -> None:
        await vinhyen.until(lambda: shown(vinhyen, topic) == v)
        await hoankiem.until(lambda: shown(hoankiem, topic) == h)

    # The chair shows the national slide, then Phú Thọ's: both sites follow.
    assert (await act(console, "show_slide"))["type"] == "result"
    await both("BCA", "BCA")
    # The national slide lies outside a commune's subtree: followable while it is pushed.
    assert (await vinhyen.request({"type": "subscribe", "topic": "kpi:BCA"}))["type"] == "result"
    assert (await act(console, "show_slide", unit="25"))["type"] == "result"
    await both("25", "25")
    assert (await act(console, "own_slides"))["type"] == "result"
    await both(None, None)
    err = await vinhyen.request({"type": "subscribe", "topic": "kpi:BCA"})
    assert (err["type"], err["code"]) == ("error", "out_of_scope"), err  # released: its own subtree again

    # Phú Thọ's operator pushes to its communes only; Hà Nội's commune keeps its own slide.
    assert (await act(phutho, "show_slide"))["type"] == "result"
    await vinhyen.until(lambda: shown(vinhyen, topic) == "25")
    assert shown(hoankiem, topic) is None
    # A newer national push wins over it; the province's newer push wins back for its communes.
    await act(console, "show_slide")
    await both("BCA", "BCA")
    await act(phutho, "show_slide", unit="08740")
    await both("08740", "BCA")
    # The province releases its own: its communes follow the chair's push again.
    await act(phutho, "own_slides")
    await both("BCA", "BCA")

    # A page that reconnects gets the current push in its snapshot.
    await vinhyen.close()
    vinhyen = await WsClient.open(await live.login("vinhyen"))
    await vinhyen.request({"type": "subscribe", "topic": topic})
    assert shown(vinhyen, topic) == "BCA"

    # Refusals: a clear Vietnamese message, a stable code, and nothing changes.
    before = slide_state(console, topic)
    refused = [
        (vinhyen, {"unit": "25"}, "forbidden", "Chỉ chủ trì hội nghị"),  # a site operator
        (hanoi, {"unit": "25"}, "out_of_scope", "ngoài phạm vi"),  # another province's slide
        (console, {"unit": "99999"}, "unit_not_found", "Không tìm thấy"),  # no such unit
        (console, {"unit": "x y"}, "bad_message", "mã đơn vị"),  # not a code at all
    ]
    for ws, fields, code, words in refused:
        err = await act(ws, "show_slide", **fields)
        assert (err["type"], err["code"]) == ("error", code), err
        assert words in err["message"], err
    err = await act(vinhyen, "own_slides")
    assert (err["type"], err["code"]) == ("error", "forbidden") and "trình chiếu" in err["message"], err
    await console.request({"type": "ping"})
    assert slide_state(console, topic) == before
    assert shown(hoankiem, topic) == "BCA"

    # Not while the meeting is over: the pushes are over with it.
    await set_state(chair, mid, "concluded")
    err = await act(console, "show_slide")
    assert (err["type"], err["code"]) == ("error", "wrong_state"), err
    for ws in (console, phutho, hanoi, vinhyen, hoankiem):
        await ws.close()
