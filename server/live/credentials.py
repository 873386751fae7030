"""The safety net under revocation: every second each server process checks, in one query, that
the credentials its open sockets rode in on are still valid — the login session (not logged out,
not expired, not ended by a password change or reset, the account not locked) or the machine
token (not revoked, not expired) — and closes the sockets whose credential is gone.

The bus (server.live.revocation) closes them at once; this catches what the bus cannot carry:
a password reset by ``hoinghi users passwd`` against a server without ``bus_url``, a logout in
another tab, a login that expired while its socket stayed open, a message lost while Redis was
away. A database that does not answer closes nothing (its outage is not the credential's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.live.hub import Hub
from server.live.revocation import CLOSE_REVOKED, MESSAGES
from sessions.models import utcnow
from sessions.roles import Principal
from sessions.store import audit
from sessions.store import auth as auth_store

log = logging.getLogger("hoinghi.ws")

SWEEP_SECONDS = 1.0
ENDED = "Phiên đăng nhập đã kết thúc. Vui lòng đăng nhập lại.".encode()
# The audit action that ended a credential → the reason the bus would have carried. The sweep can
# beat the bus (a command's publish comes after its commit), and the page should still say why.
REASONS = {"password_changed": "password_changed", "password_reset": "password_reset",
           "user_locked": "account_locked", "token_revoked": "token_revoked"}
RECENT = timedelta(minutes=5)


async def sweep(hub: Hub, db: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Close the sockets whose credential is no longer valid; returns how many were closed."""
    open_now = list(hub.connections.items())
    logins = {c.login for c, _ in open_now if c.principal.kind == "user" and c.login}
    tokens = {c.principal.id for c, _ in open_now if c.principal.kind == "machine"}
    if not logins and not tokens:
        return 0
    async with db() as session:
        valid_logins, valid_tokens = await auth_store.still_valid(session, logins, tokens, now)
        gone = [(conn, outbox) for conn, outbox in open_now
                if (conn.principal.kind == "machine" and conn.principal.id not in valid_tokens)
                or (conn.principal.kind == "user" and conn.login and conn.login not in valid_logins)]
        why = await audit.why_ended(session, {_target(conn.principal) for conn, _ in gone},
                                    utcnow() - RECENT) if gone else {}
    ended = 0
    for conn, outbox in gone:
        if conn in hub.connections:
            reason = REASONS.get(why.get(_target(conn.principal), ""))
            outbox.end(CLOSE_REVOKED, MESSAGES[reason].encode() if reason else ENDED)
            ended += 1
    if ended:
        log.info("websockets of ended credentials closed", extra={"sockets": ended})
    return ended


def _target(principal: Principal) -> str:
    """How the audit trail names this credential's owner."""
    return f"token:{principal.id}" if principal.kind == "machine" else principal.name


async def sweeping(hub: Hub, db: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await sweep(hub, db, clock())
        except Exception as exc:  # the database is away: keep every socket, look again later
            log.warning("credential sweep failed: %s", str(exc)[:200] or type(exc).__name__)
