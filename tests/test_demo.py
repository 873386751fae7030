"""On a fresh clone, `make demo` serves the login page; logged in as the demo chair you see the
ministry and its 34 provinces.

The real command line, as subprocesses, on a fresh var dir: ``demo --no-serve`` (twice), then
``serve`` on a free port, checked over HTTP the way a browser would use it.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.live_util import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO_USERS = ("quantri", "chutri", "hanoi", "phutho", "vinhyen")
CLI_TIMEOUT = 120


def cli_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any HOINGHI_* setting of its own, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")}
    env.update({"HOINGHI_VAR_DIR": str(var_dir), "HOINGHI_HOST": "127.0.0.1", "HOINGHI_LOG_FORMAT": "text",
                "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_cli(var_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=cli_env(var_dir, **extra_env),
                          capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)


def parse_passwords(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(\S+)\s+\S+\s+đơn vị \S+\s+mật khẩu: (\S+)\s*$", stdout, flags=re.M))


def table_count(db_file: Path, table: str) -> int:
    with sqlite3.connect(db_file) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@dataclass
class Demo:
    var_dir: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    passwords: dict[str, str]
    counts_after_first: dict[str, int]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    var_dir = tmp_path_factory.mktemp("demo") / "var"
    first = run_cli(var_dir, "demo", "--no-serve", HOINGHI_PORT="8123")
    assert first.returncode == 0, first.stderr
    db_file = var_dir / "hoinghi.sqlite3"
    counts = {t: table_count(db_file, t) for t in ("units", "users")}
    second = run_cli(var_dir, "demo", "--no-serve")
    return Demo(var_dir, first, second, parse_passwords(first.stdout), counts)


@dataclass
class Served:
    url: str
    passwords: dict[str, str]
    proc: subprocess.Popen[str]
    log: Path


@pytest.fixture(scope="module")
def served(demo: Demo) -> Iterator[Served]:
    port = free_port()
    log = demo.var_dir.parent / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)], cwd=ROOT,
                                env=cli_env(demo.var_dir), stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"serve did not listen within 30 s:\n{log.read_text()}"
                time.sleep(0.1)
        yield Served(url, demo.passwords, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"serve did not stop within 15 s of SIGTERM:\n{log.read_text()}")
        # SIGTERM (systemd, docker stop) is a normal, clean shutdown.
        assert proc.returncode == 0, f"serve exited with {proc.returncode} on SIGTERM:\n{log.read_text()}"


@pytest.fixture
async def http(served: Served) -> AsyncIterator[aiohttp.ClientSession]:
    # A fresh cookie jar per test; unsafe=True keeps cookies for a bare IP address.
    async with aiohttp.ClientSession(base_url=served.url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with session.get("/healthz") as resp:
                    if resp.status == 200 and (await resp.json())["database"] == "ok":
                        break
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"/healthz not ok within 30 s:\n{served.log.read_text()}"
            await asyncio.sleep(0.1)
        yield session


def children_rows(page: str) -> list[str]:
    table = re.search(r'<table[^>]*\bid="children"[^>]*>(.*?)</table>', page, flags=re.S)
    assert table, "the page has a table#children"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), flags=re.S)
    assert body
    return re.findall(r"<tr>(.*?)</tr>", body.group(1), flags=re.S)


async def log_in(http: aiohttp.ClientSession, username: str, password: str) -> str:
    """Through the login form (double-submit CSRF: cookie hn_csrf + hidden field); returns the home page."""
    async with http.get("/login") as resp:
        assert resp.status == 200
        form = await resp.text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, "the login form carries a CSRF token"
    assert any(c.key == "hn_csrf" and c.value == token.group(1) for c in http.cookie_jar)
    async with http.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1),
                                         "next": "/"}, allow_redirects=False) as resp:
        assert resp.status == 303, f"login {username}: {resp.status}"
        assert resp.headers["Location"] == "/"
    async with http.get("/", allow_redirects=False) as resp:
        assert resp.status == 200
        return await resp.text()


def test_demo_creates_accounts_and_prints_passwords_once(demo: Demo) -> None:
    assert set(demo.passwords) == set(DEMO_USERS), demo.first.stdout
    assert all(len(p) >= 8 for p in demo.passwords.values())
    assert len(set(demo.passwords.values())) == len(DEMO_USERS), "every account gets its own password"
    assert "mật khẩu chỉ hiện MỘT lần" in demo.first.stdout
    # The address printed is the one `serve` will use with the same settings.
    assert "Mở http://127.0.0.1:8123 và đăng nhập bằng 'chutri'" in demo.first.stdout
    assert "34 tỉnh/thành" in demo.first.stdout
    # The ministry, 34 provinces and 3,321 communes of the current tree; five accounts.
    assert demo.counts_after_first == {"units": 1 + 34 + 3321, "users": len(DEMO_USERS)}


def test_second_demo_run_creates_nothing(demo: Demo) -> None:
    assert demo.second.returncode == 0, demo.second.stderr
    assert "đã có từ lần chạy trước" in demo.second.stdout
    assert "mật khẩu:" not in demo.second.stdout, "no password is shown (or reset) the second time"
    assert parse_passwords(demo.second.stdout) == {}
    db_file = demo.var_dir / "hoinghi.sqlite3"
    assert {t: table_count(db_file, t) for t in ("units", "users")} == demo.counts_after_first


def test_db_upgrade_on_the_demo_database(demo: Demo) -> None:
    proc = run_cli(demo.var_dir, "db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    assert "phiên bản mới nhất" in proc.stdout
    assert table_count(demo.var_dir / "hoinghi.sqlite3", "users") == len(DEMO_USERS)


def test_serve_refuses_unknown_setting(tmp_path: Path) -> None:
    proc = run_cli(tmp_path / "var", "serve", "--port", str(free_port()), HOINGHI_FOO="1")
    assert proc.returncode == 2
    assert "HOINGHI_FOO" in proc.stderr and "không xác định" in proc.stderr and "unknown setting" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "var" / "hoinghi.sqlite3").exists(), "nothing is created before the refusal"


def test_serve_announces_its_address(served: Served) -> None:
    deadline = time.monotonic() + 10
    while f"hoinghi đang chạy tại {served.url}" not in served.log.read_text():
        assert time.monotonic() < deadline, served.log.read_text()
        time.sleep(0.1)


async def test_login_page_is_vietnamese(http: aiohttp.ClientSession) -> None:
    async with http.get("/", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"].startswith("/login")
    async with http.get("/login") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert '<html lang="vi">' in page
    for text in ("Đăng nhập", "Tên đăng nhập", "Mật khẩu", "Bỏ qua đến nội dung chính"):
        assert text in page
    async with http.get("/static/app.css") as resp:
        assert resp.status == 200


async def test_chair_sees_ministry_and_34_provinces(http: aiohttp.ClientSession, served: Served) -> None:
    page = await log_in(http, "chutri", served.passwords["chutri"])
    assert 'id="my-unit">Bộ Công an</a>' in page
    assert 'id="my-role">Chủ trì hội nghị</dd>' in page
    rows = children_rows(page)
    assert len(rows) == 34
    assert all("Tỉnh/Thành phố" in row for row in rows)
    names = [re.sub(r"<[^>]+>", "", r.split("</td>")[1]) for r in rows]
    for name in ("Thành phố Hà Nội", "Phú Thọ", "Thành phố Hồ Chí Minh"):
        assert name in names
    assert "Đơn vị trực thuộc (34)" in page


async def test_province_operator_sees_only_hanoi(http: aiohttp.ClientSession, served: Served) -> None:
    page = await log_in(http, "hanoi", served.passwords["hanoi"])
    assert 'id="my-unit">Thành phố Hà Nội</a>' in page
    assert "Vận hành điểm cầu tỉnh" in page
    rows = children_rows(page)
    assert len(rows) == 126
    assert all("Xã/Phường" in row for row in rows)
    assert "<strong>126</strong> Xã/Phường" in page
    async with http.get("/units/25", allow_redirects=False) as resp:
        assert resp.status == 403
        refused = await resp.text()
    assert '<html lang="vi">' in refused
    assert "Đơn vị này nằm ngoài phạm vi của bạn" in refused
    assert "Phú Thọ" not in refused
    async with http.get("/units/01", allow_redirects=False) as resp:
        assert resp.status == 200


async def test_demo_has_the_concluded_seed_meeting(http: aiohttp.ClientSession, served: Served,
                                                   demo: Demo) -> None:
    """#6's demo: the seed conference concluded, its minutes carrying the minister's three
    instructions as directives due 31/12/2022, and one of them broken down by Phú Thọ."""
    from demo import directives as demo_directives

    found = re.search(r"Hội nghị đã kết thúc #(\d+)", demo.first.stdout)
    assert found, demo.first.stdout
    mid = int(found.group(1))
    await log_in(http, "chutri", served.passwords["chutri"])
    async with http.get(f"/api/meetings/{mid}/minutes") as resp:
        body = await resp.json()
        assert resp.status == 200, body
    doc = body["minutes"]
    assert doc["chair"] == {"name": "Tô Lâm", "title": "Bộ trưởng", "unit": "Bộ Công an"}
    [conclusion] = doc["conclusions"]
    assert [d["text"] for d in conclusion["directives"]] == list(demo_directives.INSTRUCTIONS)
    assert all(d["deadline"] == "2022-12-31" and len(d["assignees"]) == 34 for d in conclusion["directives"])
    on_time = next(k for k in doc["kpis"] if k["code"] == "DVC_TY_LE_DUNG_HAN")
    assert (on_time["num"], on_time["den"]) == (74_336, 74_587)
    async with http.get("/api/directives/dashboard") as resp:
        rows = {r["unit"]["code"]: r["counts"] for r in (await resp.json())["rows"]}
    assert rows["25"]["open_overdue"] >= 3 and rows["01"]["done_on_time"] == 2 and rows["79"]["done_late"] == 1
    db_file = demo.var_dir / "hoinghi.sqlite3"
    with sqlite3.connect(db_file) as conn:
        broken_down = conn.execute("SELECT count(*) FROM directives WHERE parent_assignment_id IS NOT NULL").fetchone()
    assert broken_down[0] == 1
    # A second demo run added nothing.
    assert table_count(db_file, "meeting_minutes") == 2 and "Hội nghị đã kết thúc #" in demo.second.stdout
