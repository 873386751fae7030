"""Login-throttle counters (rules in ``sessions.throttle``), counted in the database so that
concurrent attempts, in one process or several, see each other before any password is checked.

Each count is one atomic upsert that only goes through when the counter's wait is over; the
database computes the next wait in the same statement, so two attempts can never both read
"allowed" and both pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import BigInteger, ColumnElement, Table, and_, case, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sessions.errors import TooManyAttempts
from sessions.models import LoginThrottle
from sessions.throttle import Counter, Rule

_T = cast(Table, LoginThrottle.__table__)
THROTTLED = "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {seconds} giây."


def _ms(value: int) -> ColumnElement[int]:
    return literal(value, BigInteger)


def _delay(rule: Rule, failures: ColumnElement[Any]) -> ColumnElement[Any]:
    """``rule.delay_ms(failures)`` as SQL (a short CASE: the doublings until the cap)."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[int]]] = [(failures < rule.free, _ms(0))]
    whens += [(failures == f, _ms(d)) for f, d in rule.steps()[:-1]]
    return case(*whens, else_=_ms(rule.cap_ms))


def _count_statement(dialect: str, counter: Counter, now_ms: int) -> Any:
    rule = counter.rule
    ins = pg_insert(_T) if dialect == "postgresql" else sqlite_insert(_T)
    failures = case((_T.c.next_at_ms + _ms(rule.forget_ms) <= _ms(now_ms), 1), else_=_T.c.failures + 1)
    return (ins.values(key=counter.key, failures=1, next_at_ms=now_ms + rule.delay_ms(1))
            .on_conflict_do_update(index_elements=[_T.c.key],
                                   set_={"failures": failures, "next_at_ms": _ms(now_ms) + _delay(rule, failures)},
                                   where=_T.c.next_at_ms <= _ms(now_ms))
            .returning(_T.c.failures))


async def _wait_ms(db: AsyncSession, keys: Sequence[str], now_ms: int) -> int:
    latest = (await db.execute(select(func.max(_T.c.next_at_ms)).where(_T.c.key.in_(keys)))).scalar_one()
    return max(0, int(latest or 0) - now_ms)


def _refused(wait_ms: int) -> TooManyAttempts:
    seconds = max(1, -(-wait_ms // 1000))
    return TooManyAttempts(THROTTLED.format(seconds=seconds), retry_after=seconds)


async def count_attempt(db: AsyncSession, counters: Sequence[Counter], now_ms: int) -> None:
    """Count one attempt on every counter (in the order given), or raise :class:`TooManyAttempts`
    with the longest wait when any of them is still waiting — the caller's transaction then rolls
    back, so a refused attempt counts nowhere."""
    keys = [c.key for c in counters]
    if wait := await _wait_ms(db, keys, now_ms):
        raise _refused(wait)  # the common case under a flood: refused without writing
    dialect = db.get_bind().dialect.name
    for counter in counters:
        if (await db.execute(_count_statement(dialect, counter, now_ms))).first() is None:
            # Another attempt counted first and started a wait.
            raise _refused(await _wait_ms(db, keys, now_ms))


async def settle_success(db: AsyncSession, counters: Sequence[Counter], now_ms: int) -> None:
    """The password was right: reset the account's counters, give the IP's counter its attempt back."""
    reset = [c.key for c in counters if c.on_success == "reset"]
    if reset:
        await db.execute(update(LoginThrottle).where(LoginThrottle.key.in_(reset)).values(failures=0, next_at_ms=0))
    for c in counters:
        if c.on_success == "refund":
            # Back under its allowance, the IP may try again at once.
            free_again = and_(LoginThrottle.failures - 1 < c.rule.free, LoginThrottle.next_at_ms > _ms(now_ms))
            await db.execute(update(LoginThrottle).where(LoginThrottle.key == c.key, LoginThrottle.failures > 0)
                             .values(failures=LoginThrottle.failures - 1,
                                     next_at_ms=case((free_again, _ms(now_ms)), else_=LoginThrottle.next_at_ms)))

async def purge(db: AsyncSession, now_ms: int, forget_ms: int) -> int:
    """Drop counters that have been forgotten anyway (housekeeping)."""
    result = await db.execute(delete(LoginThrottle).where(LoginThrottle.next_at_ms + forget_ms <= now_ms))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
