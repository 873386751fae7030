"""A central bridge in its own process that records (issue #17), with every video codec counted.

Usage: ``python tests/recording_bridge.py UNIT KEY SERVER_URL [UPSTREAM_URL]`` with
``HOINGHI_BRIDGE_TOKEN`` and ``HOINGHI_BRIDGE_RECORDINGS_DIR`` in the environment (with an upstream:
a provincial bridge, which records when the chair names it). Prints the bridge's URL, then answers each
``counts`` line on stdin with one JSON line; exits (closing its recordings) when stdin closes.

Counted: every ``av.CodecContext.create`` by codec name (what aiortc's and the recorder's codecs
go through) and every aiortc VP8/H.264 encoder or decoder object. The relay path must create no
video codec at all; the recorder only Opus ones (it decodes sound to mix it). Also counted: the
frames the programme's video sent while it was recorded (``programme_frames_recorded``).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

import av
from aiortc.codecs import h264, opus, vpx

CREATED: Counter[str] = Counter()
_real_create = av.CodecContext.create


class CountingCodecContext:
    @staticmethod
    def create(codec: Any, mode: str | None = None, *args: Any, **kwargs: Any) -> Any:
        name = codec if isinstance(codec, str) else getattr(codec, "name", str(codec))
        CREATED[f"{name}:{mode}"] += 1
        return _real_create(codec, mode, *args, **kwargs)


av.CodecContext = CountingCodecContext  # type: ignore[misc,assignment]
for module in (vpx, opus, h264):
    if hasattr(module, "CodecContext"):
        module.CodecContext = CountingCodecContext  # type: ignore[attr-defined]


def _count(cls: type, key: str) -> None:
    original = cls.__init__

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        CREATED[key] += 1
        original(self, *args, **kwargs)

    cls.__init__ = wrapper  # type: ignore[misc]


for cls in (vpx.Vp8Encoder, vpx.Vp8Decoder, h264.H264Encoder, h264.H264Decoder):
    _count(cls, f"aiortc:{cls.__name__}")


from bridge import programme  # noqa: E402
from bridge.room import BridgeConfig  # noqa: E402
from tests.bridge_serve import serve  # noqa: E402

_switch_init = programme.Switch.__init__


def _counting_switch(self: programme.Switch, *args: Any, **kwargs: Any) -> None:
    """Every video timeline counts the frames it sends while a recorder taps it (the recorder's
    tap comes after this one): what the recording should hold."""
    _switch_init(self, *args, **kwargs)
    if self.kind == "video":
        def count(packet: Any, keyframe: bool, codec: str | None, switch: programme.Switch = self) -> None:
            if len(switch.taps) > 1:
                CREATED["programme_frames_recorded"] += 1
        self.taps.append(count)


programme.Switch.__init__ = _counting_switch  # type: ignore[method-assign]


async def main(unit: str, key: str, server: str, upstream: str = "") -> None:
    import os

    config = BridgeConfig(unit=unit, key=key.encode(), server_url=server, token=os.environ["HOINGHI_BRIDGE_TOKEN"],
                          upstream_url=upstream)
    await serve(config, lambda: dict(CREATED))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
