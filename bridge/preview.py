"""Playing one site's own camera and microphone (issue #16): the chair's mosaic of provinces, a
province console's page of communes, the preview of a site before it is given the floor.

The join token says which site (its ``view`` claim, issued by the server to whoever may see that
site): it plays that site's low rendition (its only one, from an older client) and, if the offer has
an audio m-line, its microphone — nothing of the programme. Forwarded untouched like everything else.
"""

from __future__ import annotations

from bridge import aiortc_compat, direct_send
from bridge.errors import BridgeError
from bridge.offer import preferences
from bridge.peers import _negotiate, _room, _video_lines, new_peer, read_offer
from bridge.relay import RelayTrack
from bridge.room import BridgeState, Peer
from sessions.join_tokens import JoinClaims


async def play_preview(state: BridgeState, claims: JoinClaims, offer_text: str) -> Peer:
    """Answer a WHEP offer made with a preview token: the site's video (and sound) only."""
    assert claims.view is not None
    offer, description = read_offer(offer_text)
    _video_lines(description)
    room = await _room(state, claims.meeting)
    site = room.programme.sites.get(claims.view)
    video = site.rendition("low") if site is not None else None
    if site is None or video is None:
        raise BridgeError(404, "no_thumbnail", "Điểm cầu này chưa gửi hình")
    video_cap, peer = new_peer(state, claims, room, description, "preview", preview=claims.view)
    pc = peer.pc
    video_taken = audio_taken = False
    try:
        for m in description.media:
            track: RelayTrack | None = None
            if m.kind == "video" and not video_taken:
                video_taken = True
                track = video.fanout.subscribe()
                transceiver = pc.addTransceiver(track, direction="sendonly")
                aiortc_compat.on_keyframe_request(transceiver.sender, track.request_keyframe)
            elif m.kind == "audio" and not audio_taken and site.audio is not None:
                audio_taken = True
                track = site.audio.fanout.subscribe()
                transceiver = pc.addTransceiver(track, direction="sendonly")
            elif m.kind in ("audio", "video"):
                transceiver = pc.addTransceiver(m.kind, direction="inactive")
            else:
                continue
            if track is not None:
                direct_send.use_direct_send(transceiver.sender)
                peer.tracks.append(track)
            transceiver.setCodecPreferences(preferences(m.kind, video_cap))
        answer = await _negotiate(state, peer, offer)
        for transceiver in pc.getTransceivers():
            sent = transceiver.sender.track
            if isinstance(sent, RelayTrack):
                sent.codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
                if sent.kind == "video":
                    peer.video_codec = sent.codec
    except BaseException:
        for t in peer.tracks:
            t.stop()
        await pc.close()
        raise
    state.peers[peer.id] = peer
    peer.answer = answer
    await state.opened(peer)
    return peer
