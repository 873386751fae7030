"""Who may reach what, and who did it: the scope check, the audit actor of a principal, and the one
place machine tokens are minted. No web framework here: services, HTTP handlers, the CLI, the demo
and the benchmarks share it."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from sessions import signing
from sessions.errors import Forbidden, ValidationFailed
from sessions.roles import Principal
from sessions.store import audit, units
from sessions.store import auth as auth_store
from sessions.values import reject_controls

MACHINE_TOKEN_TYPE = "machine"
MACHINE_SCOPES = {
    "units:read": "Đọc cây đơn vị trong phạm vi",
    "bridge": "Điểm cầu (bridge) kết nối máy chủ",
    "kpi:write": "Gửi số liệu chỉ tiêu",
}


def actor_of(principal: Principal) -> audit.Actor:
    return audit.Actor(principal.kind, principal.id, principal.name, principal.unit_id)


async def ensure_reaches(db: AsyncSession, principal: Principal, unit_id: int) -> None:
    """Refuse with 403 unless ``unit_id`` lies in the principal's subtree."""
    if not await units.is_within(db, principal.unit_id, unit_id):
        raise Forbidden("Đơn vị này nằm ngoài phạm vi của bạn", code="out_of_scope")


async def mint_machine_token(db: AsyncSession, *, key: bytes, max_days: int, now: datetime, name: str, unit_id: int,
                             scopes: frozenset[str], days: int, created_by_id: int | None) -> tuple[int, str]:
    """Create a machine token (stored by the digest of its secret) and return (id, token): the one
    place tokens are minted, for the admin pages and API, the CLI and the demo's bridges."""
    name = reject_controls(name, "name", label="Tên gọi của mã truy cập").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("Tên gọi của mã truy cập phải có 1–100 ký tự", code="token_name_invalid")
    unknown = scopes - set(MACHINE_SCOPES)
    if not scopes or unknown:
        raise ValidationFailed(f"Phạm vi quyền không hợp lệ: {', '.join(sorted(unknown)) or '(trống)'}; "
                               f"chọn trong {', '.join(MACHINE_SCOPES)}", code="token_scope_invalid")
    if not (1 <= days <= max_days):
        raise ValidationFailed(f"Số ngày hiệu lực phải từ 1 đến {max_days}", code="token_ttl_invalid")
    expires_at = now + timedelta(days=days)
    tid = await auth_store.add_machine_token(db, name=name, unit_id=unit_id, scopes=scopes, expires_at=expires_at,
                                             created_by_id=created_by_id)
    token = signing.sign(key, MACHINE_TOKEN_TYPE, {"tid": tid, "n": secrets.token_urlsafe(12)}, expires_at)
    await auth_store.set_token_secret(db, tid, token)
    return tid, token
