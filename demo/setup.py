"""``hoinghi demo``: the current unit tree, the demo accounts (passwords shown once), the nationwide
conference scheduled for tomorrow, the seed report's KPI figures and its concluded conference, then
the server with the demo bridges."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from server.commands import add_user, import_units, unit_rows, with_db
from server.settings import Settings
from sessions.store.users import UserView
from sessions.unit_sources import DEFAULT_ROOT_CODE

DEMO_ACCOUNTS = (
    # username, role, unit code, full name
    ("quantri", "admin", DEFAULT_ROOT_CODE, "Quản trị hệ thống Bộ"),
    ("chutri", "chair", DEFAULT_ROOT_CODE, "Chủ trì hội nghị (Bộ)"),
    ("hanoi", "bridge_operator", "01", "Vận hành điểm cầu Hà Nội"),
    ("phutho", "bridge_operator", "25", "Vận hành điểm cầu Phú Thọ"),
    ("vinhyen", "site_operator", "08707", "Vận hành điểm cầu phường Vĩnh Yên"),
)


async def demo_setup(settings: Settings) -> list[tuple[str, str, str, str]]:
    """Import the current tree and create the demo accounts that do not exist yet.
    Returns (username, role, unit, password) for accounts created now (passwords shown once)."""
    from sessions.store import users

    await import_units(settings, unit_rows(settings, "current"))
    created = []
    for username, role, unit_code, full_name in DEMO_ACCOUNTS:

        async def exists(db: AsyncSession, name: str = username) -> UserView | None:
            return await users.get_by_username(db, name)

        if await with_db(settings, exists) is not None:
            continue
        password = secrets.token_urlsafe(9)
        await add_user(settings, username, unit_code, role, full_name, password)
        created.append((username, role, unit_code, password))
    return created


DEMO_MEETING_TITLE = "Hội nghị giao ban trực tuyến toàn quốc về triển khai Đề án 06"
DEMO_MEETING_AGENDA = [
    "Báo cáo tiến độ triển khai Đề án 06 và kết luận của hội nghị ngày 17/8/2022",
    "Phát biểu của các điểm cầu tỉnh, thành phố",
    "Kết luận của Bộ trưởng",
]


async def demo_meeting(settings: Settings) -> int:
    """The seed report's nationwide conference (all provinces and communes), scheduled for
    tomorrow 14:00 Hanoi time — created once; later runs reuse it."""
    from datetime import datetime, timedelta

    from sessions.store import meetings, units
    from sessions.timezone import VN
    from sessions.units import Level

    async def work(db: AsyncSession) -> int:
        found = await meetings.latest_titled(db, DEMO_MEETING_TITLE)
        if found is not None:
            return found
        root = await units.get_by_code(db, DEFAULT_ROOT_CODE)
        tomorrow = (datetime.now(VN) + timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)
        return await meetings.schedule(db, title=DEMO_MEETING_TITLE, agenda=DEMO_MEETING_AGENDA,
                                       start=tomorrow, chair_unit_id=root.id, created_by_id=None,
                                       selectors=[meetings.Selector(DEFAULT_ROOT_CODE,
                                                                    (Level.PROVINCE, Level.COMMUNE))])

    return await with_db(settings, work)


async def demo_concluded(settings: Settings) -> int:
    """The seed report's conference, concluded, with its minutes and directives (demo.directives)."""
    from demo import directives

    return await with_db(settings, lambda db: directives.load(db, DEFAULT_ROOT_CODE))


async def demo_kpi(settings: Settings) -> dict[str, int]:
    """The seed report's KPI figures for every unit of the tree (idempotent: see demo.kpi)."""
    from demo import kpi
    from sessions.models import utcnow

    return await with_db(settings, lambda db: kpi.load(db, DEFAULT_ROOT_CODE, utcnow()))


def run(settings: Settings, serve: Callable[[Settings], None] | None) -> None:
    """Set everything up, print where to go, then (with ``serve``) run the server and the demo
    bridges until interrupted."""
    created = asyncio.run(demo_setup(settings))
    meeting_id = asyncio.run(demo_meeting(settings))
    print("Đang nạp số liệu chỉ tiêu mẫu cho mọi đơn vị (lần đầu mất khoảng 20 giây)…", flush=True)
    figures = asyncio.run(demo_kpi(settings))
    print(f"Số liệu chỉ tiêu mẫu: nhận {figures['accepted']} báo cáo, trùng {figures['duplicates']}.")
    concluded = asyncio.run(demo_concluded(settings))
    _print_demo(created, settings, meeting_id, concluded)
    if serve is not None:
        from demo import bridges

        media_settings, running = bridges.start(settings)
        try:
            serve(media_settings)
        finally:
            bridges.stop(running)


def _print_demo(created: list[tuple[str, str, str, str]], settings: Settings, meeting_id: int,
                concluded: int) -> None:
    bar = "=" * 64
    print(bar)
    if created:
        print("Tài khoản mẫu (mật khẩu chỉ hiện MỘT lần — hãy ghi lại):")
        for username, role, unit, password in created:
            print(f"  {username:<10} {role:<16} đơn vị {unit:<6} mật khẩu: {password}")
    else:
        print("Tài khoản mẫu đã có từ lần chạy trước (quantri, chutri, hanoi, phutho, vinhyen).")
        print("Quên mật khẩu? .venv/bin/hoinghi users passwd chutri")
    base = f"http://{settings.host}:{settings.port}"
    print(f"Mở {base} và đăng nhập bằng 'chutri' để xem Bộ và 34 tỉnh/thành.")
    print(f"Hội nghị mẫu #{meeting_id}: {DEMO_MEETING_TITLE}")
    print(f"  chutri  → bàn điều khiển chủ trì   {base}/meetings/{meeting_id}/chair")
    print(f"  phutho  → bàn điều khiển tỉnh      {base}/meetings/{meeting_id}/province/25")
    print(f"  hanoi   → bàn điều khiển tỉnh      {base}/meetings/{meeting_id}/province/01")
    print(f"  vinhyen → trang điểm cầu xã        {base}/meetings/{meeting_id}/site")
    print("  (mở mỗi tài khoản trong một cửa sổ ẩn danh riêng)")
    print(f"Hội nghị đã kết thúc #{concluded} (17/8/2022, báo cáo mẫu): biên bản và các chỉ đạo")
    print(f"  biên bản              {base}/meetings/{concluded}/minutes  (PDF, DOCX trên trang)")
    print(f"  chutri  → bảng theo dõi chỉ đạo  {base}/directives/dashboard")
    print(f"  phutho  → chỉ đạo của tỉnh       {base}/directives")
    print(bar, flush=True)
