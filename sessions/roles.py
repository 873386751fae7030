"""Roles, what each may do, and the scope rule: a user reaches exactly its unit's subtree."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CHAIR = "chair"
    BRIDGE_OPERATOR = "bridge_operator"
    SITE_OPERATOR = "site_operator"
    VIEWER = "viewer"

    @property
    def label_vi(self) -> str:
        return ROLE_LABEL_VI[self]


ROLE_LABEL_VI = {
    Role.ADMIN: "Quản trị hệ thống",
    Role.CHAIR: "Chủ trì hội nghị",
    Role.BRIDGE_OPERATOR: "Vận hành điểm cầu tỉnh",
    Role.SITE_OPERATOR: "Vận hành điểm cầu cơ sở",
    Role.VIEWER: "Người dự / theo dõi",
}


class Permission(StrEnum):
    VIEW_UNITS = "view_units"
    MANAGE_UNITS = "manage_units"
    MANAGE_USERS = "manage_users"
    MANAGE_TOKENS = "manage_tokens"
    VIEW_AUDIT = "view_audit"
    CHAIR_MEETINGS = "chair_meetings"
    OPERATE_BRIDGE = "operate_bridge"
    OPERATE_SITE = "operate_site"
    REVIEW_MINUTES = "review_minutes"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({
        Permission.VIEW_UNITS, Permission.MANAGE_UNITS, Permission.MANAGE_USERS,
        Permission.MANAGE_TOKENS, Permission.VIEW_AUDIT, Permission.REVIEW_MINUTES,
    }),
    Role.CHAIR: frozenset({Permission.VIEW_UNITS, Permission.CHAIR_MEETINGS, Permission.REVIEW_MINUTES}),
    Role.BRIDGE_OPERATOR: frozenset({
        Permission.VIEW_UNITS, Permission.OPERATE_BRIDGE, Permission.OPERATE_SITE, Permission.REVIEW_MINUTES,
    }),
    Role.SITE_OPERATOR: frozenset({Permission.VIEW_UNITS, Permission.OPERATE_SITE, Permission.REVIEW_MINUTES}),
    Role.VIEWER: frozenset({Permission.VIEW_UNITS, Permission.REVIEW_MINUTES}),
}

# What the home page tells each role it can do (Vietnamese first; keys are translated).
ROLE_CAPABILITIES: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: ("cap.manage_units", "cap.manage_users", "cap.manage_tokens", "cap.view_audit"),
    Role.CHAIR: ("cap.chair_meetings", "cap.view_units", "cap.review_minutes"),
    Role.BRIDGE_OPERATOR: ("cap.operate_bridge", "cap.view_units", "cap.review_minutes"),
    Role.SITE_OPERATOR: ("cap.operate_site", "cap.review_minutes"),
    Role.VIEWER: ("cap.view_units", "cap.review_minutes"),
}

# Roles an admin may hand out; nobody can create an account more powerful than their own scope.
ASSIGNABLE_ROLES = tuple(Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a logged-in user or a machine token, bound to one unit."""

    kind: str  # "user" | "machine"
    id: int
    name: str
    unit_id: int
    unit_code: str
    role: Role | None = None  # users
    scopes: frozenset[str] = frozenset()  # machine tokens

    def can(self, permission: Permission) -> bool:
        if self.role is None:
            return False
        return permission in ROLE_PERMISSIONS[self.role]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def reaches(subtree_ids: Container[int], unit_id: int) -> bool:
    """The scope rule: a principal reaches a unit iff it lies in the principal's unit's subtree.

    ``subtree_ids`` is the principal's subtree (from the closure table). The ministry's users
    reach everything because every unit lies under the ministry.
    """
    return unit_id in subtree_ids


def parse_role(raw: str) -> Role | None:
    try:
        return Role(raw.strip().lower())
    except ValueError:
        return None
