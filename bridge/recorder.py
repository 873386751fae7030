"""Recording the programme at the bridge (issue #17): the event-loop half.

A :class:`ProgrammeRecorder` taps a room's programme (the video timeline and both audio timelines
of :class:`bridge.programme.Programme`) and hands each packet, as bytes with its timestamp, to a
worker thread (:class:`bridge.recording_mux.RecordingWriter`) through a bounded queue: the tap
never blocks and never decodes; when the writer falls behind, packets are dropped, counted, and
the video resumes at the next keyframe. The subscribers' pass-through path is not touched: a tap
runs after the fan-out has had the packet.

:class:`BridgeRecordings` decides when to record: a meeting records while it is live and its
chair wants it (the meeting's ``recording.wanted``, learned over the control channel), on a
bridge given a recordings folder — a provincial bridge (one with an upstream) only while the chair
names it in ``recording.bridges``: it records its own programme, what its sites see. Each start,
stop, refusal and closed segment is said to the server (``send``), which indexes the segments and
tells the chair (docs/protocol.md, "Recording"). A recording's name is its start (UTC) and the
bridge's unit code, so the bridges sharing one folder never write into each other's.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from bridge.programme import Programme, Switch
from bridge.recording_mux import DiskLow, Item, RecordingWriter, WriterSettings

log = logging.getLogger("hoinghi.bridge.recorder")

QUEUE_ITEMS = 2000  # ~15 s of a 30 fps programme with two audio timelines: beyond that the writer is stuck
Tap = Callable[[av.Packet, bool, "str | None"], None]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ProgrammeRecorder:
    """One recording of one meeting's programme, from :meth:`start` to :meth:`stop`."""

    def __init__(self, meeting: int, programme: Programme, directory: Path, *, segment_seconds: float = 180.0,
                 min_free_bytes: int = 500 * 1024 * 1024, on_event: Callable[[dict[str, Any]], None] | None = None,
                 disk_free: Callable[[Path], int] | None = None, relative_to: Path | None = None,
                 clock: Callable[[], float] = time.monotonic, queue_items: int = QUEUE_ITEMS, label: str = "") -> None:
        self.meeting = meeting
        self.programme = programme
        self.started_at = datetime.now(UTC)
        self.name = self.started_at.strftime("%Y%m%dT%H%M%SZ") + (f"-{label}" if label else "")
        self.directory = directory / str(meeting) / self.name
        self._disk_free = disk_free or (lambda p: shutil.disk_usage(p).free)
        self._settings = WriterSettings(self.directory, segment_seconds, min_free_bytes, self._disk_free,
                                        relative_to)
        self._on_event = on_event or (lambda event: None)
        self._clock = clock
        self._t0 = 0.0
        self._items: queue.Queue[Item] = queue.Queue(maxsize=queue_items)
        self._taps: list[tuple[Switch, Tap]] = []
        self._thread: threading.Thread | None = None
        self._floor: object = object()  # nothing said yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self._gap = False  # items were dropped: the writer resumes the video at a keyframe
        self.writer: RecordingWriter | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Begin writing; :class:`DiskLow` (nothing started) when free space is under the threshold."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._disk_free(self.directory) < self._settings.min_free_bytes:
            try:
                self.directory.rmdir()
            except OSError:
                pass
            raise DiskLow(self.directory)
        self._loop = asyncio.get_running_loop()
        self._t0 = self._clock()
        self.writer = RecordingWriter(self._settings, self._items, self._event_from_thread,
                                      self._keyframe_from_thread, self.started_at)
        self._thread = threading.Thread(target=self.writer.run, name=f"recording-{self.meeting}", daemon=True)
        self._thread.start()
        programme = self.programme
        self._tap(programme.video, self._on_video)
        self._tap(programme.chair_audio, lambda p, k, c: self._on_audio(0, p))
        self._tap(programme.floor_audio, lambda p, k, c: self._on_audio(1, p))
        self._tap(programme.content, self._on_content)  # a shared screen: its own video track
        self.request_keyframe()

    def _tap(self, switch: Switch, tap: Tap) -> None:
        switch.taps.append(tap)
        self._taps.append((switch, tap))

    async def stop(self) -> None:
        """Stop tapping, let the writer close its segment, wait for it (off the loop)."""
        for switch, tap in self._taps:
            if tap in switch.taps:
                switch.taps.remove(tap)
        self._taps.clear()
        thread = self._thread
        if thread is None:
            return
        stop = ("stop", self._clock() - self._t0)
        while thread.is_alive():
            try:
                self._items.put_nowait(stop)
                break
            except queue.Full:
                await asyncio.sleep(0.05)
        await asyncio.to_thread(thread.join)

    # ------------------------------------------------------------------ taps (event loop, never block)

    def _put(self, item: Item) -> None:
        try:
            self._items.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if item[0] == "v":
                self._gap = True

    def _floor_moved(self, t: float) -> None:
        """Checked at every packet of any timeline (the chair's sound flows while the picture
        waits for a keyframe): the floor moved, a chapter starts (None: the chair speaks)."""
        floor = self.programme.floor
        if floor != self._floor:
            self._floor = floor
            self._put(("floor", floor, t))

    def _on_video(self, packet: av.Packet, keyframe: bool, codec: str | None) -> None:
        t = self._clock() - self._t0
        self._floor_moved(t)
        if self._gap:
            self._gap = False
            self._put(("gap",))
        self._put(("v", bytes(packet), packet.pts, keyframe, codec or "", t))

    def _on_content(self, packet: av.Packet, keyframe: bool, codec: str | None) -> None:
        self._put(("c", bytes(packet), packet.pts, keyframe, codec or "", self._clock() - self._t0))

    def _on_audio(self, index: int, packet: av.Packet) -> None:
        t = self._clock() - self._t0
        self._floor_moved(t)
        self._put(("a", index, bytes(packet), packet.pts, t))

    # ------------------------------------------------------------------ from the writer thread

    def request_keyframe(self) -> None:
        """A segment begins (or the writer lost packets): the picture, and a shared screen, from a keyframe."""
        for switch in (self.programme.video, self.programme.content):
            source = switch.pending or switch.current
            if source is not None:
                source.request_keyframe()

    def _keyframe_from_thread(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.request_keyframe)

    def _event_from_thread(self, event: dict[str, Any]) -> None:
        event = {**event, "meeting": self.meeting, "recording": self.name}
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._on_event, event)
            except RuntimeError:  # the loop closed meanwhile
                pass


class BridgeRecordings:
    """Which meetings this bridge records, following what the server says of each."""

    def __init__(self, programme_of: Callable[[int], Programme], directory: Path, send: Send | None, *,
                 segment_seconds: float = 180.0, min_free_bytes: int = 500 * 1024 * 1024, unit: str = "",
                 when_named: bool = False) -> None:
        self.programme_of = programme_of
        self.unit = unit
        self.when_named = when_named  # a provincial bridge: records only while the chair names it
        self.directory = directory
        self.send = send
        self.segment_seconds = segment_seconds
        self.min_free_bytes = min_free_bytes
        self.recorders: dict[int, ProgrammeRecorder] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def on_meeting(self, meeting: int, state: str, wanted: bool, named: frozenset[str] = frozenset()) -> None:
        """The server said the meeting's state or its chair's wish changed (control channel)."""
        self._spawn(self._follow(meeting, state == "live" and wanted and (not self.when_named or self.unit in named)))

    async def _follow(self, meeting: int, record: bool) -> None:
        async with self._lock:
            recorder = self.recorders.get(meeting)
            if record and (recorder is None or not recorder.running):
                recorder = ProgrammeRecorder(meeting, self.programme_of(meeting), self.directory,
                                             segment_seconds=self.segment_seconds, min_free_bytes=self.min_free_bytes,
                                             on_event=self._event, relative_to=self.directory, label=self.unit)
                try:
                    recorder.start()
                except (DiskLow, OSError) as exc:
                    log.warning("meeting %s: recording refused (%s)", meeting, exc)
                    self._event({"type": "recording_stopped", "meeting": meeting, "recording": recorder.name,
                                 "reason": "disk_low" if isinstance(exc, DiskLow) else "error", "segments": 0})
                    return
                self.recorders[meeting] = recorder
                log.info("meeting %s: recording into %s", meeting, recorder.directory)
                self._event({"type": "recording_started", "meeting": meeting, "recording": recorder.name})
            elif not record and recorder is not None:
                del self.recorders[meeting]
                await recorder.stop()

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "recording_stopped" and self.recorders.get(event["meeting"]) is not None:
            recorder = self.recorders[event["meeting"]]
            if recorder.name == event.get("recording") and event.get("reason") != "stopped":
                del self.recorders[event["meeting"]]  # it stopped by itself (disk full): let it go
                self._spawn(recorder.stop())
        if self.send is not None:
            self._spawn(self.send(event))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("recording: background work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every recording (its last segment closed and said), then wait for what is being sent."""
        async with self._lock:
            recorders, self.recorders = list(self.recorders.values()), {}
        for recorder in recorders:
            await recorder.stop()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
