"""The notice of conclusions written as DOCX with python-docx (the same notice as the PDF and HTML)."""

from __future__ import annotations

import io
from typing import IO
from xml.sax.saxutils import escape

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.section import Section
from docx.shared import Cm, Mm, Pt
from docx.table import Table as DocxTable
from docx.text.paragraph import Paragraph

from server.exports.notice import (
    APPENDIX_PT,
    BODY_PT,
    HEADER_PT,
    MARGIN_BOTTOM,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    PAGE_MM,
    RECIPIENT_PT,
    TABLE_PT,
    Appendix,
    BlockKind,
    Notice,
    Table,
    notice_of,
)
from sessions.minutes import Minutes

FONT = "Times New Roman"
CENTER, JUSTIFY, LEFT = WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.JUSTIFY, WD_ALIGN_PARAGRAPH.LEFT


def write_docx(n: Notice, out: IO[bytes]) -> None:
    doc = Document()
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(PAGE_MM[0]), Mm(PAGE_MM[1])
    section.top_margin, section.bottom_margin = Mm(MARGIN_TOP), Mm(MARGIN_BOTTOM)
    section.left_margin, section.right_margin = Mm(MARGIN_LEFT), Mm(MARGIN_RIGHT)
    _base_font(doc, BODY_PT)
    _page_numbers(section, HEADER_PT)

    text_mm = PAGE_MM[0] - MARGIN_LEFT - MARGIN_RIGHT
    head = _plain_table(doc, 2, 2, (72, text_mm - 72))
    left, right = head.cell(0, 0), head.cell(0, 1)
    first = True
    if n.superior_agency:
        _para(left.paragraphs[0], n.superior_agency, HEADER_PT, align=CENTER)
        first = False
    _para(left.paragraphs[0] if first else left.add_paragraph(), n.agency, HEADER_PT, bold=True, align=CENTER)
    _para(left.add_paragraph(), "―――――", HEADER_PT, align=CENTER)
    _para(right.paragraphs[0], n.nation, HEADER_PT, bold=True, align=CENTER)
    motto = _para(right.add_paragraph(), n.motto, BODY_PT, bold=True, align=CENTER)
    motto.runs[0].underline = True
    _para(head.cell(1, 0).paragraphs[0], n.number_line, HEADER_PT, align=CENTER)
    _para(head.cell(1, 1).paragraphs[0], n.place_date, BODY_PT, italic=True, align=CENTER)

    _para(doc.add_paragraph(), n.title, BODY_PT, bold=True, align=CENTER, before=12)
    _para(doc.add_paragraph(), n.subtitle, BODY_PT, bold=True, align=CENTER)
    _para(doc.add_paragraph(), "―――――", BODY_PT, align=CENTER)
    if n.correction_note:
        _para(doc.add_paragraph(), n.correction_note, BODY_PT - 1, italic=True, align=CENTER)

    for block in n.body:
        if block.kind is BlockKind.TABLE and block.table is not None:
            _data_table(doc, block.table, TABLE_PT, text_mm)
            continue
        p = _para(doc.add_paragraph(), block.text, BODY_PT, bold=block.kind is BlockKind.HEADING,
                  italic=block.kind is BlockKind.DETAIL, align=JUSTIFY, before=3)
        if block.kind is BlockKind.PARA:
            p.paragraph_format.first_line_indent = Cm(1)
        elif block.kind in (BlockKind.SUBITEM, BlockKind.DETAIL):
            p.paragraph_format.left_indent = Cm(1)

    closing = _plain_table(doc, 1, 2, (80, text_mm - 80))
    recipients, signature = closing.cell(0, 0), closing.cell(0, 1)
    _para(recipients.paragraphs[0], "Nơi nhận:", RECIPIENT_PT, bold=True, italic=True, align=LEFT, before=12)
    for r in n.recipients:
        _para(recipients.add_paragraph(), r, RECIPIENT_PT - 1, align=LEFT)
    lines = [t for t in (n.signer_authority, n.signer_title) if t]
    _para(signature.paragraphs[0], lines[0], BODY_PT, bold=True, align=CENTER, before=12)
    for text in lines[1:]:
        _para(signature.add_paragraph(), text, BODY_PT, bold=True, align=CENTER)
    _para(signature.add_paragraph(), n.signer_name, BODY_PT, bold=True, align=CENTER, before=72)

    for appendix in n.appendices:
        _appendix(doc, appendix, BODY_PT, text_mm)
    doc.save(out)


def _base_font(doc: DocxDocument, size: float) -> None:
    style = doc.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(size)
    # python-docx sets ascii/hAnsi; complex-script and East Asian slots must name the font too.
    fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
    for slot in ("w:eastAsia", "w:cs"):
        fonts.set(qn(slot), FONT)


def _page_numbers(section: Section, size: float) -> None:
    # Decree 30: page numbers centred at the top, not on the first page.
    section.different_first_page_header_footer = True
    p = section.header.paragraphs[0]
    p.alignment = CENTER
    run = p.add_run()
    run.font.size = Pt(size)
    for kind, text in (("begin", None), (None, "PAGE"), ("end", None)):
        if kind:
            el = OxmlElement("w:fldChar")
            el.set(qn("w:fldCharType"), kind)
        else:
            el = OxmlElement("w:instrText")
            el.set(qn("xml:space"), "preserve")
            el.text = text
        run._r.append(el)


def _para(p: Paragraph, text: str, size: float, *, bold: bool = False, italic: bool = False,
          align: WD_ALIGN_PARAGRAPH = JUSTIFY, before: float = 0) -> Paragraph:
    run = p.add_run(text)
    run.bold, run.italic = bold, italic
    run.font.size = Pt(size)
    p.alignment = align
    p.paragraph_format.space_before = Pt(before)
    p.paragraph_format.space_after = Pt(0)
    return p


def _plain_table(doc: DocxDocument, rows: int, cols: int, widths_mm: tuple[float, ...]) -> DocxTable:
    table = doc.add_table(rows=rows, cols=cols)  # the default table style has no borders
    table.autofit = False
    for row in table.rows:
        for cell, w in zip(row.cells, widths_mm, strict=True):
            cell.width = Mm(w)
    return table


def _data_table(doc: DocxDocument, t: Table, size: float, text_mm: float) -> DocxTable:
    """A ruled table. Rows are written as one WordprocessingML fragment parsed once: python-docx's
    per-cell API took ~4 s for the 3,355-site appendix."""
    total = sum(t.widths)
    widths = [Mm(text_mm * w / total) for w in t.widths]
    table = doc.add_table(rows=0, cols=len(t.header))
    table.style = doc.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
    aligns = t.aligns or ("L",) * len(widths)
    cells = [(int(w.twips), _JC[a]) for w, a in zip(widths, aligns, strict=True)]
    half_points = round(size * 2)
    rows = [_row_xml(t.header, cells, half_points, bold=True, heading=True)]
    rows += [_row_xml(r, cells, half_points) for r in t.rows]
    if t.footer:
        rows.append(_row_xml(t.footer, cells, half_points, bold=True))
    fragment = parse_xml(f'<w:tbl {nsdecls("w")}>{"".join(rows)}</w:tbl>')
    tbl = table._tbl
    for tr in list(fragment):
        tbl.append(tr)
    return table


_JC = {"L": "left", "C": "center", "R": "right"}


def _row_xml(values: tuple[str, ...], cells: list[tuple[int, str]], half_points: int, *, bold: bool = False,
             heading: bool = False) -> str:
    tr_pr = '<w:trPr><w:tblHeader w:val="true"/></w:trPr>' if heading else ""
    r_pr = f'<w:rPr>{"<w:b/>" if bold else ""}<w:sz w:val="{half_points}"/><w:szCs w:val="{half_points}"/></w:rPr>'
    out = [f"<w:tr>{tr_pr}"]
    for value, (twips, jc) in zip(values, cells, strict=True):
        out.append(f'<w:tc><w:tcPr><w:tcW w:w="{twips}" w:type="dxa"/></w:tcPr><w:p><w:pPr>'
                   f'<w:spacing w:before="0" w:after="0"/><w:jc w:val="{jc}"/></w:pPr><w:r>{r_pr}'
                   f'<w:t xml:space="preserve">{escape(value)}</w:t></w:r></w:p></w:tc>')
    out.append("</w:tr>")
    return "".join(out)


def _appendix(doc: DocxDocument, a: Appendix, size: float, text_mm: float) -> None:
    doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    _para(doc.add_paragraph(), a.label, size, bold=True, align=CENTER)
    _para(doc.add_paragraph(), a.caption, size - 1, italic=True, align=CENTER)
    for part in a.parts:
        if part.heading:
            _para(doc.add_paragraph(), part.heading, size - 1, bold=True, align=LEFT, before=6)
        _data_table(doc, part.table, APPENDIX_PT, text_mm)


def render_docx(doc: Minutes) -> bytes:
    """The notice of conclusions of ``doc`` as DOCX bytes (Times New Roman, A4, Decree 30 margins).
    python-docx loads lxml: callers import this module when a DOCX is asked for, not at start-up."""
    out = io.BytesIO()
    write_docx(notice_of(doc), out)
    return out.getvalue()

