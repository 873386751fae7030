"""The rules a minutes document obeys, checked whenever one is constructed (see sessions/minutes.py).

One walk over the document; each message says where the problem is ("Kết luận 2, chỉ đạo 1: …")
so a reviewer can find it, and each carries a stable code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from sessions.errors import ValidationFailed
from sessions.meetings import Attendance
from sessions.timezone import VN

if TYPE_CHECKING:
    from sessions.minutes import Minutes



def _fail(message: str, code: str, **detail: Any) -> NoReturn:
    raise ValidationFailed(message, code=code, **detail)


# "Nơi nhận" of a notice: a few lines, groups standing for many units ("Công an các tỉnh, thành
# phố"); every province by name (34, or 63 in the legacy tree) fits many times over. The units
# that attended are the minutes' attendance download, not recipient lines. Each name costs
# render time in every DOCX/PDF export.
MAX_RECIPIENTS = 500


def check_correction(changes: Mapping[str, Any]) -> None:
    """Bounds on what a correction may bring, checked before the document is built from it."""
    recipients = changes.get("recipients")
    if isinstance(recipients, list | tuple) and len(recipients) > MAX_RECIPIENTS:
        _fail(f"Tối đa {MAX_RECIPIENTS:,} nơi nhận (đã gửi {len(recipients):,})".replace(",", "."),
              "recipients_too_many", field="recipients", limit=MAX_RECIPIENTS)


def check_minutes(doc: Minutes) -> None:
    """Raise :class:`ValidationFailed` (Vietnamese, saying where) for the first broken rule."""
    if not doc.title:
        _fail("Thiếu tên hội nghị", "title_required", field="title")
    if not doc.agency:
        _fail("Thiếu tên cơ quan ban hành", "agency_required", field="agency")
    if not doc.symbol:
        _fail("Thiếu ký hiệu văn bản (ví dụ TB-BCA)", "symbol_required", field="symbol")
    if "/" in doc.number or "/" in doc.symbol:
        _fail("Số và ký hiệu văn bản không được chứa dấu '/'", "document_number_invalid", field="number")
    for name in ("started_at", "ended_at", "published_at"):
        value = getattr(doc, name)
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            _fail(f"Thời điểm '{name}' phải có múi giờ", "time_naive", field=name)
    if doc.ended_at < doc.started_at:
        _fail("Thời điểm kết thúc sớm hơn thời điểm bắt đầu", "time_order", field="ended_at")
    if doc.published_at is not None and doc.published_at < doc.started_at:
        _fail("Thời điểm công bố sớm hơn thời điểm khai mạc", "time_order", field="published_at")
    if not doc.chair.name or not doc.chair.title:
        _fail("Thiếu họ tên hoặc chức danh người chủ trì", "chair_required", field="chair")
    if doc.signer is not None and (not doc.signer.name or not doc.signer.title):
        _fail("Thiếu họ tên hoặc chức danh người ký", "signer_required", field="signer")
    if doc.version < 1:
        _fail("Số phiên bản phải từ 1 trở lên", "version_invalid", field="version")
    if doc.version > 1 and not doc.correction_reason:
        _fail("Phiên bản đính chính phải ghi lý do", "reason_required", field="correction_reason")
    if doc.version == 1 and (doc.correction_reason or doc.supersedes):
        _fail("Phiên bản đầu không có lý do đính chính", "reason_unexpected", field="correction_reason")
    if doc.version > 1 and doc.published_at is None:
        _fail("Phiên bản đính chính phải có thời điểm công bố", "published_required", field="published_at")
    seen: set[str] = set()
    for i, site in enumerate(doc.attendance, 1):
        where = f"Điểm cầu {i}"
        if not site.unit_code or not site.unit_name:
            _fail(f"{where}: thiếu mã hoặc tên đơn vị", "site_invalid", index=i)
        if site.unit_code in seen:
            _fail(f"{where}: đơn vị {site.unit_code} bị lặp", "site_duplicate", index=i)
        seen.add(site.unit_code)
        if site.status is Attendance.ABSENT and not site.reason:
            _fail(f"{where} ({site.unit_name}): vắng mặt phải ghi lý do", "reason_required", index=i)
    for i, turn in enumerate(doc.floor, 1):
        if not turn.unit_name:
            _fail(f"Lượt phát biểu {i}: thiếu điểm cầu", "floor_invalid", index=i)
        if turn.ended_at < turn.started_at:
            _fail(f"Lượt phát biểu {i}: kết thúc sớm hơn bắt đầu", "time_order", index=i)
    for i, kpi in enumerate(doc.kpis, 1):
        if not kpi.code or not kpi.name:
            _fail(f"Chỉ tiêu {i}: thiếu mã hoặc tên", "kpi_invalid", index=i)
        if kpi.num < 0 or (kpi.den is not None and kpi.den < 0):
            _fail(f"Chỉ tiêu {i} ({kpi.name}): số liệu không được âm", "value_negative", index=i)
        if kpi.den is not None and kpi.num > kpi.den:
            _fail(f"Chỉ tiêu {i} ({kpi.name}): tử số lớn hơn mẫu số", "numerator_above_denominator", index=i)
    meeting_day = doc.started_at.astimezone(VN).date()
    for i, conclusion in enumerate(doc.conclusions, 1):
        if not conclusion.text and not conclusion.directives:
            _fail(f"Kết luận {i}: thiếu nội dung", "conclusion_empty", index=i)
        for j, d in enumerate(conclusion.directives, 1):
            where = f"Kết luận {i}, chỉ đạo {j}"
            if not d.text:
                _fail(f"{where}: thiếu nội dung chỉ đạo", "directive_text_required", index=(i, j))
            if not d.assignees or not all(d.assignees):
                _fail(f"{where}: phải giao cho ít nhất một đơn vị", "assignee_required", index=(i, j))
            if len(set(d.assignees)) != len(d.assignees):
                _fail(f"{where}: đơn vị được giao bị lặp", "assignee_duplicate", index=(i, j))
            if d.lead and d.lead not in d.assignees:
                _fail(f"{where}: đơn vị chủ trì '{d.lead}' không nằm trong các đơn vị được giao", "lead_invalid",
                      index=(i, j))
            if d.deadline < meeting_day:
                _fail(f"{where}: thời hạn {d.deadline:%d/%m/%Y} trước ngày họp", "deadline_before_meeting",
                      index=(i, j))
