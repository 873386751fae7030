"""Reading a document's values from data (JSON, forms, a correction): each reader checks one
value and says which field is wrong, in Vietnamese, with a stable code."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime
from typing import Any

from sessions.errors import ValidationFailed

MAX_TEXT = 4000


CONTROL = {c: None for c in range(32) if chr(c) not in "\n\t"} | {0x7F: None}


def norm(value: str) -> str:
    # Control characters have no place in a document (and are not allowed in XML): dropped.
    return unicodedata.normalize("NFC", value).translate(CONTROL).strip()


def text(value: Any, name: str, *, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"Trường '{name}' phải là chuỗi ký tự", code="field_invalid", field=name)
    out = norm(value)
    if len(out) > limit:
        raise ValidationFailed(f"Trường '{name}' dài quá {limit} ký tự", code="text_too_long", field=name)
    return out


def when(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationFailed(f"Thời điểm '{name}' không hợp lệ", code="field_invalid", field=name) from exc
    if not isinstance(value, datetime):
        raise ValidationFailed(f"Thời điểm '{name}' không hợp lệ", code="field_invalid", field=name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(f"Thời điểm '{name}' phải có múi giờ", code="time_naive", field=name)
    return value.astimezone(UTC)


def day(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        raise ValidationFailed(f"'{name}' phải là ngày, không kèm giờ", code="field_invalid", field=name)
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationFailed(f"Ngày '{name}' không hợp lệ", code="field_invalid", field=name) from exc
    if not isinstance(value, date):
        raise ValidationFailed(f"Ngày '{name}' không hợp lệ", code="field_invalid", field=name)
    return value


def items(value: Any, name: str) -> Iterable[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationFailed(f"Trường '{name}' phải là danh sách", code="field_invalid", field=name)
    return value


def record(value: Any, kind: type, name: str) -> Mapping[str, Any]:
    if isinstance(value, kind):
        return {f.name: getattr(value, f.name) for f in dataclass_fields(kind)}
    if not isinstance(value, Mapping):
        raise ValidationFailed(f"Trường '{name}' không hợp lệ", code="field_invalid", field=name)
    unknown = set(value) - {f.name for f in dataclass_fields(kind)}
    if unknown:
        raise ValidationFailed(f"Trường '{name}' có khóa lạ: {', '.join(sorted(unknown))}", code="field_unknown",
                               field=name)
    return value


def choice(kind: Any, value: Any, name: str, label: str) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        raise ValidationFailed(f"{label} không hợp lệ: {value!r}", code="field_invalid", field=name) from exc


def integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"Trường '{name}' phải là số nguyên", code="field_invalid", field=name)
    return value
