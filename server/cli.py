"""The ``hoinghi`` command: serve, db upgrade, units import, users add/passwd, tokens, bridge, demo."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server import db
from server.settings import Settings, SettingsError, load_settings
from sessions.errors import DomainError, ImportRejected
from sessions.store.units import ImportResult
from sessions.store.users import UserView
from sessions.unit_sources import DEFAULT_ROOT_CODE, DEFAULT_ROOT_NAME
from sessions.units import UnitRow

log = logging.getLogger("hoinghi.cli")
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


async def _with_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
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

    async def work(session: AsyncSession) -> ImportResult:
        result = await units.import_units(session, rows, progress=update)
        await audit.record(session, audit.CLI, "units_imported", f"{len(rows)} rows",
                           added=result.added, updated=result.updated, unchanged=result.unchanged)
        return result

    try:
        return await _with_db(settings, work)
    finally:
        close()


async def add_user(settings: Settings, username: str, unit_code: str, role: str, full_name: str,
                   password: str) -> UserView:
    from sessions.passwords import hash_password
    from sessions.store import audit, units, users

    pw_hash = await asyncio.to_thread(hash_password, password)

    async def work(session: AsyncSession) -> UserView:
        unit = await units.get_by_code(session, unit_code)
        user = await users.create_user(session, username=username, full_name=full_name,
                                       password_hash=pw_hash, unit_id=unit.id, role=role)
        await audit.record(session, audit.CLI, "user_created", user.username, role=role,
                           unit=unit.code)
        return user

    return await _with_db(settings, work)


async def set_password(settings: Settings, username: str, password: str) -> None:
    from sessions.passwords import hash_password
    from sessions.store import audit, users
    from sessions.store import auth as auth_store

    pw_hash = await asyncio.to_thread(hash_password, password)

    async def work(session: AsyncSession) -> None:
        user = await users.get_by_username(session, username)
        if user is None:
            raise CliError(f"không có tài khoản '{username}'")
        await users.set_password_hash(session, user.id, pw_hash)
        await auth_store.delete_user_sessions(session, user.id)
        await audit.record(session, audit.CLI, "password_reset", user.username)

    await _with_db(settings, work)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if sys.stdin.isatty():
        first = getpass.getpass("Mật khẩu: ")
        if first != getpass.getpass("Nhập lại mật khẩu: "):
            raise CliError("hai lần nhập mật khẩu không khớp")
        return first
    raise CliError("cần mật khẩu: chạy trên terminal, hoặc dùng --password-stdin")


def serve(settings: Settings) -> None:
    from server.app import create_app
    from server.logs import configure

    configure(settings.log_level, settings.log_format)
    log.info("starting", extra={"settings": str(settings.public_items())})
    app = create_app(settings)
    # Each live websocket keeps ~130 objects tracked by the garbage collector. With the default
    # young-generation threshold (700), a fan-out to thousands of sites runs young collections
    # mid-flight that promote in-flight objects, so every few dozen fan-outs a full collection
    # stalls the event loop (~0.3 s at 3,355 sites, ~0.7 s at 10,810). Collect less often.
    gc.set_threshold(50_000)
    print(f"hoinghi đang chạy tại http://{settings.host}:{settings.port}  (Ctrl+C để dừng)", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


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

        async def exists(session: AsyncSession, name: str = username) -> UserView | None:
            return await users.get_by_username(session, name)

        if await _with_db(settings, exists) is not None:
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

    async def work(session: AsyncSession) -> int:
        found = await meetings.latest_titled(session, DEMO_MEETING_TITLE)
        if found is not None:
            return found
        root = await units.get_by_code(session, DEFAULT_ROOT_CODE)
        tomorrow = (datetime.now(VN) + timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)
        return await meetings.schedule(session, title=DEMO_MEETING_TITLE, agenda=DEMO_MEETING_AGENDA,
                                       start=tomorrow, chair_unit_id=root.id, created_by_id=None,
                                       selectors=[meetings.Selector(DEFAULT_ROOT_CODE,
                                                                    (Level.PROVINCE, Level.COMMUNE))])

    return await _with_db(settings, work)


async def demo_concluded(settings: Settings) -> int:
    """The seed report's conference, concluded, with its minutes and directives (server.demo_directives)."""
    from server import demo_directives

    return await _with_db(settings, lambda session: demo_directives.load(session, DEFAULT_ROOT_CODE))


async def demo_kpi(settings: Settings) -> dict[str, int]:
    """The seed report's KPI figures for every unit of the tree (idempotent: see server.demo_kpi)."""
    from server import demo_kpi
    from sessions.models import utcnow

    return await _with_db(settings, lambda session: demo_kpi.load(session, DEFAULT_ROOT_CODE, utcnow()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hoinghi", description="Hội nghị trực tuyến toàn quốc")
    parser.add_argument("--config", help="tệp cấu hình TOML (hoặc biến HOINGHI_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="chạy máy chủ web")
    p.add_argument("--host")
    p.add_argument("--port", type=int)

    p = sub.add_parser("db", help="cơ sở dữ liệu")
    dsub = p.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="nâng cấp lược đồ lên bản mới nhất (Alembic)")

    p = sub.add_parser("units", help="cây đơn vị hành chính")
    usub = p.add_subparsers(dest="units_command", required=True)
    imp = usub.add_parser("import", help="nhập cây đơn vị (nhập lại không thêm gì)")
    imp.add_argument("--source", choices=["current", "legacy", "csv", "synthetic"], default="current",
                     help="current: 34 tỉnh/3.321 xã; legacy: 63/696/10.051; csv; synthetic")
    imp.add_argument("--file", help="tệp CSV (code,name,level,parent_code)")
    imp.add_argument("--synthetic", dest="spec", help="vd. provinces=63,districts=700,communes=10000")
    imp.add_argument("--root-code", default=DEFAULT_ROOT_CODE)
    imp.add_argument("--root-name", default=DEFAULT_ROOT_NAME)

    p = sub.add_parser("users", help="tài khoản")
    asub = p.add_subparsers(dest="users_command", required=True)
    add = asub.add_parser("add", help="thêm tài khoản")
    add.add_argument("--username", required=True)
    add.add_argument("--unit", required=True, help="mã đơn vị")
    add.add_argument("--role", required=True, choices=["admin", "chair", "bridge_operator", "site_operator", "viewer"])
    add.add_argument("--full-name", default="")
    add.add_argument("--password-stdin", action="store_true", help="đọc mật khẩu từ stdin")
    pw = asub.add_parser("passwd", help="đặt lại mật khẩu (đăng xuất mọi phiên)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")

    p = sub.add_parser("tokens", help="mã truy cập máy (bridge, hệ thống nguồn)")
    tsub = p.add_subparsers(dest="tokens_command", required=True)
    tadd = tsub.add_parser("add")
    tadd.add_argument("--name", required=True)
    tadd.add_argument("--unit", required=True)
    tadd.add_argument("--scopes", required=True, help="cách nhau bởi dấu phẩy: units:read,bridge,kpi:write")
    tadd.add_argument("--days", type=int, default=30)
    trev = tsub.add_parser("revoke")
    trev.add_argument("token_id", type=int)

    p = sub.add_parser("bridge", help="chạy điểm cầu truyền hình (WHIP/WHEP, chuyển tiếp không giải mã)")
    from bridge.cli import add_arguments as bridge_arguments

    bridge_arguments(p)

    p = sub.add_parser("demo", help="nhập dữ liệu, tạo tài khoản mẫu và chạy máy chủ")
    p.add_argument("--no-serve", action="store_true", help="chỉ chuẩn bị dữ liệu")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = {k: v for k, v in (("host", getattr(args, "host", None)),
                                        ("port", getattr(args, "port", None))) if v is not None}
        settings = load_settings(config_file=args.config, **overrides)
        return _dispatch(args, settings)
    except (SettingsError, CliError) as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 2
    except ImportRejected as exc:
        print("Lỗi: dữ liệu bị từ chối, cơ sở dữ liệu không thay đổi:", file=sys.stderr)
        for line, message in exc.errors[:50]:
            print(f"  dòng {line}: {message}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"Lỗi: {exc.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"Lỗi: không tìm thấy tệp {exc.filename}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        serve(settings)
    elif args.command == "db":
        asyncio.run(db.upgrade(settings.effective_database_url()))
        print("Cơ sở dữ liệu đã ở phiên bản mới nhất.")
    elif args.command == "units":
        rows = unit_rows(settings, args.source, file=args.file, spec=args.spec, root_code=args.root_code,
                         root_name=args.root_name)
        result = asyncio.run(import_units(settings, rows))
        print(f"Đã nhập {len(rows)} đơn vị: thêm {result.added}, cập nhật {result.updated}, "
              f"không đổi {result.unchanged}.")
    elif args.command == "users" and args.users_command == "add":
        user = asyncio.run(add_user(settings, args.username, args.unit, args.role, args.full_name,
                                    _read_password(args)))
        print(f"Đã tạo tài khoản {user.username} ({user.role.value}) tại {user.unit_name}.")
    elif args.command == "users" and args.users_command == "passwd":
        asyncio.run(set_password(settings, args.username, _read_password(args)))
        print(f"Đã đặt lại mật khẩu cho {args.username}; mọi phiên đăng nhập của tài khoản đã bị đóng.")
    elif args.command == "tokens":
        return _tokens(args, settings)
    elif args.command == "bridge":
        from bridge.cli import BridgeCliError
        from bridge.cli import run as run_bridge
        from server.logs import configure

        configure(settings.log_level, settings.log_format)
        try:
            from server.media import media_key

            run_bridge(args, media_key(settings))
        except BridgeCliError as exc:
            raise CliError(str(exc)) from None
    elif args.command == "demo":
        created = asyncio.run(demo_setup(settings))
        meeting_id = asyncio.run(demo_meeting(settings))
        print("Đang nạp số liệu chỉ tiêu mẫu cho mọi đơn vị (lần đầu mất khoảng 20 giây)…", flush=True)
        figures = asyncio.run(demo_kpi(settings))
        print(f"Số liệu chỉ tiêu mẫu: nhận {figures['accepted']} báo cáo, trùng {figures['duplicates']}.")
        concluded = asyncio.run(demo_concluded(settings))
        _print_demo(created, settings, meeting_id, concluded)
        if not args.no_serve:
            from server import demo_media

            media_settings, bridges = demo_media.start(settings)
            try:
                serve(media_settings)
            finally:
                demo_media.stop(bridges)
    return 0


def _tokens(args: argparse.Namespace, settings: Settings) -> int:
    from server.auth import mint_machine_token
    from sessions.errors import ValidationFailed
    from sessions.models import utcnow
    from sessions.store import audit, units
    from sessions.store import auth as auth_store

    if args.tokens_command == "revoke":
        async def revoke(session: AsyncSession) -> None:
            await auth_store.get_token(session, args.token_id)
            await auth_store.revoke_token(session, args.token_id, utcnow())
            await audit.record(session, audit.CLI, "token_revoked", f"token:{args.token_id}")

        asyncio.run(_with_db(settings, revoke))
        print(f"Đã thu hồi mã #{args.token_id}.")
        return 0
    scopes = frozenset(s.strip() for s in args.scopes.split(",") if s.strip())

    async def add(session: AsyncSession) -> str:
        unit = await units.get_by_code(session, args.unit)
        try:
            tid, token = await mint_machine_token(session, key=settings.signing_key(),
                                                  max_days=settings.machine_token_max_days, now=utcnow(),
                                                  name=args.name, unit_id=unit.id, scopes=scopes, days=args.days,
                                                  created_by_id=None)
        except ValidationFailed as exc:
            raise CliError(exc.message) from None
        await audit.record(session, audit.CLI, "token_issued", f"token:{tid}", name=args.name)
        return token

    print(asyncio.run(_with_db(settings, add)))
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
