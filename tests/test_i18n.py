"""The translation catalogs: Vietnamese and English define the same keys, every key a template or
a page script asks for exists, and the page scripts get their messages in the page's language."""

from __future__ import annotations

import re
from pathlib import Path

from server.i18n import LANGUAGES, catalog, js_catalog, translator

WEB = Path(__file__).resolve().parent.parent / "web"
# literal keys only (``t('level.' ~ x)`` builds its key at run time)
TEMPLATE_KEY = re.compile(r"""\bt\(\s*['"]([a-z0-9_.]*[a-z0-9_])['"]\s*[,)]""")
SCRIPT_KEY = re.compile(r"""\bt\(\s*["'`](js\.[a-z0-9_.]*[a-z0-9_])["'`]\s*[,)]""")


def test_every_language_defines_the_same_keys() -> None:
    vi = catalog("vi")
    for lang in LANGUAGES:
        keys = catalog(lang).keys()
        assert keys == vi.keys(), (lang, sorted(keys ^ vi.keys()))
        assert all(isinstance(v, str) and v.strip() for v in catalog(lang).values()), lang


def test_every_key_used_exists() -> None:
    vi = catalog("vi")
    used = {(p.name, k) for p in (WEB / "templates").glob("*.html") for k in TEMPLATE_KEY.findall(p.read_text())}
    used |= {(p.name, k) for p in (WEB / "static").glob("*.js")
             if p.name != "i18n.js" for k in SCRIPT_KEY.findall(p.read_text())}
    missing = sorted((name, key) for name, key in used if key not in vi)
    assert not missing, missing


def test_scripts_get_their_messages_in_the_page_language() -> None:
    for lang in LANGUAGES:
        js = js_catalog(lang)
        assert all(k.startswith("js.") for k in js)
        assert js.keys() == {k for k in catalog("vi") if k.startswith("js.")}
        assert all(js[k] == translator(lang)(k) for k in js)
