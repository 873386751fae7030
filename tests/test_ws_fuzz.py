"""Hypothesis throws malformed and hostile messages at a real server's ``/ws`` (#13, finding 9 and
the Build item): every one gets an error frame with a stable code (or a valid reply), the socket
stays open — a ping after it is answered — and the server logs no unhandled exception.

Generated: JSON objects with every field of every message given values of any JSON type (ids up
to ±2⁷⁰, lone surrogates, long strings, nested values), unknown types and actions, non-object
JSON, non-JSON text, NaN and Infinity, integers of thousands of digits, nesting up to 10,000
deep, binary frames, and messages above the 16 KiB limit (up to 200 KiB: below what the transport
reads, MAX_FRAME). A connection is closed after 50 malformed messages (4029, by design): the test
opens a fresh socket every ``PER_SOCKET`` messages and fails on any close it did not ask for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.live.frames import MAX_MESSAGE
from server.live.messages import ACTION_TYPES, PARSERS
from server.live.socket import MAX_STRIKES
from tests.conftest import Client, LiveServer
from tests.live_util import schedule, set_state

T = TypeVar("T")
PER_SOCKET = MAX_STRIKES - 10  # hostile messages per socket, below the abuse limit
LARGEST = 200_000  # bytes of the longest frame sent: above 16 KiB, below what the transport reads (256 KiB)
BOUND = 10.0  # seconds to wait for an answer: a bound against hanging, not a timing assertion
CODE = re.compile(r"[a-z][a-z_]*")

FIELDS = ("id", "meeting", "topic", "unit", "unit_id", "action", "sites", "status", "reason", "to", "confirm",
          "video", "audio", "bridge")
HUGE = st.sampled_from([0, -1, 2**31, 2**31 - 1, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30])
_PLAIN = st.text(max_size=40)
TEXT = st.one_of(_PLAIN, _PLAIN, _PLAIN, st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
                 .flatmap(lambda bad: _PLAIN.map(lambda ok: ok + bad)))  # a lone surrogate now and then
SCALAR = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | HUGE | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)
TOPIC = st.sampled_from(["meeting:", "rollcall:", "kpi:", "directives:", ""]).flatmap(
    lambda head: st.builds(lambda tail: head + tail, TEXT | st.integers(0, 2**70).map(str)
                           | st.sampled_from(["1", "1:BCA", "BCA", "01:", "١", "²", " 1", "1\n"])))


def _objects(mid: int) -> st.SearchStrategy[dict[str, Any]]:
    """Message-shaped objects: a known or unknown type, and any of the fields any message reads,
    each well-typed or not."""
    field_values: dict[str, st.SearchStrategy[Any]] = {
        "meeting": st.one_of(st.just(mid), st.just(mid), HUGE, JSON), "topic": st.one_of(TOPIC, TOPIC, JSON),
        "action": st.sampled_from(sorted(ACTION_TYPES)) | JSON,
        "unit": st.sampled_from(["BCA", "01", "08707", "x" * 33]) | JSON, "unit_id": HUGE | JSON,
        "sites": st.lists(st.dictionaries(st.sampled_from(["unit", "speaking", "level", "rtt_ms", "loss", "kbps",
                                                           "fps", "connected"]), SCALAR), max_size=3) | JSON,
        "status": st.sampled_from(["present_online", "absent", "x"]) | JSON,
        "to": st.sampled_from(["live", "ended", "rehearsal", "x"]) | JSON,
    }
    known = st.sampled_from(sorted(PARSERS))
    return st.builds(
        lambda kind, fields: {"type": kind, **fields},
        st.one_of(known, known, known, JSON),  # mostly a known type: its fields are what gets tested
        st.fixed_dictionaries({}, optional={f: field_values.get(f, JSON) for f in FIELDS}),
    )


def _templates(mid: int) -> list[dict[str, Any]]:
    """One well-formed message of each kind (every action among them)."""
    subs = [f"meeting:{mid}", f"rollcall:{mid}:BCA", "kpi:BCA", "directives:01"]
    return [
        *({"type": "subscribe", "topic": t} for t in subs), {"type": "unsubscribe", "topic": subs[0]},
        {"type": "join", "meeting": mid}, {"type": "leave", "meeting": mid}, {"type": "ping"},
        {"type": "stats", "meeting": mid, "sites": [{"unit": "08707", "rtt_ms": 20, "loss": 0.1}]},
        {"type": "speaking", "meeting": mid, "sites": [{"unit": "08707", "speaking": True, "level": 30}]},
        {"type": "on_air", "meeting": mid, "unit": "08707", "video": True, "audio": True},
        *({"type": "action", "meeting": mid, "action": name, "unit": "08707", "status": "absent", "reason": "ốm",
           "to": "live"} for name in sorted(ACTION_TYPES)),
    ]


_GONE = object()


def _near_valid(mid: int) -> st.SearchStrategy[dict[str, Any]]:
    """A well-formed message with one field changed to any value (or removed) and an id of any kind."""
    def mutate(template: dict[str, Any], key: str, value: Any, rid: Any) -> dict[str, Any]:
        out = {k: v for k, v in template.items() if k != key}
        if value is not _GONE:
            out[key] = value
        return {**out, "id": rid}

    return st.sampled_from(_templates(mid)).flatmap(lambda t: st.builds(
        mutate, st.just(t), st.sampled_from([*t, "unit_id", "confirm"]),
        st.one_of(JSON, HUGE, TEXT, st.just(_GONE)), st.one_of(st.integers(1, 10**6), JSON)))


def _deep(depth: int, opener: str) -> str:
    closer = {"[": "]", "{\"a\":": "}"}[opener]
    return opener * depth + "1" + closer * depth


def frames(mid: int) -> st.SearchStrategy[str | bytes]:
    """What a hostile client can put on the wire: text frames and binary frames."""
    objects = _objects(mid).map(json.dumps)  # json.dumps escapes lone surrogates as \\udXXX
    near = _near_valid(mid).map(json.dumps)
    return st.one_of(
        objects, objects, near, near, near, near,  # weighted: most frames are message-shaped
        JSON.map(json.dumps),  # non-object JSON among them
        st.text(max_size=60),  # mostly not JSON
        st.sampled_from(["NaN", "-Infinity", '{"type":"ping","id":NaN}', '{"type":"ping"', "", "\x00", "{}",
                         '{"type":"ping","id":' + "9" * 5000 + "}", '{"type":"subscribe","topic":"\\ud800"}',
                         '{"\\udfff":1,"type":"ping"}', '{"type":"ping","type":"ping"}']),
        st.integers(10, 10_000).flatmap(lambda d: st.sampled_from(["[", "{\"a\":"]).map(lambda o: _deep(d, o))),
        st.integers(MAX_MESSAGE + 1, LARGEST).map(
            lambda n: json.dumps({"type": "subscribe", "topic": "x" * n})),  # above 16 KiB
        st.binary(max_size=64),
    )


class Prober:
    """One authenticated client and its current socket; replaced every PER_SOCKET messages."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.sent = 0
        self.probes = 0
        self.answers: dict[str, int] = {}

    async def socket(self) -> aiohttp.ClientWebSocketResponse:
        if self.ws is None or self.ws.closed or self.sent >= PER_SOCKET:  # closed: an example failed on it
            if self.ws is not None:
                await self.ws.close()
            self.ws = await self.client.http.ws_connect("/ws", max_msg_size=0)
            self.sent = 0
        return self.ws

    async def throw(self, frame: str | bytes) -> None:
        assert len(frame.encode() if isinstance(frame, str) else frame) < LARGEST + 100
        ws = await self.socket()
        self.sent += 1
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        self.probes += 1
        probe = f"probe-{self.probes}"
        await ws.send_str(json.dumps({"type": "ping", "id": probe}))
        answers = []
        while True:  # every frame up to the probe's pong
            msg = await ws.receive(timeout=BOUND)
            assert msg.type == WSMsgType.TEXT, f"socket ended after {frame[:200]!r}: {msg.type} {msg.data!r} " \
                                               f"{msg.extra!r}"
            data = json.loads(msg.data)
            assert isinstance(data, dict) and data.get("type") in ("error", "result", "pong", "snapshot", "event"), data
            if data == {"type": "pong", "id": probe}:
                break
            if data["type"] in ("error", "result", "pong"):
                answers.append(data)
        assert len(answers) <= 1, f"more than one answer to {frame[:200]!r}: {answers}"
        for answer in answers:
            if answer["type"] == "error":
                assert CODE.fullmatch(answer["code"]) and answer["code"] != "internal_error", answer
                assert isinstance(answer["message"], str) and answer["message"], answer
        if not _may_go_unanswered(frame):
            assert answers, f"no answer to {frame[:200]!r}"
        kind = answers[0]["code"] if answers and answers[0]["type"] == "error" else "ok"
        self.answers[kind] = self.answers.get(kind, 0) + 1


def _may_go_unanswered(frame: str | bytes) -> bool:
    """Only a well-formed message without an ``id`` that succeeds is answered with nothing."""
    if isinstance(frame, bytes):
        return False
    try:
        value = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and "id" not in value


async def test_hostile_messages_never_close_the_socket_nor_crash_the_server(
        live_sqlite: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    chair = await live_sqlite.login("chutri")
    mid = await schedule(chair)
    await set_state(chair, mid, "rehearsal")
    prober = Prober(chair)
    loop = asyncio.get_running_loop()

    def on_loop(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frame=frames(mid))
    def hostile(frame: str | bytes) -> None:
        on_loop(prober.throw(frame))

    with caplog.at_level(logging.WARNING):
        # Hypothesis drives from a thread; the server and the client run on this loop.
        await asyncio.to_thread(hostile)
        if prober.ws is not None:
            await prober.ws.close()
    assert prober.probes >= 150
    assert prober.answers.get("ok", 0) < prober.probes  # the generator does reach the refusals
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not failures, [f"{r.name}: {r.getMessage()}" for r in failures]
