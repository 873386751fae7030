"""The seed meeting's minutes as a reader gets them (#15): the demo's concluded conference of
17/8/2022 (demo.directives, the seed report's meeting) on the current unit tree — 34 provinces and
3,321 communes —, exported as PDF (text read back with pypdf) and DOCX (python-docx).

The presiding official is named in the notice's heading, in "Kết luận của …" and in the
signature block, never as an account's label ("Chủ trì hội nghị Chủ trì hội nghị"); each
instruction prints its own urgency; the attendance appendix runs province by province in the
tree's official order and names only the sites absent or never connected; the notice fits in
fewer than 25 pages. A correction naming a signer ("KT. BỘ TRƯỞNG / THỨ TRƯỞNG") is a new version
whose signature block says so."""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from docx import Document
from pypdf import PdfReader
from sqlalchemy import select

from server import db as dbmod
from server.exports import minutes_html, notice
from server.exports.minutes_docx import render_docx
from server.exports.minutes_pdf import render_pdf
from sessions.minutes import Minutes
from sessions.models import Directive
from sessions.store import minutes as minutes_store
from sessions.store import units
from sessions.unit_sources import DEFAULT_ROOT_CODE, from_current_tree, root_row
from sessions.units import Level

DOUBLED = "Chủ trì hội nghị Chủ trì hội nghị"
APPENDIX_I = "Phụ lục I: Tổng hợp điểm cầu theo tỉnh, thành phố"


@dataclass
class Seed:
    v1: Minutes
    v2: Minutes
    provinces: list[str]  # the provinces' names in the tree's official order
    directive_ids: list[int]


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    pytest.importorskip("vietnam_provinces", reason="the current unit tree comes from vietnam-provinces")
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('seed')) / 'seed.sqlite3'}"
    return asyncio.run(_build(url))


async def _build(url: str) -> Seed:
    """The demo's seed meeting, concluded (version 1), and a correction naming the signer (version 2)."""
    from demo import directives as demo_seed
    from server.unit_data import current_tree_json

    await dbmod.upgrade(url)
    engine = dbmod.make_engine(url)
    factory = dbmod.sessionmaker(engine)
    try:
        async with dbmod.transaction(factory) as db:
            await units.import_units(db, from_current_tree(current_tree_json(), root_row()))
        async with dbmod.transaction(factory) as db:
            mid = await demo_seed.load(db, DEFAULT_ROOT_CODE)
        async with dbmod.transaction(factory) as db:
            v1 = await minutes_store.get(db, mid, 1)
            v2 = await minutes_store.correct(db, mid, {"signer": {
                "authority": "KT. BỘ TRƯỞNG", "title": "THỨ TRƯỞNG", "name": "Nguyễn Duy Ngọc"}},
                "Ghi người ký", v1.published_at + timedelta(days=1), "chutri")  # type: ignore[operator]
            root = await units.get_by_code(db, DEFAULT_ROOT_CODE)
            provinces = [u.name for u in await units.subtree(db, root.id, Level.PROVINCE)]
            ids = list((await db.execute(select(Directive.id).where(Directive.parent_assignment_id.is_(None))
                                         .order_by(Directive.id))).scalars())
        return Seed(v1, v2, provinces, ids)
    finally:
        await engine.dispose()


def flat(text: str) -> str:
    return " ".join(text.split())


def pdf_pages(doc: Minutes) -> list[str]:
    """Each page's text; from page 2 on without its page number."""
    pages = [p.extract_text() or "" for p in PdfReader(io.BytesIO(render_pdf(doc))).pages]
    return [flat(p) if i == 0 else re.sub(r"^\d+ ", "", flat(p)) for i, p in enumerate(pages)]


def docx_parts(doc: Minutes) -> tuple[list[str], list[list[list[str]]]]:
    word = Document(io.BytesIO(render_docx(doc)))
    return [p.text for p in word.paragraphs], [[[c.text for c in row.cells] for row in t.rows] for t in word.tables]


def test_the_seed_notice_fits_and_runs_province_by_province(seed: Seed) -> None:
    doc = seed.v1
    assert len(doc.attendance) > 3_300  # the whole country took part
    pages = pdf_pages(doc)
    assert len(pages) < 25, len(pages)
    text = " ".join(pages)
    appendix = text[text.index(APPENDIX_I):]
    # Province by province in the tree's official order (Hà Nội first, never among another's communes).
    assert len(seed.provinces) == 34 and seed.provinces[0] == "Thành phố Hà Nội"
    at = [appendix.find(f" {name} ") for name in seed.provinces]
    assert -1 not in at and at == sorted(at), [n for n, p in zip(seed.provinces, at, strict=True) if p == -1]
    # Only the sites absent (with their reasons) are named; the sites present are a download.
    absent = [s for s in doc.attendance if s.status.value == "absent"]
    assert len(absent) == 5 and all(s.unit_name in appendix and s.reason in appendix for s in absent)
    present = [s for s in doc.attendance if s.status.value == "present_online" and s.level is Level.COMMUNE]
    assert sum(f" {s.unit_name} " in appendix for s in present) < 40  # names shared with an absent site's, at most
    # The same in DOCX: the summary table's rows are the centre and the provinces, in that order.
    _paras, tables = docx_parts(doc)
    summary = next(t for t in tables if t[0][:2] == ["STT", "Tỉnh, thành phố"])
    assert [row[1] for row in summary[1:-1] if row[1] != notice.CENTRAL_GROUP] == seed.provinces
    assert summary[-1][1:3] == ["Tổng cộng", notice.number_vi(len(doc.attendance))]
    listed = next(t for t in tables if t[0][:2] == ["STT", "Điểm cầu"])
    assert sorted(row[1] for row in listed[1:]) == sorted(s.unit_name for s in absent)


def test_the_presiding_official_heads_concludes_and_signs(seed: Seed) -> None:
    doc = seed.v1
    assert (doc.chair.title, doc.chair.name) == ("Bộ trưởng", "Tô Lâm")
    pages = pdf_pages(doc)
    text = " ".join(pages)
    first = pages[0]
    # The heading: "THÔNG BÁO / Kết luận của Bộ trưởng Tô Lâm tại Hội nghị …", then the opening.
    assert "THÔNG BÁO Kết luận của Bộ trưởng Tô Lâm tại Hội nghị trực tuyến toàn quốc" in first
    assert "Bộ trưởng Tô Lâm chủ trì hội nghị" in first
    assert "Bộ trưởng Tô Lâm kết luận như sau" in text
    # The signature block (after "Nơi nhận"): the title in capitals, then the name.
    closing = text[text.index("Nơi nhận:"):text.index(APPENDIX_I)]
    assert re.search(r"BỘ TRƯỞNG .*Tô Lâm", closing), closing
    assert DOUBLED not in text and "Chủ trì hội nghị (Bộ)" not in text
    paras, tables = docx_parts(doc)
    words = "\n".join(paras + [c for t in tables for row in t for c in row])
    assert "Kết luận của Bộ trưởng Tô Lâm tại Hội nghị trực tuyến toàn quốc" in words
    signature = next(t[0][1] for t in tables if t[0][0].startswith("Nơi nhận:"))
    assert signature.split("\n") == ["BỘ TRƯỞNG", "Tô Lâm"], signature
    assert DOUBLED not in words
    # A correction names the signer: a new version, signed "KT. BỘ TRƯỞNG / THỨ TRƯỞNG / name".
    v2 = " ".join(pdf_pages(seed.v2))
    closing = v2[v2.index("Nơi nhận:"):v2.index(APPENDIX_I)]
    assert re.search(r"KT\. BỘ TRƯỞNG .*THỨ TRƯỞNG .*Nguyễn Duy Ngọc", closing), closing
    assert "Kết luận của Bộ trưởng Tô Lâm" in v2 and DOUBLED not in v2
    paras, tables = docx_parts(seed.v2)
    assert any(c.split("\n") == ["KT. BỘ TRƯỞNG", "THỨ TRƯỞNG", "Nguyễn Duy Ngọc"] for t in tables for row in t
               for c in row)


def test_each_instruction_prints_its_urgency_and_links_to_its_directive(seed: Seed) -> None:
    doc = seed.v1
    text = " ".join(pdf_pages(doc))
    assert [d.priority.value for d in doc.directives] == ["urgent"] * 3  # the demo gives them as "Khẩn"
    assert text.count("Độ khẩn: Khẩn.") == 3 and "Quan trọng" not in text
    paras, _tables = docx_parts(doc)
    assert sum("Độ khẩn: Khẩn." in p for p in paras) == 3
    page = minutes_html.render_html(doc)
    assert [int(x) for x in re.findall(r'<a href="/directives/(\d+)" class="directive-link">', page)] \
        == seed.directive_ids[:3]
    assert DOUBLED not in page
    assert len(page) < 60_000, len(page)  # a short page: no list of the 3,300 sites present
