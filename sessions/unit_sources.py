"""Where unit trees come from: CSV, the `vietnam-provinces` data files, a synthetic generator.

Each source returns ``UnitRow``s only; validation of the tree as a whole and storage happen in
``sessions.units.validate_tree`` and ``sessions.store.units.import_units``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sessions.errors import ImportRejected
from sessions.units import Level, UnitRow, parse_level

CSV_COLUMNS = ("code", "name", "level", "parent_code")
DEFAULT_ROOT_CODE = "BCA"
DEFAULT_ROOT_NAME = "Bộ Công an"


def parse_csv(data: bytes) -> list[UnitRow]:
    """Parse ``code,name,level,parent_code`` (UTF-8, BOM optional). Line numbers count the header
    as line 1. Any problem refuses the whole file with every offending line listed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected([(text_line(data, exc.start), "tệp không phải UTF-8; hãy lưu lại dưới dạng "
                                                           "CSV UTF-8")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected([(1, "tệp trống")]) from None
    cols = [h.strip().lower() for h in header]
    unknown = [c for c in cols if c not in CSV_COLUMNS]
    missing = [c for c in CSV_COLUMNS if c not in cols]
    if unknown or missing or len(cols) != len(set(cols)):
        parts = []
        if unknown:
            parts.append("cột không xác định: " + ", ".join(unknown))
        if missing:
            parts.append("thiếu cột: " + ", ".join(missing))
        if len(cols) != len(set(cols)):
            parts.append("cột bị lặp")
        raise ImportRejected([(1, "; ".join(parts) + f" (cần đúng các cột {','.join(CSV_COLUMNS)})")])
    idx = {c: cols.index(c) for c in CSV_COLUMNS}
    rows: list[UnitRow] = []
    errors: list[tuple[int, str]] = []
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(cols):
            errors.append((line, f"có {len(record)} cột, cần {len(cols)}"))
            continue
        level = parse_level(record[idx["level"]])
        if level is None:
            errors.append((line, f"cấp '{record[idx['level']]}' không hợp lệ (central, province, district, "
                                 "commune)"))
            continue
        parent = record[idx["parent_code"]].strip() or None
        rows.append(UnitRow(record[idx["code"]].strip(), record[idx["name"]].strip(), level, parent, line))
    if errors:
        raise ImportRejected(errors)
    if not rows:
        raise ImportRejected([(2, "tệp không có dòng dữ liệu nào")])
    return rows


def text_line(data: bytes, byte_offset: int) -> int:
    return data[:byte_offset].count(b"\n") + 1


def root_row(code: str = DEFAULT_ROOT_CODE, name: str = DEFAULT_ROOT_NAME) -> UnitRow:
    return UnitRow(code, name, Level.CENTRAL, None, 0)


def from_current_tree(nested: Iterable[Mapping[str, Any]], root: UnitRow) -> list[UnitRow]:
    """The two-tier tree in force since 1 July 2025: provinces, then communes (wards)."""
    rows = [root]
    for prov in nested:
        pcode = f"{int(prov['code']):02d}"
        rows.append(UnitRow(pcode, prov["name"], Level.PROVINCE, root.code))
        for ward in prov.get("wards", ()):
            rows.append(UnitRow(f"{int(ward['code']):05d}", ward["name"], Level.COMMUNE, pcode))
    return rows


def from_legacy_tree(nested: Iterable[Mapping[str, Any]], root: UnitRow) -> list[UnitRow]:
    """The three-tier tree before 2025: provinces, districts, communes (codes 2/3/5 digits)."""
    rows = [root]
    for prov in nested:
        pcode = f"{int(prov['code']):02d}"
        rows.append(UnitRow(pcode, prov["name"], Level.PROVINCE, root.code))
        for dist in prov.get("districts", ()):
            dcode = f"{int(dist['code']):03d}"
            rows.append(UnitRow(dcode, dist["name"], Level.DISTRICT, pcode))
            for ward in dist.get("wards", ()):
                rows.append(UnitRow(f"{int(ward['code']):05d}", ward["name"], Level.COMMUNE, dcode))
    return rows


_SPEC_RE = re.compile(r"^\s*(provinces|districts|communes)\s*=\s*(\d+)\s*$")


def parse_synthetic_spec(spec: str) -> dict[str, int]:
    out = {"provinces": 0, "districts": 0, "communes": 0}
    for part in spec.split(","):
        m = _SPEC_RE.match(part)
        if not m:
            raise ImportRejected([(0, f"đặc tả '{part.strip()}' không hợp lệ; ví dụ: "
                                      "provinces=63,districts=700,communes=10000")])
        out[m.group(1)] = int(m.group(2))
    if out["provinces"] <= 0:
        raise ImportRejected([(0, "cần ít nhất 1 tỉnh (provinces)")])
    if out["districts"] and out["districts"] < out["provinces"]:
        raise ImportRejected([(0, "số huyện phải ≥ số tỉnh")])
    return out


def synthetic(provinces: int, districts: int, communes: int, root: UnitRow) -> list[UnitRow]:
    """A deterministic load tree: units spread evenly (round-robin) over their parents."""
    rows = [root]
    pcodes = [f"S{i:03d}" for i in range(1, provinces + 1)]
    rows += [UnitRow(c, f"Tỉnh thử nghiệm {i}", Level.PROVINCE, root.code) for i, c in enumerate(pcodes, 1)]
    parents = pcodes
    if districts:
        dcodes = []
        for j in range(districts):
            province = pcodes[j % provinces]
            code = f"{province}D{j + 1:04d}"
            rows.append(UnitRow(code, f"Huyện thử nghiệm {j + 1}", Level.DISTRICT, province))
            dcodes.append(code)
        parents = dcodes
    for k in range(communes):
        parent = parents[k % len(parents)]
        rows.append(UnitRow(f"{parent}X{k + 1:05d}", f"Xã thử nghiệm {k + 1}", Level.COMMUNE, parent))
    return rows
