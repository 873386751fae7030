"""Security headers on every response — pages, JSON, error pages, redirects, static files.

Set when a response is prepared (``on_response_prepare``), so nothing that reaches the client
can miss them, whichever middleware or exception produced it. The Content-Security-Policy runs
scripts from the site only and never inline code (pages start their script through
``/static/boot.js``); the media bridges, on other origins, are reached by ``fetch`` (WHIP/WHEP),
so their origins are allowed in ``connect-src``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from server.settings import Settings, parse_bridges


def content_security_policy(settings: Settings) -> str:
    urls = [urlsplit(url) for url in parse_bridges(settings.bridges).values()]
    bridges = sorted({f"{u.scheme}://{u.netloc}" for u in urls})
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        " ".join(["connect-src 'self' ws: wss:", *bridges]),
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ])


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


def install(app: web.Application, settings: Settings) -> None:
    headers = security_headers(settings)

    async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
        for name, value in headers.items():
            response.headers.setdefault(name, value)

    app.on_response_prepare.append(add_headers)
