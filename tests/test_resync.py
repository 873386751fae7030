"""Lost events are noticed: a meeting's seqs are contiguous (every seq taken is carried by an
event, no-ops included), a server process that sees them skip ahead gives its clients fresh
snapshots, and the gap rule itself (server.live.gaps) in milliseconds."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from server import db as dbmod
from server.live.gaps import SeqGaps
from server.live.wire import encode
from server.state import BUS, DB, HUB
from sessions.meetings import MeetingState
from sessions.store import floor, live, units
from sessions.store import meetings as mstore
from sessions.store.live import LiveEvent
from sessions.units import Level
from tests.conftest import TREE, LiveServer
from tests.live_util import WsClient, schedule, set_state

# ------------------------------------------------------------------ the rule, as plain code


def test_contiguous_seqs_open_no_gap() -> None:
    gaps = SeqGaps(grace=1.0)
    gaps.watch(7)
    assert not gaps.seen(7, 11, 0.0)  # before the snapshot's seq is known: held, no gap yet
    assert not gaps.base(7, 10, 0.0)  # the snapshot was at 10: 11 follows it
    for seq in (11, 12, 12, 13):  # several events may share a seq
        assert not gaps.seen(7, seq, 1.0)
    assert gaps.open_since(7) is None


def test_a_gap_filled_within_the_grace_is_not_a_loss() -> None:
    gaps = SeqGaps(grace=1.0)
    gaps.watch(7)
    gaps.base(7, 10, 0.0)
    assert gaps.seen(7, 12, 5.0)  # 11 is missing: a gap opens
    assert not gaps.overdue(7, 5.5)
    assert not gaps.seen(7, 11, 5.6)  # published late by another process: filled
    assert gaps.open_since(7) is None and not gaps.overdue(7, 9.0)


def test_a_gap_left_open_is_a_loss_and_restarts_at_the_resync() -> None:
    gaps = SeqGaps(grace=1.0)
    gaps.watch(7)
    gaps.base(7, 10, 0.0)
    assert gaps.seen(7, 13, 5.0)
    assert not gaps.seen(7, 14, 5.2)  # the same gap, still open
    assert gaps.overdue(7, 6.0)
    gaps.restart(7)
    assert not gaps.seen(7, 15, 6.1)  # during the resync: held
    assert not gaps.base(7, 14, 6.2)  # the resync's snapshot was at 14: 15 follows
    assert gaps.open_since(7) is None
    assert not gaps.seen(7, 9, 7.0) and not gaps.seen(7, 5, 7.0)  # old events never open a gap


def test_a_meeting_nobody_here_follows_is_not_checked() -> None:
    gaps = SeqGaps()
    assert not gaps.seen(8, 100, 0.0) and not gaps.base(8, 1, 0.0)
    gaps.watch(8)
    gaps.forget(8)
    assert not gaps.seen(8, 200, 0.0)


# ------------------------------------------------------------------ the store keeps seqs contiguous


async def test_every_seq_of_a_meeting_is_carried_by_an_event(session_factory: dbmod.async_sessionmaker) -> None:
    """No-op actions (a hand raised twice, a mute repeated, nothing to lower) and a presence batch
    naming a site twice take no seq that no event carries: a gap can only mean a lost event."""
    factory = session_factory
    async with dbmod.transaction(factory) as s:
        await units.import_units(s, list(TREE))
        root = await units.get_by_code(s, "BCA")
        a, b = (await units.get_by_code(s, "08707")).id, (await units.get_by_code(s, "00070")).id
        mid = await mstore.schedule(s, title="p", agenda=[], start=datetime(2030, 1, 1, tzinfo=UTC),
                                    chair_unit_id=root.id, created_by_id=None,
                                    selectors=[mstore.Selector("BCA", (Level.PROVINCE, Level.DISTRICT,
                                                                       Level.COMMUNE))])
    at = datetime(2030, 1, 1, tzinfo=UTC)
    steps = [
        lambda s: _state(s, mid, MeetingState.REHEARSAL, at),
        lambda s: _state(s, mid, MeetingState.LIVE, at),
        lambda s: live.presence_many(s, mid, [(a, True), (b, True), (a, False), (a, True)], at),
        lambda s: floor.set_hand(s, mid, a, True, at),
        lambda s: floor.set_hand(s, mid, a, True, at),  # already raised: nothing changes
        lambda s: floor.set_hand(s, mid, b, False, at),  # not raised: nothing changes
        lambda s: floor.set_muted(s, mid, b, True),
        lambda s: floor.set_muted(s, mid, b, True),  # already muted
        lambda s: floor.lower_all_hands(s, mid),
        lambda s: floor.lower_all_hands(s, mid),  # none raised
        lambda s: floor.set_all_muted(s, mid, False),
        lambda s: floor.set_all_muted(s, mid, False),  # no chair's mute left
        lambda s: floor.grant(s, mid, a, at, "t"),
        lambda s: live.presence_many(s, mid, [(b, False), (b, True), (b, False)], at),
    ]
    carried: set[int] = set()
    for i, step in enumerate(steps):
        async with dbmod.transaction(factory) as s:
            events = await step(s)
        carried |= {e.seq for e in events}
        async with factory() as s:
            last = (await live.meeting_state(s, mid))["seq"]
        assert carried == set(range(1, last + 1)), f"after step {i}: seqs taken but carried by no event"


async def _state(s: dbmod.AsyncSession, mid: int, target: MeetingState, at: datetime) -> list[LiveEvent]:
    seq, _old, _new, touched = await mstore.change_state(s, mid, target, at=at, by_user_id=None, by_name="t")
    return [await live.meeting_event(s, mid, seq)] + [await live.seat_event(s, mid, u, seq) for u in touched]


# ------------------------------------------------------------------ the server resyncs on a gap


async def test_a_lost_event_makes_the_process_resync_its_clients(live_sqlite: LiveServer) -> None:
    """An event that skips seqs (those before it were lost on the bus) reaches the clients, and
    the gap stays open: after the grace every client of the meeting gets a fresh snapshot, unasked,
    and ends with the database's state — not with what the stray event said."""
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    console = await WsClient.open(chair)
    await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
    await console.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    site = await WsClient.open(await live_sqlite.login("vinhyen"))
    await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
    assert console.meeting is not None and site.own_seat is not None
    seq = console.meeting["seq"]
    app = live_sqlite.app
    async with app[DB]() as db:
        unit_id = (await units.get_by_code(db, "08707")).id
        (real,) = await live.seat_events(db, mid, {unit_id})
    # Published as if seqs seq+1 and seq+2 had been lost on the way: the row says what never was.
    stray = dataclasses.replace(real, seq=seq + 3, data={**real.data, "online": 7, "seq": seq + 3})
    await app[BUS].publish(f"meeting.{mid}", encode(stray))
    await console.until(lambda: (s := console.seat("08707")) and s["online"] == 7)
    await site.until(lambda: site.own_seat and site.own_seat["online"] == 7)

    def resynced(client: WsClient, topic: str) -> bool:
        return any(m["type"] == "snapshot" and m.get("resync") and m["topic"] == topic for m in client.messages)

    await console.until(lambda: resynced(console, f"rollcall:{mid}:BCA") and resynced(console, f"meeting:{mid}"),
                        within=10)
    await site.until(lambda: resynced(site, f"meeting:{mid}"), within=10)
    assert (console.seat("08707") or {})["online"] == 0 and (site.own_seat or {})["online"] == 0
    assert (console.meeting or {})["seq"] == seq

    # Later events follow the fresh snapshot as usual.
    await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": "08707", "confirm": True})
    await site.until(lambda: site.meeting and site.meeting["floor"] and site.meeting["floor"]["code"] == "08707")
    await console.until(lambda: console.meeting["floor"] and console.meeting["floor"]["code"] == "08707")
    await site.close()
    await console.close()


async def test_no_resync_without_a_gap(live_sqlite: LiveServer) -> None:
    """The positive control: ordinary changes, even many and fast, never trigger a resync."""
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    console = await WsClient.open(chair)
    await console.request({"type": "subscribe", "topic": f"rollcall:{mid}:BCA"})
    site = await WsClient.open(await live_sqlite.login("vinhyen"))
    await site.request({"type": "join", "meeting": mid})
    for _ in range(3):
        await site.request({"type": "action", "meeting": mid, "action": "raise_hand"})
        await site.request({"type": "action", "meeting": mid, "action": "raise_hand"})  # a no-op
        await site.request({"type": "action", "meeting": mid, "action": "lower_hand"})
    live_sqlite.clock.advance(seconds=1)
    await console.request({"type": "action", "meeting": mid, "action": "lower_all_hands"})  # a no-op
    await console.request({"type": "action", "meeting": mid, "action": "grant", "unit": "08707"})
    seat = await console.until(lambda: (s := console.seat("08707")) and s["hand_at"] is None and s["seq"] > 0 and s)
    async with live_sqlite.app[DB]() as db:
        last = (await live.meeting_state(db, mid))["seq"]
    await console.until(lambda: (console.seat("08707") or {}).get("seq") == last)
    stream = live_sqlite.app[HUB].gaps.streams[mid]
    assert stream.high == last and not stream.ahead, f"every seq arrived in order ({seat['seq']}, {stream})"
    assert not any(m.get("resync") for m in console.messages)
    await site.close()
    await console.close()


async def test_a_bridge_gets_the_floor_and_mutes_whose_events_were_lost(live_sqlite: LiveServer) -> None:
    """Committed, never published (as when the bus was away): the floor goes to 08707 and 08740 is
    muted. The next event that is published reveals the gap; the bridge's control channel gets
    resync snapshots and moves its floor and its mutes to what is stored."""
    from bridge.control import ControlChannel
    from tests.media_browser_util import bridge_token

    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal", "live")
    seen: list[tuple[int, str, str | None]] = []
    muted: list[frozenset[str]] = []
    channel = ControlChannel(live_sqlite.url, await bridge_token(live_sqlite, "25"), unit="25",
                             on_meeting=lambda m, state, floor: seen.append((m, state, floor)),
                             on_muted=lambda m, units: muted.append(units))
    site = await WsClient.open(await live_sqlite.login("vinhyen"))
    try:
        channel.start()
        await channel.watch(mid)
        await site.request({"type": "subscribe", "topic": f"meeting:{mid}"})
        await site.request({"type": "join", "meeting": mid})
        await site.until(lambda: site.own_seat and site.own_seat["online"] == 1)
        await asyncio.wait_for(channel.connected.wait(), 5)
        assert seen[-1] == (mid, "live", None)
        app, at = live_sqlite.app, live_sqlite.clock()
        async with dbmod.transaction(app[DB]) as db:  # committed; the events are dropped
            await floor.grant(db, mid, (await units.get_by_code(db, "08707")).id, at, "t")
            await floor.set_muted(db, mid, (await units.get_by_code(db, "08740")).id, True)
        resp = await chair.api("POST", f"/api/meetings/{mid}/rollcall",  # published as usual
                               json={"unit": "00070", "status": "present_in_person"})
        assert resp.status == 200, await resp.text()

        await site.until(lambda: site.meeting and site.meeting["floor"] and site.meeting["floor"]["code"] == "08707",
                         within=10)
        await site.until(lambda: any(m.get("resync") for m in site.messages))
        for _ in range(200):
            if seen[-1] == (mid, "live", "08707") and muted and muted[-1] == frozenset({"08740"}):
                break
            await asyncio.sleep(0.05)
        assert seen[-1] == (mid, "live", "08707") and muted[-1] == frozenset({"08740"})
    finally:
        await channel.close()
        await site.close()
