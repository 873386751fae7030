"""One number format everywhere (issue #14): Vietnamese grouping and decimals — 3.355 (thousands
dot), 99,66 % (decimal comma, a space before %) — for the pages (Jinja filters ``vn_number`` and
``vn_percent``, installed by server.app) and the same rule as web/static/numbers.js."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from jinja2 import pass_context
from jinja2.runtime import Context

DASH = "—"  # no value


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def vn_number(value: object, decimals: int = 0, lang: str = "vi") -> str:
    """3355 → ``3.355``; (1234.5, 1) → ``1.234,5``; -1200 → ``-1.200``; None → ``—``."""
    number = _decimal(value)
    if number is None:
        return DASH
    rounded = abs(number).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    whole, _, frac = f"{rounded:f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    sign = "-" if number < 0 and rounded != 0 else ""
    if lang == "en":  # an English page: 3,355 · 1,234.5
        return f"{sign}{grouped.replace('.', ',')}.{frac}" if frac else f"{sign}{grouped.replace('.', ',')}"
    return f"{sign}{grouped},{frac}" if frac else f"{sign}{grouped}"


def vn_percent(value: object, decimals: int = 2, lang: str = "vi") -> str:
    """A percentage already in percent: 99.66 → ``99,66 %``; None → ``—``."""
    return DASH if _decimal(value) is None else f"{vn_number(value, decimals, lang)} %"


@pass_context
def number_filter(ctx: Context, value: object, decimals: int = 0) -> str:
    """``{{ n|vn_number }}`` in the page's language (``lang`` of the template context; vi by default)."""
    return vn_number(value, decimals, str(ctx.get("lang") or "vi"))


@pass_context
def percent_filter(ctx: Context, value: object, decimals: int = 2) -> str:
    return vn_percent(value, decimals, str(ctx.get("lang") or "vi"))
