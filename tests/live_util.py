"""Helpers for live tests: schedule a meeting over the API, and a websocket client that keeps
the snapshot + event state the way the browser does."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Client

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    """``hoinghi serve`` as a real process of its own (``env`` carries its settings)."""
    return subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                            env={**env, "HOINGHI_HOST": "127.0.0.1"}, cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"server exited: {proc.stderr.read() if proc.stderr else ''}"
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never became healthy")


NATIONWIDE = [{"unit": "BCA", "levels": ["province", "district", "commune"]}]


async def schedule(chair: Client, participants: list[dict[str, Any]] | None = None, title: str = "Hội nghị thử") -> int:
    resp = await chair.api("POST", "/api/meetings", json={
        "title": title, "agenda": ["Khai mạc", "Thảo luận"], "start": "2030-01-01T08:00:00+07:00",
        "participants": participants or NATIONWIDE})
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["meeting"]["id"])


async def set_state(chair: Client, meeting_id: int, *states: str) -> None:
    for st in states:
        resp = await chair.api("POST", f"/api/meetings/{meeting_id}/state", json={"to": st})
        assert resp.status == 200, await resp.text()


class WsClient:
    """A websocket client holding live state: meeting (by seq) and seats (row by row, by seq)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.meeting: dict[str, Any] | None = None
        self.seats: dict[int, dict[str, Any]] = {}
        self.own_seat: dict[str, Any] | None = None
        self.slides: dict[str, dict[str, Any]] = {}  # kpi:<unit code> → the unit's slide
        self.health: dict[str, dict[str, Any]] = {}  # unit code → its latest connection health
        self.speaking: dict[str, dict[str, Any]] = {}  # unit code → its latest speaking state
        self.on_air: dict[str, Any] | None = None  # the programme's latest on-air report
        self.dashboards: dict[str, dict[str, Any]] = {}  # directives:<unit code> → its snapshot
        self.directive_events = 0  # "counts moved" events of directives: subscriptions
        self.messages: list[dict[str, Any]] = []
        self.results: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, client: Client) -> WsClient:
        ws = await client.http.ws_connect("/ws")
        return cls(ws)

    async def _read(self) -> None:
        async for raw in self.ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(raw.data)
            self.messages.append(msg)
            if msg["type"] == "snapshot":
                data = msg["data"]
                if msg["topic"].startswith("kpi:"):
                    self.slides[msg["topic"][4:]] = data
                elif msg["topic"].startswith("directives:"):
                    self.dashboards[msg["topic"][11:]] = data
                elif msg["topic"].startswith("meeting:"):
                    self.meeting, self.own_seat = data["meeting"], data["seat"]
                else:
                    self.seats = {s["unit_id"]: s for s in data["seats"]}
            elif msg["type"] == "event":
                self.apply(msg)
            elif msg["type"] in ("result", "error", "pong") and msg.get("id") is not None:
                self.results[msg["id"]] = msg
            self.changed.set()

    def apply(self, msg: dict[str, Any]) -> None:
        if msg["kind"] == "directives":
            self.directive_events += 1
            return
        data = msg["data"]
        if msg["kind"] == "kpi":
            self.slides[msg["unit"]] = data
        elif msg["kind"] == "health":
            self.health[data["code"]] = data
        elif msg["kind"] == "speaking":
            self.speaking[data["code"]] = data
        elif msg["kind"] == "on_air":
            self.on_air = data
        elif msg["kind"] == "call":  # a province calls one of its sites (#14): in self.messages only
            return
        elif msg["kind"] == "slide":  # the meeting's pushed slides (tests/test_slide_push.py reads them)
            pass
        elif msg["kind"] == "meeting":
            if self.meeting is None or data["seq"] >= self.meeting["seq"]:
                self.meeting = data
        else:
            old = self.seats.get(data["unit_id"])
            if old is None or data["seq"] >= old["seq"]:
                self.seats[data["unit_id"]] = data
            if self.own_seat is not None and self.own_seat["unit_id"] == data["unit_id"] \
                    and data["seq"] >= self.own_seat["seq"]:
                self.own_seat = data

    async def request(self, msg: dict[str, Any], within: float = 5.0) -> dict[str, Any]:
        rid = self.next_id
        self.next_id += 1
        await self.ws.send_str(json.dumps({**msg, "id": rid}))
        return await self.until(lambda: self.results.get(rid), within)

    async def until(self, predicate: Any, within: float = 5.0) -> Any:
        async def wait() -> Any:
            while True:
                value = predicate()
                if value:
                    return value
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(wait(), within)

    def seat(self, code: str) -> dict[str, Any] | None:
        return next((s for s in self.seats.values() if s["code"] == code), None)

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()
