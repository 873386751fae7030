"""Compact HMAC-SHA256 signed tokens with an expiry: ``hn1.<payload b64>.<mac b64>``.

Used for machine tokens (also checked against the database for revocation) and, later, join
tokens that bridges verify without a database. A token carries a ``typ`` so one kind can never
be replayed as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

PREFIX = "hn1"


class BadToken(Exception):
    """Why a token was refused; ``code`` is stable, ``message`` Vietnamese."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, typ: str, claims: dict[str, Any], expires_at: datetime) -> str:
    payload = {"typ": typ, "exp": int(expires_at.timestamp()), **claims}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest()
    return f"{PREFIX}.{body}.{_b64(mac)}"


def verify(key: bytes, token: str, typ: str, now: datetime) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadToken("token_malformed", "Mã truy cập không đúng định dạng")
    try:
        mac = _unb64(parts[2])
        expected = hmac.new(key, f"{PREFIX}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise BadToken("token_invalid", "Mã truy cập không hợp lệ")
        claims: dict[str, Any] = json.loads(_unb64(parts[1]))
    except (ValueError, json.JSONDecodeError):
        raise BadToken("token_malformed", "Mã truy cập không đúng định dạng") from None
    if claims.get("typ") != typ:
        raise BadToken("token_wrong_type", "Mã truy cập không dùng được cho thao tác này")
    if int(claims.get("exp", 0)) <= now.timestamp():
        raise BadToken("token_expired", "Mã truy cập đã hết hạn")
    return claims
