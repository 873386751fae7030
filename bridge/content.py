"""Screen sharing ("content", issue #17): the chair or the floor holder publishes a shared screen
as a second video beside the programme (WHIP ``?content=1``), played with WHEP ``?content=1``;
forwarded untouched like a camera (see docs/protocol.md)."""

from __future__ import annotations

from bridge import aiortc_compat, direct_send
from bridge.errors import BridgeError
from bridge.keyframes import KeyframeRequester
from bridge.offer import preferences, rtx_ssrcs
from bridge.peers import (
    _check_still_fits,
    _negotiate,
    _replace,
    _room,
    _sends_video,
    new_peer,
    pli_sender,
    read_offer,
)
from bridge.relay import RelayTrack, Source
from bridge.room import BridgeState, Peer
from sessions.join_tokens import JoinClaims


async def publish_content(state: BridgeState, claims: JoinClaims, offer_text: str) -> Peer:
    """The chair or the floor holder shares a screen: the offer's first sending video m-line
    becomes the unit's content (forwarded untouched like a camera); anything else is answered
    ``inactive``. A new share of the same unit replaces the previous one."""
    offer, description = read_offer(offer_text)
    room = await _room(state, claims.meeting)
    if claims.role != "chair" and room.floor != claims.unit:
        raise BridgeError(403, "floor_required",
                          "Chỉ chủ trì hoặc điểm cầu đang được phát biểu mới được chia sẻ màn hình")
    if not _sends_video(description):
        raise BridgeError(400, "sdp_invalid", "Chia sẻ màn hình cần một kênh hình ảnh gửi đi")
    video_cap, peer = new_peer(state, claims, room, description, "publish", content=True)
    pc = peer.pc
    try:
        taken = False
        for m in description.media:
            if m.kind == "video" and not taken and m.direction in (None, "sendonly", "sendrecv"):
                taken = True
                pc.addTransceiver("video", direction="recvonly").setCodecPreferences(preferences("video", video_cap))
            elif m.kind in ("audio", "video"):
                pc.addTransceiver(m.kind, direction="inactive").setCodecPreferences(preferences(m.kind, video_cap))
        answer = await _negotiate(state, peer, offer)
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video" and transceiver.receiver.track is not None \
                    and transceiver.direction == "recvonly":
                peer.video_codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
                break
        _check_still_fits(room, peer)
    except BaseException:
        await pc.close()
        raise
    rtx = rtx_ssrcs(description)
    source: Source | None = None
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video" or transceiver.direction != "recvonly" or transceiver.receiver.track is None:
            continue
        codec = aiortc_compat.negotiated_codecs(transceiver)[0]
        keyframes = KeyframeRequester(pli_sender(transceiver.receiver, rtx), state.config.keyframe_interval)
        source = Source("video", codec.mimeType, keyframes, label=f"{claims.unit}/content")
        source.start(transceiver.receiver.track)
        peer.sources.append(source)
        break
    previous = room.content_publishers.get(claims.unit)
    room.content_publishers[claims.unit] = peer
    state.peers[peer.id] = peer
    peer.answer = answer
    if source is not None:
        room.programme.publish_content(claims.unit, source, chair=claims.role == "chair")
    if previous is not None:
        state.spawn(_replace(state, previous, peer), name=f"replace-{previous.id}")
    await state.opened(peer)
    return peer


async def play_content(state: BridgeState, claims: JoinClaims, offer_text: str) -> Peer:
    """A site (or a child bridge) plays the meeting's content: the offer's first video m-line gets
    the content timeline (nothing while nobody shares); anything else is answered ``inactive``."""
    offer, description = read_offer(offer_text)
    room = await _room(state, claims.meeting)
    video_cap, peer = new_peer(state, claims, room, description, "play", content=True)
    pc = peer.pc
    try:
        taken = False
        for m in description.media:
            if m.kind == "video" and not taken:
                taken = True
                track = room.programme.content.fanout.subscribe()
                transceiver = pc.addTransceiver(track, direction="sendonly")
                direct_send.use_direct_send(transceiver.sender)
                aiortc_compat.on_keyframe_request(transceiver.sender, track.request_keyframe)
                peer.tracks.append(track)
            elif m.kind in ("audio", "video"):
                transceiver = pc.addTransceiver(m.kind, direction="inactive")
            else:
                continue
            transceiver.setCodecPreferences(preferences(m.kind, video_cap))
        answer = await _negotiate(state, peer, offer)
        for transceiver in pc.getTransceivers():
            sent = transceiver.sender.track
            if isinstance(sent, RelayTrack):
                sent.codec = peer.video_codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
        _check_still_fits(room, peer)
    except BaseException:
        for t in peer.tracks:
            t.stop()
        await pc.close()
        raise
    if claims.role == "bridge":  # a child bridge plays the content once (see play)
        for old in [p for p in state.peers.values() if p.kind == "play" and p.role == "bridge" and p.content
                    and p.unit == claims.unit and p.meeting == claims.meeting]:
            state.end_later(old, f"its bridge plays the content again ({peer.id})")
    state.peers[peer.id] = peer
    peer.answer = answer
    await state.opened(peer)
    return peer
