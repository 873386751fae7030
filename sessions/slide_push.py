"""Which pushed slide a site shows (issue #14): plain rules, no I/O.

A push is made for a scope unit (the chair's for the whole meeting, a province operator's for
its own subtree) and stamped with the meeting seq it was made at. A site follows the pushes whose
scope is the site itself or one of its ancestors; of those, the newest wins. With the two levels
of a national meeting that reads: the province's push for its communes — the most specific —
unless the chair's push is newer. No applicable push: the site shows its own slide.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

Push = Mapping[str, Any]  # {"scope": {"unit_id", "code", "name"}, "slide": {...}, "seq", ...}


def effective(pushes: Iterable[Push], path: Collection[int]) -> Push | None:
    """The push a site whose ancestors (itself included) are ``path`` follows, or None (its own
    slide). Newest (highest seq) of the pushes scoped to a unit on the path."""
    applicable = [p for p in pushes if p["scope"]["unit_id"] in path]
    return max(applicable, key=lambda p: p["seq"], default=None)
