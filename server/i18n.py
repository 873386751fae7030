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
    data: dict[str, str] = json.loads((CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def translator(lang: str) -> Callable[..., str]:
    primary = catalog(lang if lang in LANGUAGES else "vi")
    fallback = catalog("vi")

    def t(key: str, **params: object) -> str:
        text = primary.get(key) or fallback.get(key) or key
        return text.format(**params) if params else text

    return t
