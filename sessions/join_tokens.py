"""Join tokens: short-lived, signed by the server, verified by bridges without a database.

A join token lets one unit's site (or a child bridge) publish to or play from one bridge for one
meeting. Claims: ``meeting`` (id), ``unit`` (code of the site), ``role`` (``chair``, ``site`` or
``bridge``), ``bridge`` (code of the unit whose bridge accepts it), ``exp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sessions.signing import BadToken, sign, verify

JOIN_TOKEN_TYPE = "join"
ROLES = ("chair", "site", "bridge")
DEFAULT_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class JoinClaims:
    meeting: int
    unit: str
    role: str
    bridge: str
    expires_at: int


def issue(key: bytes, *, meeting: int, unit: str, role: str, bridge: str, now: datetime,
          ttl: timedelta = DEFAULT_TTL) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown join role {role!r}")
    return sign(key, JOIN_TOKEN_TYPE, {"m": meeting, "u": unit, "r": role, "b": bridge}, now + ttl)


def check(key: bytes, token: str, now: datetime) -> JoinClaims:
    """Verify a join token; raises :class:`BadToken` (code + Vietnamese message)."""
    claims = verify(key, token, JOIN_TOKEN_TYPE, now)
    try:
        parsed = JoinClaims(meeting=int(claims["m"]), unit=str(claims["u"]), role=str(claims["r"]),
                            bridge=str(claims["b"]), expires_at=int(claims["exp"]))
    except (KeyError, TypeError, ValueError):
        raise BadToken("token_malformed", "Mã truy cập không đúng định dạng") from None
    if parsed.role not in ROLES:
        raise BadToken("token_malformed", "Mã truy cập không đúng định dạng")
    return parsed
