"""The ``hoinghi`` command: serve, db upgrade, units import, users add/passwd, tokens, bridge,
bridge-key, demo."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import sys
from collections.abc import Sequence
from typing import TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server import db
from server.commands import CliError, add_user, import_units, set_password, unit_rows, with_db
from server.settings import Settings, SettingsError, load_settings
from sessions.errors import DomainError, ImportRejected
from sessions.unit_sources import DEFAULT_ROOT_CODE, DEFAULT_ROOT_NAME

log = logging.getLogger("hoinghi.cli")
T = TypeVar("T")


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

    p = sub.add_parser("bridge-key", help="in khoá riêng của điểm cầu một đơn vị (cho máy chạy python -m bridge)")
    p.add_argument("--unit", required=True, help="mã đơn vị của điểm cầu (vd. 01)")
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
            from server.services.media import bridge_key

            run_bridge(args, bridge_key(settings, args.unit))
        except BridgeCliError as exc:
            raise CliError(str(exc)) from None
    elif args.command == "bridge-key":
        from server.services.media import bridge_key

        print(bridge_key(settings, args.unit).decode())
    elif args.command == "demo":
        from demo import setup

        setup.run(settings, None if args.no_serve else serve)
    return 0


def _tokens(args: argparse.Namespace, settings: Settings) -> int:
    from server.services.access import mint_machine_token
    from sessions.errors import ValidationFailed
    from sessions.models import utcnow
    from sessions.store import audit, units
    from sessions.store import auth as auth_store

    if args.tokens_command == "revoke":
        async def revoke(db: AsyncSession) -> None:
            await auth_store.get_token(db, args.token_id)
            await auth_store.revoke_token(db, args.token_id, utcnow())
            await audit.record(db, audit.CLI, "token_revoked", f"token:{args.token_id}")

        asyncio.run(with_db(settings, revoke))
        print(f"Đã thu hồi mã #{args.token_id}.")
        return 0
    scopes = frozenset(s.strip() for s in args.scopes.split(",") if s.strip())

    async def add(db: AsyncSession) -> str:
        unit = await units.get_by_code(db, args.unit)
        try:
            tid, token = await mint_machine_token(db, key=settings.signing_key(),
                                                  max_days=settings.machine_token_max_days, now=utcnow(),
                                                  name=args.name, unit_id=unit.id, scopes=scopes, days=args.days,
                                                  created_by_id=None)
        except ValidationFailed as exc:
            raise CliError(exc.message) from None
        await audit.record(db, audit.CLI, "token_issued", f"token:{tid}", name=args.name)
        return token

    print(asyncio.run(with_db(settings, add)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
