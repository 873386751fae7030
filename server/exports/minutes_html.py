"""Minutes as the HTML page (and the same page rendered outside a request, for tests and the PDF's
companion)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from server.exports.notice import (
    notice_of,
)
from server.i18n import language_context
from server.timefmt import local
from sessions.minutes import Minutes

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
MINUTES_LABELS = {
    "vi": {"version": "Phiên bản", "published": "công bố lúc", "pdf": "Tải PDF", "docx": "Tải DOCX",
           "versions": "Các phiên bản"},
    "en": {"version": "Version", "published": "published", "pdf": "Download PDF", "docx": "Download DOCX",
           "versions": "Versions"},
}


def minutes_context(doc: Minutes, *, lang: str = "vi", pdf_url: str = "", docx_url: str = "",
                    versions: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The context of ``minutes.html``: ``doc`` (the :class:`Minutes`), ``notice`` (its strings),
    ``labels`` (toolbar words in ``lang``), ``published`` (local time text), the export links and
    ``versions`` as (label, href) pairs, href empty for the version shown. A route renders it
    with ``render(request, "minutes.html", minutes_context(...))``."""
    return {
        "doc": doc,
        "notice": notice_of(doc),
        "labels": MINUTES_LABELS.get(lang, MINUTES_LABELS["vi"]),
        "published": local(doc.published_at),
        "pdf_url": pdf_url,
        "docx_url": docx_url,
        "versions": [{"label": label, "href": href} for label, href in versions],
    }


@cache
def _html_env() -> jinja2.Environment:
    # The app's own settings (server/app.py): autoescaped HTML, undefined names are errors.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)


def render_html(doc: Minutes, *, lang: str = "vi", **links: Any) -> str:
    """The minutes page as a string, outside any request (no user, no navigation): for tests,
    static export and e-mail. ``links`` are :func:`minutes_context`'s keyword arguments."""
    shell = {**language_context(lang), "principal": None, "login_info": None, "csrf_token": "", "path": "",
             "nav": []}
    return _html_env().get_template("minutes.html").render({**shell, **minutes_context(doc, lang=lang, **links)})
