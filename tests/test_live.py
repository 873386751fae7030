"""Meetings over the real server: lifecycle, roll call through live connections, hands and
floor, scope of subscriptions and actions, bad websocket input."""

from __future__ import annotations

import csv
import io

from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state


async def test_meeting_flow_over_websocket(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    console = await WsClient.open(chair)
    await console.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
    assert console.meeting and console.meeting["state"] == "scheduled"
    assert {s["code"] for s in console.seats.values()} >= {"01", "25", "79", "08707", "00070", "26734"}

    # A site cannot join before rehearsal: wrong state, stable code, connection kept.
    site_client = await live.login("vinhyen")
    site = await WsClient.open(site_client)
    await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    err = await site.request({"type": "join", "meeting": mid})
    assert err["type"] == "error" and err["code"] == "wrong_state"

    await set_state(chair, mid, "rehearsal", "live")
    await console.until(lambda: console.meeting["state"] == "live")
    ok = await site.request({"type": "join", "meeting": mid})
    assert ok["type"] == "result"
    seat = await console.until(lambda: (s := console.seat("08707")) and s["online"] and s)
    assert seat["status"] == "present_online"

    # Raise hand; the chair grants the floor; the site sees it holds the floor.
    assert (await site.request({"type": "action", "meeting": mid, "action": "raise_hand"}))["type"] == "result"
    await console.until(lambda: console.seat("08707")["hand_at"])
    assert (await console.request({"type": "action", "meeting": mid, "action": "next"}))["type"] == "result"
    await site.until(lambda: site.meeting["floor"] and site.meeting["floor"]["code"] == "08707")
    assert console.seat("08707")["hand_at"] is None

    # The chair mutes the site: the site cannot lift the chair's mute, the chair can.
    await console.request({"type": "action", "meeting": mid, "action": "mute", "unit": "08707"})
    await site.until(lambda: site.own_seat and site.own_seat["muted"] and site.own_seat["muted_by"] == "chair")
    err = await site.request({"type": "action", "meeting": mid, "action": "unmute"})
    assert (err["type"], err["code"]) == ("error", "muted_by_higher"), err
    assert "chủ trì" in err["message"]
    await console.request({"type": "action", "meeting": mid, "action": "unmute", "unit": "08707"})
    await console.until(lambda: not console.seat("08707")["muted"])
    # A site's own mute is its own to lift.
    await site.request({"type": "action", "meeting": mid, "action": "mute"})
    await console.until(lambda: console.seat("08707")["muted_by"] == "site")
    await site.request({"type": "action", "meeting": mid, "action": "unmute"})
    await console.until(lambda: not console.seat("08707")["muted"])

    # Drop and rejoin: one record, two intervals.
    await site.close()
    await console.until(lambda: console.seat("08707")["online"] == 0)
    site2 = await WsClient.open(site_client)
    await site2.request({"type": "join", "meeting": mid})
    await console.until(lambda: console.seat("08707")["online"] == 1)

    await set_state(chair, mid, "concluded")
    await console.until(lambda: console.meeting["state"] == "concluded")
    resp = await chair.get(f"/meetings/{mid}/attendance.csv")
    assert resp.status == 200
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    row = next(r for r in rows if r[0] == "08707")
    assert row[4] == "Có mặt trực tuyến" and row[8] == "2"
    await site2.close()
    await console.close()


async def test_site_cannot_run_the_meeting(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    site_client = await live.login("vinhyen")
    site = await WsClient.open(site_client)
    for msg in ({"type": "action", "meeting": mid, "action": "grant", "unit": "08707"},
                {"type": "action", "meeting": mid, "action": "state", "to": "concluded"},
                {"type": "action", "meeting": mid, "action": "mark", "unit": "08740", "status": "present_in_person"},
                {"type": "action", "meeting": mid, "action": "mute", "unit": "08740"},
                {"type": "subscribe", "topic": f"rollcall:{mid}:25"},
                {"type": "subscribe", "topic": f"rollcall:{mid}:01"}):
        reply = await site.request(msg)
        assert reply["type"] == "error" and reply["code"] in ("chair_only", "forbidden", "out_of_scope"), (msg, reply)
    for path, body in ((f"/api/meetings/{mid}/state", {"to": "concluded"}),
                       (f"/api/meetings/{mid}/floor", {"action": "grant", "unit": "08707"}),
                       (f"/api/meetings/{mid}/rollcall", {"unit": "08740", "status": "absent", "reason": "x"})):
        resp = await site_client.api("POST", path, json=body)
        assert resp.status == 403, (path, await resp.text())
    resp = await chair.get(f"/api/meetings/{mid}")
    assert (await resp.json())["live"]["meeting"]["state"] == "live"
    await site.close()


async def test_bad_websocket_input(live_sqlite: LiveServer) -> None:
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal")
    ws = await WsClient.open(chair)
    await ws.ws.send_str("{not json")
    await ws.until(lambda: any(m.get("code") == "bad_message" for m in ws.messages))
    assert (await ws.request({"type": "nonsense"}))["code"] == "unknown_type"
    assert (await ws.request({"type": "action", "meeting": mid, "action": "fly"}))["code"] == "unknown_action"
    reply = await ws.request({"type": "action", "meeting": mid, "action": "mark", "unit": "08707", "status": "absent",
                              "reason": "  "})
    assert reply["code"] == "reason_required"
    reply = await ws.request({"type": "action", "meeting": mid, "action": "grant", "unit": "99999"})
    assert reply["code"] == "unit_not_found"
    reply = await ws.request({"type": "action", "meeting": mid, "action": "state", "to": "concluded"})
    assert reply["code"] == "illegal_transition"
    # The connection is kept after all of that.
    assert (await ws.request({"type": "ping"}))["type"] == "pong"
    await ws.close()
