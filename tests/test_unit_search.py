"""#14 unit pickers: GET /api/units/{code}/search finds units by name (with or without diacritics)
or code, shows each one's province, stays inside the asker's subtree, treats odd characters as
text, and refuses bad parameters with a clear message. The schedule form offers only the levels
the imported tree has."""

from __future__ import annotations

from typing import Any

from server.http.meetings import levels_offered
from server.state import DB
from sessions.store import units as units_store
from sessions.unit_search import fold, search
from sessions.unit_tree import UnitView
from sessions.units import Level
from tests.conftest import LiveServer


async def found(client: Any, path: str, status: int = 200) -> dict[str, Any]:
    resp = await client.get(path)
    assert resp.status == status, (path, resp.status, await resp.text())
    return dict(await resp.json())


def test_fold_ignores_case_diacritics_and_spacing() -> None:
    assert fold("  Phường   VĨNH Yên ") == "phuong vinh yen"
    assert fold("Đắk Lắk") == "dak lak"
    assert fold("a\x00b") == "ab"


def test_search_ranks_code_then_word_starts_then_the_rest() -> None:
    rows = [UnitView(1, "25", "Phú Thọ", Level.PROVINCE, None),
            UnitView(2, "08707", "Phường Vĩnh Yên", Level.COMMUNE, 1),
            UnitView(3, "08740", "Phường Phúc Yên", Level.COMMUNE, 1),
            UnitView(4, "99", "Xã Yên Phú", Level.COMMUNE, 1)]
    names = [f.unit.name for f in search(rows, "yen", province_of=lambda u: None)]
    assert names == ["Phường Phúc Yên", "Phường Vĩnh Yên", "Xã Yên Phú"]
    assert [f.unit.code for f in search(rows, "08707", province_of=lambda u: None)] == ["08707"]
    assert search(rows, "", province_of=lambda u: None) == []
    assert [f.unit.code for f in search(rows, "phu", province_of=lambda u: None, levels=frozenset({Level.PROVINCE}))] \
        == ["25"]


async def test_search_by_name_with_the_province(live: LiveServer) -> None:
    chair = await live.login("chutri")
    body = await found(chair.http, "/api/units/BCA/search?q=vinh%20yen")
    assert body["count"] == 1
    unit = body["units"][0]
    assert (unit["code"], unit["name"], unit["level"]) == ("08707", "Phường Vĩnh Yên", "commune")
    assert unit["province"] == {"code": "25", "name": "Phú Thọ"}
    # A commune under a legacy district still names its province.
    saigon = (await found(chair.http, "/api/units/BCA/search?q=Sài%20Gòn"))["units"]
    assert [(u["code"], u["province"]["code"]) for u in saigon] == [("26734", "79")]
    # Levels filter; a province is its own province.
    provs = (await found(chair.http, "/api/units/BCA/search?q=th&level=province&limit=50"))["units"]
    assert {u["code"] for u in provs} == {"01", "25", "79"}
    assert all(u["province"]["code"] == u["code"] for u in provs)


async def test_search_stays_in_the_asker_subtree(live: LiveServer) -> None:
    hanoi = await live.login("hanoi")
    mine = await found(hanoi.http, "/api/units/01/search?q=Phường&limit=50")
    assert {u["code"] for u in mine["units"]} == {"00070", "00004"}  # not Vĩnh Yên or Phúc Yên
    refused = await found(hanoi.http, "/api/units/25/search?q=Phường", status=403)
    assert refused["error"]["code"] == "out_of_scope"
    assert (await found(hanoi.http, "/api/units/01/search?q=vinh%20yen"))["count"] == 0


async def test_odd_queries_are_text_and_bad_parameters_are_refused(live: LiveServer) -> None:
    chair = await live.login("chutri")
    for odd in ("%", "_", "'", "\"; DROP TABLE units; --", "<script>alert(1)</script>", "\\", "%00", "🙂", "   "):
        body = await chair.http.get("/api/units/BCA/search", params={"q": odd})
        assert body.status == 200, (odd, body.status)
        assert (await body.json())["count"] == 0, odd
    too_long = await found(chair.http, "/api/units/BCA/search?q=" + "a" * 101, status=400)
    assert too_long["error"]["code"] == "query_too_long" and "100" in too_long["error"]["message"]
    bad_level = await found(chair.http, "/api/units/BCA/search?q=a&level=huyen_cu", status=400)
    assert bad_level["error"]["code"] == "level_invalid"
    for limit in ("0", "51", "x", "-1"):
        bad = await found(chair.http, f"/api/units/BCA/search?q=a&limit={limit}", status=400)
        assert bad["error"]["code"] == "bad_request", limit
    missing = await found(chair.http, "/api/units/KHONGCO/search?q=a", status=404)
    assert missing["error"]["message"]


async def test_schedule_form_offers_only_the_levels_of_the_tree(live: LiveServer) -> None:
    async with live.app[DB]() as db:
        hanoi = await units_store.get_by_code(db, "01")
        ministry = await units_store.get_by_code(db, "BCA")
        # Hà Nội's subtree has no district level (as the 2025 tree has none anywhere).
        assert await levels_offered(db, hanoi.id) == (Level.PROVINCE, Level.COMMUNE)
        assert await levels_offered(db, ministry.id) == (Level.PROVINCE, Level.DISTRICT, Level.COMMUNE)
    chair = await live.login("chutri")
    page = await (await chair.get("/meetings")).text()
    assert 'name="levels_0" value="district"' in page  # this test tree has a legacy district
    assert 'value="Bộ Công an"' in page and 'name="unit_0" value="BCA"' in page
