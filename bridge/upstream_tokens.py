"""Where a cascade's join tokens for the upstream bridge come from.

Each bridge holds only its own key (``sessions.join_tokens.bridge_key``): it checks the tokens
signed for it and can mint none for another bridge. A bridge that cascades therefore asks the
server, over its control channel, for a ``bridge`` token of its upstream (``cascade_token``): the
server signs it with the upstream's key after checking the upstream is an ancestor of this
bridge's unit and the unit it is for (this bridge, or the floor holder it publishes up) lies in
its subtree and takes part in the meeting. Tokens are kept until a minute before they expire.

A bridge given its upstream's key (``BridgeConfig.upstream_key``: tests and a lab without a
server) signs its own instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.control import ControlChannel
from sessions import join_tokens

REFRESH_BEFORE = timedelta(minutes=1)


class NoUpstreamToken(Exception):
    """Neither a control channel nor the upstream's key: this bridge cannot cascade."""


class UpstreamTokens:
    def __init__(self, channel: ControlChannel | None, upstream_key: bytes = b"") -> None:
        self.channel = channel
        self.upstream_key = upstream_key
        self._kept: dict[tuple[int, str, str], tuple[str, datetime]] = {}

    async def token(self, meeting: int, unit: str, upstream: str) -> str:
        kept = self.cached(meeting, unit, upstream, REFRESH_BEFORE)
        if kept is not None:
            return kept
        if self.channel is None:
            raise NoUpstreamToken("điểm cầu chuyển tiếp cần kênh điều khiển tới máy chủ (--server, --token)")
        answer = await self.channel.cascade_token(meeting, unit, upstream)
        token, expires_at = str(answer["token"]), datetime.fromisoformat(str(answer["expires_at"]))
        now = datetime.now(UTC)
        self._kept = {k: v for k, v in self._kept.items() if v[1] > now}
        self._kept[(meeting, unit, upstream)] = (token, expires_at)
        return token

    def cached(self, meeting: int, unit: str, upstream: str, margin: timedelta = timedelta(0)) -> str | None:
        """A token valid for at least ``margin`` more, without asking anyone (also to end a link
        while the server is away): signed here with the upstream's key, or one the server gave."""
        now = datetime.now(UTC)
        if self.upstream_key:
            return join_tokens.issue(self.upstream_key, meeting=meeting, unit=unit, role="bridge", bridge=upstream,
                                     now=now)
        kept = self._kept.get((meeting, unit, upstream))
        return kept[0] if kept is not None and kept[1] - margin > now else None
