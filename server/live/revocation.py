"""Credentials that stopped being valid end the live sockets opened with them.

HTTP re-reads the login session or the machine token on every request, so a reset, a lock or a
revocation stops it at once; a websocket authenticated once at its handshake would outlive it.
Whatever ends a credential (a password changed or reset, an account locked, a machine token
revoked) publishes a ``Revocation`` on the bus topic ``auth.revoked`` after its transaction
commits; every server process (through Redis when ``bus_url`` is set) closes the matching sockets
with ``CLOSE_REVOKED`` and a reason the page can show (server.live.hub.Hub.on_revoked).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, cast

from server.live.bus import Bus
from sessions.roles import Principal

TOPIC = "auth.revoked"
CLOSE_REVOKED = 4001  # the client should not reconnect with the same credentials: log in again

Reason = Literal["password_changed", "password_reset", "account_locked", "token_revoked"]
# What the closed page shows: at most 123 bytes of UTF-8 each (the limit of a close reason).
MESSAGES: dict[str, str] = {
    "password_changed": "Mật khẩu đã được đổi. Vui lòng đăng nhập lại.",
    "password_reset": "Mật khẩu đã được đặt lại. Vui lòng đăng nhập lại.",
    "account_locked": "Tài khoản đã bị khoá.",
    "token_revoked": "Mã truy cập đã bị thu hồi.",
}


@dataclass(frozen=True, slots=True)
class Revocation:
    """The sockets of one account (``user``) or one machine token (``token``) to close. A
    self-service password change keeps the login that made it (``keep_login``, the id of its
    stored session row) and its sockets."""

    reason: Reason
    user: int | None = None
    token: int | None = None
    keep_login: str = ""

    def encode(self) -> bytes:
        return json.dumps({"reason": self.reason, "user": self.user, "token": self.token,
                           "keep": self.keep_login}).encode()

    @classmethod
    def decode(cls, message: bytes) -> Revocation:
        data = json.loads(message)
        reason = cast(Reason, data["reason"] if data.get("reason") in MESSAGES else "password_reset")
        return cls(reason, _key(data.get("user")), _key(data.get("token")), str(data.get("keep") or ""))

    def ends(self, principal: Principal, login: str) -> bool:
        """Whether a socket of ``principal`` (opened with the login session ``login``) must close."""
        if principal.kind == "machine":
            return self.token is not None and principal.id == self.token
        return self.user is not None and principal.id == self.user and not (self.keep_login
                                                                              and login == self.keep_login)

    @property
    def close_message(self) -> bytes:
        return MESSAGES[self.reason].encode()


def _key(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def publish(bus: Bus, revocation: Revocation) -> None:
    """Tell every server process (after the change committed: a socket closed earlier could
    reconnect with the old credentials still valid)."""
    await bus.publish(TOPIC, revocation.encode())
