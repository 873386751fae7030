"""Minutes as a PDF in the Decree 30/2020 notice layout (fpdf2, the serif font of
:mod:`server.exports.fonts` embedded)."""

from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from server.exports.fonts import SerifFont, find_serif_font
from server.exports.notice import (
    APPENDIX_PT,
    BODY_PT,
    HEADER_PT,
    MARGIN_BOTTOM,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    MARGIN_TOP,
    RECIPIENT_PT,
    TABLE_PT,
    Appendix,
    Block,
    BlockKind,
    Notice,
    Table,
    notice_of,
)
from sessions.minutes import Minutes


def _pt_mm(pt: float, leading: float = 1.25) -> float:
    return pt * 0.3528 * leading


class _NoticePdf(FPDF):
    def __init__(self, font: SerifFont) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(MARGIN_LEFT, MARGIN_TOP, MARGIN_RIGHT)
        self.set_auto_page_break(True, margin=MARGIN_BOTTOM)
        for style, path in font.files.items():
            self.add_font("Notice", style, str(path))
        self.set_font("Notice", "", BODY_PT)

    def header(self) -> None:
        # Page numbers: Arabic numerals, centred in the top margin, from the second page on.
        if self.page_no() > 1:
            self.set_font("Notice", "", HEADER_PT)
            self.set_y(MARGIN_TOP / 2 - 2)
            self.cell(0, 5, str(self.page_no()), align="C")
            self.set_y(MARGIN_TOP)
            self.set_font("Notice", "", BODY_PT)

    @property
    def text_width(self) -> float:
        return self.w - self.l_margin - self.r_margin

    def centred_rule(self, x: float, width: float, length: float) -> None:
        y = self.get_y() + 0.6
        self.set_line_width(0.3)
        self.line(x + (width - length) / 2, y, x + (width + length) / 2, y)


def render_pdf(doc: Minutes, *, font: SerifFont | None = None) -> bytes:
    """The notice of conclusions of ``doc`` as PDF bytes."""
    notice = notice_of(doc)
    pdf = _NoticePdf(font or find_serif_font())
    pdf.set_title(f"{notice.title} {notice.subtitle}")
    pdf.set_author(notice.agency)
    pdf.set_creator("hoinghi")
    # Dated by the minutes, not the clock: one version always renders to the same bytes.
    pdf.set_creation_date(doc.published_at or doc.ended_at)
    pdf.add_page()
    _pdf_header(pdf, notice)
    _pdf_title(pdf, notice)
    for block in notice.body:
        _pdf_block(pdf, block)
    _pdf_closing(pdf, notice)
    for appendix in notice.appendices:
        _pdf_appendix(pdf, appendix)
    return bytes(pdf.output())


def _pdf_header(pdf: _NoticePdf, n: Notice) -> None:
    left_w, gap = 66.0, 2.0
    right_x, right_w = pdf.l_margin + left_w + gap, pdf.text_width - left_w - gap
    top = pdf.get_y()
    line = _pt_mm(HEADER_PT, 1.2)
    # Left column: superior agency (regular), issuing agency (bold), a short rule, the number.
    pdf.set_xy(pdf.l_margin, top)
    if n.superior_agency:
        pdf.set_font("Notice", "", HEADER_PT)
        pdf.multi_cell(left_w, line, n.superior_agency, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Notice", "B", HEADER_PT)
    pdf.multi_cell(left_w, line, n.agency, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.centred_rule(pdf.l_margin, left_w, left_w / 3)
    left_bottom = pdf.get_y() + 2
    # Right column: national title, motto with a rule as long as the motto.
    pdf.set_xy(right_x, top)
    size = HEADER_PT
    pdf.set_font("Notice", "B", size)
    while size > 11 and pdf.get_string_width(n.nation) > right_w - 2 * pdf.c_margin - 0.5:  # one line
        size -= 0.5
        pdf.set_font("Notice", "B", size)
    pdf.multi_cell(right_w, line, n.nation, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("Notice", "B", BODY_PT - 0.5)
    pdf.multi_cell(right_w, line, n.motto, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.centred_rule(right_x, right_w, pdf.get_string_width(n.motto))
    right_bottom = pdf.get_y() + 2
    row2 = max(left_bottom, right_bottom) + 1
    pdf.set_xy(pdf.l_margin, row2)
    pdf.set_font("Notice", "", HEADER_PT)
    pdf.cell(left_w, line, n.number_line, align="C")
    pdf.set_xy(right_x, row2)
    pdf.set_font("Notice", "I", BODY_PT)
    pdf.multi_cell(right_w, line, n.place_date, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(pdf.get_y(), row2 + line) + 6)


def _pdf_title(pdf: _NoticePdf, n: Notice) -> None:
    line = _pt_mm(BODY_PT, 1.2)
    pdf.set_font("Notice", "B", BODY_PT)
    pdf.multi_cell(0, line, n.title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.multi_cell(0, line, n.subtitle, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.centred_rule(pdf.l_margin, pdf.text_width, 40)
    pdf.ln(3)
    if n.correction_note:
        pdf.set_font("Notice", "I", BODY_PT - 1)
        pdf.multi_cell(0, line, n.correction_note, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)


def _pdf_block(pdf: _NoticePdf, block: Block) -> None:
    line = _pt_mm(BODY_PT, 1.3)
    indent = 10.0  # first-line indent of the decree, applied as a hanging offset for items
    if block.kind is BlockKind.TABLE and block.table is not None:
        _pdf_table(pdf, block.table, TABLE_PT)
        pdf.ln(2)
        return
    style = {BlockKind.HEADING: "B", BlockKind.DETAIL: "I"}.get(block.kind, "")
    pdf.set_font("Notice", style, BODY_PT)
    left = {BlockKind.SUBITEM: indent, BlockKind.DETAIL: indent}.get(block.kind, 0.0)
    if block.kind is BlockKind.PARA:
        # Decree 30 indents the first line 1–1.27 cm; fpdf2 has no first-line indent: pad with
        # no-break spaces (which justification does not stretch) as wide as the indent.
        text = "\u00a0" * round(indent / pdf.get_string_width("\u00a0")) + block.text
    else:
        text = block.text
    pdf.set_x(pdf.l_margin + left)
    pdf.multi_cell(pdf.text_width - left, line, text, align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.2)


def _wrap(pdf: _NoticePdf, text: str, width: float) -> list[str]:
    """Greedy word wrap measured with the current font; a word wider than the column is cut."""
    if pdf.get_string_width(text) <= width:
        return [text]
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if pdf.get_string_width(trial) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        while pdf.get_string_width(word) > width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and pdf.get_string_width(word[:cut]) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines or [""]


def _pdf_table(pdf: _NoticePdf, table: Table, size: float) -> None:
    """A ruled table drawn with ``text`` and ``line`` calls: fpdf2's own table() measures text
    glyph by glyph and took ~25 s for the 3,355-site appendix; this takes ~2 s. The heading row
    repeats on every page."""
    total = sum(table.widths)
    widths = [pdf.text_width * w / total for w in table.widths]
    aligns = table.aligns or ("L",) * len(widths)
    edges = [pdf.l_margin]
    for w in widths:
        edges.append(edges[-1] + w)
    pad_x, pad_y = 1.0, 0.9
    line_h = _pt_mm(size, 1.15)
    ascent = size * 0.3528 * 0.85
    bottom = pdf.h - pdf.b_margin
    pdf.set_line_width(0.2)
    segment_top = pdf.get_y()

    def close_segment(y: float) -> None:
        for x in edges:
            pdf.line(x, segment_top, x, y)

    def draw(values: tuple[str, ...], style: str) -> None:
        nonlocal segment_top
        pdf.set_font("Notice", style, size)
        cells = [_wrap(pdf, v, w - 2 * pad_x) for v, w in zip(values, widths, strict=True)]
        height = max(len(c) for c in cells) * line_h + 2 * pad_y
        y = pdf.get_y()
        if y + height > bottom and y > segment_top:
            close_segment(y)
            pdf.add_page()  # header() restores the body font; the table's font is set per row
            y = segment_top = pdf.get_y()
            pdf.line(edges[0], y, edges[-1], y)
            if values is not table.header:
                draw(table.header, "B")
                pdf.set_font("Notice", style, size)
                y = pdf.get_y()
        for lines, x0, w, align in zip(cells, edges, widths, aligns, strict=False):
            for k, text in enumerate(lines):
                if align == "L":
                    x = x0 + pad_x
                else:
                    room = w - 2 * pad_x - pdf.get_string_width(text)
                    x = x0 + pad_x + (room / 2 if align == "C" else room)
                pdf.text(x, y + pad_y + ascent + k * line_h, text)
        pdf.line(edges[0], y + height, edges[-1], y + height)
        pdf.set_y(y + height)

    pdf.line(edges[0], segment_top, edges[-1], segment_top)
    draw(table.header, "B")
    for row in table.rows:
        draw(row, "")
    if table.footer:
        draw(table.footer, "B")
    close_segment(pdf.get_y())
    pdf.set_font("Notice", "", BODY_PT)


def _pdf_closing(pdf: _NoticePdf, n: Notice) -> None:
    left_w = 80.0
    right_x, right_w = pdf.l_margin + left_w, pdf.text_width - left_w
    small = _pt_mm(RECIPIENT_PT - 1, 1.15)
    big = _pt_mm(BODY_PT, 1.2)
    needed = max(small * (len(n.recipients) + 1), big * 3 + 25) + 6
    if pdf.get_y() + needed > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.ln(4)
    top = pdf.get_y()
    pdf.set_font("Notice", "BI", RECIPIENT_PT)
    pdf.cell(left_w, small, "Nơi nhận:", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Notice", "", RECIPIENT_PT - 1)
    for r in n.recipients:
        pdf.multi_cell(left_w, small, r, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    left_bottom = pdf.get_y()
    pdf.set_xy(right_x, top)
    pdf.set_font("Notice", "B", BODY_PT)
    for text in (n.signer_authority, n.signer_title):
        if text:
            pdf.multi_cell(right_w, big, text, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.ln(25)  # room for the signature and seal
    pdf.set_x(right_x)
    pdf.multi_cell(right_w, big, n.signer_name, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(pdf.get_y(), left_bottom))


def _pdf_appendix(pdf: _NoticePdf, a: Appendix) -> None:
    pdf.add_page()
    line = _pt_mm(BODY_PT, 1.2)
    pdf.set_font("Notice", "B", BODY_PT)
    pdf.multi_cell(0, line, a.label, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Notice", "I", BODY_PT - 1)
    pdf.multi_cell(0, line, a.caption, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    for part in a.parts:
        if part.heading:
            pdf.set_font("Notice", "B", BODY_PT - 1)
            pdf.multi_cell(0, line, part.heading, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        _pdf_table(pdf, part.table, APPENDIX_PT)
        pdf.ln(4)


# --- DOCX --------------------------------------------------------------------------------------------
