"""Two renditions through the cascade (issue #16), real aiortc peers on two bridges: a commune on
the low rendition at its province still gets the chair's low picture from the centre; the province's
own room, sending a thumbnail at its bridge, can be previewed by the chair at the centre; a commune
floor holder's two renditions both go up."""

from __future__ import annotations

from tests.media_util import STEP, EncodedVideoTrack, Player, Publisher, close_peers, token, until, whep, whip
from tests.test_cascade import CENTRAL, PROVINCE, bridges  # noqa: F401  (the fixture)

HIGH, LOW = (320, 240), (160, 120)
WAIT = 3 * STEP  # a functional wait: six peers and two bridges share one loaded process


def _shows(player: Player, size: tuple[int, int]) -> bool:
    return bool(player.frames) and player.frames[-1][1:3] == size


def _cameras(high: tuple[int, int] = HIGH, low: tuple[int, int] = LOW) -> tuple[EncodedVideoTrack, EncodedVideoTrack]:
    return EncodedVideoTrack("vp8", *high), EncodedVideoTrack("vp8", *low, bitrate=100_000)


async def test_both_renditions_and_the_province_thumbnail_cross_the_cascade(bridges) -> None:  # noqa: F811
    central_url, central, province_url, province, link = bridges
    peers: list[Publisher | Player] = []
    try:
        high, low = _cameras()
        peers.append(await whip(central_url, 1, token(CENTRAL, "CHAIR", "chair"), high, low=low))
        commune_low = await whep(province_url, 1, token(PROVINCE, "B"), query="?layer=low")
        commune_high = await whep(province_url, 1, token(PROVINCE, "C"))
        peers += [commune_low, commune_high]
        await until(lambda: _shows(commune_low, LOW), WAIT, "the chair's low rendition at a commune of the province")
        await until(lambda: _shows(commune_high, HIGH), WAIT, "the chair's high rendition there too")
        uplink = link.uplinks[1]

        # The provincial room (its bridge's own unit) shows itself in the mosaic: its thumbnail goes
        # up, and the chair previews it at the centre.
        peers.append(await whip(province_url, 1, token(PROVINCE, PROVINCE), EncodedVideoTrack("vp8", 176, 144),
                                query="?thumbnail=1"))
        await until(lambda: uplink.thumbnail is not None, WAIT, "the province's thumbnail published up")
        await until(lambda: PROVINCE in central.room(1).programme.sites, WAIT, "the thumbnail at the centre")
        preview = await whep(central_url, 1, token(CENTRAL, "CHAIR", "chair", view=PROVINCE), audio_tracks=1)
        peers.append(preview)
        await until(lambda: _shows(preview, (176, 144)), WAIT, "the chair's preview of the province")

        # A commune takes the floor with two renditions: both reach the centre.
        central.room(1).set_floor("A")
        province.room(1).set_floor("A")
        a_high, a_low = _cameras((240, 180), (128, 96))
        peers.append(await whip(province_url, 1, token(PROVINCE, "A"), a_high, low=a_low))
        await uplink.floor_changed()
        at_centre_high = await whep(central_url, 1, token(CENTRAL, "X"))
        at_centre_low = await whep(central_url, 1, token(CENTRAL, "Y"), query="?layer=low")
        peers += [at_centre_high, at_centre_low]
        await until(lambda: _shows(at_centre_high, (240, 180)), WAIT, "commune A's high rendition at the centre")
        await until(lambda: _shows(at_centre_low, (128, 96)), WAIT, "commune A's low rendition at the centre")
        assert uplink.thumbnail is not None, "the province room, not holding the floor, stays in the mosaic"
    finally:
        await close_peers(*peers)
