"""A third-party WHIP/WHEP client for the tests: GStreamer's ``webrtcbin`` (Debian's packages),
doing the HTTP exchange itself. Run by Debian's own Python (the project's virtualenv cannot import
``gi``)::

    /usr/bin/python3 tests/gst_whip.py publish URL TOKEN --codec vp8|h264 [--width W --height H]
    /usr/bin/python3 tests/gst_whip.py play URL TOKEN --codec vp8|h264

``publish`` sends a test picture (and silence in Opus) to a WHIP endpoint, ``play`` decodes what a
WHEP endpoint sends. Each prints JSON lines on stdout: ``{"event": "created", "status", "location"}``
or ``{"event": "refused", "status", "body"}``, ``{"event": "connection", "state"}`` on every
connection state, and (``play``) ``{"event": "frames", "count", "width", "height"}`` twice a
second. Closing stdin ends the session (a ``DELETE`` of its location) and the process.

This file runs outside the project: it imports nothing of it, and the project imports nothing of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

ENCODERS = {
    "vp8": ("vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 ! rtpvp8pay pt=96 picture-id-mode=15-bit",
            "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"),
    "h264": ("x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=300 "
             "! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 config-interval=-1 "
             "aggregate-mode=zero-latency",
             "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000"),
}
# A player offers what it decodes; the H.264 publisher's profile-level-id comes from its SPS.
PLAY_VIDEO = {"vp8": ENCODERS["vp8"][1],
              "h264": ENCODERS["h264"][1] + ",packetization-mode=(string)1,profile-level-id=(string)42e01f"}
OPUS = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class Client:
    def __init__(self, mode: str, url: str, token: str, codec: str, width: int, height: int) -> None:
        self.mode, self.url, self.token = mode, url, token
        self.loop = GLib.MainLoop()
        self.location = ""
        self.frames = 0
        self.size = (0, 0)
        if mode == "publish":
            encoder, caps = ENCODERS[codec]
            self.pipeline = Gst.parse_launch(
                "webrtcbin name=w bundle-policy=max-bundle "
                f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1 "
                f"! videoconvert ! {encoder} ! {caps} ! w. "
                "audiotestsrc is-live=true wave=silence ! audioconvert ! audioresample ! opusenc "
                f"! rtpopuspay pt=111 ! {OPUS} ! w.")
            self.webrtc = self.pipeline.get_by_name("w")
            for transceiver in self._transceivers():
                transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        else:
            self.pipeline = Gst.Pipeline.new("player")
            self.webrtc = Gst.ElementFactory.make("webrtcbin", "w")
            self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
            self.pipeline.add(self.webrtc)
            recvonly = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
            self.webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(PLAY_VIDEO[codec]))
            for _ in range(2):  # the chair's sound, the floor holder's
                self.webrtc.emit("add-transceiver", recvonly, Gst.Caps.from_string(OPUS))
            self.webrtc.connect("pad-added", self._on_pad)
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("notify::connection-state", self._on_connection)
        self._offered = False
        self.pipeline.get_bus().add_signal_watch()
        self.pipeline.get_bus().connect("message::error", self._on_error)

    def _transceivers(self) -> list[Any]:
        found, index = [], 0
        while (transceiver := self.webrtc.emit("get-transceiver", index)) is not None:
            found.append(transceiver)
            index += 1
        return found

    # ------------------------------------------------------------------ offer, then the HTTP exchange

    def _on_negotiation_needed(self, webrtc: Any) -> None:
        promise = Gst.Promise.new_with_change_func(self._on_offer, None)
        webrtc.emit("create-offer", None, promise)

    def _on_offer(self, promise: Any, _data: Any) -> None:
        # The reply owns the offer (PyGObject hands out a borrowed pointer): keep it alive.
        self._reply = promise.get_reply()
        offer = self._reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())
        self._on_gathering(self.webrtc, None)

    def _on_gathering(self, webrtc: Any, _spec: Any) -> None:
        """Non-trickle, as the bridge wants: the offer goes once every candidate is in it."""
        complete = webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE
        local = webrtc.get_property("local-description")
        if complete and local is not None and not self._offered:
            self._offered = True
            GLib.idle_add(self._exchange, local.sdp.as_text())

    def _exchange(self, offer: str) -> bool:
        request = urllib.request.Request(self.url, data=offer.encode(), method="POST", headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, response.read().decode()
                self.location = urllib.parse.urljoin(self.url, response.headers.get("Location", ""))
        except urllib.error.HTTPError as exc:
            say(event="refused", status=exc.code, body=exc.read().decode(errors="replace"))
            self.loop.quit()
            return False
        say(event="created", status=status, location=self.location)
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        return False

    def _on_connection(self, webrtc: Any, _spec: Any) -> None:
        state = webrtc.get_property("connection-state")
        say(event="connection", state=state.value_nick)

    def _on_error(self, _bus: Any, message: Any) -> None:
        error, debug = message.parse_error()
        say(event="error", message=error.message, debug=debug or "")

    # ------------------------------------------------------------------ what a player decodes

    def _on_pad(self, webrtc: Any, pad: Any) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        media = pad.get_current_caps().get_structure(0).get_string("media")
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self._on_decoded_pad, media)
        self.pipeline.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def _on_decoded_pad(self, _decode: Any, pad: Any, media: str) -> None:
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        if media == "video":
            sink.set_property("signal-handoffs", True)
            sink.connect("handoff", self._on_frame)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def _on_frame(self, _sink: Any, _buffer: Any, pad: Any) -> None:
        caps = pad.get_current_caps()
        if caps is not None:
            structure = caps.get_structure(0)
            self.size = (structure.get_int("width")[1], structure.get_int("height")[1])
        self.frames += 1

    def _report(self) -> bool:
        say(event="frames", count=self.frames, width=self.size[0], height=self.size[1])
        return True

    # ------------------------------------------------------------------ run until stdin closes

    def run(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)
        if self.mode == "play":
            GLib.timeout_add(500, self._report)
        threading.Thread(target=self._wait_stdin, daemon=True).start()
        try:
            self.loop.run()
        finally:
            if self.location:
                request = urllib.request.Request(self.location, method="DELETE",
                                                 headers={"Authorization": f"Bearer {self.token}"})
                try:
                    urllib.request.urlopen(request, timeout=5).close()
                except OSError:
                    pass
            self.pipeline.set_state(Gst.State.NULL)

    def _wait_stdin(self) -> None:
        sys.stdin.read()
        GLib.idle_add(self.loop.quit)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("publish", "play"))
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--codec", choices=tuple(ENCODERS), default="vp8")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    Gst.init(None)
    if Gst.ElementFactory.find("webrtcbin") is None:
        say(event="error", message="webrtcbin missing (gstreamer1.0-plugins-bad)")
        return 2
    Client(args.mode, args.url, args.token, args.codec, args.width, args.height).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
