"""An assignment's history as events a person reads: who did what, when, from what to what, with
which files — never an audit action code or a JSON blob. The pages turn each event into one
sentence of their language (``directives.history.<kind>`` in web/i18n); this module only decides
what happened, from the audit rows and the directive records, with no I/O.

Kinds: ``assigned`` (by a named person) / ``assigned_unit`` (the giving unit only, for a reader
who does not reach it), ``progress_up`` / ``progress_down`` / ``progress_same``, ``done_on_time``
/ ``done_late``, ``breakdown``, ``flagged`` (the daily overdue reminder), ``changed`` (anything
else on record).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sessions.directives import days_overdue


@dataclass(frozen=True, slots=True)
class Audited:
    """One audit row about the assignment (``sessions.models.AuditEntry``, flattened)."""

    at: datetime
    who: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Given:
    """A directive as given: the assignment's own, or one it was broken down into."""

    at: datetime
    who: str  # "" when the reader may not see the person
    unit: str
    deadline: date
    units: int = 1  # how many units it went to
    directive_id: int = 0


BLANK: dict[str, Any] = {"who": "", "unit": "", "assignee": "", "role": "", "deadline": "", "old": 0, "new": 0,
                         "days": 0, "units": 0, "files": [], "directive_id": 0}


def _percent(state: Mapping[str, Any] | None) -> int | None:
    value = (state or {}).get("percent")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _files(state: Mapping[str, Any] | None) -> list[str]:
    names = (state or {}).get("attachments") or []
    return [str(n) for n in names] if isinstance(names, list) else []


def events(*, assignee: str, role: str, due_at: datetime, given: Given, audited: Iterable[Audited],
           breakdowns: Iterable[Given] = (), flagged_at: datetime | None = None) -> list[dict[str, Any]]:
    """The history, oldest first. ``assignee``/``role``: the assignment's unit name and role code."""
    out: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(at: datetime, kind: str, **fields: Any) -> None:
        # Every event has every field (pages render with strict undefined): unused ones stay empty.
        out.append((at, len(out), {**BLANK, "at": at.isoformat(), "kind": kind, **fields}))

    add(given.at, "assigned" if given.who else "assigned_unit", who=given.who, unit=given.unit,
        assignee=assignee, role=role, deadline=given.deadline.strftime("%d/%m/%Y"))
    for row in audited:
        old, new = _percent(row.before), _percent(row.after)
        if row.action == "assignment_progress":
            kind = ("progress_same" if old is None or new is None or old == new
                    else "progress_up" if new > old else "progress_down")
            add(row.at, kind, who=row.who, old=old if old is not None else 0, new=new if new is not None else 0,
                files=_files(row.after))
        elif row.action == "assignment_done":
            days = days_overdue(due_at, row.at)
            add(row.at, "done_late" if days else "done_on_time", who=row.who,
                old=old if old is not None else 0, new=100, days=days, files=[])
        else:
            add(row.at, "changed", who=row.who, files=[])
    for b in breakdowns:
        add(b.at, "breakdown", who=b.who, unit=b.unit, units=b.units, deadline=b.deadline.strftime("%d/%m/%Y"),
            directive_id=b.directive_id)
    if flagged_at is not None:
        add(flagged_at, "flagged")
    return [e for _, _, e in sorted(out, key=lambda x: (x[0], x[1]))]
