"""Translations: Vietnamese first, English available. Catalogs are flat JSON files in web/i18n."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

LANGUAGES = ("vi", "en")
CATALOG_DIR = Path(__file__).resolve().parent.parent / "web" / "i18n"


@cache
def catalog(lang: str) -> dict[str, str]:
    """``{lang}.json`` plus every ``{lang}.<area>.json`` (one file per area of the UI); a key
    defined twice is an error."""
    data: dict[str, str] = {}
    for path in [CATALOG_DIR / f"{lang}.json", *sorted(CATALOG_DIR.glob(f"{lang}.*.json"))]:
        part: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        twice = data.keys() & part.keys()
        if twice:
            raise ValueError(f"{path.name}: keys already defined: {sorted(twice)}")
        data.update(part)
    return data


@cache
def js_catalog(lang: str) -> dict[str, str]:
    """The ``js.*`` messages the page scripts show (``web/static/i18n.js``), with the Vietnamese
    text wherever ``lang`` lacks one."""
    primary = catalog(lang if lang in LANGUAGES else "vi")
    return {k: primary.get(k) or v for k, v in catalog("vi").items() if k.startswith("js.")}


def translator(lang: str) -> Callable[..., str]:
    primary = catalog(lang if lang in LANGUAGES else "vi")
    fallback = catalog("vi")

    def t(key: str, **params: object) -> str:
        text = primary.get(key) or fallback.get(key) or key
        return text.format(**params) if params else text

    return t


def language_context(lang: str) -> dict[str, object]:
    """What every page template needs of its language (``base.html``): ``t``, ``js_i18n``, ``lang``."""
    return {"t": translator(lang), "js_i18n": js_catalog(lang), "lang": lang}
