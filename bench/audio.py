"""Conference audio delays, from the listener's side: how long after the chair's act a change is
heard (or stops being heard) on the right track at every tier.

Three bridges in this process (the centre and two provinces cascading from it, real aiortc, real
WHIP/WHEP over 127.0.0.1); the chair publishes a 440 Hz tone at the centre; commune A of province P
sends its microphone (1000 Hz) to P's bridge without the floor, as site pages do. Listeners decode
each inbound audio track on its own (tests/audio_util.py): the chair at the centre, commune B at P,
commune C at province Q. Each round:

- grant: the floor goes to A (every bridge told, as the control channel does; P's cascade
  publishes A upstream) → until the chair, B and C all hear 1000 Hz on the floor track;
- mute: A muted on every bridge → until nobody hears 1000 Hz;
- unmute → until all hear it again;
- revoke: the floor back to the chair → until no floor track carries anything.

The server's part (the websocket action, the database write, the event to the bridges) is not in
these figures: they are the media path's. A listener judges the last 0.3 s of sound, polled every
20 ms, so each figure includes up to ~0.3 s of that window.

Usage: ``.venv/bin/python bench/audio.py [--rounds 5]``. Ends with one line ``RESULT
floor_heard_p50_ms=… floor_heard_max_ms=… mute_silent_p50_ms=… unmute_heard_p50_ms=…
revoke_silent_p50_ms=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestServer  # noqa: E402

from bridge.app import LINK, STATE, create_app  # noqa: E402
from bridge.link import BridgeLink  # noqa: E402
from bridge.room import BridgeConfig, BridgeState  # noqa: E402
from tests.audio_util import Listener, ToneTrack, listen, until_heard  # noqa: E402
from tests.media_util import KEY, EncodedVideoTrack, Publisher, token, whip  # noqa: E402

CHAIR_HZ, A_HZ = 440.0, 1000.0


async def start(config: BridgeConfig) -> tuple[TestServer, str, BridgeState, BridgeLink]:
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/"), server.app[STATE], server.app[LINK]


async def everyone(listeners: list[Listener], track: str, expected: float | None) -> float:
    """Seconds until every listener's ``track`` carries ``expected`` (None: silence)."""
    loop = asyncio.get_running_loop()
    start_at = loop.time()
    await asyncio.gather(*(until_heard(x, track, expected, within=15.0) for x in listeners))
    return loop.time() - start_at


async def main(args: argparse.Namespace) -> None:
    servers = []
    central, central_url, central_state, _ = await start(BridgeConfig(unit="TW", key=KEY))
    servers.append(central)
    p, p_url, p_state, p_link = await start(BridgeConfig(unit="P", key=KEY, upstream_url=central_url, upstream_key=KEY))
    q, q_url, q_state, _ = await start(BridgeConfig(unit="Q", key=KEY, upstream_url=central_url, upstream_key=KEY))
    servers += [p, q]
    states = (central_state, p_state, q_state)
    peers: list[Publisher | Listener] = []
    figures: dict[str, list[float]] = {"grant": [], "mute": [], "unmute": [], "revoke": []}
    try:
        peers.append(await whip(central_url, 1, token("TW", "CHAIR", "chair"), EncodedVideoTrack("vp8"),
                                ToneTrack(CHAIR_HZ)))
        chair = await listen(central_url, 1, token("TW", "CHAIR", "chair"))
        b = await listen(p_url, 1, token("P", "B"))
        c = await listen(q_url, 1, token("Q", "C"))
        peers += [chair, b, c]
        listeners = [chair, b, c]
        await everyone([b, c], "chair", CHAIR_HZ)
        peers.append(await whip(p_url, 1, token("P", "A"), None, ToneTrack(A_HZ)))  # A's microphone, no floor
        await asyncio.sleep(1.0)

        def tell(floor: str | None = "", muted: set[str] | None = None) -> None:
            for state in states:
                room = state.room(1)
                if floor != "":
                    room.set_floor(floor)
                if muted is not None:
                    room.set_muted(muted)

        for round_no in range(args.rounds):
            tell(floor="A")
            grant = asyncio.ensure_future(everyone(listeners, "floor", A_HZ))
            await p_link.uplinks[1].floor_changed()  # P's cascade publishes A upstream
            figures["grant"].append(await grant)
            await asyncio.sleep(0.5)
            tell(muted={"A"})
            figures["mute"].append(await everyone(listeners, "floor", None))
            tell(muted=set())
            figures["unmute"].append(await everyone(listeners, "floor", A_HZ))
            await asyncio.sleep(0.5)
            tell(floor=None)
            revoke = asyncio.ensure_future(everyone(listeners, "floor", None))
            await p_link.uplinks[1].floor_changed()
            figures["revoke"].append(await revoke)
            print(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in figures.items()),
                  flush=True)
            await asyncio.sleep(0.5)
    finally:
        for peer in peers:
            await (peer.close() if isinstance(peer, Listener) else peer.pc.close())
        for server in reversed(servers):
            await server.close()

    def ms(values: list[float]) -> int:
        return round(statistics.median(values) * 1000)

    print(f"RESULT floor_heard_p50_ms={ms(figures['grant'])} floor_heard_max_ms={round(max(figures['grant']) * 1000)} "
          f"mute_silent_p50_ms={ms(figures['mute'])} unmute_heard_p50_ms={ms(figures['unmute'])} "
          f"revoke_silent_p50_ms={ms(figures['revoke'])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="grant / mute / unmute / revoke rounds")
    asyncio.run(main(parser.parse_args()))
