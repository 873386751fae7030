"""The bridge's STUN/TURN servers: parsed from its settings, handed to aiortc, and told to WHIP/WHEP
clients in ``Link`` headers (RFC 9725 §4.6).

A server is written ``URL`` or, for TURN, ``URL;username=U;credential=C`` (the ``Link`` header's
own attribute names), e.g. ``stun:stun.example.vn:3478`` or
``turn:turn.example.vn:3478?transport=udp;username=hoinghi;credential=bi-mat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCIceServer

SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class IceServerInvalid(ValueError):
    """A server that cannot be written as above (Vietnamese message)."""


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str = ""
    credential: str = field(default="", repr=False)


def parse(text: str) -> IceServer:
    url, *attributes = [part.strip() for part in text.split(";")]
    if not url.lower().startswith(SCHEMES) or any(c in url for c in '<>" ,'):
        raise IceServerInvalid(f"máy chủ ICE phải là URL stun:/turn: (vd. stun:stun.example.vn:3478), "
                               f"nhận được {url!r}")
    values: dict[str, str] = {}
    for attribute in attributes:
        name, sep, value = attribute.partition("=")
        if not sep or name not in ("username", "credential") or not value or '"' in value or "\\" in value:
            raise IceServerInvalid(f"thuộc tính máy chủ ICE không hợp lệ: {attribute!r} "
                                   "(chỉ nhận username=… và credential=…)")
        values[name] = value
    return IceServer(url, values.get("username", ""), values.get("credential", ""))


def rtc(server: IceServer) -> RTCIceServer:
    """The server as aiortc takes it."""
    if server.username:
        return RTCIceServer(urls=server.url, username=server.username, credential=server.credential)
    return RTCIceServer(urls=server.url)


def link_value(server: IceServer) -> str:
    """One ``Link`` header value: ``<stun:host:port>; rel="ice-server"``, with ``username``,
    ``credential`` and ``credential-type`` for a server that needs them."""
    value = f'<{server.url}>; rel="ice-server"'
    if server.username:
        value += f'; username="{server.username}"; credential="{server.credential}"; credential-type="password"'
    return value
