"""Publishing (WHIP) and playing (WHEP) peer connections: offer in, answer out, media wired to
the room's programme. No HTTP here (see :mod:`bridge.app`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
    sdp,
)
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from bridge import aiortc_compat, direct_send, ice_servers
from bridge.errors import BridgeError
from bridge.keyframes import KeyframeRequester
from bridge.layers import AdaptiveTrack, Rendition
from bridge.offer import (
    capability,
    check_codecs,
    parse_offer,
    preferences,
    rtx_ssrcs,
    strip_mdns_candidates,
    video_codec_for,
)
from bridge.programme import Programme, Site, Switch
from bridge.relay import Listener, RelayTrack, Source
from bridge.remb import share_estimate
from bridge.room import BridgeState, Peer, Room
from bridge.speaking import SpeakingMeter
from sessions.join_tokens import JoinClaims

log = logging.getLogger("hoinghi.bridge.peers")


def peer_connection(state: BridgeState) -> RTCPeerConnection:
    """A peer connection whose media all share one transport (max-bundle).

    WHIP/WHEP (RFC 9725 §4.2) require one BUNDLE group. aiortc's default policy ("balanced")
    bundles a second transceiver of a kind onto the first one's *own* transport when it is added,
    and ``setRemoteDescription`` then moves only transceivers not yet marked bundled onto the
    BUNDLE transport: the programme's second audio m-line (the floor holder's sound) stayed on a
    transport that was stopped, its sender never started, and nobody heard the floor holder."""
    servers = [ice_servers.rtc(ice_servers.parse(text)) for text in state.config.ice_servers]
    # none given: no STUN at all (aiortc would otherwise default to Google's)
    return RTCPeerConnection(RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def _video_codec(room: Room, description: object) -> RTCRtpCodecCapability | None:
    """The codec the offer's video is answered with: the offer's variant of the meeting's codec,
    else (no codec pinned yet) the offer's first forwardable one. Answering pins nothing."""
    for m in description.media:  # type: ignore[attr-defined]
        if m.kind == "video":
            codec = video_codec_for(m, room.video_codec)
            return capability(codec) if codec is not None else None
    return None


def pin_video(state: BridgeState, room: Room, codec: RTCRtpCodecCapability) -> None:
    """Make ``codec`` the meeting's video codec on this bridge. Every peer of the meeting that
    negotiated another ends: a player answered before the pin plays again (pages reconnect) and
    is answered with this codec, or refused (422) if it cannot take it."""
    room.video_codec = codec
    room.codec_pinned.set()
    mime = codec.mimeType.lower()
    for peer in list(state.peers.values()):
        if peer.meeting == room.meeting and peer.video_codec not in (None, mime):
            log.info("meeting %s carries %s: %s %s of %s (%s) ends", room.meeting, mime, peer.kind, peer.id,
                     peer.unit, peer.video_codec)
            state.end_later(peer, f"its codec is not the meeting's {mime}")


def _pin_at_first_packet(state: BridgeState, room: Room, peer: Peer, codec: RTCRtpCodecCapability) -> Listener:
    """A one-shot listener of a publication's video: its first packet (it got past ICE and DTLS
    and sends) pins the meeting's codec, unless something else pinned it first."""
    def on_packet(source: Source, packet: object, keyframe: bool) -> None:
        source.listeners.remove(on_packet)
        if room.video_codec is None and not peer.closed:
            pin_video(state, room, codec)
    return on_packet


def _check_still_fits(room: Room, peer: Peer) -> None:
    """The meeting's codec may have been pinned while this offer was being answered."""
    if room.video_codec is not None and peer.video_codec not in (None, room.video_codec.mimeType.lower()):
        name = room.video_codec.mimeType.split("/")[1]
        raise BridgeError(422, "codec_unsupported", f"Hội nghị đang dùng hình ảnh {name}: thiết bị phải hỗ trợ mã này")


async def _negotiate(state: BridgeState, peer: Peer, offer: str) -> str:
    """Apply the offer (transceivers already added and pinned), answer it, watch the connection."""
    pc = peer.pc
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    except OperationError as exc:  # no common codec after pinning (check_codecs should have said so)
        raise BridgeError(422, "codec_unsupported", "Thiết bị không hỗ trợ mã hình ảnh/âm thanh của hội nghị") from exc
    except (ValueError, KeyError, IndexError, InvalidAccessError, InvalidStateError, InternalError) as exc:
        raise BridgeError(400, "sdp_invalid", "Đề nghị SDP không hợp lệ") from exc
    aiortc_compat.mark_passthrough(pc)
    await pc.setLocalDescription(await pc.createAnswer())

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            state.end_later(peer, f"its connection {pc.connectionState}")

    return pc.localDescription.sdp


def _sends_video(description: object) -> bool:
    return any(m.kind == "video" and m.direction in (None, "sendonly", "sendrecv")
               for m in description.media)  # type: ignore[attr-defined]


MAX_VIDEO_LINES = 2  # a camera's two renditions (issue #16): high, then low


def _video_lines(description: object) -> int:
    """How many video m-lines an offer has; more than two is refused (400 ``too_many_video``)."""
    count = len([m for m in description.media if m.kind == "video"])  # type: ignore[attr-defined]
    if count > MAX_VIDEO_LINES:
        raise BridgeError(400, "too_many_video", f"Đề nghị SDP có {count} kênh hình: tối đa {MAX_VIDEO_LINES} "
                          "(bản chất lượng cao và bản thấp)")
    return count


def pli_sender(receiver: RTCRtpReceiver, rtx: set[int]) -> Callable[[], Awaitable[None]]:
    async def send() -> None:
        for source in receiver.getSynchronizationSources():
            if source.source not in rtx:
                await aiortc_compat.send_pli(receiver, source.source)
    return send


async def _room(state: BridgeState, meeting: int) -> Room:
    room = state.room(meeting)
    if room.video_codec is None and state.before_answer is not None:
        await state.before_answer(meeting)
    return room


def read_offer(offer_text: str) -> tuple[str, sdp.SessionDescription]:
    """A WHIP/WHEP offer as answered (mDNS candidates left out) and parsed (400 ``sdp_invalid``)."""
    offer = strip_mdns_candidates(offer_text)
    return offer, parse_offer(offer)


def new_peer(state: BridgeState, claims: JoinClaims, room: Room, description: sdp.SessionDescription, kind: str,
             content: bool = False, preview: str | None = None) -> tuple[RTCRtpCodecCapability | None, Peer]:
    """The codec an offer's video is answered with (its codecs checked first: 422
    ``codec_unsupported``) and a new peer with its connection, once the entry point's own checks
    have passed."""
    check_codecs(description, room.video_codec)
    video_cap = _video_codec(room, description)
    peer = Peer(id=secrets.token_urlsafe(12), kind=kind, meeting=claims.meeting, unit=claims.unit,
                role=claims.role, pc=peer_connection(state), content=content, preview=preview)
    return video_cap, peer


async def publish(state: BridgeState, claims: JoinClaims, offer_text: str, thumbnail: bool = False) -> Peer:
    """A site (or a child bridge) publishes its camera and microphone into the meeting.

    A camera comes as one or two video m-lines: the high rendition, then the low one. A
    ``thumbnail`` publication carries one, the low rendition, for the mosaics (issue #16)."""
    offer, description = read_offer(offer_text)
    video_lines = _video_lines(description)
    if thumbnail and video_lines > 1:
        raise BridgeError(400, "too_many_video", "Ảnh thu nhỏ chỉ gửi một kênh hình (bản chất lượng thấp)")
    room = await _room(state, claims.meeting)
    # Every site may send its microphone (the bridge reads who speaks, and a muted or floorless
    # site's sound goes nowhere); its camera only while it holds the floor, or as a thumbnail.
    if claims.role != "chair" and room.floor != claims.unit and _sends_video(description) and not thumbnail:
        raise BridgeError(403, "floor_required", "Điểm cầu chưa được chủ trì cho phát biểu")
    video_cap, peer = new_peer(state, claims, room, description, "publish")
    pc = peer.pc
    try:
        for m in description.media:
            if m.kind in ("audio", "video"):
                pc.addTransceiver(m.kind, direction="recvonly").setCodecPreferences(preferences(m.kind, video_cap))
        answer = await _negotiate(state, peer, offer)
        share_estimate(pc)  # one REMB for the camera's renditions together (bridge.remb)
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video" and transceiver.receiver.track is not None:
                peer.video_codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
                break
        _check_still_fits(room, peer)
    except BaseException:
        await pc.close()
        raise
    rtx = rtx_ssrcs(description)
    renditions: list[Source] = []
    audio: Source | None = None
    for transceiver in pc.getTransceivers():
        track = transceiver.receiver.track
        if track is None or (transceiver.kind == "audio" and audio is not None):
            continue
        codec = aiortc_compat.negotiated_codecs(transceiver)[0]
        keyframes = None
        if transceiver.kind == "video":
            keyframes = KeyframeRequester(pli_sender(transceiver.receiver, rtx), state.config.keyframe_interval)
        source = Source(transceiver.kind, codec.mimeType, keyframes, label=f"{claims.unit}/{transceiver.kind}")
        if transceiver.kind == "audio":
            peer.meter = SpeakingMeter() if claims.role == "site" else None
            aiortc_compat.on_audio_level(transceiver.receiver, _levels(source, peer.meter))
        source.start(track)
        peer.sources.append(source)
        if transceiver.kind == "video":
            renditions.append(source)
            if room.video_codec is None:
                source.listeners.append(_pin_at_first_packet(state, room, peer, capability(codec)))
        else:
            audio = source
    video: Source | None = None
    video_low: Source | None = None
    if thumbnail:
        video_low = renditions[0] if renditions else None
    else:
        video = renditions[0] if renditions else None
        video_low = renditions[1] if len(renditions) > 1 else None
    if video_low is not None:
        video_low.label = f"{claims.unit}/video-low"
    previous = room.publishers.get(claims.unit)
    peer.site = Site(claims.unit, video, audio, video_low)
    room.publishers[claims.unit] = peer
    state.peers[peer.id] = peer
    peer.answer = answer
    room.programme.publish(peer.site, chair=claims.role == "chair")
    if previous is not None:  # the same site published again (reconnect, or camera added): the new one wins
        state.spawn(_replace(state, previous, peer), name=f"replace-{previous.id}")
    await state.opened(peer)
    return peer


REPLACE_WAIT = 5.0  # seconds a publication waits for its replacement's media before it ends anyway


def _levels(source: Source, meter: SpeakingMeter | None) -> Callable[[int], None]:
    def heard(level: int) -> None:
        source.heard_level(level)
        if meter is not None:
            meter.feed(level)
    return heard


async def _replace(state: BridgeState, previous: Peer, new: Peer) -> None:
    """End ``previous`` once every source of ``new`` carries media — its camera a packet, its
    microphone voice — or REPLACE_WAIT passes: the programme's switches take each new source at its
    first packet (video at its first keyframe; sound, from the same site's old microphone, at its
    first of voice), so listeners hear and see no gap while the new connection completes its
    handshake and its microphone starts (a site adding its camera to its microphone)."""
    flowing = [asyncio.ensure_future((source.sounding if source.kind == "audio" else source.flowing).wait())
               for source in new.sources]
    try:
        if flowing:
            await asyncio.wait(flowing, timeout=REPLACE_WAIT)
    finally:
        for waiter in flowing:
            waiter.cancel()
        await asyncio.gather(*flowing, return_exceptions=True)
        await state.close_peer(previous, f"replaced by {new.id}")


def _own_voice(programme: Programme, output: Switch, claims: JoinClaims) -> Callable[[], bool] | None:
    """No echo: the chair's player never gets the chair's sound, the floor holder's player never
    its own (decided here, at the bridge, whatever the page plays)."""
    if output is programme.chair_audio:
        return (lambda: True) if claims.role == "chair" else None
    unit = claims.unit
    return lambda: programme.floor == unit


async def play(state: BridgeState, claims: JoinClaims, offer_text: str, layer: str | None = None) -> Peer:
    """A site plays the meeting's programme: video, chair audio, floor-holder audio.

    One video m-line gets the rendition the subscriber's link takes, chosen here once a second
    (``layer`` pins it); two (a child bridge) get the high rendition, then the low one."""
    offer, description = read_offer(offer_text)
    video_lines = _video_lines(description)
    room = await _room(state, claims.meeting)
    video_cap, peer = new_peer(state, claims, room, description, "play")
    pc = peer.pc
    programme = room.programme
    audio_outputs = [programme.chair_audio, programme.floor_audio]
    video_outputs = [programme.video, programme.video_low]
    adaptive: AdaptiveTrack | None = None
    try:
        for m in description.media:
            track: RelayTrack | None = None
            if m.kind == "video" and video_outputs:
                output = video_outputs.pop(0)
                if video_lines == 1:
                    rendition: Rendition = "low" if layer == "low" else "high"
                    track = adaptive = AdaptiveTrack({"high": programme.video.fanout,
                                                      "low": programme.video_low.fanout}, rendition)
                else:
                    track = output.fanout.subscribe()
                transceiver = pc.addTransceiver(track, direction="sendonly")
                direct_send.use_direct_send(transceiver.sender)
                aiortc_compat.on_keyframe_request(transceiver.sender, track.request_keyframe)
                if adaptive is not None:
                    peer.adaptation = state.adapter.watch(adaptive, transceiver.sender, pinned=layer is not None)
            elif m.kind == "audio" and audio_outputs:
                output = audio_outputs.pop(0)
                track = output.fanout.subscribe()
                track.withheld = _own_voice(programme, output, claims)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                direct_send.use_direct_send(transceiver.sender)
            elif m.kind in ("audio", "video"):
                transceiver = pc.addTransceiver(m.kind, direction="inactive")
            else:
                continue
            if track is not None:
                peer.tracks.append(track)
            transceiver.setCodecPreferences(preferences(m.kind, video_cap))
        answer = await _negotiate(state, peer, offer)
        for transceiver in pc.getTransceivers():
            sent = transceiver.sender.track
            if isinstance(sent, RelayTrack):
                sent.codec = aiortc_compat.negotiated_codecs(transceiver)[0].mimeType.lower()
                if sent.kind == "video":
                    peer.video_codec = sent.codec
        _check_still_fits(room, peer)
    except BaseException:
        for t in peer.tracks:
            t.stop()
        await pc.close()
        raise
    if claims.role == "bridge":
        # A child bridge plays each meeting once: playing again means it restarted, and its old
        # peer is dead (ICE would notice only ~30 s later). Sites may play on several screens.
        for old in [p for p in state.peers.values() if p.kind == "play" and p.role == "bridge"
                    and p.unit == claims.unit and p.meeting == claims.meeting and not p.content]:
            state.end_later(old, f"its bridge plays again ({peer.id})")
    state.peers[peer.id] = peer
    peer.answer = answer
    await state.opened(peer)
    return peer
