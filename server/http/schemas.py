"""JSON schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses) shared by the routes' declarations
(server.http.contract) and published under ``components/schemas`` of ``/api/openapi.json``.

Answers are described by what a client may rely on: the fields listed are always present with
these types; objects may grow new fields (no ``additionalProperties: false`` on answers)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
MAX_ID = 2**63 - 1  # the database's BIGINT

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema] | None = None, optional: dict[str, Schema] | None = None,
        closed: bool = False) -> Schema:
    """An object with these fields (``required`` always present); ``closed`` refuses others."""
    out: Schema = {"type": "object", "properties": {**(required or {}), **(optional or {})}}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def array(items: Schema, max_items: int | None = None) -> Schema:
    out: Schema = {"type": "array", "items": items}
    if max_items is not None:
        out["maxItems"] = max_items
    return out


LEVEL: Schema = {"type": "string", "enum": ["central", "province", "district", "commune"]}
ROLE: Schema = {"type": "string", "enum": ["admin", "chair", "bridge_operator", "site_operator", "viewer"]}
SCOPE: Schema = {"type": "string", "enum": ["units:read", "bridge", "kpi:write"]}
MEETING_STATE: Schema = {"type": "string", "enum": ["scheduled", "rehearsal", "live", "concluded", "cancelled"]}

COMPONENTS: dict[str, Schema] = {
    "Error": obj({"error": obj({"code": STR, "message": STR})}),
    "Ok": obj({"ok": {"const": True}}),
    "Unit": obj({"id": INT, "code": STR, "name": STR, "level": LEVEL, "parent_id": nullable(INT)}),
    "UnitRef": nullable(obj({"id": INT, "code": STR, "name": STR, "level": LEVEL})),
    "User": obj({"id": INT, "username": STR, "full_name": STR, "role": ROLE, "unit_code": STR, "unit_name": STR,
                 "is_active": BOOL}),
    "Token": obj({"id": INT, "name": STR, "unit_code": STR, "scopes": array(SCOPE), "created_at": TIME,
                  "expires_at": TIME, "revoked_at": nullable(TIME), "status": STR}),
    "Meeting": obj({"id": INT, "title": STR, "agenda": array(STR), "scheduled_start": TIME, "state": MEETING_STATE,
                    "chair_unit": obj({"id": INT, "code": STR, "name": STR}),
                    "selectors": array(obj({"unit": STR, "levels": array(LEVEL)}))}),
    "KpiCounts": obj({"accepted": INT, "duplicates": INT, "corrected": INT}),
    "Assignment": obj({"id": INT, "directive_id": INT, "unit": ref("UnitRef"), "depth": INT, "role": STR,
                       "percent": INT, "due_at": TIME, "completed_at": nullable(TIME), "bucket": STR,
                       "days_overdue": INT}),
    "Directive": obj({"id": INT, "meeting_id": nullable(INT), "conclusion_id": nullable(INT),
                      "parent_assignment_id": nullable(INT), "assigner_unit": ref("UnitRef"), "text": STR,
                      "deadline": STR, "priority": STR, "lead_unit": ref("UnitRef"), "created_by": STR,
                      "created_at": TIME}),
    "Created": obj({"id": INT, "assignments": INT, "assignment_ids": {"type": "object",
                                                                      "additionalProperties": INT}}),
}

# Request bodies: what the server reads (other fields are ignored, as the handlers do).
DIRECTIVE_IN: Schema = obj({"text": STR, "deadline": STR}, {
    "units": array(STR), "every": obj({"unit": STR, "level": LEVEL}), "priority": STR, "lead": STR,
    "require_children_done": BOOL})
