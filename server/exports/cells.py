"""Spreadsheet cells that stay data: text a user or an import typed (a meeting title, an absence
reason, a unit name) must never become a formula when the file is opened in Excel or LibreOffice.

Following OWASP's advice on CSV injection, a text that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading single quote (shown by spreadsheets as plain text);
numbers, dates and empty cells pass unchanged. Every CSV and XLSX writer goes through
:func:`safe_cell` / :func:`safe_row`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` unless it is text a spreadsheet would read as a formula; then ``'`` + text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
