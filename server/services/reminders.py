"""Daily overdue reminders: once a day (at ``reminder_hour`` in Vietnam) every assignment that has
passed its deadline unfinished is flagged (``overdue_flagged_at``, once per assignment), the
run is audited, the dashboards are told, and — only if ``reminder_email_to`` is set — one summary
email per province lists its newly overdue count. The UI's reminders (the banner on "Nhiệm vụ")
are computed at read time, so they are right even between runs. Several server processes may
each run the job: the flagging UPDATE only takes rows not yet flagged, so a row is counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta
from email.message import EmailMessage

from server.db import transaction
from server.services import directives, outbox
from server.services.deps import Deps
from server.settings import Settings
from sessions.directives import VN
from sessions.store import directives as store
from sessions.store import units
from sessions.store.audit import Actor

log = logging.getLogger("hoinghi.reminders")
SYSTEM = Actor("cli", name="nhac-viec")
Sender = Callable[[Settings, EmailMessage], None]


def next_run(now: datetime, hour: int) -> datetime:
    """The next ``hour``:00 in Vietnam strictly after ``now``."""
    local = now.astimezone(VN)
    at = datetime.combine(local.date(), time(hour), VN)
    if at <= local:
        at += timedelta(days=1)
    return at


def smtp_send(settings: Settings, message: EmailMessage, tls: ssl.SSLContext | None = None) -> None:
    """Send over SMTP as the settings say: plain, STARTTLS or implicit TLS (certificates verified
    by ``tls``, default the system's trust store), with a login when a user is set."""
    host, _, port = settings.reminder_smtp.partition(":")
    security = settings.reminder_smtp_security
    context = tls or ssl.create_default_context()
    default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
    smtp = (smtplib.SMTP_SSL(host, int(port or default_port), timeout=30, context=context) if security == "ssl"
            else smtplib.SMTP(host, int(port or default_port), timeout=30))
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if settings.reminder_smtp_user:
            smtp.login(settings.reminder_smtp_user, settings.reminder_smtp_password.reveal())
        smtp.send_message(message)


def summary(settings: Settings, day: str, rows: list[tuple[str, int]]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[Hội nghị trực tuyến] Nhắc việc {day}: {sum(n for _, n in rows)} nhiệm vụ mới quá hạn"
    msg["From"] = settings.reminder_email_from
    msg["To"] = settings.reminder_email_to
    lines = [f"Ngày {day}, các nhiệm vụ sau đã quá hạn mà chưa hoàn thành:", ""]
    lines += [f"- {name}: {n} nhiệm vụ" for name, n in rows]
    lines += ["", "Xem chi tiết tại mục Nhiệm vụ của hệ thống."]
    msg.set_content("\n".join(lines))
    return msg


async def run_once(deps: Deps, send: Sender = smtp_send) -> int:
    """Flag what became overdue; returns how many assignments were flagged this run."""
    now = deps.clock()
    settings = deps.settings
    async with transaction(deps.db) as db:
        flagged = await store.flag_overdue(db, now, actor=SYSTEM)
        staged = await directives.stage(deps, db, set(flagged)) if flagged else None
    if not flagged or staged is None:
        return 0
    await outbox.deliver(deps, staged)
    async with deps.db() as db:
        if settings.reminder_email_to:
            tree = await units.unit_tree(db)
            per_province: dict[str, int] = {}
            for unit_id, n in flagged.items():
                view = tree.get(store.province_of(tree, unit_id) or unit_id)
                name = view.name if view is not None else str(unit_id)
                per_province[name] = per_province.get(name, 0) + n
            message = summary(settings, now.astimezone(VN).strftime("%d/%m/%Y"), sorted(per_province.items()))
            try:
                await asyncio.to_thread(send, settings, message)
            except (OSError, smtplib.SMTPException):
                log.exception("overdue reminder email failed")
    return sum(flagged.values())


async def daily(deps: Deps) -> None:
    """Sleep until the next run by the wall clock (the deps' clock gives "now" for the rules)."""
    hour = deps.settings.reminder_hour
    while True:
        wake = next_run(datetime.now(VN), hour)
        await asyncio.sleep(max(1.0, (wake - datetime.now(VN)).total_seconds()))
        try:
            await run_once(deps)
        except Exception:
            log.exception("overdue reminder run failed")


@contextlib.asynccontextmanager
async def running(deps: Deps) -> AsyncIterator[None]:
    """The daily task, kept while the context is open, cancelled and awaited when it closes."""
    task = asyncio.create_task(daily(deps), name="overdue-reminders")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
