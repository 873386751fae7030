"""KPI reports from CSV: ``unit_code,indicator,period,value,denominator,report_id``. Plain Python.

The file is UTF-8 (a BOM is allowed); the header names exactly those columns (any order, case
and surrounding spaces ignored). Lines count the header as line 1. The result is the list of
report objects ``sessions.store.kpi.ingest`` takes plus each one's line, so the store's errors
name CSV lines; problems of the file itself (encoding, header, column count, numbers that are
not integers) are collected here, every bad line at once, and refuse the whole file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from sessions.errors import DomainError

CSV_COLUMNS = ("unit_code", "indicator", "period", "value", "denominator", "report_id")
# ASCII digits only ("\d" and int() would read "١٢٣" as 123); at most 30 of them, so int() never
# meets a number thousands of digits long (the store bounds every value far lower).
_INT = re.compile(r"^[+-]?[0-9]{1,30}\Z", re.ASCII)


@dataclass(frozen=True, slots=True)
class CsvProblem:
    line: int
    field: str  # a column name, or "" for the file or the whole line
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "code": "kpi_csv_invalid", "message": self.message}


class KpiCsvRejected(DomainError):
    """The file as a whole is refused (400); ``problems`` lists every bad line."""

    def __init__(self, problems: list[CsvProblem]) -> None:
        first = problems[0]
        more = f" (và {len(problems) - 1} lỗi khác)" if len(problems) > 1 else ""
        super().__init__(f"Dòng {first.line}: {first.message}{more}", code="kpi_csv_invalid")
        self.status = 400
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ParsedCsv:
    reports: list[dict[str, Any]]  # items for sessions.store.kpi.ingest
    lines: list[int]  # the CSV line of each report


def _number(raw: str) -> int | str | None:
    """``""`` → None; an integer in ASCII digits (spaces and ``.``/``,`` thousands separators are
    not accepted) → int; anything else stays a string, refused with its line and column."""
    text = raw.strip()
    if not text:
        return None
    return int(text) if _INT.match(text) else text


def parse_kpi_csv(data: bytes) -> ParsedCsv:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise KpiCsvRejected([CsvProblem(line, "", "tệp không phải UTF-8 (từ dòng này); hãy lưu lại dưới dạng "
                                                   "CSV UTF-8")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise KpiCsvRejected([CsvProblem(1, "", "tệp trống")]) from None
    except csv.Error as exc:
        raise KpiCsvRejected([CsvProblem(1, "", f"dòng tiêu đề không đọc được ({exc})")]) from None
    cols = [h.strip().lower() for h in header]
    unknown = [c for c in cols if c not in CSV_COLUMNS]
    missing = [c for c in CSV_COLUMNS if c not in cols]
    repeated = sorted({c for c in cols if cols.count(c) > 1})
    if unknown or missing or repeated:
        parts = []
        if unknown:
            parts.append("cột không xác định: " + ", ".join(c or "(trống)" for c in unknown))
        if missing:
            parts.append("thiếu cột: " + ", ".join(missing))
        if repeated:
            parts.append("cột bị lặp: " + ", ".join(repeated))
        raise KpiCsvRejected([CsvProblem(1, "", "; ".join(parts) + f" (cần đúng các cột {','.join(CSV_COLUMNS)})")])
    idx = {c: cols.index(c) for c in CSV_COLUMNS}
    problems: list[CsvProblem] = []
    reports: list[dict[str, Any]] = []
    lines: list[int] = []
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(CsvProblem(reader.line_num, "", f"dòng CSV không đọc được ({exc})"))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(cols):
            problems.append(CsvProblem(line, "", f"có {len(record)} cột, cần {len(cols)}"))
            continue
        item: dict[str, Any] = {
            "unit": record[idx["unit_code"]].strip(),
            "indicator": record[idx["indicator"]].strip(),
            "period": record[idx["period"]].strip(),
            "value": _number(record[idx["value"]]),
            "denominator": _number(record[idx["denominator"]]),
            "report_id": record[idx["report_id"]].strip(),
        }
        if item["value"] is None:
            problems.append(CsvProblem(line, "value", "thiếu giá trị (value)"))
        for col in ("value", "denominator"):
            if isinstance(item[col], str):
                problems.append(CsvProblem(line, col, f"{col} '{item[col]}' không phải số nguyên"))
        reports.append(item)
        lines.append(line)
    if problems:
        raise KpiCsvRejected(problems)
    if not reports:
        raise KpiCsvRejected([CsvProblem(2, "", "tệp không có dòng dữ liệu nào")])
    return ParsedCsv(reports, lines)


INDICATOR_REQUIRED = ("code", "name", "kind")


def parse_indicator_csv(data: bytes) -> tuple[list[dict[str, str]], list[int]]:
    """Indicators an admin adds from a file: UTF-8 (BOM allowed) CSV whose header has ``code,name,
    kind`` and any of ``unit,direction,target,green_at,amber_at,period,level_thresholds``.
    Returns the rows as text (checked by ``sessions.kpi.indicator_from_spec``) and their lines.
    Raises ValidationFailed naming the line."""
    from sessions.errors import ValidationFailed
    from sessions.kpi import SPEC_FIELDS

    def bad(line: int, message: str, fld: str = "file") -> ValidationFailed:
        return ValidationFailed(f"Dòng {line}: {message}", code="kpi_indicator_invalid", field=fld, line=line)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(data[:exc.start].count(b"\n") + 1, "tệp không phải UTF-8; hãy lưu lại dưới dạng CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise bad(1, "tệp trống") from None
    except csv.Error as exc:
        raise bad(1, f"dòng tiêu đề không đọc được ({exc})") from None
    unknown = [c or "(trống)" for c in header if c not in SPEC_FIELDS]
    missing = [c for c in INDICATOR_REQUIRED if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise bad(1, f"tiêu đề cần các cột {','.join(INDICATOR_REQUIRED)} và có thể thêm "
                     f"{','.join(c for c in SPEC_FIELDS if c not in INDICATOR_REQUIRED)}"
                  + (f"; cột không xác định: {', '.join(unknown)}" if unknown else "")
                  + (f"; thiếu cột: {', '.join(missing)}" if missing else ""))
    specs: list[dict[str, str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                raise bad(reader.line_num, f"có {len(record)} cột, cần {len(header)}")
            specs.append(dict(zip(header, record, strict=True)))
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise bad(reader.line_num, f"dòng CSV không đọc được ({exc})") from None
    if not specs:
        raise bad(2, "tệp không có chỉ tiêu nào")
    return specs, lines
