"""The database engine: SQLite (WAL, foreign keys on) by default, PostgreSQL by URL; migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

T = TypeVar("T")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error (nothing half-written)."""
    async with factory() as db, db.begin():
        yield db


async def transaction_rereading(factory: async_sessionmaker[AsyncSession],
                                work: Callable[[AsyncSession], Awaitable[T]], attempts: int = 3) -> T:
    """``work`` in one transaction; if it loses a race on a unique key (another transaction stored
    the same row between this one's read and its write), run it again from the start: it then reads
    what the other committed and decides afresh (a KPI report sent twice at once is a duplicate,
    not a conflict). The last attempt's ``IntegrityError`` propagates."""
    for attempt in range(1, attempts + 1):
        try:
            async with transaction(factory) as db:
                return await work(db)
        except IntegrityError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``: migrations are the only way the schema is made."""
    await asyncio.to_thread(upgrade_sync, url, revision)


async def run_once(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate the database at ``url`` to head, run ``work`` in one transaction on a fresh engine,
    dispose of the engine (the CLI's commands and the demo's set-up)."""
    await upgrade(url)
    engine = make_engine(url)
    try:
        async with transaction(sessionmaker(engine)) as db:
            return await work(db)
    finally:
        await engine.dispose()


async def ping(db: AsyncSession) -> None:
    """One round trip to the database (the health check)."""
    await db.execute(text("SELECT 1"))
