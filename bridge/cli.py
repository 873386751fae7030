"""Command line of a bridge: ``hoinghi bridge …`` (its key derived from the server's settings) or
``python -m bridge …`` (its own key from ``--key-file`` or ``HOINGHI_BRIDGE_KEY``, which
``hoinghi bridge-key --unit <code>`` prints on the server; it checks this bridge's tokens only). The machine
token for the server's control channel: ``--token`` or ``HOINGHI_BRIDGE_TOKEN`` (scope ``bridge``,
bound to the bridge's unit; ``hoinghi tokens add --scopes bridge``)."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace
from pathlib import Path

from bridge import aiortc_compat, ice_servers
from bridge.room import BridgeConfig


class BridgeCliError(Exception):
    """A refusal printed as one line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unit", required=True, help="mã đơn vị của điểm cầu này (vd. 01)")
    parser.add_argument("--server", required=True, help="URL máy chủ hoinghi (kênh điều khiển)")
    parser.add_argument("--upstream", default="", help="URL điểm cầu cấp trên (phát chuyển tiếp)")
    parser.add_argument("--listen", default="127.0.0.1:8600", help="HOST:PORT nhận WHIP/WHEP")
    parser.add_argument("--ice-server", action="append", default=[], dest="ice_servers",
                        help="máy chủ STUN/TURN (lặp lại được), vd. stun:stun.example.vn:3478 hoặc "
                             "'turn:turn.example.vn:3478?transport=udp;username=U;credential=C'")
    parser.add_argument("--token", default="", help="mã truy cập máy (phạm vi bridge) cho kênh điều khiển; "
                                                     "mặc định: biến HOINGHI_BRIDGE_TOKEN")
    parser.add_argument("--recordings-dir", default="", help="thư mục ghi hình chương trình (điểm cầu tỉnh: chỉ "
                        "khi chủ trì yêu cầu; mặc định: biến HOINGHI_BRIDGE_RECORDINGS_DIR; trống = không ghi)")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BridgeCliError(f"--listen phải có dạng HOST:PORT, nhận được {text!r}")
    return host.strip("[]"), int(port)


def config_from_args(args: argparse.Namespace, key: bytes) -> BridgeConfig:
    token = args.token or os.environ.get("HOINGHI_BRIDGE_TOKEN", "")
    for server in args.ice_servers:
        try:
            ice_servers.parse(server)
        except ice_servers.IceServerInvalid as exc:
            raise BridgeCliError(str(exc)) from None
    config = BridgeConfig(unit=args.unit, key=key, server_url=args.server, upstream_url=args.upstream,
                          ice_servers=tuple(args.ice_servers), token=token)
    if getattr(args, "recordings_dir", ""):
        config = replace(config, recordings_dir=args.recordings_dir)
    return config


def run(args: argparse.Namespace, key: bytes) -> None:
    from bridge.app import run as run_app

    try:
        aiortc_compat.check_versions()  # before anything touches aiortc's internals
    except aiortc_compat.UnsupportedVersion as exc:
        raise BridgeCliError(str(exc)) from None
    host, port = parse_listen(args.listen)
    config = config_from_args(args, key)
    run_app(config, host, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge", description="Điểm cầu truyền hình hội nghị")
    add_arguments(parser)
    parser.add_argument("--key-file", help="tệp khoá riêng của điểm cầu (mặc định: biến HOINGHI_BRIDGE_KEY; "
                                           "lấy bằng 'hoinghi bridge-key --unit <mã>' trên máy chủ)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)  # one line per ICE check otherwise
    try:
        if args.key_file:
            key = Path(args.key_file).read_text().strip().encode()
        elif os.environ.get("HOINGHI_BRIDGE_KEY"):
            key = os.environ["HOINGHI_BRIDGE_KEY"].encode()
        else:
            raise BridgeCliError("cần khoá riêng của điểm cầu: --key-file hoặc biến HOINGHI_BRIDGE_KEY "
                                 "(in bằng 'hoinghi bridge-key --unit <mã>' trên máy chủ)")
        run(args, key)
    except (BridgeCliError, OSError) as exc:
        print(f"Lỗi: {exc}", flush=True)
        return 2
    return 0
