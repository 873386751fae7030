"""One peer connection of a cascade to its upstream bridge (bridge.cascade): the WHIP/WHEP exchange
as a client, and ending it here and upstream."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from bridge import aiortc_compat
from bridge.relay import RelayTrack, Source

log = logging.getLogger("hoinghi.bridge.cascade")

UPSTREAM = "upstream"  # the upstream's programme, a site of the local programme in the chair's place


class CascadeError(Exception):
    """The upstream refused or could not be reached."""


@dataclass(eq=False)
class Link:
    """One peer connection to the upstream bridge (play or publish) and its DELETE URL."""

    pc: RTCPeerConnection
    location: str
    sources: list[Source] = field(default_factory=list)
    tracks: list[RelayTrack] = field(default_factory=list)


async def _exchange(url: str, token: str, pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.post(url, data=pc.localDescription.sdp.encode(),
                                                          headers=headers) as resp:
        body = await resp.text()
        if resp.status != 201:
            raise CascadeError(f"upstream refused {url}: {resp.status} {body}")
        location = resp.headers.get("Location", "")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    aiortc_compat.mark_passthrough(pc)
    return location


async def close_link(link: Link, token: str | None, base_url: str) -> None:
    """End a link here, and upstream when there is a token to say so (else the upstream ends it
    itself once nothing arrives). The peer connection is closed whatever fails or cuts this short:
    one left open sends to a peer that is gone until ICE consent fails, half a minute later."""
    try:
        for track in link.tracks:
            track.stop()
        for source in link.sources:
            await source.close()
        if link.location and token:
            try:
                async with aiohttp.ClientSession() as http, http.delete(
                        f"{base_url.rstrip('/')}{link.location}", headers={"Authorization": f"Bearer {token}"}):
                    pass
            except (aiohttp.ClientError, OSError, TimeoutError):
                log.warning("could not end upstream session %s", link.location)
    finally:
        await link.pc.close()
