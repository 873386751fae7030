"""The KPI indicator catalog page (/admin/indicators) in both languages: the ministry admin who
picked English (GET /lang/en) reads English labels and messages, the one who kept Vietnamese reads
exactly the Vietnamese text as before. Indicator names and units are data and stay as entered."""

from __future__ import annotations

from collections.abc import Awaitable

import aiohttp

from tests.conftest import Client, LiveServer

PATH = "/admin/indicators"

VI = ["<title>Danh mục chỉ tiêu", "<h1>Danh mục chỉ tiêu</h1>", "<th>Tên chỉ tiêu</th>", "<th>Đơn vị tính</th>",
      "<th>Ngưỡng đạt / gần đạt</th>", "Thêm một chỉ tiêu", "Tỷ lệ (tử số ÷ mẫu số)", "Càng thấp càng tốt",
      "Ngưỡng gần đạt (vàng)",
      "Ngưỡng riêng theo cấp (không bắt buộc; vd. <code>commune=90/80; province=95/90</code>; cấp: ",
      'placeholder="hồ sơ, %, nhiệm vụ…"', ">từ đầu đợt tới nay</option>", "<td>có sẵn</td>", "Thêm từ tệp CSV",
      "Tệp CSV (≤ ", ">Tải lên</button>", "Các chỉ tiêu Đề án 06 có sẵn trong hệ thống"]
EN = ["<title>Indicator catalog", "<h1>Indicator catalog</h1>", "<th>Indicator name</th>", "<th>Unit of measure</th>",
      "<th>Met / nearly met threshold</th>", "Add an indicator", "Rate (numerator ÷ denominator)", "Lower is better",
      "Nearly met threshold (amber)",
      "Thresholds by level (optional; e.g. <code>commune=90/80; province=95/90</code>; levels: ",
      'placeholder="records, %, tasks…"', ">campaign to date</option>", "<td>built-in</td>", "Add from a CSV file",
      "CSV file (≤ ", ">Upload</button>", "The Project 06 indicators built into the system"]

SPEC = {"code": "TY_LE_SONG_NGU", "name": "Tỷ lệ hồ sơ song ngữ", "kind": "ratio", "unit": "hồ sơ",
        "direction": "higher", "target": "100", "green_at": "95", "amber_at": "80", "period": "month",
        "level_thresholds": "commune=90/80"}


def visible_part(html: str) -> str:
    """The page without the embedded js.* catalog (it carries every page script's message)."""
    start = html.find('<script type="application/json" id="i18n-js">')
    end = html.find("</script>", start)
    return html[:start] + html[end:] if start >= 0 else html


async def text_of(resp_coro: Awaitable[aiohttp.ClientResponse], status: int = 200) -> str:
    resp = await resp_coro
    assert resp.status == status, resp.status
    return visible_part(await resp.text())


async def english(live: LiveServer) -> Client:
    client = await live.login("quantri")
    resp = await client.get(f"/lang/en?next={PATH}")
    assert resp.status == 303
    return client


async def test_indicator_catalog_in_vietnamese_and_english(live_sqlite: LiveServer) -> None:
    vi = await text_of((await live_sqlite.login("quantri")).get(PATH))
    assert '<html lang="vi">' in vi
    for label in VI:
        assert label in vi, ("vi", label)
    for label in EN:
        assert label not in vi, ("vi has English", label)

    en = await text_of((await english(live_sqlite)).get(PATH))
    assert '<html lang="en">' in en
    for label in EN:
        assert label in en, ("en", label)
    for label in VI:
        assert label not in en, ("en has Vietnamese", label)
    for word in ("tỷ lệ", "đếm", "càng cao", "tháng", "quý", "đã thêm", "Ngưỡng", "Chỉ tiêu"):
        assert word not in en, ("en has Vietnamese", word)


async def test_indicator_messages_follow_the_language(live_sqlite: LiveServer) -> None:
    vi_client = await live_sqlite.login("quantri")
    vi = await text_of(vi_client.post_form(PATH, SPEC))
    assert "Đã thêm chỉ tiêu TY_LE_SONG_NGU vào danh mục." in vi
    vi = await text_of(vi_client.post_form(f"{PATH}/upload"), 400)
    assert "Chưa chọn tệp CSV" in vi

    en_client = await english(live_sqlite)
    en = await text_of(en_client.get(PATH))
    # the added indicator: its name and unit are data, its labels are English
    row = en[en.index('data-code="TY_LE_SONG_NGU"'):]
    row = row[:row.index("</tr>")]
    assert "Tỷ lệ hồ sơ song ngữ" in row and "hồ sơ" in row
    assert "<td>rate</td>" in row and "<td>higher is better</td>" in row and "<td>month</td>" in row
    assert "<td>added</td>" in row and "commune: 90 / 80" in row

    en = await text_of(en_client.post_form(PATH, {**SPEC, "code": "SO_VU_VIEC", "kind": "count"}))
    assert "Indicator SO_VU_VIEC added to the catalog." in en and "Đã thêm" not in en
    en = await text_of(en_client.post_form(f"{PATH}/upload"), 400)
    assert "No CSV file chosen" in en and "Chưa chọn" not in en
