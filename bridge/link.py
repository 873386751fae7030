"""A bridge's tie to the rest of the system, wired to its peers:

- the server's control channel (``bridge.control``) moves each room's floor, and tells the server
  which sites play here (the roll call's present-online: a bridge that dies leaves a gap) and how
  their connections are doing (health, every ``STATS_SECONDS``);
- with an upstream, the first peer of a meeting starts that meeting's cascade
  (``bridge.cascade.Uplink``): play the upstream's programme, publish the local floor holder up.
  A cascade whose upstream connection fails is started again, with backoff, while sites remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bridge.cascade import Uplink
from bridge.control import ControlChannel
from bridge.room import BridgeState, Peer
from bridge.speaking import SpeakingChanges, SpeakingMeter
from bridge.upstream_tokens import UpstreamTokens

log = logging.getLogger("hoinghi.bridge.link")

STATS_SECONDS = 5.0
SPEAKING_SECONDS = 0.2  # how often speaking states and the programme's on-air source are checked
ON_AIR_REPEAT = 5.0  # the on-air state is said again this often (a console that just opened learns it)
# A publisher whose camera sent nothing for this long is gone (its browser or its bridge died):
# its peer ends, so the programme falls back to the chair instead of a frozen picture until
# ICE consent fails (~30 s); a publisher that is still alive publishes again (pages retry).
STALL_SECONDS = 5.0
# A publication that never carried anything this long after it was answered is gone too, whether or
# not its connection came up: its bridge died during the handshake, or just after it (a province's
# cascade publishes its floor holder's new publication before that one carries anything here). A
# floor holder's publication replaced by it would otherwise hold the programme on the old one's last
# frame until ICE consent fails (~30 s). A live publisher's camera and microphone send within a second.
HANDSHAKE_SECONDS = 6.0
ENDED = ("concluded", "cancelled")
RETRY = (0.5, 1.0, 2.0, 4.0)
# How long the first peer of a meeting waits for the upstream's codec before it is answered with
# its own (provisional: ended if the upstream's turns out to be another).
UPSTREAM_CODEC_WAIT = 3.0


def media_counts(peer: Peer) -> tuple[int, int]:
    """What must keep moving in a publication with a camera: its video frames (every rendition: one
    whose high never flowed still counts) once it showed a picture — a camera that stopped is a
    stall even while its sound goes on; before that, its frames of every kind."""
    video = sum(s.frames for s in peer.sources if s.kind == "video")
    return (video, 0) if video else (0, sum(s.frames for s in peer.sources))


def stalled(counts: tuple[int, int], unchanged_for: float) -> bool:
    """Whether a publication whose ``counts`` (:func:`media_counts`) have not moved for
    ``unchanged_for`` seconds is gone: it carried something, then stopped; or it never carried
    anything (connected or not: a publication that carries nothing holds the programme on a frozen
    picture)."""
    if any(counts):
        return unchanged_for >= STALL_SECONDS
    return unchanged_for >= HANDSHAKE_SECONDS


class BridgeLink:
    def __init__(self, state: BridgeState) -> None:
        self.state = state
        config = state.config
        self.channel: ControlChannel | None = None
        if config.server_url and config.token:
            self.channel = ControlChannel(config.server_url, config.token, on_meeting=self.on_meeting,
                                          unit=config.unit, on_muted=self.on_muted)
        self.tokens = UpstreamTokens(self.channel, config.upstream_key)
        self.uplinks: dict[int, Uplink] = {}
        self._starting: dict[int, asyncio.Task[None]] = {}
        self._awaiting: dict[int, int] = {}  # meeting → peers being answered that wait for its codec
        self._upstream_unit: str | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._stall_task: asyncio.Task[None] | None = None
        self._media_task: asyncio.Task[None] | None = None
        self._speaking = SpeakingChanges()
        self._on_air: dict[int, tuple[tuple[str | None, bool, bool], float]] = {}
        self._last_bytes: dict[str, tuple[float, int, int]] = {}
        state.on_open.append(self.peer_opened)
        state.on_close.append(self.peer_closed)
        if config.upstream_url:
            state.before_answer = self.upstream_codec

    def start(self) -> None:
        self._stall_task = asyncio.create_task(self._stall_loop(), name="bridge-stalls")
        if self.channel is not None:
            self.channel.start()
            self._stats_task = asyncio.create_task(self._every(STATS_SECONDS, self.report_stats, "stats"),
                                                   name="bridge-stats")
            self._media_task = asyncio.create_task(
                self._every(SPEAKING_SECONDS, self.report_media, "speaking / on-air"), name="bridge-speaking")

    async def close(self) -> None:
        """Cancel and await every task this link started: the report loops and the cascades (each
        closes its uplink as it ends)."""
        tasks = [t for t in (self._stats_task, self._stall_task, self._media_task) if t is not None]
        tasks += self._starting.values()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for uplink in list(self.uplinks.values()):
            with contextlib.suppress(Exception):
                await uplink.close()
        self.uplinks.clear()
        if self.channel is not None:
            await self.channel.close()

    # ------------------------------------------------------------------ server → bridge

    async def on_meeting(self, meeting: int, state: str, floor: str | None) -> None:
        room = self.state.room(meeting)
        room.set_floor(floor)
        uplink = self.uplinks.get(meeting)
        if uplink is not None:
            try:
                await uplink.floor_changed()
            except Exception:
                log.exception("cascade: floor change of meeting %s failed", meeting)
        if state in ENDED:  # the meeting is over: end its media here
            for peer in [p for p in self.state.peers.values() if p.meeting == meeting]:
                await self.state.close_peer(peer, f"the meeting is {state}")

    def on_muted(self, meeting: int, units: frozenset[str]) -> None:
        self.state.room(meeting).set_muted(units)

    # ------------------------------------------------------------------ peers → server, cascade

    async def peer_opened(self, peer: Peer) -> None:
        if self.channel is not None:
            await self.channel.watch(peer.meeting)
            known = self.channel.muted.get(peer.meeting)
            room = self.state.rooms.get(peer.meeting)
            if known is not None and room is not None and not room.programme.mutes_known:
                room.set_muted(known)  # the meeting was watched before this room existed here
            if peer.kind == "play" and peer.role == "site":
                await self.channel.site_connected(peer.meeting, peer.unit)
        if self.state.config.upstream_url:
            self._ensure_uplink(peer.meeting)
        uplink = self.uplinks.get(peer.meeting)
        if peer.kind == "publish" and uplink is not None:
            await uplink.floor_changed()  # the floor holder may have just started sending here

    async def peer_closed(self, peer: Peer) -> None:
        if self.channel is not None and peer.kind == "play" and peer.role == "site":
            still = any(p.kind == "play" and p.unit == peer.unit and p.meeting == peer.meeting
                        for p in self.state.peers.values())
            if not still:
                await self.channel.site_disconnected(peer.meeting, peer.unit)
        self._last_bytes.pop(peer.id, None)
        uplink = self.uplinks.get(peer.meeting)
        if peer.kind == "publish" and uplink is not None:
            with contextlib.suppress(Exception):
                await uplink.floor_changed()

    async def upstream_codec(self, meeting: int) -> None:
        """Start the meeting's cascade and wait (at most UPSTREAM_CODEC_WAIT) for the upstream's
        programme to pin the meeting's codec here: the first commune to play is answered with the
        codec the chair sends, not with its own first choice (then ended when the upstream's arrives)."""
        room = self.state.room(meeting)
        self._awaiting[meeting] = self._awaiting.get(meeting, 0) + 1
        try:
            self._ensure_uplink(meeting)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room.codec_pinned.wait(), UPSTREAM_CODEC_WAIT)
        finally:
            self._awaiting[meeting] -= 1
            if not self._awaiting[meeting]:
                del self._awaiting[meeting]

    def _wanted(self, meeting: int) -> bool:
        """The meeting's cascade is needed: peers of it here, or being answered."""
        return meeting in self._awaiting or any(p.meeting == meeting for p in self.state.peers.values())

    def _ensure_uplink(self, meeting: int) -> None:
        if meeting in self.uplinks or meeting in self._starting:
            return
        self._starting[meeting] = asyncio.create_task(self._run_uplink(meeting), name=f"uplink-{meeting}")

    async def _upstream(self) -> str:
        if self._upstream_unit is None:
            url = self.state.config.upstream_url.rstrip("/") + "/healthz"
            async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                self._upstream_unit = str((await r.json())["unit"])
        return self._upstream_unit

    async def _run_uplink(self, meeting: int) -> None:
        """Keep the meeting's cascade up while this bridge has peers of the meeting; the uplink of
        the moment is closed whenever it goes down, also when this task is cancelled."""
        attempt = 0
        try:
            while self._wanted(meeting):
                uplink: Uplink | None = None
                try:
                    uplink = Uplink(self.state, meeting, await self._upstream(), self.tokens)
                    await uplink.start()
                    self.uplinks[meeting] = uplink
                    await uplink.floor_changed()
                    attempt = 0
                    log.info("cascade of meeting %s up (upstream %s)", meeting, self._upstream_unit)
                    await self._until_down(uplink)
                except Exception as exc:
                    log.warning("cascade of meeting %s: %s", meeting, str(exc) or type(exc).__name__)
                finally:
                    if uplink is not None:
                        self.uplinks.pop(meeting, None)
                        with contextlib.suppress(Exception):
                            await uplink.close()
                self._upstream_unit = None  # the upstream may come back as another process
                await asyncio.sleep(RETRY[min(attempt, len(RETRY) - 1)])
                attempt += 1
        finally:
            self._starting.pop(meeting, None)

    async def _until_down(self, uplink: Uplink) -> None:
        while True:
            await asyncio.sleep(0.5)
            pc = uplink.play.pc if uplink.play is not None else None
            if pc is None or pc.connectionState in ("failed", "closed"):
                return
            published = uplink.publish
            if published is not None and published.pc.connectionState in ("failed", "closed"):
                log.warning("cascade of meeting %s: the upstream ended our publication; publishing again",
                            uplink.meeting)
                await uplink.republish()
            if not self._wanted(uplink.meeting):
                return

    # ------------------------------------------------------------------ publishers that died

    async def _stall_loop(self) -> None:
        seen: dict[str, tuple[tuple[int, int], float]] = {}  # peer id → (media counts, when they were new)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for peer in list(self.state.peers.values()):
                if peer.kind != "publish" or not any(s.kind == "video" for s in peer.sources):
                    continue
                counts = media_counts(peer)
                previous, since = seen.get(peer.id, ((-1, -1), now))
                if counts != previous:
                    seen[peer.id] = (counts, now)
                elif stalled(counts, now - since):
                    log.warning("publisher %s (%s, meeting %s) sent nothing for %.0f s (connection %s): "
                                "its peer ended", peer.id, peer.unit, peer.meeting, now - since,
                                peer.pc.connectionState)
                    try:
                        await self.state.close_peer(peer, "it sent nothing")
                    except Exception:
                        log.exception("closing stalled peer %s failed", peer.id)
            for sid in [sid for sid in seen if sid not in self.state.peers]:
                del seen[sid]

    # ------------------------------------------------------------------ speaking, on air

    async def report_media(self) -> None:
        """Tell the server whose speaking state changed (the sites publishing here), and — on the
        bridge with no upstream, which serves the chair — whose media the programme carries."""
        assert self.channel is not None
        meters: dict[tuple[int, str], SpeakingMeter] = {}
        for peer in list(self.state.peers.values()):
            if peer.kind == "publish" and peer.meter is not None:
                meters[(peer.meeting, peer.unit)] = peer.meter
        for meeting, sites in self._speaking.changes(meters).items():
            await self.channel.speaking(meeting, sites)
        if self.state.config.upstream_url:
            return
        now = asyncio.get_running_loop().time()
        active = {p.meeting for p in self.state.peers.values()}
        for meeting, room in list(self.state.rooms.items()):
            if meeting not in active:
                continue
            air = room.on_air()
            told = self._on_air.get(meeting)
            if told is None or told[0] != air or now - told[1] >= ON_AIR_REPEAT:
                self._on_air[meeting] = (air, now)
                await self.channel.on_air(meeting, *air)

    # ------------------------------------------------------------------ health

    @staticmethod
    async def _every(seconds: float, report: Callable[[], Awaitable[None]], what: str) -> None:
        """Call ``report`` every ``seconds``; a failure is logged and the next round goes on."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await report()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s report failed", what)

    async def report_stats(self) -> None:
        assert self.channel is not None
        by_meeting: dict[int, list[dict[str, Any]]] = {}
        loop = asyncio.get_running_loop()
        for peer in list(self.state.peers.values()):
            # a content player (screen sharing) is the same site's second connection, idle while
            # nobody shares: its receiver reports carry no usable round trip (the server refused
            # the whole message for its RTT)
            if peer.kind != "play" or peer.role != "site" or peer.content:
                continue
            figures = await site_stats(peer, self._last_bytes, loop.time())
            by_meeting.setdefault(peer.meeting, []).append({"unit": peer.unit, **figures})
        for meeting, sites in by_meeting.items():
            await self.channel.stats(meeting, sites)


async def site_stats(peer: Peer, last: dict[str, tuple[float, int, int]], now: float) -> dict[str, Any]:
    """RTT and loss from the site's RTCP receiver reports; bitrate sent to it and frames per second
    of its video (one relayed packet is one encoded frame) since the last report."""
    report = await peer.pc.getStats()
    rtt = loss = None
    sent = 0
    for stat in report.values():
        kind = getattr(stat, "type", "")
        if kind == "remote-inbound-rtp" and getattr(stat, "kind", "") == "video":
            if getattr(stat, "roundTripTime", None) is not None:  # unknown until the first receiver report
                rtt = round(float(stat.roundTripTime) * 1000, 1)
            if getattr(stat, "fractionLost", None) is not None:  # RTCP's 8-bit fixed point
                loss = round(min(1.0, max(0.0, float(stat.fractionLost) / 256)), 4)
        elif kind == "outbound-rtp":
            sent += int(getattr(stat, "bytesSent", 0) or 0)
    frames = sum(t.packets_in for t in peer.tracks if t.kind == "video")
    previous = last.get(peer.id)
    last[peer.id] = (now, sent, frames)
    kbps = fps = None
    if previous is not None and now > previous[0]:
        kbps = round(max(0, sent - previous[1]) * 8 / 1000 / (now - previous[0]), 1)
        fps = round(max(0, frames - previous[2]) / (now - previous[0]), 1)
    layer = peer.adaptation.track.layer if peer.adaptation is not None else None
    return {"rtt_ms": rtt, "loss": loss, "kbps": kbps, "fps": fps, "connected": peer.pc.connectionState
            in ("connected", "connecting", "new"), "layer": layer}
