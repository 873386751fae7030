"""Hub flow control and abuse handling: a slow client is dropped, not buffered; a flood of
actions is refused with a stable code without changing state; an abusive socket is closed."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from aiohttp import WSMsgType
from openpyxl import load_workbook

from server.live.hub import CLOSE_SLOW, Connection, Hub, Outbox, Subscription
from server.live.wire import encode
from sessions.roles import Principal, Role
from sessions.store.live import LiveEvent
from tests.conftest import LiveServer
from tests.live_util import WsClient, schedule, set_state


class StuckSocket:
    """A peer that never reads: every send blocks, as a full TCP window does."""

    def __init__(self) -> None:
        self.closed = False
        self.close_code: int | None = None
        self.sent = 0

    async def send_frame(self, frame: bytes, opcode: WSMsgType) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self, *, code: int = 1000, message: bytes = b"") -> None:
        self.closed, self.close_code = True, code


async def test_slow_client_is_dropped_not_buffered() -> None:
    hub = Hub(queue_size=8)
    sock = StuckSocket()
    who = Principal("user", 1, "x", 1, "01", Role.SITE_OPERATOR)
    outbox = Outbox(sock, hub.queue_size)
    conn = Connection(outbox.send, who)
    hub.connect(conn, outbox)
    sub = Subscription(conn, "meeting:1", 1, "meeting", 1)
    hub.add(sub)
    sub.snapshot_sent(0)
    for seq in range(1, 50):
        event = LiveEvent(1, seq, "meeting", {"seq": seq, "state": "live"})
        await hub.on_bus("meeting.1", encode(event))
    await asyncio.sleep(0)
    assert outbox.dropped and sock.close_code == CLOSE_SLOW
    assert outbox.queue.qsize() <= 8  # bounded: never grew with the backlog
    await hub.disconnect(conn)


async def test_snapshot_buffer_drops_events_already_in_the_snapshot() -> None:
    hub = Hub()
    sent: list[bytes] = []
    who = Principal("user", 1, "x", 1, "01", Role.CHAIR)
    conn = Connection(sent.append, who)
    sub = Subscription(conn, "meeting:1", 1, "meeting", 1)
    hub.add(sub)  # registered before the snapshot is read
    for seq in (3, 4, 5):
        await hub.on_bus("meeting.1", encode(LiveEvent(1, seq, "meeting", {"seq": seq})))
    assert sent == []  # buffered while the snapshot loads
    sub.snapshot_sent(4)  # the snapshot already reflects seq ≤ 4
    assert len(sent) == 1 and b'"seq":5' in sent[0]
    await hub.on_bus("meeting.1", encode(LiveEvent(1, 6, "meeting", {"seq": 6})))
    assert len(sent) == 2


async def test_hand_flood_is_rate_limited_and_changes_nothing(live_sqlite: LiveServer) -> None:
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    site = await WsClient.open(await live_sqlite.login("vinhyen"))
    await site.request({"type": "join", "meeting": mid})
    replies: list[dict[str, Any]] = []
    for _ in range(30):
        replies.append(await site.request({"type": "action", "meeting": mid, "action": "raise_hand"}))
    codes = [r.get("code") for r in replies if r["type"] == "error"]
    assert "rate_limited" in codes and all(c == "rate_limited" for c in codes)
    snap = await (await chair.get(f"/api/meetings/{mid}/rollcall?unit=25")).json()
    seat = next(s for s in snap["seats"] if s["code"] == "08707")
    assert seat["hand_at"] is not None  # raised once, no duplicate queue entries
    assert not site.ws.closed  # a flood is refused, the connection kept
    await site.close()


async def test_abusive_socket_is_closed(live_sqlite: LiveServer) -> None:
    user = await live_sqlite.login("vinhyen")
    ws = await user.http.ws_connect("/ws")
    for _ in range(60):
        await ws.send_str("[]")
    codes = []
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            codes.append(msg.json().get("code"))
    assert ws.close_code == 4029
    assert codes and set(codes) == {"bad_message"}  # told why before being cut off


async def test_attendance_xlsx(live_sqlite: LiveServer) -> None:
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    site = await WsClient.open(await live_sqlite.login("vinhyen"))
    await site.request({"type": "join", "meeting": mid})
    await chair.api("POST", f"/api/meetings/{mid}/rollcall", json={"unit": "08740", "status": "absent",
                                                                    "reason": "Mất kết nối internet"})
    resp = await chair.get(f"/meetings/{mid}/attendance.xlsx")
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    rows = {r[0]: r for r in sheet.iter_rows(min_row=3, values_only=True)}
    assert rows["08707"][4] == "Có mặt trực tuyến" and rows["08707"][8] == 1
    assert rows["08740"][4] == "Vắng" and rows["08740"][5] == "Mất kết nối internet"
    await site.close()
