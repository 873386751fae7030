"""Minutes as a document: canonical JSON, versioned corrections, validation, and the PDF/DOCX
notices of conclusions checked through the text extracted from the files."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from docx import Document as DocxReader
from docx.document import Document as DocxDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from bench.minutes_pdf import synthetic_minutes
from server.exports import fonts, minutes_docx, minutes_html, minutes_pdf, notice
from sessions import minutes as m
from sessions.errors import ValidationFailed
from sessions.meetings import Attendance
from sessions.units import Level
from tests.conftest import need_service
from tests.seed_minutes import DEADLINE, seed_inputs, seed_path

T0 = datetime(2022, 8, 17, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seed_text() -> str:
    return seed_path().read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed_doc(seed_text: str) -> m.Minutes:
    return m.build_minutes(**seed_inputs(seed_text))


def small_inputs(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Hội nghị giao ban trực tuyến quý III",
        "started_at": T0,
        "ended_at": T0 + timedelta(hours=2),
        "chair": m.Chair(name="Nguyễn Văn Bình", title="Thứ trưởng", unit="Bộ Công an"),
        "agency": "Bộ Công an",
        "symbol": "TB-BCA",
        "attendance": [m.SiteAttendance("01", "Hà Nội", Level.PROVINCE, Attendance.PRESENT_ONLINE),
                       m.SiteAttendance("26", "Vĩnh Phúc", Level.PROVINCE, Attendance.ABSENT, reason="Mất kết nối")],
        "conclusions": [{"text": "Đẩy nhanh tiến độ.", "directives": [
            {"text": "Rà soát hồ sơ tồn đọng", "assignees": ["Hà Nội", "Vĩnh Phúc"], "lead": "Hà Nội",
             "deadline": "2022-12-31"}]}],
        "published_at": T0 + timedelta(days=1),
    }
    base.update(over)
    return base


# --- the document -----------------------------------------------------------------------------


def test_json_round_trip_is_canonical(seed_doc: m.Minutes) -> None:
    text = m.to_json(seed_doc)
    back = m.from_json(text)
    assert back == seed_doc
    assert m.to_json(back) == text
    assert m.content_hash(back) == m.content_hash(seed_doc)
    # Vietnamese kept as text (not \\u escapes), times in UTC, dates ISO.
    assert "Đề án 06" in text and "\\u" not in text
    assert '"started_at":"2022-08-17T07:00:00+00:00"' in text
    assert '"deadline":"2022-12-31"' in text


def test_same_content_same_hash_whatever_the_input_form() -> None:
    from_objects = m.build_minutes(**small_inputs())
    # Same content given as plain strings, another time zone, and decomposed Unicode (NFD).
    plain = small_inputs(started_at="2022-08-17T14:00:00+07:00", ended_at=(T0 + timedelta(hours=2)).isoformat(),
                         title=unicodedata.normalize("NFD", "  Hội nghị giao ban trực tuyến quý III "),
                         chair={"name": "Nguyễn Văn Bình", "title": "Thứ trưởng", "unit": "Bộ Công an"},
                         attendance=[{"unit_code": "01", "unit_name": "Hà Nội", "level": "province",
                                      "status": "present_online"},
                                     {"unit_code": "26", "unit_name": "Vĩnh Phúc", "level": "province",
                                      "status": "absent", "reason": "Mất kết nối"}])
    assert m.content_hash(m.build_minutes(**plain)) == m.content_hash(from_objects)


def test_seed_document_carries_the_report(seed_doc: m.Minutes) -> None:
    assert seed_doc.chair.name == "Tô Lâm" and seed_doc.chair.title == "Bộ trưởng"
    assert seed_doc.title.startswith("Hội nghị trực tuyến toàn quốc sơ kết 6 tháng triển khai Đề án 06")
    on_time = next(k for k in seed_doc.kpis if k.code == "DVC_TY_LE_DUNG_HAN")
    assert (on_time.num, on_time.den) == (74_336, 74_587)
    assert f"{on_time.value:.2%}" == "99.66%"
    assert len(seed_doc.directives) == 4
    assert all(d.deadline == DEADLINE for d in seed_doc.directives)
    assert seed_doc.issued_on == date(2022, 8, 19)
    levels = {s.level: s for s in m.attendance_by_level(seed_doc)}
    assert (levels[Level.COMMUNE].online, levels[Level.COMMUNE].absent) == (1, 1)
    assert m.total_attendance(seed_doc).total == len(seed_doc.attendance)


def test_correction_makes_a_new_version_and_keeps_the_old(seed_doc: m.Minutes) -> None:
    before_json = m.to_json(seed_doc)
    before_hash = m.content_hash(seed_doc)
    first = seed_doc.conclusions[1]
    fixed_directive = dataclasses.replace(first.directives[0], deadline=date(2022, 11, 30))
    changes = {"conclusions": [seed_doc.conclusions[0],
                               dataclasses.replace(first, directives=(fixed_directive, *first.directives[1:]))]}
    at = datetime(2022, 8, 20, 3, 0, tzinfo=UTC)
    v2 = m.correct(seed_doc, changes, "  Sửa thời hạn tập huấn theo ý kiến Văn phòng Bộ ", at=at)
    assert (v2.version, v2.correction_reason, v2.published_at) == (2, "Sửa thời hạn tập huấn theo ý kiến Văn phòng Bộ",
                                                                  at)
    assert v2.supersedes == before_hash
    assert v2.conclusions[1].directives[0].deadline == date(2022, 11, 30)
    assert m.content_hash(v2) != before_hash
    # The old version is untouched, byte for byte, and still frozen.
    assert m.to_json(seed_doc) == before_json and seed_doc.version == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed_doc.title = "khác"  # type: ignore[misc]
    # A second correction chains on the first.
    v3 = m.correct(v2, {"number": "125"}, "Cấp số văn bản", at=at + timedelta(hours=1))
    assert (v3.version, v3.supersedes, v3.number) == (3, m.content_hash(v2), "125")
    assert m.from_json(m.to_json(v3)) == v3


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_correction_needs_a_reason(seed_doc: m.Minutes, reason: Any) -> None:
    with pytest.raises(ValidationFailed) as err:
        m.correct(seed_doc, {"number": "1"}, reason, at=datetime(2022, 9, 1, tzinfo=UTC))
    assert err.value.code == "reason_required"
    assert "lý do" in err.value.message


def test_correction_refusals(seed_doc: m.Minutes) -> None:
    at = datetime(2022, 9, 1, tzinfo=UTC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "no_changes"),
        ({"title": seed_doc.title}, "no_changes"),
        ({"version": 7}, "field_not_correctable"),
        ({"published_at": at}, "field_not_correctable"),
        ({"conclusions": [{"text": "x", "directives": [{"text": "y", "assignees": [], "deadline": "2022-12-31"}]}]},
         "assignee_required"),
    ]
    for changes, code in cases:
        with pytest.raises(ValidationFailed) as err:
            m.correct(seed_doc, changes, "lý do", at=at)
        assert err.value.code == code, changes
    with pytest.raises(ValidationFailed) as err:
        m.correct(seed_doc, {"number": "2"}, "lý do", at=datetime(2022, 8, 18, tzinfo=UTC))
    assert err.value.code == "correction_before_publish"
    draft = m.build_minutes(**small_inputs(published_at=None))
    with pytest.raises(ValidationFailed) as err:
        m.correct(draft, {"number": "2"}, "lý do", at=at)
    assert err.value.code == "not_published"


@pytest.mark.parametrize(("over", "code", "words"), [
    ({"title": "  "}, "title_required", "tên hội nghị"),
    ({"ended_at": T0 - timedelta(minutes=1)}, "time_order", "kết thúc"),
    ({"started_at": datetime(2022, 8, 17, 14, 0)}, "time_naive", "múi giờ"),
    ({"attendance": [{"unit_code": "26", "unit_name": "Vĩnh Phúc", "level": "province", "status": "absent"}]},
     "reason_required", "lý do"),
    ({"attendance": [{"unit_code": "26", "unit_name": "Vĩnh Phúc", "level": "tinh", "status": "absent"}]},
     "field_invalid", "Cấp đơn vị"),
    ({"conclusions": [{"text": "a", "directives": [{"text": "b", "assignees": ["X"], "lead": "Y",
                                                   "deadline": "2022-12-31"}]}]}, "lead_invalid", "chủ trì"),
    ({"conclusions": [{"text": "a", "directives": [{"text": "b", "assignees": ["X"], "deadline": "2022-08-01"}]}]},
     "deadline_before_meeting", "trước ngày họp"),
    ({"conclusions": [{"text": "a", "directives": [{"text": " ", "assignees": ["X"], "deadline": "2022-12-31"}]}]},
     "directive_text_required", "Kết luận 1, chỉ đạo 1"),
    ({"kpis": [{"code": "K", "name": "Tỷ lệ", "unit": "%", "num": 5, "den": 3, "phase": "live"}]},
     "numerator_above_denominator", "tử số"),
    ({"kpis": [{"code": "K", "name": "Tỷ lệ", "unit": "%", "num": 1, "den": 3, "phase": "sau"}]},
     "field_invalid", "Thời điểm"),
    ({"version": 2}, "reason_required", "lý do"),
    ({"colour": "red"}, "field_unknown", "colour"),
])
def test_bad_input_is_refused_in_vietnamese(over: dict[str, Any], code: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        m.build_minutes(**small_inputs(**over))
    assert err.value.code == code
    assert words in err.value.message


def test_control_characters_are_dropped() -> None:
    doc = m.build_minutes(**small_inputs(title="Hội nghị\x00 giao ban\x0b <quý> & III"))
    assert doc.title == "Hội nghị giao ban <quý> & III"


def test_from_json_refuses_garbage_and_other_schemas(seed_doc: m.Minutes) -> None:
    for text in ("{", "[]", m.to_json(seed_doc).replace('"schema":2', '"schema":99')):
        with pytest.raises(ValidationFailed):
            m.from_json(text)


def test_floor_durations_and_directive_order(seed_doc: m.Minutes) -> None:
    assert seed_doc.floor[0].duration == timedelta(minutes=12)
    texts = [d.text for d in seed_doc.directives]
    assert texts[0].startswith("Tiếp tục tham mưu lãnh đạo Bộ")
    assert re.search(r"“Luồng nộp trực tuyến” và “Luồng nộp trực tiếp”", texts[1])


# --- the notice of conclusions: PDF and DOCX --------------------------------------------------


def _flat(text: str) -> str:
    """Extracted text as one line: wrapping and justification only ever change whitespace."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def pdf_text(data: bytes) -> tuple[list[str], PdfReader]:
    reader = PdfReader(io.BytesIO(data))
    return [_flat(page.extract_text() or "") for page in reader.pages], reader


def docx_text(document: DocxDocument) -> str:
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    return _flat("\n".join(parts))


APPENDIX_I = "Phụ lục I: Tổng hợp điểm cầu theo tỉnh, thành phố"
MISSING = (Attendance.ABSENT, Attendance.NOT_CALLED)


def expected_strings(doc: m.Minutes) -> list[str]:
    total = m.total_attendance(doc)
    out = [notice.TITLE, notice.NATION, notice.MOTTO, "Nơi nhận:", f"Số: /{doc.symbol}", _flat(doc.title),
           f"Kết luận của {doc.chair.title} {doc.chair.name} tại", APPENDIX_I,
           f"Thành phần: {total.total} điểm cầu, trong đó có mặt trực tuyến {total.online}, "
           f"có mặt trực tiếp {total.in_person}, vắng {total.absent}",
           f"{doc.place}, ngày {doc.issued_on.day:02d} tháng {doc.issued_on.month} năm {doc.issued_on.year}"]
    for d in doc.directives:
        out += [_flat(d.text), f"trước ngày {d.deadline:%d/%m/%Y}", *d.assignees]
    # The appendix counts sites per province and names only those absent or never connected.
    out += [notice.province_of(s) for s in doc.attendance if s.level is not Level.CENTRAL]
    out += [s.unit_name for s in doc.attendance if s.status in MISSING] + [s.reason for s in doc.attendance if s.reason]
    out += [k.name for k in doc.kpis]
    return out


def _dejavu() -> fonts.SerifFont | None:
    folders = sorted({str(p.parent) for root in fonts.SYSTEM_FONT_DIRS if Path(root).is_dir()
                      for p in Path(root).rglob("DejaVuSerif.ttf")})
    try:
        return fonts.find_serif_font(folders, system=False) if folders else None
    except fonts.FontMissing:
        return None


@pytest.mark.parametrize("family", ["default", "DejaVuSerif"])
def test_pdf_notice_carries_the_seed_minutes(seed_doc: m.Minutes, seed_text: str, family: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    font = fonts.find_serif_font() if family == "default" else _dejavu()
    if font is None:
        need_service("DejaVu Serif is not installed (fonts-dejavu-core; .ci/run installs it)")
    assert family in ("default", font.family)
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        data = minutes_pdf.render_pdf(seed_doc, font=font)
    assert not [r for r in caplog.records if "missing" in r.getMessage()], "glyphs missing from the font"
    assert minutes_pdf.render_pdf(seed_doc, font=font) == data  # one version, one file: dated by the minutes
    pages, reader = pdf_text(data)
    text = " ".join(pages)
    missing = [s for s in expected_strings(seed_doc) if s not in text]
    assert not missing, missing
    # The seed's own figures, formatted the Vietnamese way, exactly as the report prints them.
    assert "99,66%" in seed_text and "74.336/74.587 (99,66 %)" in text
    assert "201.884 hồ sơ" in text and "trước ngày 31/12/2022" in text
    assert "Kết luận của Bộ trưởng Tô Lâm tại Hội nghị trực tuyến toàn quốc sơ kết 6 tháng" in text
    # A4 portrait, a serif font with Vietnamese glyphs embedded, page numbers from page 2.
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    embedded = {str(f["/BaseFont"]) for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert all(font.family in f for f in embedded), embedded
    assert pages[1].startswith("2 ")
    assert not pages[0].startswith("1 ")
    # The body comes before the appendix, the signature block on the last body page.
    appendix_at = next(i for i, p in enumerate(pages) if APPENDIX_I in p)
    assert "Nơi nhận:" in pages[appendix_at - 1] and "CHÁNH VĂN PHÒNG" in pages[appendix_at - 1]


def test_docx_notice_carries_the_seed_minutes(seed_doc: m.Minutes) -> None:
    document = DocxReader(io.BytesIO(minutes_docx.render_docx(seed_doc)))
    text = docx_text(document)
    missing = [s for s in expected_strings(seed_doc) if s not in text]
    assert not missing, missing
    assert "74.336/74.587 (99,66 %)" in text
    normal = document.styles["Normal"]
    assert normal.font.name == "Times New Roman" and normal.font.size.pt == 14  # type: ignore[attr-defined]
    section = document.sections[0]
    assert round(section.page_width.mm) == 210 and round(section.page_height.mm) == 297  # type: ignore[union-attr]
    margins = [section.top_margin, section.bottom_margin, section.left_margin, section.right_margin]
    assert [round(x.mm) for x in margins] == [20, 20, 30, 15]  # type: ignore[union-attr]
    title = next(p for p in document.paragraphs if p.text == notice.TITLE)
    assert title.runs[0].bold and title.alignment == WD_ALIGN_PARAGRAPH.CENTER
    motto = [r for t in document.tables for row in t.rows for c in row.cells for p in c.paragraphs
             for r in p.runs if r.text == notice.MOTTO]
    assert motto and motto[0].underline


def test_a_corrected_version_says_so(seed_doc: m.Minutes) -> None:
    v2 = m.correct(seed_doc, {"number": "125"}, "Cấp số văn bản", at=datetime(2022, 8, 20, tzinfo=UTC))
    pages, _ = pdf_text(minutes_pdf.render_pdf(v2))
    assert "Số: 125/TB-BCA" in pages[0]
    assert "phiên bản 2: Cấp số văn bản" in pages[0]


def test_a_national_meeting_is_summarised_by_level_and_by_province() -> None:
    doc = synthetic_minutes(3355, 20)
    pages, _ = pdf_text(minutes_pdf.render_pdf(doc))
    appendix_at = next(i for i, p in enumerate(pages) if APPENDIX_I in p)
    body = " ".join(re.sub(r"^\d+ ", "", p) for p in pages[:appendix_at])  # without the page numbers
    levels = {s.level: s for s in m.attendance_by_level(doc)}
    communes, total = levels[Level.COMMUNE], m.total_attendance(doc)
    assert total.total == 3355
    assert appendix_at <= 6, f"body runs to {appendix_at} pages"
    # The level table: commune row and totals, thousands grouped with dots.
    v = notice.number_vi
    assert f"Xã/Phường {v(communes.total)} {v(communes.online)} {v(communes.in_person)} {v(communes.absent)}" in body
    assert f"Tổng cộng {notice.number_vi(total.total)} {notice.number_vi(total.online)}" in body
    assert f"và {total.absent - notice.ABSENT_IN_BODY} điểm cầu khác (xem Phụ lục I)" in body
    appendix = " ".join(pages[appendix_at:])
    # One row a province, then the sites absent or never connected — the sites present are not listed.
    missing = [s for s in doc.attendance if s.status in MISSING]
    assert all(s.unit_name in appendix for s in missing)
    present = [s for s in doc.attendance if s.status not in MISSING and s.level is Level.COMMUNE]
    assert not [s.unit_name for s in present[::53] if f"{s.unit_name} " in appendix + " "]
    assert len(pages) < 25, len(pages)
    assert len(doc.directives) == 20 and all(_flat(d.text) in body for d in doc.directives)
    document = DocxReader(io.BytesIO(minutes_docx.render_docx(doc)))
    heads = {tuple(c.text for c in t.rows[0].cells): t for t in document.tables}
    summary = heads[("STT", "Tỉnh, thành phố", "Số điểm cầu", "Trực tuyến", "Trực tiếp", "Vắng (có lý do)",
                     "Không kết nối")]
    assert len(summary.rows) == 1 + 1 + 34 + 1  # heading, the centre, 34 provinces, totals
    assert [r.cells[1].text for r in summary.rows[2:-1]] == [f"Công an tỉnh Số {p:02d}" for p in range(1, 35)]
    assert summary.rows[-1].cells[2].text == "3.355"
    listed = heads[("STT", "Điểm cầu", "Cấp", "Tỉnh, thành phố", "Tình trạng", "Lý do vắng")]
    assert len(listed.rows) == len(missing) + 1 and len(missing) < 100
    absent = next(s for s in doc.attendance if s.reason)
    assert absent.reason in docx_text(document)


def test_font_lookup_refuses_clearly_when_no_vietnamese_serif(tmp_path: Path) -> None:
    with pytest.raises(fonts.FontMissing) as err:
        fonts.find_serif_font([tmp_path], system=False)
    assert "fonts-liberation2" in err.value.message and err.value.status == 503


def test_font_lookup_skips_fonts_without_vietnamese(tmp_path: Path) -> None:
    good = fonts.find_serif_font()
    assert fonts.covers_vietnamese(good.files[""])
    # A folder whose only candidate lacks Vietnamese letters (here: a real font cut down to ASCII).
    from fontTools import subset

    cut = tmp_path / "LiberationSerif-Regular.ttf"
    options = subset.Options()
    font = subset.load_font(str(good.files[""]), options)
    sub = subset.Subsetter(options)
    sub.populate(text="ABCabc ")
    sub.subset(font)
    font.save(str(cut))
    (tmp_path / "LiberationSerif-Bold.ttf").write_bytes(cut.read_bytes())
    assert not fonts.covers_vietnamese(cut)
    with pytest.raises(fonts.FontMissing):
        fonts.find_serif_font([tmp_path], system=False)
    # Regular and bold only (DejaVu's italics live in another package): italic falls back to upright.
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "LiberationSerif-Regular.ttf").write_bytes(good.files[""].read_bytes())
    (solo / "LiberationSerif-Bold.ttf").write_bytes(good.files["B"].read_bytes())
    found = fonts.find_serif_font([solo], system=False)
    assert found.files["I"] == solo / "LiberationSerif-Regular.ttf"
    assert found.files["BI"] == solo / "LiberationSerif-Bold.ttf"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return _flat(" ".join(parser.parts))


def test_html_page_carries_the_same_notice(seed_doc: m.Minutes) -> None:
    page = minutes_html.render_html(seed_doc, pdf_url="/minutes/7.pdf", docx_url="/minutes/7.docx",
                              versions=[("1", ""), ("2", "/minutes/7?v=2")])
    text = html_text(page)
    missing = [s for s in expected_strings(seed_doc) if s not in text]
    assert not missing, missing
    assert '<html lang="vi">' in page and '<article class="notice" lang="vi">' in page
    assert 'href="/minutes/7.pdf"' in page and 'href="/minutes/7?v=2"' in page
    # The print layout is a stylesheet of the site (the CSP allows no inline style).
    assert '<link rel="stylesheet" href="/static/minutes.css">' in page and "<style" not in page
    css = Path(__file__).resolve().parent.parent / "web" / "static" / "minutes.css"
    assert "@page { size: A4; margin: 20mm 15mm 20mm 30mm; }" in css.read_text(encoding="utf-8")
    assert page.count('<section class="appendix">') == 2


def test_html_escapes_and_summarises_the_sites() -> None:
    doc = synthetic_minutes(400, 3)
    doc = m.correct(doc, {"title": "Hội nghị <b>giao ban</b> & sơ kết"}, "Sửa tên",
                    at=doc.ended_at + timedelta(days=3))
    page = minutes_html.render_html(doc, lang="en")
    assert "Hội nghị &lt;b&gt;giao ban&lt;/b&gt; &amp; sơ kết" in page and "<b>giao ban</b>" not in page
    assert "Version 2" in page and "phiên bản 2: Sửa tên" in page
    appendix = page.split('<section class="appendix">')[1]
    missing = sum(s.status in MISSING for s in doc.attendance)
    # The summary's heading, 35 rows (the centre, 34 provinces) and totals; the missing sites' heading and rows.
    assert appendix.count("<tr>") == 1 + 35 + 1 + 1 + missing and 0 < missing < 20


def test_long_assignee_lists_go_to_an_appendix() -> None:
    doc = synthetic_minutes(200, 6)
    everyone, dozen = doc.directives[0], doc.directives[1]
    assert everyone.assignee_group and len(everyone.assignees) == 34 and len(dozen.assignees) == 12
    n = notice.notice_of(doc)
    labels = [a.label for a in n.appendices]
    assert labels == [APPENDIX_I, "Phụ lục II: Diễn biến phát biểu",
                      "Phụ lục III: Đơn vị được giao theo chỉ đạo"]
    details = [b.text for b in n.body if b.kind is notice.BlockKind.DETAIL]
    assert details[0].startswith(f"Đơn vị thực hiện: Công an các tỉnh, thành phố (34 đơn vị, {everyone.lead} chủ trì, "
                                 "danh sách tại Phụ lục III)")
    assert "và 2 đơn vị khác (danh sách tại Phụ lục III)" in details[1]
    assert everyone.assignees[-1] not in details[0] and dozen.assignees[-1] not in details[1]
    rows = n.appendices[2].parts[0].table.rows
    assert len(rows) == 34 + 12
    assert rows[0] == ("1.a", everyone.lead, "Chủ trì") and {r[0] for r in rows} == {"1.a", "1.b"}
    # Short lists stay in the body, lead first.
    assert details[2].startswith(f"Đơn vị thực hiện: {doc.directives[2].lead} (chủ trì), ")


def test_appendices_are_numbered_by_what_exists() -> None:
    doc = m.build_minutes(**small_inputs())  # attendance, no floor, short lists
    n = notice.notice_of(doc)
    assert [a.label for a in n.appendices] == [APPENDIX_I]
    bare = m.build_minutes(**small_inputs(attendance=[]))
    assert notice.notice_of(bare).appendices == ()
    assert not any("Thành phần" in b.text for b in notice.notice_of(bare).body)


_letters = st.text(alphabet=st.sampled_from("aăâbcdđeêghiklmnoôơpqrstuưvxyÀÁẠẢÃẦẤỆỘỮỲ ,.;:“”-/()&<>\"'0123456789"),
                   min_size=1, max_size=40).filter(lambda s: s.strip() != "" and "/" not in s)
_offsets = st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-5, minutes=-30))])


@st.composite
def minutes_inputs(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=_offsets))
    end = start + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=9)))
    day = start.astimezone(m.VN).date()
    sites = draw(st.lists(st.tuples(st.sampled_from(list(Level)), st.sampled_from(list(Attendance)), _letters),
                          max_size=6))
    directive = st.fixed_dictionaries({
        "text": _letters, "assignees": st.lists(_letters, min_size=1, max_size=3, unique_by=lambda s: s.strip()),
        "deadline": st.dates(min_value=day, max_value=day + timedelta(days=900)),
        "priority": st.sampled_from(list(m.Priority)), "cooperating": st.lists(_letters, max_size=2)})
    return {
        "title": draw(_letters), "started_at": start, "ended_at": end,
        "chair": {"name": draw(_letters), "title": draw(_letters), "unit": draw(_letters)},
        "agency": draw(_letters), "symbol": draw(_letters),
        "attendance": [{"unit_code": f"U{i}", "unit_name": name, "level": level, "status": status,
                        "reason": "vắng" if status is Attendance.ABSENT else ""}
                       for i, (level, status, name) in enumerate(sites)],
        "kpis": draw(st.lists(st.builds(lambda num, extra, ratio: {
            "code": "K", "name": "Chỉ tiêu", "unit": "%", "num": num, "den": num + extra if ratio else None,
            "phase": "live"}, st.integers(0, 10**9), st.integers(0, 10**6), st.booleans()), max_size=3)),
        "conclusions": draw(st.lists(st.fixed_dictionaries({"text": _letters,
                                                             "directives": st.lists(directive, max_size=3)}),
                                     max_size=3)),
        "published_at": end + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10))),
    }


@settings(max_examples=60, deadline=None)
@given(minutes_inputs())
def test_any_document_round_trips_byte_for_byte(data: dict[str, Any]) -> None:
    doc = m.build_minutes(**data)
    text = m.to_json(doc)
    back = m.from_json(text)
    assert back == doc and m.to_json(back) == text and m.content_hash(back) == m.content_hash(doc)
    assert back.started_at.utcoffset() == timedelta(0) and back.started_at == data["started_at"]
