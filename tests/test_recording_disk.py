"""A disk that fills up while a real central bridge process records (issue #17): the recording
stops cleanly, the segments written so far are listed and play, the chair is told — and the
meeting itself never stops: it stays live and its programme keeps reaching the sites.

The disk is a real one: a small tmpfs mounted for the test (root only; skipped elsewhere, a failure in CI)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from server.services.media import bridge_key
from tests.audio_util import ToneTrack
from tests.conftest import LiveServer, need_service
from tests.media_util import EncodedVideoTrack, Player, Publisher, close_peers, token, until, whep, whip
from tests.recording_util import RecordingBridge, read_segment
from tests.test_recording_bridge import listing, machine_token, poll, recording_status
from tests.test_recording_province import live_meeting

DISK_KB = 1400  # the bridge keeps 1 MB free: a few hundred kilobytes of programme fit (a few seconds)


class BusyCamera(EncodedVideoTrack):
    """A camera filming something busy (a band of noise across the picture): it uses its 600 kbit/s."""

    def __init__(self) -> None:
        super().__init__("vp8", 320, 240, fps=30, bitrate=600_000)
        self._rng = np.random.default_rng(17)

    def _frame(self) -> av.VideoFrame:
        frame = super()._frame()
        plane = frame.planes[0]
        band = plane.line_size * 60
        noise = self._rng.integers(0, 255, band, dtype=np.uint8).tobytes()
        plane.update(noise + bytes(memoryview(plane)[band:]))
        return frame


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_KB}k", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        need_service(f"a small disk needs mount(8) as root: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_disk_filling_up_stops_the_recording_not_the_meeting(server_factory: Any, sqlite_url: str,
                                                                     tmp_path: Path) -> None:
    with small_disk(tmp_path / "recordings") as folder:
        srv: LiveServer = await server_factory(sqlite_url, recordings_dir=str(folder), recording_min_free_mb=1)
        chair, mid = await live_meeting(srv)
        key = bridge_key(srv.settings, "BCA")
        bridge = await RecordingBridge.start("BCA", key, srv.url, await machine_token(srv, "BCA"), folder,
                                             segment_seconds=2, min_free_mb=1)
        peers: list[Publisher | Player] = []
        try:
            peers.append(await whip(bridge.url, mid, token("BCA", "BCA", "chair", mid, key), BusyCamera(),
                                    ToneTrack(440)))
            player = await whep(bridge.url, mid, token("BCA", "00004", "site", mid, key))
            peers.append(player)
            await player.wait_frames(10, within=30)

            async def stopped() -> list[dict[str, Any]]:
                recs = await listing(srv, mid)
                return recs if recs and recs[0]["status"] != "recording" else []

            recs = await poll(stopped, 60, "the disk to fill up and the recording to stop")
            assert recs[0]["status"] == "disk_full", recs
            status = await recording_status(srv, mid)
            assert status["active"] is False and "Đĩa đầy" in status["notice"], status  # the chair is told
            segments = recs[0]["segments"]
            assert segments and segments[0]["duration"] >= 1.5, recs  # a whole segment of 2 s at least
            for seg in segments:  # what was written before the disk filled plays
                facts = await asyncio.to_thread(read_segment, folder / str(mid) / recs[0]["name"]
                                                / f"segment-{seg['index']:04d}.webm")
                # (its frame rate is the loaded test process's camera's: only bounded above, by 30 fps)
                assert facts.width == 320 and 1 <= facts.video_frames <= 30 * seg["duration"] + 2, facts
                if seg["duration"] >= 0.5:  # the last one the full disk cut may hold a few frames, no sound yet
                    assert facts.audio_rms > 0.01, f"segment {seg['index']} is silent: {facts}"

            # The meeting goes on: still live, its programme still reaching the site, picture and sound.
            meeting = await (await chair.get(f"/api/meetings/{mid}")).json()
            assert meeting["meeting"]["state"] == "live"
            frames, sound = len(player.frames), player.audio_frames
            await player.wait_frames(frames + 30, within=30)
            await until(lambda: player.audio_frames > sound + 50, 30, "the programme's sound to go on")
            late = await whep(bridge.url, mid, token("BCA", "00070", "site", mid, key))  # and a site joining now
            peers.append(late)
            await late.wait_frames(15, within=30)
            assert (await recording_status(srv, mid))["active"] is False  # and it did not start again by itself
        finally:
            await close_peers(*peers)
            await bridge.stop()
