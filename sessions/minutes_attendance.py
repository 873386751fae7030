"""A minutes document's attendance counted per level (computed, never stored)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sessions.meetings import Attendance
from sessions.units import Level

if TYPE_CHECKING:
    from sessions.minutes import Minutes


@dataclass(frozen=True, slots=True)
class LevelSummary:
    """Attendance counts of one level (computed, never stored)."""

    level: Level
    online: int = 0
    in_person: int = 0
    absent: int = 0
    not_called: int = 0

    @property
    def total(self) -> int:
        return self.online + self.in_person + self.absent + self.not_called

    @property
    def present(self) -> int:
        return self.online + self.in_person


def attendance_by_level(doc: Minutes) -> tuple[LevelSummary, ...]:
    """Counts per level, highest level first; only levels that have sites."""
    counts: dict[Level, list[int]] = {}
    slot = {Attendance.PRESENT_ONLINE: 0, Attendance.PRESENT_IN_PERSON: 1, Attendance.ABSENT: 2,
            Attendance.NOT_CALLED: 3}
    for site in doc.attendance:
        counts.setdefault(site.level, [0, 0, 0, 0])[slot[site.status]] += 1
    return tuple(LevelSummary(level, *counts[level]) for level in sorted(counts, key=lambda lv: lv.rank))


def total_attendance(doc: Minutes) -> LevelSummary:
    """All levels together (``level`` is the highest present, or central when there are none)."""
    rows = attendance_by_level(doc)
    return LevelSummary(rows[0].level if rows else Level.CENTRAL, sum(r.online for r in rows),
                        sum(r.in_person for r in rows), sum(r.absent for r in rows), sum(r.not_called for r in rows))
