"""The administrative tree in a real database: importing the real trees (idempotently), refusing
bad CSV files as a whole (store, admin upload, JSON API, CLI), and subtree queries.

Storage tests run on SQLite and, when configured, PostgreSQL (``db_url``). The legacy tree is the
``vietnam-provinces`` 0.6.0 wheel, downloaded once into ``var/cache`` under the repository root
(git-ignored); without network that is a missing service: skipped locally, failed in CI.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from server import db as dbmod
from server import unit_data
from server.state import DB
from sessions.errors import ImportRejected
from sessions.store import units as units_store
from sessions.unit_sources import from_current_tree, from_legacy_tree, parse_csv, root_row
from sessions.units import Level, UnitRow
from tests.conftest import TREE, Client, LiveServer, need_service

REPO = Path(__file__).resolve().parent.parent
LEGACY_CACHE = REPO / "var" / "cache"

CURRENT_COUNTS = {"central": 1, "province": 34, "commune": 3321}
LEGACY_COUNTS = {"central": 1, "province": 63, "district": 696, "commune": 10051}


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="session")
def current_rows() -> list[UnitRow]:
    try:
        data = unit_data.current_tree_json()
    except unit_data.DataUnavailable as exc:
        need_service(f"current unit tree: {exc.message}")
    return from_current_tree(data, root_row())


@pytest.fixture(scope="session")
def legacy_rows() -> list[UnitRow]:
    """Read from the 0.6.0 wheel; pip downloads it once into var/cache (reused across runs)."""
    try:
        data = unit_data.legacy_tree_json(LEGACY_CACHE)
    except unit_data.DataUnavailable as exc:
        need_service(f"legacy unit tree (pip download vietnam-provinces==0.6.0): {exc.message}")
    return from_legacy_tree(data, root_row())


Snapshot = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


async def snapshot(factory: Any) -> Snapshot:
    """Every column of ``units`` and ``unit_closure``, in a fixed order."""
    async with factory() as db:
        units = (await db.execute(text(
            "SELECT id, code, name, level, parent_id, created_at, updated_at FROM units ORDER BY id"
        ))).all()
        closure = (await db.execute(text(
            "SELECT ancestor_id, descendant_id, depth FROM unit_closure ORDER BY ancestor_id, descendant_id"
        ))).all()
    return [tuple(r) for r in units], [tuple(r) for r in closure]


def naive_closure(parent_of: dict[int, int | None]) -> set[tuple[int, int, int]]:
    """Walk up from every unit: the obviously-correct closure to compare the stored one with."""
    out = set()
    for uid in parent_of:
        cur: int | None = uid
        depth = 0
        while cur is not None:
            out.add((cur, uid, depth))
            cur = parent_of[cur]
            depth += 1
    return out


def assert_closure_consistent(snap: Snapshot) -> None:
    units, closure = snap
    parent_of = {row[0]: row[4] for row in units}
    assert len(closure) == len(set(closure)), "no duplicate closure rows"
    assert set(closure) == naive_closure(parent_of)


async def import_rows(factory: Any, rows: list[UnitRow]) -> units_store.ImportResult:
    async with dbmod.transaction(factory) as db:
        return await units_store.import_units(db, rows)


async def counts(factory: Any, unit_id: int | None = None) -> dict[str, int]:
    async with factory() as db:
        return await units_store.count_by_level(db, unit_id)


# ---------------------------------------------------------------------------------------------
# The real trees


async def test_current_tree_imports_once_and_reimport_changes_nothing(
    session_factory: Any, current_rows: list[UnitRow]
) -> None:
    first = await import_rows(session_factory, current_rows)
    assert (first.added, first.updated, first.unchanged) == (3356, 0, 0)
    assert await counts(session_factory) == CURRENT_COUNTS
    before = await snapshot(session_factory)
    assert len(before[0]) == 3356
    assert_closure_consistent(before)

    again = await import_rows(session_factory, current_rows)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3356)
    assert await snapshot(session_factory) == before

    # A renamed commune is updated in place: same id, new name, nothing else touched.
    ward = next(r for r in current_rows if r.level is Level.COMMUNE)
    renamed = [replace(r, name=r.name + " (đổi tên)") if r.code == ward.code else r for r in current_rows]
    result = await import_rows(session_factory, renamed)
    assert (result.added, result.updated, result.unchanged) == (0, 1, 3355)
    after_rename = await snapshot(session_factory)
    assert after_rename[1] == before[1], "a rename does not touch the closure"
    changed = [(b, a) for b, a in zip(before[0], after_rename[0], strict=True) if b != a]
    assert len(changed) == 1
    old, new = changed[0]
    assert new[0] == old[0] and new[1] == ward.code
    assert new[2] == ward.name + " (đổi tên)"
    assert (new[3], new[4], new[5]) == (old[3], old[4], old[5])


async def test_legacy_tree_imports_once_moves_and_queries(
    session_factory: Any, legacy_rows: list[UnitRow]
) -> None:
    assert Counter(r.level.value for r in legacy_rows) == LEGACY_COUNTS
    first = await import_rows(session_factory, legacy_rows)
    assert (first.added, first.updated, first.unchanged) == (10811, 0, 0)
    assert await counts(session_factory) == LEGACY_COUNTS
    before = await snapshot(session_factory)
    assert_closure_consistent(before)

    again = await import_rows(session_factory, legacy_rows)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 10811)
    assert await snapshot(session_factory) == before

    # Subtrees of the real tree: the nation is everything, a province exactly its own part.
    province_of = {r.code: r.parent_code for r in legacy_rows if r.level is Level.DISTRICT}
    hanoi_districts = {d for d, p in province_of.items() if p == "01"}
    hanoi_codes = {"01"} | hanoi_districts | {
        r.code for r in legacy_rows if r.level is Level.COMMUNE and r.parent_code in hanoi_districts
    }
    async with session_factory() as db:
        nation = await units_store.root(db)
        assert nation is not None and nation.code == "BCA"
        everything = await units_store.subtree(db, nation.id)
        assert len(everything) == 10811 and len({u.code for u in everything}) == 10811
        hanoi = await units_store.get_by_code(db, "01")
        assert {u.code for u in await units_store.subtree(db, hanoi.id)} == hanoi_codes
        assert await units_store.count_by_level(db, hanoi.id) == {
            "province": 1, "district": len(hanoi_districts), "commune": len(hanoi_codes) - 1 - len(hanoi_districts)}

    # Move one district (with its communes) to another province, and rename a commune.
    district = next(r for r in legacy_rows if r.level is Level.DISTRICT and r.parent_code == "01")
    moved_communes = {r.code for r in legacy_rows if r.parent_code == district.code}
    assert moved_communes
    rename = next(r for r in legacy_rows if r.level is Level.COMMUNE and r.parent_code != district.code)
    changed_rows = [
        replace(r, parent_code="79") if r.code == district.code
        else replace(r, name="Xã đổi tên") if r.code == rename.code else r
        for r in legacy_rows
    ]
    result = await import_rows(session_factory, changed_rows)
    assert (result.added, result.updated, result.unchanged) == (0, 2, 10809)
    after = await snapshot(session_factory)
    assert_closure_consistent(after)
    assert after[1] != before[1]
    assert await counts(session_factory) == LEGACY_COUNTS
    async with session_factory() as db:
        hanoi = await units_store.get_by_code(db, "01")
        hcm = await units_store.get_by_code(db, "79")
        hanoi_now = {u.code for u in await units_store.subtree(db, hanoi.id)}
        hcm_now = {u.code for u in await units_store.subtree(db, hcm.id)}
        assert hanoi_now == hanoi_codes - {district.code} - moved_communes
        assert {district.code} | moved_communes <= hcm_now
        commune = await units_store.get_by_code(db, sorted(moved_communes)[0])
        assert [u.code for u in await units_store.ancestors(db, commune.id)] == [
            "BCA", "79", district.code, commune.code]
        assert await units_store.is_within(db, hcm.id, commune.id)
        assert not await units_store.is_within(db, hanoi.id, commune.id)
        assert (await units_store.get_by_code(db, rename.code)).name == "Xã đổi tên"


# ---------------------------------------------------------------------------------------------
# Subtree queries on the small fixture tree


async def test_subtree_level_filter_and_is_within(session_factory: Any) -> None:
    await import_rows(session_factory, list(TREE))
    async with session_factory() as db:
        ids = {r.code: (await units_store.get_by_code(db, r.code)).id for r in TREE}
        everything = await units_store.subtree(db, ids["BCA"])
        assert [u.code for u in everything] == [
            "BCA", "01", "25", "79", "00004", "00070", "08707", "08740", "760", "26734"]
        assert [u.code for u in await units_store.subtree(db, ids["79"])] == ["79", "760", "26734"]
        assert [u.code for u in await units_store.subtree(db, ids["01"])] == ["01", "00004", "00070"]
        assert [u.code for u in await units_store.subtree(db, ids["26734"])] == ["26734"]
        communes = await units_store.subtree(db, ids["BCA"], Level.COMMUNE)
        assert {u.code for u in communes} == {"00004", "00070", "08707", "08740", "26734"}
        assert all(u.level is Level.COMMUNE for u in communes)
        assert [u.code for u in await units_store.subtree(db, ids["79"], Level.DISTRICT)] == ["760"]
        assert await units_store.subtree(db, ids["01"], Level.DISTRICT) == []
        assert await units_store.subtree_ids(db, ids["79"]) == {ids["79"], ids["760"], ids["26734"]}
        view = everything[-1]
        assert view.as_dict() == {"id": ids["26734"], "code": "26734", "name": "Phường Sài Gòn",
                                  "level": "commune", "parent_id": ids["760"]}

        assert await units_store.is_within(db, ids["BCA"], ids["26734"])
        assert await units_store.is_within(db, ids["79"], ids["26734"])
        assert await units_store.is_within(db, ids["760"], ids["760"])
        assert not await units_store.is_within(db, ids["01"], ids["26734"])
        assert not await units_store.is_within(db, ids["26734"], ids["79"])
        assert not await units_store.is_within(db, ids["25"], ids["01"])


# ---------------------------------------------------------------------------------------------
# Bad CSV files: refused whole, with the line, database untouched

HEADER = "code,name,level,parent_code\n"
NEW_PROVINCE = "02,Tỉnh Hà Giang,province,BCA\n"  # valid on its own: must not be half-written

# name → (CSV body after the header, line the message must name, fragment of the message)
BAD_CSV = {
    "unknown_parent": (NEW_PROVINCE + "02001,Xã Mới,commune,99\n", 3, "không tìm thấy đơn vị cấp trên '99'"),
    "duplicate_code": (NEW_PROVINCE + "03,Tỉnh Cao Bằng,province,BCA\n02,Tỉnh Hà Giang 2,province,BCA\n",
                       4, "mã '02' trùng với dòng 2"),
    "empty_name": (NEW_PROVINCE + "03,  ,province,BCA\n", 3, "tên đơn vị '03' trống"),
    # Ho Chi Minh City re-parented under its own stored district 760 (whose parent is 79).
    "cycle_with_stored": (NEW_PROVINCE + "79,Thành phố Hồ Chí Minh,commune,760\n", 3,
                          "vòng lặp cấp trên: 79 → 760 → 79"),
    # Both units re-parented into each other within the file: 760's new parent is now below it.
    "cycle_in_file": (NEW_PROVINCE + "760,Quận 1 (cũ),district,79\n79,Thành phố Hồ Chí Minh,commune,760\n", 3,
                      "cấp 'district' của '760' phải thấp hơn cấp 'commune' của đơn vị cấp trên '79'"),
    # Two new units pointing at each other: refused (a level can never be below itself).
    "cycle_new_units": (NEW_PROVINCE + "X1,Huyện X1,district,X2\nX2,Huyện X2,district,X1\n", 3,
                        "phải thấp hơn cấp"),
    # Hanoi made a commune: its stored communes would sit under a commune.
    "level_below_children": (NEW_PROVINCE + "01,Thành phố Hà Nội,commune,760\n", 3,
                             "phải cao hơn cấp 'commune' của đơn vị cấp dưới đã có"),
}


def _check_rejection(errors: list[tuple[int, str]], line: int, fragment: str) -> None:
    assert any(ln == line and fragment in msg for ln, msg in errors), errors


@pytest.mark.parametrize("case", sorted(BAD_CSV))
async def test_bad_csv_refused_in_store(session_factory: Any, case: str) -> None:
    body, line, fragment = BAD_CSV[case]
    await import_rows(session_factory, list(TREE))
    before = await snapshot(session_factory)
    rows = parse_csv((HEADER + body).encode())
    with pytest.raises(ImportRejected) as info:
        await import_rows(session_factory, rows)
    _check_rejection(info.value.errors, line, fragment)
    assert info.value.message.startswith(f"Dòng {min(ln for ln, _ in info.value.errors)}: ")
    assert await snapshot(session_factory) == before


def _upload(client: Client, data: bytes, filename: str = "donvi.csv") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf_token", client.csrf)
    form.add_field("file", data, filename=filename, content_type="text/csv")
    return form


async def _post_file(client: Client, data: bytes, filename: str = "donvi.csv") -> tuple[int, str]:
    resp = await client.http.post("/admin/units/import", params={"csrf": client.csrf},  # as the page's form
                                  data=_upload(client, data, filename), allow_redirects=False)
    return resp.status, html.unescape(await resp.text())


async def _post_api(client: Client, data: bytes) -> aiohttp.ClientResponse:
    return await client.http.post("/api/units/import", data=data, allow_redirects=False,
                                  headers={"X-CSRF-Token": client.csrf, "Content-Type": "text/csv"})


async def test_bad_csv_refused_over_http(live: LiveServer) -> None:
    admin = await live.login("quantri")
    before = await snapshot(live.app[DB])
    for case, (body, line, fragment) in sorted(BAD_CSV.items()):
        status, page = await _post_file(admin, (HEADER + body).encode())
        assert status == 400, (case, status)
        assert "Tệp bị từ chối, dữ liệu không thay đổi" in page, case
        assert f"Dòng {line}: " in page and fragment in page, (case, page[-2000:])
        assert await snapshot(live.app[DB]) == before, case

        resp = await _post_api(admin, (HEADER + body).encode())
        assert resp.status == 400, case
        error = (await resp.json())["error"]
        assert error["code"] == "import_rejected"
        _check_rejection([(e["line"], e["message"]) for e in error["errors"]], line, fragment)
        assert error["message"].startswith("Dòng ")
        assert await snapshot(live.app[DB]) == before, case

    # The same route does write a good file: the refusals above were not an accident of the request.
    status, page = await _post_file(admin, (HEADER + NEW_PROVINCE).encode())
    assert status == 200 and "Đã nhập: thêm 1, cập nhật 0, không đổi 0." in page
    after = await snapshot(live.app[DB])
    assert [u[1] for u in after[0]] == [u[1] for u in before[0]] + ["02"]
    assert_closure_consistent(after)


def _cp1258(s: str) -> bytes:
    """Vietnamese in Windows-1258 (tone marks as combining characters), as old Windows Excel saves it."""
    out = b""
    for ch in s:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", ch)
            out += (unicodedata.normalize("NFC", parts[:-1]) + parts[-1]).encode("cp1258")
    return out


async def test_bad_encoding_and_columns_refused_bom_accepted(live_sqlite: LiveServer) -> None:
    admin = await live_sqlite.login("quantri")
    before = await snapshot(live_sqlite.app[DB])

    status, page = await _post_file(admin, (HEADER.replace("parent_code", "parent_code,ghi_chu")
                                            + "02,Tỉnh Hà Giang,province,BCA,x\n").encode())
    assert status == 400
    assert "Dòng 1: cột không xác định: ghi_chu" in page

    status, page = await _post_file(admin, b"code,name,level\n02,Ha Giang,province\n")
    assert status == 400 and "Dòng 1: thiếu cột: parent_code" in page

    latin = (HEADER + NEW_PROVINCE).encode() + _cp1258("03,Tỉnh Cao Bằng,province,BCA\n")
    with pytest.raises(UnicodeDecodeError):
        latin.decode("utf-8")
    status, page = await _post_file(admin, latin)
    assert status == 400 and "Dòng 3: tệp không phải UTF-8" in page

    status, page = await _post_file(admin, b"")
    assert status == 400
    assert await snapshot(live_sqlite.app[DB]) == before

    # UTF-8 with a byte-order mark (Excel's "CSV UTF-8") is accepted, header and all.
    status, page = await _post_file(admin, b"\xef\xbb\xbf" + (HEADER + NEW_PROVINCE).encode())
    assert status == 200, page[-1500:]
    assert "Đã nhập: thêm 1, cập nhật 0, không đổi 0." in page
    async with live_sqlite.app[DB]() as db:
        assert (await units_store.get_by_code(db, "02")).name == "Tỉnh Hà Giang"


def test_parse_csv_rules() -> None:
    rows = parse_csv(b"\xef\xbb\xbf" + b" Code , NAME ,level,Parent_Code\r\n"
                     + "01,Hà Nội,tinh,BCA\r\n\r\n00070, Phường Hoàn Kiếm ,xa,01\r\n".encode())
    assert rows == [UnitRow("01", "Hà Nội", Level.PROVINCE, "BCA", 2),
                    UnitRow("00070", "Phường Hoàn Kiếm", Level.COMMUNE, "01", 4)]
    for data, line, fragment in [
        (HEADER + "01,Hà Nội,thanh_pho,BCA\n", 2, "cấp 'thanh_pho' không hợp lệ"),
        (HEADER + "01,Hà Nội,province\n", 2, "có 3 cột, cần 4"),
        ("code,code,name,level,parent_code\n", 1, "cột bị lặp"),
        (HEADER, 2, "không có dòng dữ liệu"),
        ("", 1, "tệp trống"),
    ]:
        with pytest.raises(ImportRejected) as info:
            parse_csv(data.encode())
        _check_rejection(info.value.errors, line, fragment)
    # A quoted name spanning two lines: the next row's line number is still the file's.
    with pytest.raises(ImportRejected) as info:
        parse_csv((HEADER + '01,"Hà\nNội",province,BCA\n02,Hà Giang,tinh_lo,BCA\n').encode())
    _check_rejection(info.value.errors, 4, "tinh_lo")


async def test_oversize_upload_refused_with_413(sqlite_url: str, server_factory: Any) -> None:
    limit = 2000
    live = await server_factory(sqlite_url, max_upload_bytes=limit)
    admin = await live.login("quantri")
    before = await snapshot(live.app[DB])

    valid_but_big = (HEADER + NEW_PROVINCE + "".join(
        f"02{i:03d},Xã số {i},commune,02\n" for i in range(1, 400))).encode()
    assert limit < len(valid_but_big) < limit + 64 * 1024  # past the setting, within aiohttp's margin
    huge = valid_but_big * 20
    assert len(huge) > limit + 64 * 1024  # past aiohttp's own body limit too
    for data in (valid_but_big, huge):
        status, page = await _post_file(admin, data)
        assert status == 413, (len(data), status)
        assert "quá lớn" in page
        assert await snapshot(live.app[DB]) == before

        resp = await _post_api(admin, data)
        assert resp.status == 413
        error = (await resp.json())["error"]
        assert error["code"] == "payload_too_large" and "quá lớn" in error["message"]
        assert await snapshot(live.app[DB]) == before

    # At the limit exactly, the same kind of file goes through both routes.
    small = (HEADER + NEW_PROVINCE).encode()
    status, page = await _post_file(admin, small)
    assert status == 200 and "Đã nhập: thêm 1" in page
    resp = await _post_api(admin, (HEADER + "03,Tỉnh Cao Bằng,province,BCA\n").encode().ljust(limit, b"\n"))
    assert resp.status == 200 and await resp.json() == {"added": 1, "updated": 0, "unchanged": 0}


async def test_import_needs_admin_and_scope(live_sqlite: LiveServer) -> None:
    before = await snapshot(live_sqlite.app[DB])
    operator = await live_sqlite.login("hanoi")
    status, _page = await _post_file(operator, (HEADER + NEW_PROVINCE).encode())
    assert status == 403
    resp = await _post_api(operator, (HEADER + NEW_PROVINCE).encode())
    assert resp.status == 403
    # A provincial admin may not add a province under the ministry.
    local_admin = await live_sqlite.login("qt_hanoi")
    resp = await _post_api(local_admin, (HEADER + NEW_PROVINCE).encode())
    assert resp.status == 403 and "Dòng 2" in (await resp.json())["error"]["message"]
    assert await snapshot(live_sqlite.app[DB]) == before
    # …but may add a commune under Hanoi.
    resp = await _post_api(local_admin, (HEADER + "00001,Phường Mới,commune,01\n").encode())
    assert resp.status == 200 and (await resp.json())["added"] == 1


# ---------------------------------------------------------------------------------------------
# The command line


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")}
    env["HOINGHI_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _cli_units(tmp_path: Path) -> list[tuple[Any, ...]]:
    async def read() -> list[tuple[Any, ...]]:
        engine = dbmod.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hoinghi.sqlite3'}")
        try:
            return (await snapshot(dbmod.sessionmaker(engine)))[0]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_cli_refuses_bad_csv_with_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "BCA,Bộ Công an,central,\n" + NEW_PROVINCE + "02001,Xã Mới,commune,99\n", "utf-8")
    proc = _cli(tmp_path, "units", "import", "--source", "csv", "--file", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert "cơ sở dữ liệu không thay đổi" in proc.stderr
    assert re.search(r"dòng 4: không tìm thấy đơn vị cấp trên '99'", proc.stderr), proc.stderr
    assert _cli_units(tmp_path) == []

    good = tmp_path / "good.csv"
    good.write_text(HEADER + "BCA,Bộ Công an,central,\n" + NEW_PROVINCE, "utf-8")
    proc = _cli(tmp_path, "units", "import", "--source", "csv", "--file", str(good))
    assert proc.returncode == 0, proc.stderr
    assert "Đã nhập 2 đơn vị: thêm 2, cập nhật 0, không đổi 0." in proc.stdout
    assert [u[1] for u in _cli_units(tmp_path)] == ["BCA", "02"]

    proc = _cli(tmp_path, "units", "import", "--source", "csv", "--file", str(tmp_path / "missing.csv"))
    assert proc.returncode == 2 and "không tìm thấy tệp" in proc.stderr
