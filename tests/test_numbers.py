"""One number format everywhere (issue #14 item 6): 3.355, 99,66 % — the server's Jinja filters
(server/numbers.py) and the pages' module (web/static/numbers.js, run in node) agree."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest

from server.app import create_app
from server.numbers import vn_number, vn_percent
from tests.conftest import make_settings, need_service

NUMBERS_JS = Path(__file__).resolve().parent.parent / "web" / "static" / "numbers.js"

# (function, arguments, expected) — the same cases for both implementations.
CASES: list[tuple[str, list[Any], str]] = [
    ("number", [3355], "3.355"),
    ("number", [201884], "201.884"),
    ("number", [3321000], "3.321.000"),
    ("number", [999], "999"),
    ("number", [0], "0"),
    ("number", [-1200], "-1.200"),
    ("number", [1234.5, 1], "1.234,5"),
    ("number", [10.0, 1], "10,0"),
    ("number", [2.25, 0], "2"),  # no decimals asked: none shown
    ("number", [None], "—"),
    ("number", ["not a number"], "—"),
    ("percent", [99.66], "99,66 %"),
    ("percent", [100], "100,00 %"),
    ("percent", [7.1], "7,10 %"),
    ("percent", [50, 0], "50 %"),
    ("percent", [None], "—"),
    ("number", [3321000, 0, "en"], "3,321,000"),  # an English page
    ("number", [1234.5, 1, "en"], "1,234.5"),
    ("percent", [99.66, 2, "en"], "99.66 %"),
]


def _py(kind: str, args: list[Any]) -> str:
    return vn_number(*args) if kind == "number" else vn_percent(*args)


@pytest.mark.parametrize(("kind", "args", "expected"), CASES)
def test_server_filters(kind: str, args: list[Any], expected: str) -> None:
    assert _py(kind, args) == expected


def test_the_page_module_formats_alike() -> None:
    node = shutil.which("node")
    if node is None:
        need_service("node not found: the page module web/static/numbers.js is checked with it")
    assert node is not None
    script = (f"import {{ formatNumber, formatPercent }} from {json.dumps(NUMBERS_JS.as_uri())};\n"
              f"const cases = {json.dumps([[k, a] for k, a, _e in CASES])};\n"
              "const fmt = (k) => (k === 'number' ? formatNumber : formatPercent);\n"
              "console.log(JSON.stringify(cases.map(([k, a]) => fmt(k)(...a))));")
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert json.loads(out) == [expected for _k, _a, expected in CASES]


def test_templates_get_the_filters(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), migrate=False)
    env = aiohttp_jinja2.get_env(app)
    page = env.from_string("{{ n|vn_number }} · {{ p|vn_percent }} · {{ mb|vn_number(1) }}")
    assert page.render(n=3355, p=99.66, mb=10) == "3.355 · 99,66 % · 10,0"
    assert page.render(n=3355, p=99.66, mb=10, lang="en") == "3,355 · 99.66 % · 10.0"  # an English page
