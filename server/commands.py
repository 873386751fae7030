"""What the ``hoinghi`` command does, as functions (the CLI parses arguments and calls these; the
demo and the benchmarks call them too): each runs on a fresh engine in one transaction."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server import db
from server.live.bus import make_bus
from server.live.revocation import Revocation, publish
from server.settings import Settings
from sessions.store.units import ImportResult
from sessions.store.users import UserView
from sessions.unit_sources import DEFAULT_ROOT_CODE, DEFAULT_ROOT_NAME
from sessions.units import UnitRow

T = TypeVar("T")


class CliError(Exception):
    """A refusal to print as one clear line (exit status 2)."""


def _progress_bar(desc: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """tqdm on a terminal, silence elsewhere (CI logs stay readable)."""
    if not sys.stderr.isatty():
        return (lambda _done, _total: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=" đơn vị", file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


async def with_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return await db.run_once(settings.effective_database_url(), work)


def unit_rows(settings: Settings, source: str, *, file: str | None = None, spec: str | None = None,
              root_code: str = DEFAULT_ROOT_CODE, root_name: str = DEFAULT_ROOT_NAME) -> list[UnitRow]:
    from server import unit_data
    from sessions import unit_sources as src

    root = src.root_row(root_code, root_name)
    if source == "current":
        return src.from_current_tree(unit_data.current_tree_json(), root)
    if source == "legacy":
        return src.from_legacy_tree(unit_data.legacy_tree_json(settings.var_path / "cache"), root)
    if source == "csv":
        if not file:
            raise CliError("--file là bắt buộc với --source csv")
        return src.parse_csv(Path(file).read_bytes())
    if source == "synthetic":
        counts = src.parse_synthetic_spec(spec or "provinces=63,districts=700,communes=10000")
        return src.synthetic(counts["provinces"], counts["districts"], counts["communes"], root)
    raise CliError(f"nguồn không hợp lệ: {source}")


async def import_units(settings: Settings, rows: list[UnitRow], quiet: bool = False) -> ImportResult:
    from sessions.store import audit, units

    update, close = _progress_bar("Nhập đơn vị") if not quiet else ((lambda _d, _t: None), (lambda: None))

    async def work(db: AsyncSession) -> ImportResult:
        result = await units.import_units(db, rows, progress=update)
        await audit.record(db, audit.CLI, "units_imported", f"{len(rows)} rows",
                           added=result.added, updated=result.updated, unchanged=result.unchanged)
        return result

    try:
        return await with_db(settings, work)
    finally:
        close()


async def add_user(settings: Settings, username: str, unit_code: str, role: str, full_name: str,
                   password: str) -> UserView:
    from sessions.passwords import hash_password
    from sessions.store import audit, units, users

    pw_hash = await asyncio.to_thread(hash_password, password)

    async def work(db: AsyncSession) -> UserView:
        unit = await units.get_by_code(db, unit_code)
        user = await users.create_user(db, username=username, full_name=full_name,
                                       password_hash=pw_hash, unit_id=unit.id, role=role)
        await audit.record(db, audit.CLI, "user_created", user.username, role=role,
                           unit=unit.code)
        return user

    return await with_db(settings, work)


async def set_password(settings: Settings, username: str, password: str) -> None:
    from sessions.passwords import hash_password
    from sessions.store import audit, users
    from sessions.store import auth as auth_store

    pw_hash = await asyncio.to_thread(hash_password, password)

    async def work(db: AsyncSession) -> int:
        user = await users.get_by_username(db, username)
        if user is None:
            raise CliError(f"không có tài khoản '{username}'")
        await users.set_password_hash(db, user.id, pw_hash)
        await auth_store.delete_user_logins(db, user.id)
        await audit.record(db, audit.CLI, "password_reset", user.username)
        return user.id

    user_id = await with_db(settings, work)
    await revoke_sockets(settings, Revocation("password_reset", user=user_id))


async def revoke_sockets(settings: Settings, revocation: Revocation) -> bool:
    """Tell the running server processes to close the websockets of a credential this command
    ended. Only a shared bus (``bus_url``) reaches them; returns whether one was configured."""
    url = settings.bus_url.reveal()
    if not url:
        return False
    bus = make_bus(url, settings.bus_channel_prefix)
    await bus.start()
    try:
        await publish(bus, revocation)
    finally:
        await bus.close()
    return True
