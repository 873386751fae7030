"""A bridge in its own process, with every way of creating or using a codec counted.

Usage: ``python tests/bridge_process.py UNIT KEY``. Prints the bridge's URL, then answers each
``counts`` line on stdin with one JSON line; exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import av
from aiortc.codecs import g711, g722, h264, opus, vpx

COUNTS = {"codec_context_create": 0, "aiortc_codec_objects": 0, "encode_calls": 0, "decode_calls": 0,
          "forwarded_packets": 0}
_real_codec_context = av.CodecContext


class CountingCodecContext:
    """Stands in for ``av.CodecContext`` wherever aiortc reaches it."""

    @staticmethod
    def create(*args: Any, **kwargs: Any) -> Any:
        COUNTS["codec_context_create"] += 1
        return _real_codec_context.create(*args, **kwargs)


av.CodecContext = CountingCodecContext  # type: ignore[misc,assignment]
for module in (vpx, opus, g711, g722):
    module.CodecContext = CountingCodecContext  # type: ignore[attr-defined]


def _count(cls: type, method: str, key: str) -> None:
    original = getattr(cls, method)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS[key] += 1
        return original(self, *args, **kwargs)

    setattr(cls, method, wrapper)


for cls in (vpx.Vp8Encoder, vpx.Vp8Decoder, h264.H264Encoder, h264.H264Decoder, opus.OpusEncoder,
            opus.OpusDecoder, g711.PcmaEncoder, g711.PcmaDecoder, g711.PcmuEncoder, g711.PcmuDecoder,
            g722.G722Encoder, g722.G722Decoder):
    _count(cls, "__init__", "aiortc_codec_objects")
    _count(cls, "encode" if "Encoder" in cls.__name__ else "decode",
           "encode_calls" if "Encoder" in cls.__name__ else "decode_calls")


from bridge import direct_send, native_fanout, relay  # noqa: E402
from bridge.room import BridgeConfig  # noqa: E402
from tests.bridge_serve import serve  # noqa: E402

_recv = relay.RelayTrack.recv


async def _counting_recv(self: relay.RelayTrack) -> av.Packet:
    packet = await _recv(self)
    COUNTS["forwarded_packets"] += 1
    return packet


relay.RelayTrack.recv = _counting_recv  # type: ignore[method-assign]
_direct_send = direct_send.DirectSender.send


def _counting_direct_send(self: direct_send.DirectSender, packet: av.Packet) -> bool:
    sent = _direct_send(self, packet)
    COUNTS["forwarded_packets"] += 1
    return sent


direct_send.DirectSender.send = _counting_direct_send  # type: ignore[method-assign]
_native_send = native_fanout.NativeFanout.send


def _counting_native_send(self: native_fanout.NativeFanout, packet: av.Packet, codec: str | None) -> None:
    members = len(self.members)  # the subscribers its C loop sends this packet to
    _native_send(self, packet, codec)
    COUNTS["forwarded_packets"] += members


native_fanout.NativeFanout.send = _counting_native_send  # type: ignore[method-assign]


async def main(unit: str, key: str) -> None:
    await serve(BridgeConfig(unit=unit, key=key.encode()), lambda: COUNTS)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
