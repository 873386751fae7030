"""Reading a document's values from data (JSON, forms, a correction): each reader checks one
value and says which field is wrong, in Vietnamese, with a stable code."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable, Mapping
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime
from typing import Any

from sessions.errors import ValidationFailed

MAX_TEXT = 4000


CONTROL = {c: None for c in range(32) if chr(c) not in "\n\t"} | {0x7F: None}


def norm(value: str) -> str:
    # Control characters have no place in a document (and are not allowed in XML): dropped.
    return unicodedata.normalize("NFC", value).translate(CONTROL).strip()


# What no stored text may hold: NUL and the other C0/C1 control characters, and lone surrogates
# (they cannot be encoded as UTF-8). A multi-line field keeps newlines and tabs.
REFUSED_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_REFUSED_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def reject_controls(value: str, field: str, *, multiline: bool = False, label: str | None = None) -> str:
    """``value`` as typed, refused when it holds a character no stored text may hold. A
    multi-line field's line breaks come back as ``\\n`` (browsers send ``\\r\\n``)."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    bad = (_REFUSED_MULTILINE if multiline else REFUSED_CHARS).search(value)
    if bad is not None:
        name = label or f"Trường '{field}'"
        raise ValidationFailed(f"{name} chứa ký tự điều khiển không được phép (U+{ord(bad.group()):04X})",
                               code="text_control_char", field=field)
    return value


def reject_controls_in(data: Mapping[str, Any], *, multi_line: Container[str]) -> None:
    """``reject_controls`` on every string inside ``data`` (nested mappings and lists): under the
    keys in ``multi_line`` as multi-line text, elsewhere as single lines."""
    stack: list[tuple[str, bool, Any]] = [(str(k), k not in multi_line, v) for k, v in data.items()]
    while stack:
        name, single, value = stack.pop()
        if isinstance(value, str):
            reject_controls(value, name, multiline=not single)
        elif isinstance(value, Mapping):
            stack.extend((f"{name}.{k}", single, v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((name, single, v) for v in value)


def clean_text(value: Any, field: str, max_len: int, *, multiline: bool = False, label: str | None = None) -> str:
    """Text a person typed, as it is stored: NFC, trimmed, at most ``max_len`` characters;
    refused — never silently altered — when it holds NUL or another control character (see
    ``reject_controls``). Single-line fields: names, titles, usernames; multi-line: reasons,
    directive texts, minutes."""
    name = label or f"Trường '{field}'"
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} phải là chuỗi ký tự", code="field_invalid", field=field)
    out = unicodedata.normalize("NFC", reject_controls(value, field, multiline=multiline, label=label)).strip()
    if len(out) > max_len:
        raise ValidationFailed(f"{name} dài quá {max_len} ký tự", code="text_too_long", field=field)
    return out


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
