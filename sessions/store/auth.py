"""Login sessions and machine tokens as stored rows (secrets are stored only as SHA-256)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import NotFound
from sessions.models import LoginRecord, MachineToken, Unit, UnitClosure, User
from sessions.roles import Principal, Role


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginInfo:
    principal: Principal
    csrf_token: str
    expires_at: datetime
    unit_name: str
    unit_level: str
    full_name: str


async def create_login(db: AsyncSession, secret: str, user_id: int, csrf_token: str, expires_at: datetime,
                         ip: str) -> None:
    db.add(LoginRecord(id=digest(secret), user_id=user_id, csrf_token=csrf_token, expires_at=expires_at, ip=ip))


async def load_login(db: AsyncSession, secret: str, now: datetime) -> LoginInfo | None:
    row = (await db.execute(
        select(LoginRecord.csrf_token, LoginRecord.expires_at, User.id, User.username, User.full_name, User.role,
               User.is_active, Unit.id, Unit.code, Unit.name, Unit.level)
        .join(User, User.id == LoginRecord.user_id).join(Unit, Unit.id == User.unit_id)
        .where(LoginRecord.id == digest(secret))
    )).first()
    if row is None or row[1] <= now or not row[6]:
        return None
    principal = Principal(kind="user", id=row[2], name=row[3], unit_id=row[7], unit_code=row[8], role=Role(row[5]))
    return LoginInfo(principal, row[0], row[1], row[9], row[10], row[4])


async def delete_login(db: AsyncSession, secret: str) -> None:
    await db.execute(delete(LoginRecord).where(LoginRecord.id == digest(secret)))


async def delete_user_logins(db: AsyncSession, user_id: int, *, keep: str = "") -> None:
    """End every login session of the account, but the one whose secret is ``keep`` (if given)."""
    stmt = delete(LoginRecord).where(LoginRecord.user_id == user_id)
    if keep:
        stmt = stmt.where(LoginRecord.id != digest(keep))
    await db.execute(stmt)


CHUNK = 500  # ids per IN list


async def still_valid(db: AsyncSession, logins: set[str], tokens: set[int], now: datetime
                      ) -> tuple[set[str], set[int]]:
    """Of these login sessions (stored ids) and machine tokens, those still valid: the login not
    ended nor expired and its account active; the token not revoked nor expired."""
    valid_logins: set[str] = set()
    valid_tokens: set[int] = set()
    login_ids, token_ids = sorted(logins), sorted(tokens)
    for start in range(0, len(login_ids), CHUNK):
        rows = await db.execute(
            select(LoginRecord.id).join(User, User.id == LoginRecord.user_id)
            .where(LoginRecord.id.in_(login_ids[start:start + CHUNK]), LoginRecord.expires_at > now,
                   User.is_active.is_(True)))
        valid_logins.update(r[0] for r in rows)
    for start in range(0, len(token_ids), CHUNK):
        token_rows = await db.execute(
            select(MachineToken.id).where(MachineToken.id.in_(token_ids[start:start + CHUNK]),
                                          MachineToken.revoked_at.is_(None), MachineToken.expires_at > now))
        valid_tokens.update(r[0] for r in token_rows)
    return valid_logins, valid_tokens


async def purge_expired_sessions(db: AsyncSession, now: datetime) -> int:
    result = await db.execute(delete(LoginRecord).where(LoginRecord.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TokenView:
    id: int
    name: str
    unit_id: int
    unit_code: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "unit_code": self.unit_code, "scopes": sorted(self.scopes),
                "created_at": self.created_at.isoformat(), "expires_at": self.expires_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "status": self.status(now)}


_TCOLS = (MachineToken.id, MachineToken.name, MachineToken.unit_id, Unit.code, MachineToken.scopes,
          MachineToken.created_at, MachineToken.expires_at, MachineToken.revoked_at, MachineToken.last_used_at)


def _tview(r: Any) -> TokenView:
    t = tuple(r)
    return TokenView(t[0], t[1], t[2], t[3], frozenset(t[4].split()), t[5], t[6], t[7], t[8])


async def add_machine_token(db: AsyncSession, *, name: str, unit_id: int, scopes: frozenset[str],
                            expires_at: datetime, created_by_id: int | None) -> int:
    """Creates the row first (its id goes into the signed token); the secret hash is set after."""
    tok = MachineToken(name=name, unit_id=unit_id, scopes=" ".join(sorted(scopes)), secret_hash="",
                       expires_at=expires_at, created_by_id=created_by_id)
    db.add(tok)
    await db.flush()
    return tok.id


async def set_token_secret(db: AsyncSession, token_id: int, token: str) -> None:
    await db.execute(update(MachineToken).where(MachineToken.id == token_id).values(secret_hash=digest(token)))


async def get_token(db: AsyncSession, token_id: int) -> TokenView:
    row = (await db.execute(select(*_TCOLS).join(Unit, Unit.id == MachineToken.unit_id)
                            .where(MachineToken.id == token_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy mã truy cập", code="token_not_found")
    return _tview(row)


async def tokens_with_digest(db: AsyncSession, token_ids: set[int]) -> dict[int, tuple[TokenView, str]]:
    """Tokens and their secret digests, to check many bearers in one query."""
    if not token_ids:
        return {}
    rows = (await db.execute(select(*_TCOLS, MachineToken.secret_hash).join(Unit, Unit.id == MachineToken.unit_id)
                             .where(MachineToken.id.in_(token_ids)))).all()
    return {r[0]: (_tview(r), r[9]) for r in rows}


async def touch_tokens(db: AsyncSession, used: dict[int, datetime]) -> None:
    """Record the last use of many tokens in one statement."""
    if used:
        await db.execute(update(MachineToken), [{"id": tid, "last_used_at": at} for tid, at in used.items()])


async def revoke_token(db: AsyncSession, token_id: int, now: datetime) -> None:
    await db.execute(update(MachineToken).where(MachineToken.id == token_id, MachineToken.revoked_at.is_(None))
                     .values(revoked_at=now))


async def list_tokens(db: AsyncSession, within_unit_id: int) -> list[TokenView]:
    """Tokens bound to units inside the subtree of ``within_unit_id``."""
    stmt = (
        select(*_TCOLS).join(Unit, Unit.id == MachineToken.unit_id)
        .join(UnitClosure, UnitClosure.descendant_id == MachineToken.unit_id)
        .where(UnitClosure.ancestor_id == within_unit_id)
        .order_by(MachineToken.id.desc())
    )
    return [_tview(r) for r in (await db.execute(stmt)).all()]
