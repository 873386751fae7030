"""The live socket ``/ws`` under malformed and hostile input, against the real server.

Every bad frame — wrong JSON types in every field, unknown types and actions, huge ids, deep
nesting, binary frames, non-objects, oversize strings, topics with odd separators — gets one error
frame with its stable code; the socket stays open (a ping after it is answered) and nothing in the
database changes (``tests.test_scope.snapshot``; a positive control proves the diff can fail). An
unexpected exception inside a handler is answered ``internal_error`` and logged, the socket kept.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

from server.live import handlers, topics
from server.live.frames import MAX_DEPTH, MAX_FRAME, MAX_KEY, MAX_MESSAGE
from server.live.hub import CLOSE_ABUSE
from server.live.messages import KpiTopic, RaiseHand, parse_topic
from server.state import HUB
from sessions.store import live as live_store
from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state
from tests.media_browser_util import bridge_token
from tests.test_scope import changed, snapshot

Frame = str | bytes | dict[str, Any]
Case = tuple[str, Frame, str]  # (what it is, the frame, the error code it must get)
HOSTILE_ID = "hostile"  # the id the dict frames carry (WsClient's own requests count from 1)
LONG = "x" * 15_000  # a string as long as a frame allows (16 KiB)

# One value of each JSON type; a field gets every one but those of its own type.
VALUES: dict[str, Any] = {"null": None, "bool": True, "int": 7, "float": 1.5, "string": "7", "list": [7],
                          "object": {"a": 7}}


def wrong(*right: str, also: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    return [(kind, value) for kind, value in VALUES.items() if kind not in right and kind not in also]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def person_cases(mid: int) -> list[Case]:
    """What a chair's console could be made to send."""
    cases: list[Case] = [
        ("binary frame", b"\x00\x01\xff", "bad_message"),
        ("binary frame holding JSON", b'{"type":"ping"}', "bad_message"),
        ("empty text", "", "bad_message"),
        ("not JSON", "{not json", "bad_message"),
        ("truncated JSON", '{"type":"ping"', "bad_message"),
        ("NaN", '{"type":"ping","id":NaN}', "bad_message"),
        ("Infinity", '{"type":"action","meeting":Infinity,"action":"next"}', "bad_message"),
        ("integer over 4,300 digits", '{"type":"ping","id":1' + "0" * 5000 + "}", "bad_message"),
        ("lone surrogate", '{"type":"\\ud800"}', "bad_message"),
        ("lone surrogate in a topic", '{"type":"subscribe","topic":"kpi:\\udfff"}', "bad_message"),
        ("nested past the recursion limit", '{"type":"ping","id":' + "[" * 5000 + "]" * 5000 + "}", "bad_message"),
        ("nested past the depth limit", {"type": "ping", "x": nested(MAX_DEPTH + 1)}, "bad_message"),
        ("nested meeting id", {"type": "join", "meeting": nested(20)}, "bad_message"),
        *((f"a JSON {kind} at top level", json.dumps(v), "bad_message") for kind, v in VALUES.items()
          if kind != "object"),
        ("a list of messages", json.dumps([{"type": "ping"}]), "bad_message"),
        ("no type", {}, "unknown_type"),
        *((f"type: {kind}", {"type": v}, "unknown_type") for kind, v in wrong("string")),
        ("type in capitals", {"type": "PING"}, "unknown_type"),
        ("type with a space", {"type": "ping "}, "unknown_type"),
        ("type: a long string", {"type": LONG}, "unknown_type"),
        ("type: an action name", {"type": "grant", "meeting": mid, "unit": "08707"}, "unknown_type"),
        ("subscribe without topic", {"type": "subscribe"}, "bad_message"),
        *((f"subscribe topic: {kind}", {"type": "subscribe", "topic": v}, "bad_message")
          for kind, v in wrong("string")),
        ("unsubscribe without topic", {"type": "unsubscribe"}, "bad_message"),
        *((f"unsubscribe topic: {kind}", {"type": "unsubscribe", "topic": v}, "bad_message")
          for kind, v in wrong("string")),
        *((f"topic {topic[:40]!r}", {"type": "subscribe", "topic": topic}, "bad_topic") for topic in (
            "", ":", "meeting", "meeting:", f"meeting::{mid}", f"meeting:{mid}:", f"meeting: {mid}", f"meeting:{mid} ",
            f"meeting:+{mid}", f"meeting:0{mid}", f"meeting:{mid}.0", f"meeting:{mid}e0", "meeting:1_0", "meeting:١",
            "meeting:-1", "meeting:0", f"meeting:{MAX_KEY + 1}", "meeting:" + "9" * 30, "meeting:" + "9" * 5000,
            f"MEETING:{mid}", f"meeting;{mid}", f"meeting/{mid}", f"meeting\x00:{mid}", f"meeting:{mid}\n",
            f"rollcall:{mid}", f"rollcall:{mid}:", "rollcall::01", f"rollcall:{mid}:01:", f"rollcall:{mid}:01:25",
            f"rollcall:{mid}:0 1", "rollcall:x:01", "kpi", "kpi:", "kpi::01", "kpi:01:", "kpi:01 ", "kpi:0 1",
            "kpi:01/02", "kpi:01;02", "kpi:" + "0" * 40, "kpi:" + LONG, "directives:", "directives:01,02",
            "directives:*", "directives:BCA:x", f"foo:{mid}", "x" * 15_000)),
    ]
    for kind in ("join", "leave"):
        cases += [(f"{kind} without meeting", {"type": kind}, "bad_message")]
        cases += [(f"{kind} meeting: {k}", {"type": kind, "meeting": v}, "bad_message") for k, v in wrong("int")]
        cases += [(f"{kind} meeting {v}", {"type": kind, "meeting": v}, "bad_message")
                  for v in (0, -1, MAX_KEY + 1, 2**63, 10**30, 10**4000)]
        cases += [(f"{kind} unit: {k}", {"type": kind, "meeting": mid, "unit": v}, "bad_message")
                  for k, v in wrong("string", also=("null",))]
    for kind in ("stats", "speaking", "on_air"):
        cases += [(f"{kind} meeting: {k}", {"type": kind, "meeting": v, "sites": []}, "bad_message")
                  for k, v in wrong("int")]
        cases += [(f"{kind} from a person", {"type": kind, "meeting": mid, "sites": [], "unit": None}, "forbidden")]
    action = {"type": "action", "meeting": mid}
    cases += [
        ("action without a name", {"type": "action", "meeting": mid}, "bad_message"),
        *((f"action name: {kind}", {**action, "action": v}, "bad_message") for kind, v in wrong("string")),
        *((f"action {name[:40]!r}", {**action, "action": name}, "unknown_action") for name in (
            "fly", "GRANT", "grant ", "", "raise-hand", "__class__", "parse", "Grant", LONG)),
        ("unknown action without meeting", {"type": "action", "action": "fly"}, "unknown_action"),
        ("action without meeting", {"type": "action", "action": "next"}, "bad_message"),
        *((f"action meeting: {kind}", {"type": "action", "action": "next", "meeting": v}, "bad_message")
          for kind, v in wrong("int")),
        *((f"action meeting {v}", {"type": "action", "action": "next", "meeting": v}, "bad_message")
          for v in (0, -5, MAX_KEY + 1, 2**63, 10**30, 10**4000)),
        ("grant without unit", {**action, "action": "grant"}, "bad_message"),
        *((f"grant unit: {kind}", {**action, "action": "grant", "unit": v}, "bad_message")
          for kind, v in wrong("string")),
        *((f"grant unit_id: {kind}, no unit", {**action, "action": "grant", "unit_id": v}, "bad_message")
          for kind, v in wrong("int")),
        *((f"grant unit_id {v}", {**action, "action": "grant", "unit_id": v}, "bad_message")
          for v in (0, -1, MAX_KEY + 1, 2**63, 10**30)),
        ("grant to a long unit code", {**action, "action": "grant", "unit": LONG}, "unit_not_found"),
        ("grant to a code with odd characters", {**action, "action": "grant", "unit": "08707'; --"}, "unit_not_found"),
        ("grant confirm not true", {**action, "action": "grant", "unit": "08707", "confirm": "yes"},
         "confirm_required"),
        *((f"lower_hand unit_id {v}", {**action, "action": "lower_hand", "unit_id": v}, "bad_message")
          for v in (0, MAX_KEY + 1, 10**30)),
        *((f"{name} unit: {kind}", {**action, "action": name, "unit": v}, "bad_message")
          for name in ("mute", "unmute") for kind, v in wrong("string")),
        *((f"{name} unit_id {v}", {**action, "action": name, "unit_id": v}, "bad_message")
          for name in ("mute", "unmute") for v in (-1, MAX_KEY + 1)),
        ("mark without status", {**action, "action": "mark", "unit": "08707"}, "bad_message"),
        *((f"mark status: {kind}", {**action, "action": "mark", "unit": "08707", "status": v}, "bad_message")
          for kind, v in wrong("string")),
        *((f"mark status {s!r}", {**action, "action": "mark", "unit": "08707", "status": s}, "status_invalid")
          for s in ("present", "ABSENT", "", LONG)),
        ("mark status present_online", {**action, "action": "mark", "unit": "08707", "status": "present_online"},
         "status_invalid"),
        ("mark without unit", {**action, "action": "mark", "status": "absent", "reason": "ốm"}, "bad_message"),
        *((f"mark reason: {kind}", {**action, "action": "mark", "unit": "08707", "status": "absent", "reason": v},
           "bad_message") for kind, v in wrong("string")),
        ("mark reason too long", {**action, "action": "mark", "unit": "08707", "status": "absent", "reason": LONG},
         "reason_too_long"),
        ("state without to", {**action, "action": "state"}, "bad_message"),
        *((f"state to: {kind}", {**action, "action": "state", "to": v}, "bad_message") for kind, v in wrong("string")),
        *((f"state to {s!r}", {**action, "action": "state", "to": s}, "state_invalid") for s in ("LIVE", "open", "")),
        ("state back to scheduled", {**action, "action": "state", "to": "scheduled"}, "illegal_transition"),
        ("an action on a missing meeting", {"type": "action", "action": "next", "meeting": MAX_KEY},
         "meeting_not_found"),
    ]
    return cases


def bridge_cases(mid: int) -> list[Case]:
    """What a bridge's control channel could be made to send (the reports' own checks)."""
    stats = {"type": "stats", "meeting": mid}
    speaking = {"type": "speaking", "meeting": mid}
    on_air = {"type": "on_air", "meeting": mid}
    site = {"unit": "08707"}
    return [
        *((f"stats sites: {kind}", {**stats, "sites": v}, "stats_invalid") for kind, v in wrong("list")),
        ("stats without sites", stats, "stats_invalid"),
        ("stats: 501 sites", {**stats, "sites": [site] * 501}, "stats_invalid"),
        *((f"stats site: {kind}", {**stats, "sites": [v]}, "stats_invalid") for kind, v in wrong("object")),
        *((f"stats unit: {kind}", {**stats, "sites": [{"unit": v}]}, "stats_invalid") for kind, v in wrong("string")),
        *((f"stats {field}: {kind}", {**stats, "sites": [{**site, field: v}]}, "stats_invalid")
          for field in ("rtt_ms", "loss", "kbps", "fps") for kind, v in wrong("int", "float", "null")),
        ("stats rtt 1e308", {**stats, "sites": [{**site, "rtt_ms": 1e308}]}, "stats_invalid"),
        ("stats negative loss", {**stats, "sites": [{**site, "loss": -0.1}]}, "stats_invalid"),
        ("stats for a long unit code", {**stats, "sites": [{"unit": LONG}]}, "out_of_scope"),
        *((f"speaking sites: {kind}", {**speaking, "sites": v}, "speaking_invalid") for kind, v in wrong("list")),
        *((f"speaking: {kind}", {**speaking, "sites": [{**site, "speaking": v, "level": 3}]}, "speaking_invalid")
          for kind, v in wrong("bool")),
        *((f"speaking level: {kind}", {**speaking, "sites": [{**site, "speaking": True, "level": v}]},
           "speaking_invalid") for kind, v in wrong("int", "null")),
        ("speaking level 128", {**speaking, "sites": [{**site, "speaking": True, "level": 128}]}, "speaking_invalid"),
        *((f"on_air unit: {kind}", {**on_air, "unit": v}, "on_air_invalid") for kind, v in wrong("string", "null")),
        *((f"on_air {field}: {kind}", {**on_air, "unit": None, field: v}, "on_air_invalid")
          for field in ("video", "audio") for kind, v in wrong("bool")),
        *((f"bridge join unit: {kind}", {"type": "join", "meeting": mid, "unit": v}, "bad_message")
          for kind, v in wrong("string", also=("null",))),
        ("bridge join for a long unit code", {"type": "join", "meeting": mid, "unit": LONG}, "unit_not_found"),
    ]


async def send(ws: WsClient, frame: Frame) -> None:
    if isinstance(frame, bytes):
        await ws.ws.send_bytes(frame)
    elif isinstance(frame, str):
        await ws.ws.send_str(frame)
    else:
        await ws.ws.send_str(json.dumps({**frame, "id": HOSTILE_ID}))


async def refused(http: aiohttp.ClientSession, label: str, frame: Frame, code: str) -> None:
    """On a fresh socket (so that strikes never add up to 4029): one error frame with ``code``,
    then the socket still answers a ping."""
    if isinstance(frame, str | bytes):
        assert len(frame.encode() if isinstance(frame, str) else frame) <= MAX_MESSAGE, label
    ws = WsClient(await http.ws_connect("/ws"))
    try:
        await send(ws, frame)
        error = await ws.until(lambda: next((m for m in ws.messages if m["type"] == "error"), None))
        assert error["code"] == code, f"{label}: {error}"
        assert isinstance(error["message"], str) and error["message"], label
        assert error["id"] == (HOSTILE_ID if isinstance(frame, dict) else None), f"{label}: {error}"
        assert [m["type"] for m in ws.messages] == ["error"], f"{label}: {ws.messages}"
        if code == "confirm_required":  # what the page asks the chair rides along
            assert error["detail"]["warning"] == "not_connected", f"{label}: {error}"
        pong = await ws.request({"type": "ping"})
        assert pong["type"] == "pong", f"{label}: socket did not answer a ping after it: {pong}"
        assert not ws.ws.closed, label
    finally:
        await ws.close()


async def bearer(live: LiveServer, code: str) -> aiohttp.ClientSession:
    token = await bridge_token(live, code)
    http = aiohttp.ClientSession(base_url=live.url, headers={"Authorization": f"Bearer {token}"})
    live.sessions.append(http)
    return http


async def test_hostile_messages_get_an_error_each_and_change_nothing(live: LiveServer) -> None:
    chair = await live.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    bridge = await bearer(live, "BCA")  # serves the chair: may send on_air too
    before = await snapshot(live)
    for who, cases in ((chair.http, person_cases(mid)), (bridge, bridge_cases(mid))):
        for label, frame, code in cases:
            await refused(who, label, frame, code)
            assert not changed(before, await snapshot(live)), f"{label}: the database changed"

    # Positive control: the same diff sees a real change.
    site = await WsClient.open(await live.login("vinhyen"))
    await site.request({"type": "join", "meeting": mid})
    assert (await site.request({"type": "action", "meeting": mid, "action": "raise_hand"}))["type"] == "result"
    assert changed(before, await snapshot(live))
    await site.close()


async def test_ids_are_echoed_as_sent(live_sqlite: LiveServer) -> None:
    ws = await (await live_sqlite.login("chutri")).http.ws_connect("/ws")
    for rid in (10**100, -1, 1.5, "x" * 1000, {"a": [1, {"b": None}]}, [nested(MAX_DEPTH - 2)], True, None):
        await ws.send_str(json.dumps({"type": "nonsense", "id": rid}))
        error = await ws.receive_json(timeout=5)
        await ws.send_str(json.dumps({"type": "ping", "id": rid}))
        pong = await ws.receive_json(timeout=5)
        assert (error["type"], error["code"], error["id"]) == ("error", "unknown_type", rid)
        assert (pong["type"], pong["id"]) == ("pong", rid)
    await ws.close()


async def test_a_message_over_the_limit_is_answered_and_the_socket_kept(live_sqlite: LiveServer) -> None:
    """Above 16 KiB a message is refused with ``message_too_large``, the socket kept; only a frame
    above what the transport reads into memory (MAX_FRAME) ends the socket (RFC 6455: 1009)."""
    chair = await live_sqlite.login("chutri")
    before = await snapshot(live_sqlite)
    ws = await chair.http.ws_connect("/ws")
    for size in (MAX_MESSAGE, MAX_FRAME - 100):
        await ws.send_str(json.dumps({"type": "subscribe", "topic": "x" * size, "id": size}))
        error = await ws.receive_json(timeout=5)
        assert (error["type"], error["code"], error["id"]) == ("error", "message_too_large", None)
        await ws.send_str(json.dumps({"type": "ping", "id": 1}))
        assert (await ws.receive_json(timeout=5))["type"] == "pong"
    await ws.send_str(json.dumps({"type": "subscribe", "topic": "x" * MAX_FRAME}))
    msg = await ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    assert not changed(before, await snapshot(live_sqlite))


async def test_binary_frames_count_as_strikes(live_sqlite: LiveServer) -> None:
    ws = await (await live_sqlite.login("vinhyen")).http.ws_connect("/ws")
    for _ in range(60):
        await ws.send_bytes(b"\x00")
    codes = [msg.json()["code"] async for msg in ws if msg.type == WSMsgType.TEXT]
    assert ws.close_code == CLOSE_ABUSE
    assert codes and set(codes) == {"bad_message"}


def test_a_topic_is_read_only_in_its_written_form() -> None:
    for text in ("meeting:1", f"meeting:{MAX_KEY}", "rollcall:12:08707", "kpi:BCA", "directives:01", "kpi:a-b_c"):
        assert parse_topic(text).name == text


async def test_an_exception_in_a_topic_handler_is_internal_error(live_sqlite: LiveServer,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("kpi slide exploded")

    monkeypatch.setitem(topics.SUBSCRIBE, KpiTopic, broken)
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    ws = await WsClient.open(chair)
    with caplog.at_level(logging.ERROR, logger="hoinghi.ws"):
        error = await ws.request({"type": "subscribe", "topic": "kpi:BCA"})
    assert (error["type"], error["code"]) == ("error", "internal_error")
    assert "kpi slide exploded" not in error["message"]  # the detail stays in the log
    logged = [r for r in caplog.records if r.name == "hoinghi.ws" and r.exc_info]
    assert logged and isinstance(logged[0].exc_info[1], RuntimeError)  # type: ignore[index]
    assert (await ws.request({"type": "ping"}))["type"] == "pong"
    assert (await ws.request({"type": "subscribe", "topic": f"meeting:{mid}"}))["type"] == "result"
    assert ws.meeting is not None and ws.meeting["id"] == mid
    conn = next(iter(live_sqlite.app[HUB].connections))
    assert set(conn.subs) == {f"meeting:{mid}"}
    await ws.close()


async def test_an_exception_in_an_action_or_a_batch_is_internal_error(live_sqlite: LiveServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal")

    async def broken_action(*args: object) -> None:
        raise KeyError("hand")

    async def broken_read(*args: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setitem(handlers.HANDLERS, RaiseHand, broken_action)
    monkeypatch.setattr(live_store, "meeting_state", broken_read)
    site = await WsClient.open(await live_sqlite.login("vinhyen"))
    before = await snapshot(live_sqlite)
    for msg in ({"type": "action", "meeting": mid, "action": "raise_hand"},  # the action itself fails
                {"type": "subscribe", "topic": f"meeting:{mid}"}):  # the batched snapshot read fails
        answer = await site.request(msg)
        assert (answer["type"], answer["code"]) == ("error", "internal_error"), (msg, answer)
        assert (await site.request({"type": "ping"}))["type"] == "pong"
    assert not next(iter(live_sqlite.app[HUB].connections)).subs  # a failed subscription leaves nothing behind
    assert not changed(before, await snapshot(live_sqlite))
    await site.close()
