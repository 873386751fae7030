"""Privileged actions shared by the admin pages and the JSON API: each checks permission and
scope, writes in one transaction, and leaves an audit row."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import transaction
from server.live.revocation import Revocation, publish
from server.services.access import actor_of, ensure_reaches, mint_machine_token
from server.services.deps import Deps
from sessions.errors import Forbidden, ValidationFailed
from sessions.passwords import hash_password
from sessions.roles import Permission, Principal, Role, parse_role
from sessions.store import audit, units
from sessions.store import auth as auth_store
from sessions.store import users as users_store
from sessions.store.units import ImportResult
from sessions.unit_sources import parse_csv
from sessions.units import UnitRow


def _need(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden("Bạn không có quyền thực hiện thao tác này", code="forbidden")


@dataclass(frozen=True, slots=True)
class NewUser:
    username: str
    full_name: str
    unit_code: str
    role: str
    password: str


async def create_user(deps: Deps, principal: Principal, spec: NewUser, ip: str) -> users_store.UserView:
    _need(principal, Permission.MANAGE_USERS)
    role = parse_role(spec.role)
    if role is None:
        raise ValidationFailed(f"Vai trò '{spec.role}' không hợp lệ", code="role_invalid", field="role")
    users_store.validate_username(spec.username)
    pw_hash = await asyncio.to_thread(hash_password, spec.password)
    async with transaction(deps.db) as db:
        unit = await units.get_by_code(db, spec.unit_code.strip())
        await ensure_reaches(db, principal, unit.id)
        if role is Role.ADMIN and unit.id == principal.unit_id and principal.role is not Role.ADMIN:
            raise Forbidden("Không thể tạo tài khoản quản trị", code="forbidden")
        user = await users_store.create_user(db, username=spec.username, full_name=spec.full_name,
                                             password_hash=pw_hash, unit_id=unit.id, role=role.value)
        await audit.record(db, actor_of(principal), "user_created", user.username, ip, role=role.value,
                           unit=unit.code)
    return user


async def set_user_active(deps: Deps, principal: Principal, user_id: int, active: bool, ip: str) -> None:
    _need(principal, Permission.MANAGE_USERS)
    async with transaction(deps.db) as db:
        user = await users_store.get_by_id(db, user_id)
        await ensure_reaches(db, principal, user.unit_id)
        if user.id == principal.id:
            raise ValidationFailed("Không thể tự khoá tài khoản của mình", code="self_lock")
        await users_store.set_active(db, user.id, active)
        if not active:
            await auth_store.delete_user_logins(db, user.id)
        await audit.record(db, actor_of(principal), "user_unlocked" if active else "user_locked", user.username, ip)
    if not active:  # its open websockets close too, in every server process
        await publish(deps.bus, Revocation("account_locked", user=user_id))


async def create_token(deps: Deps, principal: Principal, *, name: str, unit_code: str,
                       scopes: frozenset[str], days: int, ip: str) -> tuple[auth_store.TokenView, str]:
    _need(principal, Permission.MANAGE_TOKENS)
    async with transaction(deps.db) as db:
        unit = await units.get_by_code(db, unit_code.strip())
        await ensure_reaches(db, principal, unit.id)
        tid, token = await mint_machine_token(db, key=deps.signing_key, max_days=deps.settings.machine_token_max_days,
                                               now=deps.clock(), name=name, unit_id=unit.id, scopes=scopes, days=days,
                                               created_by_id=principal.id if principal.kind == "user" else None)
        await audit.record(db, actor_of(principal), "token_issued", f"token:{tid}", ip, name=name,
                           unit=unit.code, scopes=" ".join(sorted(scopes)), days=days)
        view = await auth_store.get_token(db, tid)
    return view, token


async def revoke_token(deps: Deps, principal: Principal, token_id: int, ip: str) -> None:
    _need(principal, Permission.MANAGE_TOKENS)
    async with transaction(deps.db) as db:
        tok = await auth_store.get_token(db, token_id)
        await ensure_reaches(db, principal, tok.unit_id)
        await auth_store.revoke_token(db, token_id, deps.clock())
        await audit.record(db, actor_of(principal), "token_revoked", f"token:{token_id}", ip, name=tok.name)
    await publish(deps.bus, Revocation("token_revoked", token=token_id))


async def check_import_scope(db: AsyncSession, principal: Principal, rows: list[UnitRow]) -> None:
    """A principal may only add or change units inside its own subtree."""
    in_scope = await units.subtree_ids(db, principal.unit_id)
    codes = {r.code for r in rows} | {r.parent_code for r in rows if r.parent_code}
    stored = await units.ids_by_code(db, codes)
    batch = {r.code for r in rows}
    for row in rows:
        if row.code in stored and stored[row.code] not in in_scope:
            raise Forbidden(f"Dòng {row.line}: đơn vị '{row.code}' nằm ngoài phạm vi của bạn", code="out_of_scope")
        if row.code not in stored:
            parent = row.parent_code
            # An unknown parent is not a scope question: validation refuses it with its line.
            if parent is None or (parent not in batch and parent in stored and stored[parent] not in in_scope):
                raise Forbidden(f"Dòng {row.line}: chỉ được thêm đơn vị dưới đơn vị thuộc phạm vi của bạn",
                                code="out_of_scope")
        elif stored[row.code] == principal.unit_id:
            # The principal's own unit may be renamed, not moved: its parent lies outside the scope.
            chain = await units.ancestors(db, principal.unit_id)
            if row.parent_code != (chain[-2].code if len(chain) > 1 else None):
                raise Forbidden(f"Dòng {row.line}: không được chuyển đơn vị '{row.code}' sang cấp trên khác",
                                code="out_of_scope")
        else:
            # A stored unit may move only under a unit that is (or stays) inside the scope.
            parent = row.parent_code
            if parent is None or (parent not in batch and parent in stored and stored[parent] not in in_scope):
                raise Forbidden(f"Dòng {row.line}: không được chuyển đơn vị '{row.code}' ra ngoài phạm vi của bạn",
                                code="out_of_scope")


async def import_units_csv(deps: Deps, principal: Principal, data: bytes, filename: str,
                           ip: str) -> ImportResult:
    _need(principal, Permission.MANAGE_UNITS)
    rows = parse_csv(data)
    async with transaction(deps.db) as db:
        await check_import_scope(db, principal, rows)
        result = await units.import_units(db, rows)
        await audit.record(db, actor_of(principal), "units_imported", filename[:200], ip, added=result.added,
                           updated=result.updated, unchanged=result.unchanged)
    return result
