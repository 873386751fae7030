"""Accounts: creation within the creator's reach, lookup, listing by subtree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import Conflict, NotFound, ValidationFailed
from sessions.models import Unit, UnitClosure, User
from sessions.roles import Role, parse_role
from sessions.values import REFUSED_CHARS, reject_controls

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    username: str
    full_name: str
    role: Role
    unit_id: int
    unit_code: str
    unit_name: str
    is_active: bool
    password_hash: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "username": self.username, "full_name": self.full_name, "role": self.role.value,
                "unit_code": self.unit_code, "unit_name": self.unit_name, "is_active": self.is_active}


_COLS = (User.id, User.username, User.full_name, User.role, User.unit_id, Unit.code, Unit.name,
         User.is_active, User.password_hash)


def _view(r: Any) -> UserView:
    t = tuple(r)
    return UserView(t[0], t[1], t[2], Role(t[3]), t[4], t[5], t[6], bool(t[7]), t[8])


def validate_username(username: str) -> str:
    name = reject_controls(username, "username", label="Tên đăng nhập").strip().lower()
    if not USERNAME_RE.match(name):
        raise ValidationFailed(
            "Tên đăng nhập gồm 3–64 ký tự: chữ thường không dấu, số, '.', '_' hoặc '-'",
            code="username_invalid", field="username",
        )
    return name


async def create_user(db: AsyncSession, *, username: str, full_name: str, password_hash: str,
                      unit_id: int, role: str) -> UserView:
    name = validate_username(username)
    parsed = parse_role(role)
    if parsed is None:
        raise ValidationFailed(f"Vai trò '{role}' không hợp lệ", code="role_invalid", field="role")
    if (await db.execute(select(User.id).where(User.username == name))).first():
        raise Conflict(f"Tên đăng nhập '{name}' đã tồn tại", code="username_taken", field="username")
    if (await db.execute(select(Unit.id).where(Unit.id == unit_id))).first() is None:
        raise NotFound("Không tìm thấy đơn vị", code="unit_not_found", field="unit")
    full_name = reject_controls(full_name, "full_name", label="Họ tên")
    user = User(username=name, full_name=full_name.strip()[:200], password_hash=password_hash,
                unit_id=unit_id, role=parsed.value, is_active=True)
    db.add(user)
    await db.flush()
    return await get_by_id(db, user.id)


async def get_by_username(db: AsyncSession, username: str) -> UserView | None:
    if REFUSED_CHARS.search(username):  # no account has such a name (and PostgreSQL refuses NUL)
        return None
    row = (await db.execute(
        select(*_COLS).join(Unit, Unit.id == User.unit_id).where(User.username == username.strip().lower())
    )).first()
    return _view(row) if row else None


async def get_by_id(db: AsyncSession, user_id: int) -> UserView:
    row = (await db.execute(select(*_COLS).join(Unit, Unit.id == User.unit_id).where(User.id == user_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy tài khoản", code="user_not_found")
    return _view(row)


async def list_in_subtree(db: AsyncSession, unit_id: int, limit: int = 500) -> list[UserView]:
    stmt = (
        select(*_COLS).join(Unit, Unit.id == User.unit_id)
        .join(UnitClosure, UnitClosure.descendant_id == User.unit_id)
        .where(UnitClosure.ancestor_id == unit_id)
        .order_by(UnitClosure.depth, Unit.code, User.username).limit(limit)
    )
    return [_view(r) for r in (await db.execute(stmt)).all()]


async def set_active(db: AsyncSession, user_id: int, active: bool) -> None:
    await db.execute(update(User).where(User.id == user_id).values(is_active=active))


async def set_password_hash(db: AsyncSession, user_id: int, password_hash: str) -> None:
    await db.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
