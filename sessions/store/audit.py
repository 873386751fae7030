"""The audit trail: one row per login, failed login and privileged action."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.models import AuditEntry, UnitClosure, utcnow
from sessions.values import REFUSED_CHARS


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # user | machine | anonymous | cli
    id: int | None = None
    name: str = ""
    unit_id: int | None = None


ANONYMOUS = Actor("anonymous")
CLI = Actor("cli", name="cli")


async def record(db: AsyncSession, actor: Actor, action: str, target: str = "", ip: str = "", *,
                 at: datetime | None = None, **detail: Any) -> None:
    """``at`` defaults to the wall clock; pass the application's clock where rows are counted by time."""
    db.add(AuditEntry(actor_kind=actor.kind, actor_id=actor.id, actor_name=actor.name[:100],
                      actor_unit_id=actor.unit_id, action=action, target=_shown(target)[:200], ip=_shown(ip)[:64],
                      detail=_shown(detail, _UNSTORABLE), at=at or utcnow()))


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # what PostgreSQL refuses in text and JSON


def _shown(value: Any, refused: re.Pattern[str] = REFUSED_CHARS) -> Any:
    """What the trail keeps of text it did not choose (a refused file name, a typed user name):
    control characters of the single-line target and IP, and NUL anywhere in the details, become
    U+FFFD — the row is written all the same (PostgreSQL refuses NUL)."""
    if isinstance(value, str):
        return refused.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_shown(str(k), refused): _shown(v, refused) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v, refused) for v in value]
    return value


async def list_in_subtree(db: AsyncSession, unit_id: int, limit: int = 200) -> list[AuditEntry]:
    """Entries by actors within the subtree (anonymous failures are visible to the root's admins)."""
    within = select(UnitClosure.descendant_id).where(UnitClosure.ancestor_id == unit_id)
    stmt = select(AuditEntry).where(AuditEntry.actor_unit_id.in_(within))
    is_root = (await db.execute(
        select(func.count()).select_from(UnitClosure).where(UnitClosure.descendant_id == unit_id)
    )).scalar_one() == 1
    if is_root:
        stmt = select(AuditEntry).where(or_(AuditEntry.actor_unit_id.in_(within), AuditEntry.actor_unit_id.is_(None)))
    return list((await db.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit))).scalars().all())


REVOKING_ACTIONS = ("password_changed", "password_reset", "user_locked", "token_revoked")


async def why_ended(db: AsyncSession, targets: set[str], since: datetime) -> dict[str, str]:
    """For these audit targets (usernames, ``token:<id>``), the latest action since ``since`` that
    ends a credential (a password changed or reset, an account locked, a token revoked)."""
    if not targets:
        return {}
    rows = await db.execute(
        select(AuditEntry.target, AuditEntry.action).where(
            AuditEntry.target.in_(sorted(targets)[:500]), AuditEntry.action.in_(REVOKING_ACTIONS),
            AuditEntry.at >= since).order_by(AuditEntry.at, AuditEntry.id))
    return {target: action for target, action in rows}  # the latest wins
