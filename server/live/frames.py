"""Frames of the live websocket ``/ws`` read into JSON objects, and the typed reads of their
fields that server.live.messages builds messages with. Pure: no I/O, no framework.

A frame the server cannot read raises ``BadMessage`` with one stable code (docs/protocol.md) and a
Vietnamese message; the socket answers it with an error frame and counts a strike.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sessions.errors import ValidationFailed

MAX_MESSAGE = 16 * 1024  # bytes of one message: a longer one is answered ``message_too_large``
MAX_FRAME = 256 * 1024  # bytes aiohttp reads into memory for one frame: above it the socket ends (1009)
MAX_DEPTH = 32  # nesting of one message's JSON; the deepest real one (stats) has 3 levels
MAX_KEY = 2**31 - 1  # database keys are 32-bit integers
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone half of a UTF-16 pair: no UTF-8 for it


class BadMessage(ValidationFailed):
    """A message the server cannot read. ``code`` says what is wrong: ``bad_message``,
    ``bad_topic``, ``unknown_type``, ``unknown_action``, ``status_invalid``, ``state_invalid`` or
    ``message_too_large``."""

    code = "bad_message"


def decode(text: str) -> dict[str, Any]:
    """A text frame → the JSON object it carries (strict JSON: no NaN or Infinity). Its shape is
    checked apart (``check_shape``) so that the id of a misshapen message can still be answered."""
    if len(text) > MAX_MESSAGE // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE:
        raise BadMessage(f"Tin nhắn dài quá {MAX_MESSAGE // 1024} KiB", code="message_too_large")
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):  # also an integer of more than 4,300 digits
        raise BadMessage("Tin nhắn không phải JSON hợp lệ") from None
    if not isinstance(value, dict):
        raise BadMessage("Tin nhắn phải là một đối tượng JSON")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one decoder: json.loads(…, **kw) builds one per call


def check_shape(value: object, depth: int = 1) -> None:
    """Walk a decoded value (found at ``depth``) without recursion: nested too deep, or holding a
    string that cannot be written back (a lone surrogate has no UTF-8)."""
    stack: list[tuple[object, int]] = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if level > MAX_DEPTH:
                raise BadMessage(f"Tin nhắn lồng nhau quá {MAX_DEPTH} cấp")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                item = item.values()
            stack.extend((child, level + 1) for child in item if isinstance(child, str | dict | list))


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):
        raise BadMessage("Tin nhắn chứa ký tự không hợp lệ")


def read_key(raw: dict[str, Any], field: str) -> int:
    """A required database key: an integer 1 … 2³¹−1 (not a boolean)."""
    value = _as_int(raw.get(field))
    if value is None or not 0 < value <= MAX_KEY:
        raise BadMessage(f"Thiếu hoặc sai trường '{field}' (số nguyên dương)", field=field)
    return value


def read_optional_key(raw: dict[str, Any], field: str) -> int | None:
    """A key given as an integer, else None (other types have always been ignored here)."""
    value = _as_int(raw.get(field))
    if value is not None and not 0 < value <= MAX_KEY:
        raise BadMessage(f"Trường '{field}' phải là số nguyên dương", field=field)
    return value


def read_text(raw: dict[str, Any], field: str, default: str | None = None) -> str:
    value = raw.get(field, default)
    if not isinstance(value, str):
        raise BadMessage(f"Thiếu hoặc sai trường '{field}' (chuỗi)", field=field)
    return value


def _as_int(value: object) -> int | None:
    """An integer, else None (a boolean is not one, though Python's ``bool`` is an ``int``)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_unit_ref(raw: dict[str, Any]) -> str | int:
    """``unit_id`` when it is an integer, else ``unit`` (a code)."""
    unit_id = read_optional_key(raw, "unit_id")
    return unit_id if unit_id is not None else read_text(raw, "unit")


def preview(value: object) -> str:
    return str(value)[:40] if value is None or isinstance(value, str | int | float) else type(value).__name__
