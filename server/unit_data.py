"""Loading the `vietnam-provinces` data (GPL-3.0, an optional extra, never vendored).

The current tree (34 provinces, 3,321 communes) comes from the installed package. The legacy
tree (63 provinces, 696 districts, 10,051 communes) is what release 0.6.0 of the same package
shipped; two releases cannot be installed side by side, so the importer reads that release's
wheel (fetched once with pip into ``<var_dir>/cache``) as a zip file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from sessions.errors import DomainError

LEGACY_RELEASE = "0.6.0"
_DATA_MEMBER = "vietnam_provinces/data/nested-divisions.json"


class DataUnavailable(DomainError):
    code = "unit_data_unavailable"
    status = 503


def current_tree_json() -> list[dict[str, Any]]:
    try:
        import vietnam_provinces
    except ModuleNotFoundError:
        raise DataUnavailable(
            "Chưa cài gói dữ liệu đơn vị hành chính: pip install 'hoinghi[units]' (vietnam-provinces)"
        ) from None
    data: list[dict[str, Any]] = json.loads(Path(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH).read_text("utf-8"))
    if data and "districts" in data[0]:
        raise DataUnavailable("Gói vietnam-provinces đã cài là bản cũ (3 cấp); cần bản ≥ 2025.8")
    return data


def legacy_wheel(cache_dir: Path) -> Path:
    found = sorted(cache_dir.glob(f"vietnam_provinces-{LEGACY_RELEASE}-*.whl"))
    if found:
        return found[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
         "-d", str(cache_dir), f"vietnam-provinces=={LEGACY_RELEASE}"],
        capture_output=True, text=True, check=False,
    )
    found = sorted(cache_dir.glob(f"vietnam_provinces-{LEGACY_RELEASE}-*.whl"))
    if proc.returncode != 0 or not found:
        raise DataUnavailable(
            f"Không tải được vietnam-provinces=={LEGACY_RELEASE} (cây đơn vị cũ): {proc.stderr.strip()[-300:]}"
        )
    return found[0]


def legacy_tree_json(cache_dir: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(legacy_wheel(cache_dir)) as zf:
        data: list[dict[str, Any]] = json.loads(zf.read(_DATA_MEMBER).decode("utf-8"))
    return data
