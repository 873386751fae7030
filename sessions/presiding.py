"""Who presides over a meeting and who signs its notice of conclusions (Decree 30/2020): the
chair sets them on the meeting before or at its conclusion; the minutes (sessions.minutes) carry
them into "Kết luận của <title> <name>" and the signature block. Plain Python, no storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sessions import values
from sessions.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Chair:
    """Who chaired: ``title`` is the position used in "Kết luận của <title> <name>"."""

    name: str
    title: str
    unit: str


@dataclass(frozen=True, slots=True)
class Signer:
    """The signature block. ``authority`` is e.g. "TL. BỘ TRƯỞNG" (empty when the head signs)."""

    title: str
    name: str
    authority: str = ""


MAX_PRESIDING = 100  # each of the presiding official's and the signer's lines (a column of 100)


@dataclass(frozen=True, slots=True)
class Presiding:
    """Who presides over a meeting and who signs its notice, as the chair sets them on the
    meeting: ``title`` and ``name`` make "Kết luận của <title> <name>"; the signer ("KT. BỘ
    TRƯỞNG" / "THỨ TRƯỞNG" / name) is empty when the presiding official signs in person."""

    title: str
    name: str
    signer_authority: str = ""
    signer_title: str = ""
    signer_name: str = ""

    @property
    def chair(self) -> dict[str, str]:
        return {"title": self.title, "name": self.name}

    @property
    def signer(self) -> Signer | None:
        if not self.signer_name:
            return None
        return Signer(title=self.signer_title, name=self.signer_name, authority=self.signer_authority)


def presiding_of(data: Mapping[str, Any]) -> Presiding:
    """A checked :class:`Presiding` from form or JSON fields (``title``, ``name``,
    ``signer_authority``, ``signer_title``, ``signer_name``); a clear Vietnamese refusal
    otherwise."""
    values.reject_controls_in(data, multi_line=())
    known = {f.name for f in fields(Presiding)}
    unknown = set(data) - known
    if unknown:
        raise ValidationFailed(f"Trường không hợp lệ: {', '.join(sorted(unknown))}", code="field_unknown")
    got = {k: values.text(data.get(k, ""), k, limit=MAX_PRESIDING) for k in known}
    if not got["name"]:
        raise ValidationFailed("Cần nhập họ tên người chủ trì hội nghị", code="presiding_name_required", field="name")
    if not got["title"]:
        raise ValidationFailed("Cần nhập chức danh người chủ trì hội nghị (ví dụ: Bộ trưởng)",
                               code="presiding_title_required", field="title")
    if (got["signer_authority"] or got["signer_title"]) and not got["signer_name"]:
        raise ValidationFailed("Cần nhập họ tên người ký thông báo (hoặc để trống cả phần người ký)",
                               code="signer_name_required", field="signer_name")
    if got["signer_name"] and not got["signer_title"]:
        raise ValidationFailed("Cần nhập chức vụ người ký thông báo (ví dụ: THỨ TRƯỞNG)",
                               code="signer_title_required", field="signer_title")
    return Presiding(**got)
