"""What a notice of conclusions says, independent of the file format.

A :class:`Notice` is every string of the document laid out as Decree 30/2020/NĐ-CP arranges an
administrative document: the two-column header (agency and number on the left, the national
title and motto on the right, place and date beneath), the title "THÔNG BÁO" and its
subtitle, the body, "Nơi nhận:" and the signature block, then the appendices. The PDF, DOCX
and HTML renderers only place these strings, so the three formats never disagree.

The presiding official ("Kết luận của Bộ trưởng Tô Lâm") names the notice in its subtitle, opens
and closes its body, and signs it unless a signer is named ("KT. BỘ TRƯỞNG / THỨ TRƯỞNG"). The
attendance appendix is a summary per province in the unit tree's official order and the list of
sites absent or never connected; the sites present are a download of their own (CSV/XLSX).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.exports.words_vi import clock_vi as clock_vi
from server.exports.words_vi import date_words as date_words
from server.exports.words_vi import deadline_vi as deadline_vi
from server.exports.words_vi import number_vi as number_vi
from server.exports.words_vi import percent_vi as percent_vi
from server.exports.words_vi import short_date_vi as short_date_vi
from sessions.meetings import Attendance
from sessions.minutes import (
    KPI_PHASE_LABEL_VI,
    PRIORITY_LABEL_VI,
    VN,
    DirectiveEntry,
    KpiRow,
    Minutes,
    SiteAttendance,
    attendance_by_level,
    total_attendance,
)
from sessions.units import Level

# Decree 30/2020/NĐ-CP, appendix I: A4, margins (mm) and type sizes (pt).
PAGE_MM = (210.0, 297.0)
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT = 20.0, 20.0, 30.0, 15.0
BODY_PT, HEADER_PT, RECIPIENT_PT, TABLE_PT, APPENDIX_PT = 14.0, 13.0, 12.0, 12.0, 10.5

NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
TITLE = "THÔNG BÁO"
ABSENT_IN_BODY = 10  # absent sites named in the body; the rest are in the appendix
CENTRAL_GROUP = "Trung ương"
ASSIGNEES_IN_BODY = 10  # assignees named under a directive; a longer list goes to an appendix
# Short labels keep the 3,355-row appendix to one line a site.
LEVEL_SHORT_VI = {Level.CENTRAL: "Trung ương", Level.PROVINCE: "Tỉnh", Level.DISTRICT: "Huyện", Level.COMMUNE: "Xã"}
STATUS_SHORT_VI = {Attendance.PRESENT_ONLINE: "Trực tuyến", Attendance.PRESENT_IN_PERSON: "Trực tiếp",
                   Attendance.ABSENT: "Vắng", Attendance.NOT_CALLED: "Không kết nối"}
LETTERS = "abcdefghiklmnopqrstuvxy"  # Vietnamese item letters skip j and w


class BlockKind(StrEnum):
    HEADING = "heading"  # "I. KẾT QUẢ CÁC CHỈ TIÊU"
    PARA = "para"  # justified body paragraph
    ITEM = "item"  # "1. <conclusion>"
    SUBITEM = "subitem"  # "a) <directive>"
    DETAIL = "detail"  # assignees and deadline under a directive (italic)
    TABLE = "table"


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]  # relative column widths
    footer: tuple[str, ...] | None = None  # a bold totals row
    aligns: tuple[str, ...] = ()  # per column "L" | "C" | "R"; empty = all left


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str = ""
    table: Table | None = None
    href: str = ""  # a directive's follow-up page (HTML links it; print has no links)


@dataclass(frozen=True, slots=True)
class AppendixPart:
    heading: str  # "1. Số điểm cầu theo tỉnh, thành phố"; "" for an appendix of one table
    table: Table


@dataclass(frozen=True, slots=True)
class Appendix:
    label: str  # "Phụ lục I: Tổng hợp điểm cầu theo tỉnh, thành phố"
    caption: str  # "(Kèm theo Thông báo số …)"
    parts: tuple[AppendixPart, ...]


@dataclass(frozen=True, slots=True)
class ProvinceCount:
    """One row of the attendance summary: the sites of one province (or of the centre)."""

    name: str
    online: int = 0
    in_person: int = 0
    absent: int = 0
    not_called: int = 0

    @property
    def total(self) -> int:
        return self.online + self.in_person + self.absent + self.not_called


@dataclass(frozen=True, slots=True)
class Notice:
    superior_agency: str
    agency: str
    number_line: str
    nation: str
    motto: str
    place_date: str
    title: str
    subtitle: str
    correction_note: str
    body: tuple[Block, ...]
    recipients: tuple[str, ...]
    signer_authority: str
    signer_title: str
    signer_name: str
    appendices: tuple[Appendix, ...]


def kpi_figure(k: KpiRow) -> str:
    unit = "" if k.unit in ("", "%") else f" {k.unit}"
    if k.den is None:
        return f"{number_vi(k.num)}{unit}"
    ratio = k.value
    share = percent_vi(ratio) if ratio is not None else "chưa có số liệu"
    return f"{number_vi(k.num)}/{number_vi(k.den)}{unit} ({share})"


def number_line(doc: Minutes) -> str:
    # An unnumbered notice leaves room for the number the clerk writes at issue.
    return f"Số: {doc.number or ' ' * 8}/{doc.symbol}"


def meeting_phrase(doc: Minutes) -> str:
    title = doc.title
    return title if title.lower().startswith("hội nghị") else f"hội nghị {title}"


def chair_phrase(doc: Minutes) -> str:
    return f"{doc.chair.title} {doc.chair.name}"


def directive_href(directive_id: int | None) -> str:
    return f"/directives/{directive_id}" if directive_id is not None else ""


def province_of(site: SiteAttendance) -> str:
    """The group a site is counted in: its province (a province is its own), or the centre."""
    if site.level is Level.PROVINCE:
        return site.unit_name
    if site.level.rank < Level.PROVINCE.rank:
        return CENTRAL_GROUP
    return site.parent or site.unit_name


def sites_by_province(doc: Minutes) -> list[tuple[str, list[SiteAttendance]]]:
    """The sites grouped by province in the unit tree's official order: the centre first, then
    the provinces by code (the order of ``sessions.store.units.subtree``), each group's sites in
    the order the minutes froze them (the store freezes them in that official order too). A
    group whose province did not take part keeps its place of first appearance, after the rest."""
    groups: dict[str, list[SiteAttendance]] = {}
    code: dict[str, str] = {}
    for site in doc.attendance:
        name = province_of(site)
        groups.setdefault(name, []).append(site)
        if site.level is Level.PROVINCE:
            code[name] = site.unit_code
    first = {name: i for i, name in enumerate(groups)}

    def key(name: str) -> tuple[int, str, int]:
        if name == CENTRAL_GROUP:
            return (0, "", first[name])
        return (1, code[name], first[name]) if name in code else (2, "", first[name])

    return [(name, groups[name]) for name in sorted(groups, key=key)]


def province_counts(doc: Minutes) -> list[ProvinceCount]:
    out = []
    for name, sites in sites_by_province(doc):
        n = {status: 0 for status in Attendance}
        for site in sites:
            n[site.status] += 1
        out.append(ProvinceCount(name, n[Attendance.PRESENT_ONLINE], n[Attendance.PRESENT_IN_PERSON],
                                 n[Attendance.ABSENT], n[Attendance.NOT_CALLED]))
    return out


# --- the notice -----------------------------------------------------------------------------------


def notice_of(doc: Minutes) -> Notice:
    """Every string of the notice of conclusions for ``doc``."""
    caption = f"(Kèm theo Thông báo số {doc.number or '…'}/{doc.symbol} {date_words(doc.issued_on)} của {doc.agency})"
    # Appendices are numbered in the order they occur; the body refers to them by that number.
    builders = [("attendance", _attendance_appendix, bool(doc.attendance)), ("floor", _floor_appendix, bool(doc.floor)),
                ("assignees", _assignee_appendix, any(_listed_apart(d) for d in doc.directives))]
    refs: dict[str, str] = {}
    appendices: list[Appendix] = []
    for key, build, present in builders:
        if present:
            refs[key] = f"Phụ lục {_roman(len(appendices) + 1)}"
            appendices.append(build(doc, refs[key], caption))
    signer = doc.signer
    recipients = [f"- {r.rstrip(';.')};" for r in doc.recipients]
    recipients.append("- Lưu: VT.")
    note = ""
    if doc.version > 1:
        note = f"(Bản đính chính, phiên bản {doc.version}: {doc.correction_reason})"
    return Notice(
        superior_agency=doc.superior_agency.upper(),
        agency=doc.agency.upper(),
        number_line=number_line(doc),
        nation=NATION,
        motto=MOTTO,
        place_date=f"{doc.place}, {date_words(doc.issued_on)}",
        title=TITLE,
        subtitle=f"Kết luận của {chair_phrase(doc)} tại {meeting_phrase(doc)}",
        correction_note=note,
        body=tuple(_body(doc, refs)),
        recipients=tuple(recipients),
        signer_authority=signer.authority.upper() if signer else "",
        signer_title=(signer.title if signer else doc.chair.title).upper(),
        signer_name=signer.name if signer else doc.chair.name,
        appendices=tuple(appendices),
    )


def _body(doc: Minutes, refs: dict[str, str]) -> list[Block]:
    start, end = doc.started_at, doc.ended_at
    blocks = [Block(BlockKind.PARA, f"Ngày {short_date_vi(start)}, {doc.agency} tổ chức {meeting_phrase(doc)} "
                                    f"theo hình thức {doc.venue}. {chair_phrase(doc)} chủ trì hội nghị.")]
    if short_date_vi(start) == short_date_vi(end):
        when = f"từ {clock_vi(start)} đến {clock_vi(end)} ngày {short_date_vi(start)}"
    else:
        when = f"từ {clock_vi(start)} ngày {short_date_vi(start)} đến {clock_vi(end)} ngày {short_date_vi(end)}"
    blocks.append(Block(BlockKind.PARA, f"Thời gian: {when}."))
    blocks.append(Block(BlockKind.PARA, f"Hình thức: {doc.venue}."))
    blocks.append(Block(BlockKind.PARA, f"Chủ trì: {chair_phrase(doc)}, {doc.chair.unit}."))
    if doc.attendance:
        blocks.extend(_attendance_blocks(doc, refs["attendance"]))
    if doc.floor:
        minutes_spoken = round(sum(t.duration.total_seconds() for t in doc.floor) / 60)
        blocks.append(Block(BlockKind.PARA, f"Tại hội nghị có {len(doc.floor)} lượt phát biểu từ các điểm cầu, "
                                            f"tổng thời lượng {minutes_spoken} phút (chi tiết tại {refs['floor']})."))
    section = 1
    if doc.kpis:
        blocks.append(Block(BlockKind.HEADING, f"{_roman(section)}. KẾT QUẢ CÁC CHỈ TIÊU"))
        section += 1
        rows = tuple((str(i), k.name, k.scope, kpi_figure(k), KPI_PHASE_LABEL_VI[k.phase])
                     for i, k in enumerate(doc.kpis, 1))
        blocks.append(Block(BlockKind.TABLE, table=Table(("STT", "Chỉ tiêu", "Phạm vi", "Số liệu", "Thời điểm"),
                                                         rows, (1, 5, 2.6, 4.2, 2.4), None,
                                                         ("C", "L", "L", "R", "L"))))
    blocks.append(Block(BlockKind.HEADING, f"{_roman(section)}. KẾT LUẬN VÀ CHỈ ĐẠO"))
    blocks.append(Block(BlockKind.PARA, f"Sau khi nghe báo cáo và ý kiến phát biểu của các đại biểu, "
                                        f"{chair_phrase(doc)} kết luận như sau:"))
    for i, conclusion in enumerate(doc.conclusions, 1):
        blocks.append(Block(BlockKind.ITEM, f"{i}. {conclusion.text}".rstrip()))
        for j, directive in enumerate(conclusion.directives):
            blocks.append(Block(BlockKind.SUBITEM, f"{_letter(j)}) {directive.text}",
                                href=directive_href(directive.directive_id)))
            blocks.append(Block(BlockKind.DETAIL, directive_detail(directive, refs.get("assignees", ""))))
    blocks.append(Block(BlockKind.PARA, f"{doc.agency} thông báo để các đơn vị, địa phương biết, thực hiện./."))
    return blocks


def _letter(j: int) -> str:
    return LETTERS[j] if j < len(LETTERS) else str(j + 1)


def _listed_apart(d: DirectiveEntry) -> bool:
    """A group of assignees, or a long list, is named in the body and listed in an appendix."""
    return bool(d.assignee_group) or len(d.assignees) > ASSIGNEES_IN_BODY


def directive_detail(d: DirectiveEntry, appendix: str = "") -> str:
    """"Đơn vị thực hiện: A (chủ trì), B; phối hợp: C. Thời hạn: trước ngày 31/12/2022." """
    ordered = sorted(d.assignees, key=lambda a: a != d.lead)  # the lead first, the rest in their order
    named = [f"{a} (chủ trì)" if a == d.lead and len(ordered) > 1 else a for a in ordered]
    where = f", danh sách tại {appendix}" if appendix else ""
    if d.assignee_group:
        lead = f", {d.lead} chủ trì" if d.lead and len(ordered) > 1 else ""
        who = f"{d.assignee_group} ({number_vi(len(ordered))} đơn vị{lead}{where})"
    elif len(named) > ASSIGNEES_IN_BODY:
        rest = len(named) - ASSIGNEES_IN_BODY
        who = f"{', '.join(named[:ASSIGNEES_IN_BODY])} và {number_vi(rest)} đơn vị khác ({where.lstrip(', ')})"
    else:
        who = ", ".join(named)
    parts = [f"Đơn vị thực hiện: {who}"]
    if d.cooperating:
        parts.append(f"phối hợp: {', '.join(d.cooperating)}")
    return "; ".join(parts) + f". Thời hạn: {deadline_vi(d.deadline)}. Độ khẩn: {PRIORITY_LABEL_VI[d.priority]}."


def _attendance_blocks(doc: Minutes, appendix: str) -> list[Block]:
    total = total_attendance(doc)
    text = (f"Thành phần: {number_vi(total.total)} điểm cầu, trong đó có mặt trực tuyến {number_vi(total.online)}, "
            f"có mặt trực tiếp {number_vi(total.in_person)}, vắng {number_vi(total.absent)}")
    if total.not_called:
        text += f", không kết nối {number_vi(total.not_called)}"
    text += (f" (tổng hợp theo cấp dưới đây; theo tỉnh, thành phố và danh sách điểm cầu vắng mặt, không kết nối "
             f"tại {appendix}; danh sách điểm cầu có mặt trong tệp dữ liệu kèm theo).")
    rows = tuple((s.level.label_vi, number_vi(s.total), number_vi(s.online), number_vi(s.in_person),
                  number_vi(s.absent), number_vi(s.not_called)) for s in attendance_by_level(doc))
    footer = ("Tổng cộng", number_vi(total.total), number_vi(total.online), number_vi(total.in_person),
              number_vi(total.absent), number_vi(total.not_called))
    table = Table(("Cấp", "Số điểm cầu", "Trực tuyến", "Trực tiếp", "Vắng", "Không kết nối"), rows,
                  (3.2, 2, 2, 2, 1.6, 2.4), footer, ("L", "C", "C", "C", "C", "C"))
    blocks = [Block(BlockKind.PARA, text), Block(BlockKind.TABLE, table=table)]
    absent = [s for s in doc.attendance if s.status is Attendance.ABSENT]
    if absent:
        named = "; ".join(f"{s.unit_name} ({s.reason})" for s in absent[:ABSENT_IN_BODY])
        more = len(absent) - ABSENT_IN_BODY
        tail = f"; và {number_vi(more)} điểm cầu khác (xem {appendix})" if more > 0 else ""
        blocks.append(Block(BlockKind.PARA, f"Điểm cầu vắng mặt: {named}{tail}."))
    return blocks


def _attendance_appendix(doc: Minutes, label: str, caption: str) -> Appendix:
    counts = province_counts(doc)
    rows = tuple((str(i), c.name, number_vi(c.total), number_vi(c.online), number_vi(c.in_person),
                  number_vi(c.absent), number_vi(c.not_called)) for i, c in enumerate(counts, 1))
    total = total_attendance(doc)
    footer = ("", "Tổng cộng", number_vi(total.total), number_vi(total.online), number_vi(total.in_person),
              number_vi(total.absent), number_vi(total.not_called))
    summary = Table(("STT", "Tỉnh, thành phố", "Số điểm cầu", "Trực tuyến", "Trực tiếp", "Vắng (có lý do)",
                     "Không kết nối"), rows, (1.1, 5.4, 1.9, 1.9, 1.9, 1.9, 2.0), footer,
                    ("R", "L", "C", "C", "C", "C", "C"))
    parts = [AppendixPart("1. Số điểm cầu theo tỉnh, thành phố", summary)]
    missing = [(group, s) for group, sites in sites_by_province(doc) for s in sites
               if s.status in (Attendance.ABSENT, Attendance.NOT_CALLED)]
    if missing:
        listed = tuple((str(i), s.unit_name, LEVEL_SHORT_VI[s.level], group, STATUS_SHORT_VI[s.status], s.reason)
                       for i, (group, s) in enumerate(missing, 1))
        parts.append(AppendixPart("2. Điểm cầu vắng mặt, không kết nối",
                                  Table(("STT", "Điểm cầu", "Cấp", "Tỉnh, thành phố", "Tình trạng", "Lý do vắng"),
                                        listed, (1.1, 5.6, 1.4, 3.6, 2.3, 3.6), None,
                                        ("R", "L", "L", "L", "L", "L"))))
    return Appendix(f"{label}: Tổng hợp điểm cầu theo tỉnh, thành phố", caption, tuple(parts))


def _floor_appendix(doc: Minutes, label: str, caption: str) -> Appendix:
    rows = tuple((str(i), t.speaker, t.unit_name,
                  f"{t.started_at.astimezone(VN):%H:%M}–{t.ended_at.astimezone(VN):%H:%M}",
                  f"{round(t.duration.total_seconds() / 60)} phút") for i, t in enumerate(doc.floor, 1))
    table = Table(("STT", "Người phát biểu", "Điểm cầu", "Thời gian", "Thời lượng"), rows, (1.2, 5, 5, 2.6, 2.4), None,
                  ("C", "L", "L", "C", "R"))
    return Appendix(f"{label}: Diễn biến phát biểu", caption, (AppendixPart("", table),))


def _assignee_appendix(doc: Minutes, label: str, caption: str) -> Appendix:
    rows: list[tuple[str, str, str]] = []
    for i, conclusion in enumerate(doc.conclusions, 1):
        for j, d in enumerate(conclusion.directives):
            if _listed_apart(d):
                ref = f"{i}.{_letter(j)}"
                ordered = sorted(d.assignees, key=lambda a: a != d.lead)
                rows += [(ref, a, "Chủ trì" if a == d.lead else "") for a in ordered]
    table = Table(("Chỉ đạo", "Đơn vị được giao", "Vai trò"), tuple(rows), (1.6, 10, 2.4), None, ("C", "L", "L"))
    return Appendix(f"{label}: Đơn vị được giao theo chỉ đạo", caption, (AppendixPart("", table),))


def _roman(n: int) -> str:
    return ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")[n - 1]
