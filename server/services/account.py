"""What a signed-in person does to their own account."""

from __future__ import annotations

import asyncio

from server.db import transaction
from server.live.revocation import Revocation, publish
from server.services.access import actor_of
from server.services.deps import Deps
from sessions.errors import Forbidden, ValidationFailed
from sessions.passwords import hash_password, verify_password
from sessions.roles import Principal
from sessions.store import audit
from sessions.store import auth as auth_store
from sessions.store import users as users_store


class WrongPassword(ValidationFailed):
    code = "password_wrong"


async def change_own_password(deps: Deps, principal: Principal, current: str, new: str, login_secret: str,
                              ip: str) -> None:
    """Check the current password, store the new one, and end the account's other login
    sessions and their websockets (in every server process): whoever else knew the old password
    is out. The session that made the change (``login_secret``) stays signed in."""
    if principal.kind != "user":
        raise Forbidden("Chỉ tài khoản người dùng mới đổi được mật khẩu", code="forbidden")
    async with deps.db() as db:
        user = await users_store.get_by_id(db, principal.id)
    if not await asyncio.to_thread(verify_password, user.password_hash, current):
        raise WrongPassword("Mật khẩu hiện tại không đúng", field="current")
    new_hash = await asyncio.to_thread(hash_password, new)
    async with transaction(deps.db) as db:
        await users_store.set_password_hash(db, user.id, new_hash)
        await auth_store.delete_user_logins(db, user.id, keep=login_secret)
        await audit.record(db, actor_of(principal), "password_changed", user.username, ip)
    await publish(deps.bus, Revocation("password_changed", user=user.id,
                                       keep_login=auth_store.digest(login_secret) if login_secret else ""))
