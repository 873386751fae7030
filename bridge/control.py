"""The bridge's control channel to the server: the server's ordinary websocket ``/ws``, with a
machine token of scope ``bridge`` (docs/protocol.md, "Media").

- ``watch(meeting)``: subscribe to ``meeting:<id>``; every state or floor change calls
  ``on_meeting(meeting_id, state, floor_unit_code)``.
- ``site_connected`` / ``site_disconnected``: a site's player started / ended here — the
  server's roll call shows it present online while it lasts (the bridge's socket closing ends
  them all, so a bridge that dies is a visible gap).
- ``stats(meeting, sites)``: per-site RTT, loss, bitrate, frame rate → the consoles' health.
- the roll call of its own subtree (``rollcall:<id>:<unit>``): which sites are muted — every
  change calls ``on_muted(meeting_id, unit codes)`` (the bridge drops their sound).
- ``speaking(meeting, sites)`` / ``on_air(meeting, unit)``: who is speaking (RFC 6464 levels)
  and whose media the programme carries, for the consoles.
- ``cascade_token(meeting, unit, upstream)``: a request (with an ``id``) for a join token of the
  upstream bridge (bridge.upstream_tokens); the answer or the server's error frame resolves it.

The channel reconnects by itself (backoff up to 5 s); after a reconnect it subscribes and joins
again everything still current, so a server restart costs the roll call nothing but the gap.
Nothing here touches aiortc: the bridge's rooms call in with plain values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger("hoinghi.bridge.control")

OnMeeting = Callable[[int, str, str | None], Awaitable[None] | None]
OnMuted = Callable[[int, frozenset[str]], None]
BACKOFF = (0.5, 1.0, 2.0, 5.0)
REQUEST_TIMEOUT = 10.0


class Refused(Exception):
    """The server answered a request with an error frame (``code``, Vietnamese ``message``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ControlChannel:
    def __init__(self, server_url: str, token: str, on_meeting: OnMeeting | None = None, unit: str = "",
                 on_muted: OnMuted | None = None) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.on_meeting = on_meeting
        self.unit = unit  # this bridge's unit: the root of the roll call it follows
        self.on_muted = on_muted
        self.muted: dict[int, frozenset[str]] = {}
        self._seat_seq: dict[tuple[int, str], int] = {}
        self.meetings: set[int] = set()
        self.sites: set[tuple[int, str]] = set()  # (meeting, unit code) with a live player here
        self.floor: dict[int, str | None] = {}
        self.state: dict[int, str] = {}
        self.connected = asyncio.Event()
        self.errors: list[dict[str, Any]] = []  # the server's refusals, newest last (bounded)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        # Meeting changes are handled in order by a task of their own, never by the reader: a
        # handler may ask the server something (a cascade token) whose answer the reader delivers.
        self._changes: asyncio.Queue[tuple[int, str, str | None]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._closing = False
        self._seq: dict[int, int] = {}
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0
        # Told (meeting, state, chair wants it recorded, provincial bridges named to record too) when
        # any of them changes (bridge.recorder)
        self.on_recording: Callable[[int, str, bool, frozenset[str]], None] | None = None
        self._recording: dict[int, tuple[str, bool, frozenset[str]]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bridge-control")
            self._dispatcher = asyncio.create_task(self._dispatch(), name="bridge-control-changes")

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in (self._task, self._dispatcher, self._resuming):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        attempt = 0
        ever_connected = False
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})
        while not self._closing:
            try:
                async with self._http.ws_connect(f"{self.server_url}/ws", heartbeat=20.0) as ws:
                    self._ws = ws
                    attempt, ever_connected = 0, True
                    await self._resume()
                    self.connected.set()
                    log.info("control channel connected", extra={"server": self.server_url})
                    async for raw in ws:
                        if raw.type == aiohttp.WSMsgType.TEXT:
                            await self._on_message(json.loads(raw.data))
                        elif raw.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if ever_connected or attempt >= 3:
                    log.warning("control channel: %s", exc)
                else:  # started together with the server (make demo, a service manager): not yet an alarm
                    log.info("control channel: server not reachable yet, retrying (%s)", exc)
            finally:
                self._ws = None
                self.connected.clear()
                for pending in self._requests.values():  # asked on a socket that is gone: ask again
                    if not pending.done():
                        pending.set_exception(ConnectionError("control channel closed"))
                self._requests.clear()
            if self._closing:
                return
            await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1

    async def _resume(self) -> None:
        for meeting in sorted(self.meetings):
            await self._subscribe(meeting)
        for meeting, unit in sorted(self.sites):
            await self._send({"type": "join", "meeting": meeting, "unit": unit})

    async def _send(self, msg: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None or ws.closed:
            return False  # sent again by _resume() after the reconnect
        try:
            await ws.send_str(json.dumps(msg))
            return True
        except (ConnectionError, RuntimeError):
            return False

    async def _subscribe(self, meeting: int) -> None:
        await self._send({"type": "subscribe", "topic": f"meeting:{meeting}"})
        if self.unit:
            await self._send({"type": "subscribe", "topic": f"rollcall:{meeting}:{self.unit}"})

    def _on_seats(self, meeting: int, seats: list[dict[str, Any]], whole: bool) -> None:
        """Seat rows (a snapshot when ``whole``) → the set of muted sites, newest row wins."""
        muted = set() if whole else set(self.muted.get(meeting, ()))
        if whole:
            self._seat_seq = {k: v for k, v in self._seat_seq.items() if k[0] != meeting}
        for seat in seats:
            code, seq = str(seat.get("code")), int(seat.get("seq", 0))
            if seq < self._seat_seq.get((meeting, code), -1):
                continue
            self._seat_seq[(meeting, code)] = seq
            if seat.get("muted"):
                muted.add(code)
            else:
                muted.discard(code)
        frozen = frozenset(muted)
        if frozen != self.muted.get(meeting):
            self.muted[meeting] = frozen
            if self.on_muted is not None:
                self.on_muted(meeting, frozen)

    async def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        pending = self._requests.pop(msg["id"], None) if isinstance(msg.get("id"), int) else None
        if pending is not None:
            if pending.done():
                return
            if kind == "error":
                pending.set_exception(Refused(str(msg.get("code")), str(msg.get("message"))))
            else:
                pending.set_result(msg)
            return
        if kind == "error":
            self.errors = [*self.errors[-49:], msg]
            log.warning("server refused a control message: %s %s", msg.get("code"), msg.get("message"))
            if msg.get("code") == "unavailable":  # its database or bus was away: say it all again later
                self._resume_later(msg.get("retry_after"))
            return
        if kind == "snapshot" and str(msg.get("topic", "")).startswith("rollcall:"):
            self._on_seats(int(msg["meeting"]), list(msg["data"].get("seats") or ()), whole=True)
            return
        if kind == "event" and msg.get("kind") == "seat":
            self._on_seats(int(msg["meeting"]), [msg["data"]], whole=False)
            return
        data: dict[str, Any] | None = None
        if kind == "snapshot" and str(msg.get("topic", "")).startswith("meeting:"):
            data = msg["data"]["meeting"]
        elif kind == "event" and msg.get("kind") == "meeting":
            data = msg["data"]
        if data is None:
            return
        meeting = int(data["id"])
        if data.get("seq", 0) < self._seq.get(meeting, -1):
            return  # an older event than what we hold
        self._seq[meeting] = int(data.get("seq", 0))
        floor = (data.get("floor") or {}).get("code")
        changed = self.floor.get(meeting, "∅") != floor or self.state.get(meeting) != data["state"]
        self.floor[meeting], self.state[meeting] = floor, str(data["state"])
        if changed and self.on_meeting is not None:
            self._changes.put_nowait((meeting, str(data["state"]), floor))
        wish = data.get("recording") or {}
        named = wish.get("bridges")
        named = named if isinstance(named, list) else []
        recording = (str(data["state"]), bool(wish.get("wanted")), frozenset(str(code) for code in named))
        if self.on_recording is not None and self._recording.get(meeting) != recording:
            self._recording[meeting] = recording
            self.on_recording(meeting, *recording)

    def _resume_later(self, seconds: object) -> None:
        """Subscribe and join again everything current once the server says to retry (a join or a
        subscription it could not do during an outage would otherwise be lost)."""
        if self._resuming is not None and not self._resuming.done():
            return
        delay = float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else 5.0

        async def later() -> None:
            await asyncio.sleep(min(max(delay, 0.5), 30.0))
            await self._resume()

        self._resuming = asyncio.get_running_loop().create_task(later(), name="bridge-control-resume")

    async def _dispatch(self) -> None:
        """Hand each meeting change to ``on_meeting``, one at a time, in the order they came."""
        while True:
            meeting, state, floor = await self._changes.get()
            if self.on_meeting is None:
                continue
            try:
                result = self.on_meeting(meeting, state, floor)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("meeting %s: handling a change failed", meeting)

    # ------------------------------------------------------------------ what the rooms call

    async def watch(self, meeting: int) -> None:
        if meeting not in self.meetings:
            self.meetings.add(meeting)
            await self._subscribe(meeting)

    async def site_connected(self, meeting: int, unit: str) -> None:
        await self.watch(meeting)
        if (meeting, unit) not in self.sites:
            self.sites.add((meeting, unit))
            await self._send({"type": "join", "meeting": meeting, "unit": unit})

    async def site_disconnected(self, meeting: int, unit: str) -> None:
        if (meeting, unit) in self.sites:
            self.sites.discard((meeting, unit))
            await self._send({"type": "leave", "meeting": meeting, "unit": unit})

    async def speaking(self, meeting: int, sites: list[dict[str, Any]]) -> None:
        """Sites whose speaking state changed: ``{"unit", "speaking", "level"}`` (level in -dBov)."""
        for start in range(0, len(sites), 500):
            await self._send({"type": "speaking", "meeting": meeting, "sites": sites[start:start + 500]})

    async def on_air(self, meeting: int, unit: str | None, video: bool, audio: bool) -> None:
        """Whose media the programme carries now (the root bridge's word for the consoles)."""
        await self._send({"type": "on_air", "meeting": meeting, "unit": unit, "video": video, "audio": audio})

    async def recording(self, event: dict[str, Any]) -> None:
        """A recording started, stopped or closed a segment (docs/protocol.md, "Recording"): asked and
        answered, so a segment said while the channel was down is said again once it is back."""
        try:
            await self.request({"type": "recording", "meeting": event["meeting"], "report": event})
        except (TimeoutError, Refused) as exc:
            log.warning("recording event %s of meeting %s not taken: %s", event.get("type"), event.get("meeting"), exc)

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send ``msg`` with an ``id`` and return the server's answer; :class:`Refused` for an error
        frame, ``TimeoutError`` if the channel is down or no answer comes within REQUEST_TIMEOUT."""
        async with asyncio.timeout(REQUEST_TIMEOUT):
            while True:
                await self.connected.wait()
                self._next_request += 1
                request_id = self._next_request
                answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self._requests[request_id] = answer
                if not await self._send({**msg, "id": request_id}):
                    self._requests.pop(request_id, None)
                    await asyncio.sleep(0.1)
                    continue
                try:
                    return await answer
                except ConnectionError:
                    continue  # the socket dropped before the answer: ask again once it is back
                finally:
                    self._requests.pop(request_id, None)

    async def cascade_token(self, meeting: int, unit: str, upstream: str) -> dict[str, Any]:
        """``{"token", "expires_at", …}`` from the server (docs/protocol.md, "Cascade tokens")."""
        answer = await self.request({"type": "cascade_token", "meeting": meeting, "unit": unit, "bridge": upstream})
        return dict(answer.get("data") or {})

    async def stats(self, meeting: int, sites: list[dict[str, Any]]) -> None:
        for start in range(0, len(sites), 500):
            await self._send({"type": "stats", "meeting": meeting, "sites": sites[start:start + 500]})
