"""Screen sharing through the cascade (issue #17): the upstream's content played here in the chair's
place, and a local floor holder's shared screen published upstream (``?content=1``)."""

from __future__ import annotations

from aiortc import RTCRtpSender, sdp

from bridge import aiortc_compat, direct_send
from bridge.keyframes import KeyframeRequester
from bridge.offer import rtx_ssrcs
from bridge.peers import peer_connection, pli_sender
from bridge.relay import Source
from bridge.room import BridgeState
from bridge.upstream_link import UPSTREAM, Link, _exchange


async def play_upstream_content(state: BridgeState, meeting: int, token: str) -> Link:
    """Play the upstream's content (``?content=1``) and make it the local content in the chair's place."""
    base = state.config.upstream_url.rstrip("/")
    pc = peer_connection(state)
    link = Link(pc, "")
    try:
        pc.addTransceiver("video", direction="recvonly")
        link.location = await _exchange(f"{base}/meetings/{meeting}/whep?content=1", token, pc)
    except BaseException:
        await pc.close()
        raise
    rtx = rtx_ssrcs(sdp.SessionDescription.parse(pc.remoteDescription.sdp))
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video" or transceiver.receiver.track is None:
            continue
        codec = aiortc_compat.negotiated_codecs(transceiver)[0]
        keyframes = KeyframeRequester(pli_sender(transceiver.receiver, rtx), state.config.keyframe_interval)
        source = Source("video", codec.mimeType, keyframes, label=f"{UPSTREAM}/content")
        source.start(transceiver.receiver.track)
        link.sources.append(source)
        state.room(meeting).programme.publish_content(UPSTREAM, source, chair=True)
        break
    return link


async def publish_content_upstream(state: BridgeState, meeting: int, source: Source, token: str) -> Link:
    """Publish a local floor holder's shared screen to the upstream bridge (``?content=1``)."""
    base = state.config.upstream_url.rstrip("/")
    pc = peer_connection(state)
    link = Link(pc, "")
    try:
        track = source.fanout.subscribe()
        link.tracks.append(track)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        direct_send.use_direct_send(transceiver.sender)
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in
                                         (source.mime_type.lower(), "video/rtx")])
        aiortc_compat.on_keyframe_request(transceiver.sender, track.request_keyframe)
        link.location = await _exchange(f"{base}/meetings/{meeting}/whip?content=1", token, pc)
        track.codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
    except BaseException:
        for t in link.tracks:
            t.stop()
        await pc.close()
        raise
    return link
