"""Join tokens: short-lived, signed by the server, verified by bridges without a database.

A join token lets one unit's site (or a child bridge) publish to or play from one bridge for one
meeting. Claims: ``meeting`` (id), ``unit`` (code of the site), ``role`` (``chair``, ``site`` or
``bridge``), ``bridge`` (code of the unit whose bridge accepts it), ``exp``.

Each bridge has its own key, derived from the media root key and its unit code
(:func:`bridge_key`): a token is signed with the key of the bridge that will check it, so the
key one bridge holds mints tokens for that bridge only. A bridge that cascades asks the server
for its upstream's tokens (docs/protocol.md, "Cascade tokens").
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sessions.signing import BadToken, sign, verify

JOIN_TOKEN_TYPE = "join"
ROLES = ("chair", "site", "bridge")
DEFAULT_TTL = timedelta(minutes=10)
BRIDGE_KEY_LABEL = b"hoinghi bridge key v1:"


def bridge_key(root: bytes, unit: str) -> bytes:
    """The key of the bridge of unit ``unit``: HMAC-SHA256 of the media root key over the unit code
    (hex, so it can be written to a key file or an environment variable as it is)."""
    return hmac.new(root, BRIDGE_KEY_LABEL + unit.encode(), hashlib.sha256).hexdigest().encode()


@dataclass(frozen=True)
class JoinClaims:
    meeting: int
    unit: str
    role: str
    bridge: str
    expires_at: int
    # A preview (issue #16): the holder may only play this unit's own video and sound, nothing else
    view: str | None = None


def issue(key: bytes, *, meeting: int, unit: str, role: str, bridge: str, now: datetime,
          ttl: timedelta = DEFAULT_TTL, view: str | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown join role {role!r}")
    claims: dict[str, object] = {"m": meeting, "u": unit, "r": role, "b": bridge}
    if view is not None:
        claims["v"] = view
    return sign(key, JOIN_TOKEN_TYPE, claims, now + ttl)


def check(key: bytes, token: str, now: datetime) -> JoinClaims:
    """Verify a join token; raises :class:`BadToken` (code + Vietnamese message)."""
    claims = verify(key, token, JOIN_TOKEN_TYPE, now)
    try:
        parsed = JoinClaims(meeting=int(claims["m"]), unit=str(claims["u"]), role=str(claims["r"]),
                            bridge=str(claims["b"]), expires_at=int(claims["exp"]),
                            view=str(claims["v"]) if claims.get("v") is not None else None)
    except (KeyError, TypeError, ValueError):
        raise BadToken("token_malformed", "Mã truy cập không đúng định dạng") from None
    if parsed.role not in ROLES:
        raise BadToken("token_malformed", "Mã truy cập không đúng định dạng")
    return parsed
