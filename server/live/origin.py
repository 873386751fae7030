"""Which pages may open the live websocket: the ``Origin`` rule of the ``/ws`` handshake.

A browser attaches the session cookie to a websocket handshake from any page, and the socket's
actions (grant, revoke, mark) carry no CSRF token: the ``Origin`` header is the only sign of the
page that asks. So a handshake is accepted only from the site's own origin (the scheme, host and
port the request was sent to — ``https`` when ``cookie_secure`` says the site is served over
HTTPS, and as the trusted proxy forwarded them when ``trust_forwarded_for`` is on) or one listed
in ``allowed_origins``. A client that sends no ``Origin`` is not a browser:
it may connect only with a bearer token (bridges, machine tokens), never with a cookie.
Pure functions of the request's headers and the settings; the handler answers the refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise(origin: str) -> str | None:
    """``scheme://host[:port]`` in one spelling (lower case, no default port), or None when the
    text is not an origin (a path, credentials, ``null`` from a sandboxed page...)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != DEFAULT_PORTS[scheme] else "")


@lru_cache(maxsize=8)  # read at every handshake; the setting is one string per process
def parse_allowed(raw: str) -> frozenset[str]:
    """The ``allowed_origins`` setting: origins separated by commas or spaces. Raises ValueError
    naming the first entry that is not an origin."""
    allowed = set()
    for entry in raw.replace(",", " ").split():
        origin = normalise(entry)
        if origin is None or origin.startswith(("ws:", "wss:")):
            raise ValueError(entry)
        allowed.add(origin)
    return frozenset(allowed)


def own_origin(headers: Mapping[str, str], scheme: str, host: str, trust_forwarded: bool,
               https: bool = False) -> str | None:
    """The origin the request was addressed to. ``https``: the site is served over HTTPS (a
    TLS-terminating proxy forwards plain HTTP). Behind a trusted proxy, ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` (first values) say what the browser used."""
    if https:
        scheme = "https"
    if trust_forwarded:
        scheme = headers.get("X-Forwarded-Proto", "").split(",")[0].strip() or scheme
        host = headers.get("X-Forwarded-Host", "").split(",")[0].strip() or host
    return normalise(f"{scheme}://{host}")


def refusal(headers: Mapping[str, str], *, own: str | None, allowed: frozenset[str], bearer: bool) -> str | None:
    """Why a handshake is refused (a Vietnamese message), or None when it may proceed."""
    origin = headers.get("Origin")
    if origin is None:
        return None if bearer else "Kết nối trực tiếp cần trình duyệt (thiếu tiêu đề Origin) hoặc mã truy cập"
    normal = normalise(origin)
    if normal is not None and (normal == own or normal in allowed):
        return None
    return "Trang web này không được phép mở kết nối trực tiếp tới hệ thống (Origin không hợp lệ)"
