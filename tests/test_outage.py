"""Which failures are outages (503 ``unavailable``) and which stay bugs (500 ``internal_error``):
``server.outage.is_outage`` on the errors the drivers really raise, the cause chain included."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from server import db as dbmod
from server.outage import is_outage
from tests.live_util import free_port


async def test_unreachable_postgres_and_redis_are_outages() -> None:
    engine = dbmod.make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")
    try:
        with pytest.raises(Exception) as pg:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert is_outage(pg.value), repr(pg.value)
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=2)
    try:
        with pytest.raises(Exception) as rd:
            await redis.publish("x", b"")
    finally:
        await redis.aclose()
    assert is_outage(rd.value), repr(rd.value)


async def test_bugs_and_bad_statements_are_not_outages(tmp_path: Path) -> None:
    engine = dbmod.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        with pytest.raises(OperationalError) as bad_sql:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        await engine.dispose()
    assert not is_outage(bad_sql.value)
    for exc in (KeyError("x"), ValueError("x"), FileNotFoundError(2, "missing"), PermissionError(13, "denied")):
        assert not is_outage(exc), exc
    wrapped = RuntimeError("while publishing")
    wrapped.__cause__ = ConnectionResetError(104, "reset")
    assert is_outage(wrapped)
