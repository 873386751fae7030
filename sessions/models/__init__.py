"""ORM models, one module per area (``base``, ``org``, ``meetings``, ``kpi``, ``directives``). Times are
stored in UTC (aware on the way in and out, whatever the backend). Importing the package registers
every table on ``Base.metadata``."""

from sessions.models.base import Base, UTCDateTime, utcnow
from sessions.models.directives import Assignment, Attachment, Conclusion, Directive, MeetingMinutes, ProgressReport
from sessions.models.kpi import KpiIndicator, KpiReport, KpiTotal, MeetingKpiSnapshot
from sessions.models.meetings import (
    AttendanceInterval,
    FloorTurn,
    Meeting,
    MeetingTransition,
    Participant,
    PresenceLease,
    ServerInstance,
)
from sessions.models.org import (
    AuditEntry,
    LoginRecord,
    LoginThrottle,
    MachineToken,
    Unit,
    UnitClosure,
    UnitTreeVersion,
    User,
)
from sessions.models.outbox import OutboxEvent
from sessions.models.slide_push import SlidePush

__all__ = [
    "Assignment",
    "Attachment",
    "AttendanceInterval",
    "AuditEntry",
    "Base",
    "Conclusion",
    "Directive",
    "FloorTurn",
    "KpiIndicator",
    "KpiReport",
    "KpiTotal",
    "LoginRecord",
    "LoginThrottle",
    "MachineToken",
    "Meeting",
    "MeetingKpiSnapshot",
    "MeetingMinutes",
    "MeetingTransition",
    "OutboxEvent",
    "Participant",
    "PresenceLease",
    "ProgressReport",
    "ServerInstance",
    "SlidePush",
    "UTCDateTime",
    "Unit",
    "UnitClosure",
    "UnitTreeVersion",
    "User",
    "utcnow",
]
