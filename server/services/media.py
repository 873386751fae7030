"""Media on the server's side: which bridge serves a site, the short-lived join tokens that let it
play the programme from that bridge (and publish when it holds the floor), and the connection
health the bridges report.

The server never touches media. A site asks ``GET /api/meetings/{id}/media`` and gets the URL of
the bridge of its nearest unit up the tree that has one (setting ``bridges``), a join token signed
with the media key (bridges hold that key, not the server's own), and the ICE servers. Bridges
talk to the server over the ordinary websocket ``/ws`` with a machine token of scope ``bridge``:
they subscribe to ``meeting:<id>`` (floor changes), ``join``/``leave`` for the sites they serve
(the roll call), and send ``stats`` (published as ``health`` events to the consoles).

Each bridge has its own key (derived from the media root and its unit code): a site's join token
is signed with the key of the bridge that serves it, and a bridge that cascades asks the server
for its upstream's tokens over the control channel (``cascade_token``) — holding one bridge's key
mints tokens for no other bridge.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.live.wire import dumps
from server.services.deps import Deps
from server.settings import Settings, parse_bridges, parse_ice_servers
from sessions import join_tokens
from sessions.errors import Forbidden, ValidationFailed
from sessions.meetings import OPEN_STATES, STATE_LABEL_VI, WrongState
from sessions.roles import Permission, Principal
from sessions.store import live, units
from sessions.unit_tree import UnitView

MEDIA_KEY_LABEL = b"hoinghi media join tokens v1"
STAT_FIELDS = {"rtt_ms": 10_000.0, "loss": 1.0, "kbps": 1_000_000.0, "fps": 240.0}
MAX_STATS = 500
LAYERS = (None, "high", "low", "audio")  # the rendition a site gets (issue #16); None: no video player


def media_root(settings: Settings) -> bytes:
    """The root of the bridges' keys: ``media_secret``, else derived from the server's key. Only
    the server holds it; each bridge holds its own key (:func:`bridge_key`)."""
    own = settings.media_secret.reveal()
    if own:
        return own.encode()
    return hmac.new(settings.signing_key(), MEDIA_KEY_LABEL, hashlib.sha256).hexdigest().encode()


def bridge_key(settings: Settings, unit: str) -> bytes:
    """The key of the bridge of ``unit``: it checks the join tokens signed for it, and can mint
    tokens for no other bridge (``hoinghi bridge-key --unit <code>`` prints it for its machine)."""
    return join_tokens.bridge_key(media_root(settings), unit)


async def serving_bridge(db: AsyncSession, bridges: dict[str, str], unit_id: int) -> tuple[str, str] | None:
    """(unit code, URL) of the bridge of the nearest unit from ``unit_id`` up to the root that has one."""
    if not bridges:
        return None
    for unit in reversed(await units.ancestors(db, unit_id)):
        url = bridges.get(unit.code)
        if url is not None:
            return unit.code, url
    return None


async def grant(deps: Deps, db: AsyncSession, settings: Settings, p: Principal, meeting_id: int,
                now: datetime, preview: str | None = None) -> dict[str, Any]:
    """What the caller's site needs to join the meeting's media (see docs/protocol.md); with
    ``preview`` (a unit code), a token that plays only that site's own video and sound."""
    from server.services import meetings as meeting_service

    meeting = await meeting_service.ensure_visible(db, p, meeting_id)
    chair = await meeting_service.is_chair_of(db, p, meeting)
    if not chair:
        if p.kind != "user" or not (p.can(Permission.OPERATE_SITE) or p.can(Permission.OPERATE_BRIDGE)):
            raise Forbidden("Tài khoản không vận hành điểm cầu", code="forbidden")
        if not await live.participating(db, meeting_id, {p.unit_id}):
            raise live.NotParticipant("Đơn vị của bạn không tham dự hội nghị này")
    if meeting.state not in OPEN_STATES:
        raise WrongState(f"Hội nghị đang ở trạng thái '{STATE_LABEL_VI[meeting.state]}': chưa có hình và tiếng",
                         state=meeting.state.value)
    if preview is not None:
        await _may_preview(db, p, meeting_id, preview, chair)
    ice = parse_ice_servers(settings.ice_servers)
    bridge = await serving_bridge(db, parse_bridges(settings.bridges), p.unit_id)
    out: dict[str, Any] = {"meeting": meeting_id, "unit": p.unit_code, "role": "chair" if chair else "site",
                           "ice_servers": ice, "bridge": None}
    if bridge is None:
        return out
    code, url = bridge
    ttl = timedelta(minutes=settings.join_token_minutes)
    token = join_tokens.issue(bridge_key(settings, code), meeting=meeting_id, unit=p.unit_code, role=out["role"],
                              bridge=code, now=now, ttl=ttl, view=preview)
    if preview is not None:
        out["preview"] = preview
    out.update({
        "bridge": {"unit": code, "url": url}, "token": token, "expires_at": (now + ttl).isoformat(),
        "whep": f"{url}/meetings/{meeting_id}/whep", "whip": f"{url}/meetings/{meeting_id}/whip",
        "may_publish": chair or meeting.floor_unit_id == p.unit_id, "state": meeting.state.value,
    })
    return out


async def _may_preview(db: AsyncSession, p: Principal, meeting_id: int, code: str, chair: bool) -> None:
    """The chair may preview any site taking part; an operator only a site below its own unit."""
    if not isinstance(code, str) or not code or len(code) > 40:
        raise ValidationFailed("Mã điểm cầu cần xem trước không hợp lệ", code="preview_invalid", field="preview")
    found = await units.ids_by_code(db, {code})
    if code not in found:
        raise ValidationFailed(f"Không có đơn vị mã '{code[:20]}'", code="preview_invalid", field="preview")
    unit_id = found[code]
    if not chair and (unit_id == p.unit_id or unit_id not in await units.subtree_ids(db, p.unit_id)):
        raise Forbidden("Chỉ chủ trì, hoặc điểm cầu cấp trên của đơn vị này, được xem trước hình của đơn vị",
                        code="forbidden")
    if not await live.participating(db, meeting_id, {unit_id}):
        raise live.NotParticipant("Đơn vị này không tham dự hội nghị")


async def cascade_token(settings: Settings, db: AsyncSession, p: Principal, meeting_id: int, unit_code: str,
                        upstream_code: str, now: datetime) -> dict[str, Any]:
    """A ``bridge`` token for the bridge of ``upstream_code`` (an ancestor of the asking bridge's
    unit), for ``unit_code`` (the bridge itself, which plays the upstream's programme, or a site of
    its subtree that holds the floor and is published up), in an open meeting both take part in."""
    from server.services import meetings as meeting_service

    _require_bridge(p, "yêu cầu mã chuyển tiếp")
    if upstream_code == p.unit_code or upstream_code not in {u.code for u in await units.ancestors(db, p.unit_id)}:
        raise Forbidden("Điểm cầu cấp trên phải là đơn vị cấp trên của bridge này", code="upstream_invalid")
    meeting = await meeting_service.ensure_visible(db, p, meeting_id)
    if meeting.state not in OPEN_STATES:
        raise WrongState(f"Hội nghị đang ở trạng thái '{STATE_LABEL_VI[meeting.state]}': chưa chuyển tiếp",
                         state=meeting.state.value)
    if unit_code != p.unit_code:
        await _reach(db, p, meeting_id, [unit_code])  # a site of this bridge's subtree, taking part
    ttl = timedelta(minutes=settings.join_token_minutes)
    token = join_tokens.issue(bridge_key(settings, upstream_code), meeting=meeting_id, unit=unit_code, role="bridge",
                              bridge=upstream_code, now=now, ttl=ttl)
    return {"meeting": meeting_id, "unit": unit_code, "bridge": upstream_code,
            "token": token, "expires_at": (now + ttl).isoformat()}


def _stat(site: dict[str, Any], key: str) -> float | None:
    value = site.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not (
            0 <= value <= STAT_FIELDS[key]):
        raise ValidationFailed(f"Chỉ số '{key}' không hợp lệ", code="stats_invalid", field=key)
    return round(float(value), 3)


def health_level(stat: dict[str, Any]) -> str:
    """good / fair / poor, as a console colours it (loss and RTT, the two that users feel)."""
    loss, rtt = stat.get("loss") or 0.0, stat.get("rtt_ms") or 0.0
    if not stat.get("connected", True):
        return "down"
    if loss >= 0.05 or rtt >= 400:
        return "poor"
    if loss >= 0.01 or rtt >= 150:
        return "fair"
    return "good"


async def _reach(db: AsyncSession, p: Principal, meeting_id: int, codes: list[str]
                 ) -> dict[str, tuple[UnitView, list[int]]]:
    """The units ``codes`` with their paths (own id first, then ancestors), each of which must lie
    in the bridge's subtree and take part in the meeting."""
    reach = await units.subtree_ids(db, p.unit_id)
    tree = await units.unit_tree(db)
    by_code = {u.code: u for u in (tree.get(i) for i in reach) if u is not None}
    wanted = {by_code[c].id for c in codes if c in by_code}
    taking_part = await live.participating(db, meeting_id, wanted)
    out: dict[str, tuple[UnitView, list[int]]] = {}
    for code in codes:
        unit = by_code.get(code)
        if unit is None or unit.id not in taking_part:
            raise Forbidden(f"Điểm cầu '{code[:20]}' không thuộc phạm vi của bridge này trong hội nghị",
                            code="out_of_scope")
        path: list[int] = []
        up: UnitView | None = unit
        while up is not None:
            path.append(up.id)
            up = tree.get(up.parent_id) if up.parent_id is not None else None
        out[code] = (unit, path)
    return out


def _require_bridge(p: Principal, what: str) -> None:
    if not p.has_scope("bridge"):
        raise Forbidden(f"Chỉ điểm cầu (bridge) được gửi {what}", code="forbidden")


def _site_list(sites: object, code: str) -> list[dict[str, Any]]:
    if not isinstance(sites, list) or len(sites) > MAX_STATS:
        raise ValidationFailed(f"'sites' phải là danh sách tối đa {MAX_STATS} điểm cầu", code=code, field="sites")
    for site in sites:
        if not isinstance(site, dict) or not isinstance(site.get("unit"), str):
            raise ValidationFailed("Mỗi mục cần 'unit' (mã đơn vị)", code=code, field="unit")
    return sites


async def _publish_unordered(deps: Deps, meeting_id: int, kind: str, unit_id: int | None,
                             path: list[int], data: dict[str, Any]) -> None:
    header = {"m": meeting_id, "s": 0, "k": kind, "u": unit_id, "p": path}
    frame = {"type": "event", "meeting": meeting_id, "seq": 0, "kind": kind, "data": data}
    await deps.bus.publish(f"meeting.{meeting_id}", dumps(header) + b"\n" + dumps(frame))


async def report_stats(deps: Deps, db: AsyncSession, p: Principal, meeting_id: int,
                       sites: object, now: datetime) -> int:
    """A bridge's per-site figures → one ``health`` event per site, to the consoles watching it.
    Sites must lie in the bridge's subtree and take part in the meeting."""
    _require_bridge(p, "số liệu kết nối")
    rows: list[tuple[str, dict[str, Any]]] = []
    for site in _site_list(sites, "stats_invalid"):
        stat = {k: _stat(site, k) for k in STAT_FIELDS}
        stat["connected"] = bool(site.get("connected", True))
        layer = site.get("layer")
        if layer not in LAYERS:
            raise ValidationFailed("'layer' phải là 'high', 'low' hoặc 'audio'", code="stats_invalid", field="layer")
        stat["layer"] = layer
        rows.append((site["unit"], stat))
    if not rows:
        return 0
    reach = await _reach(db, p, meeting_id, [code for code, _ in rows])
    for code, stat in rows:
        unit, path = reach[code]
        data = {"unit_id": unit.id, "code": unit.code, **stat, "level": health_level(stat), "at": now.isoformat()}
        await _publish_unordered(deps, meeting_id, "health", unit.id, path, data)
    return len(rows)


async def report_speaking(deps: Deps, db: AsyncSession, p: Principal, meeting_id: int,
                          sites: object, now: datetime) -> int:
    """A bridge's speaking states (read from the RFC 6464 audio levels of what its sites send, never
    decoded) → one ``speaking`` event per site, to the consoles watching it (and the site itself)."""
    _require_bridge(p, "trạng thái phát biểu")
    rows: list[tuple[str, bool, int | None]] = []
    for site in _site_list(sites, "speaking_invalid"):
        speaking, level = site.get("speaking"), site.get("level")
        if not isinstance(speaking, bool) or not (
                level is None or (isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 127)):
            raise ValidationFailed("'speaking' phải là true/false, 'level' từ 0 đến 127 (-dBov)",
                                   code="speaking_invalid", field="speaking")
        rows.append((site["unit"], speaking, level))
    if not rows:
        return 0
    reach = await _reach(db, p, meeting_id, [code for code, _, _ in rows])
    for code, speaking, level in rows:
        unit, path = reach[code]
        data = {"unit_id": unit.id, "code": unit.code, "speaking": speaking, "level": level, "at": now.isoformat()}
        await _publish_unordered(deps, meeting_id, "speaking", unit.id, path, data)
    return len(rows)


async def report_on_air(deps: Deps, db: AsyncSession, p: Principal, meeting_id: int, msg: dict[str, Any],
                        now: datetime) -> None:
    """The bridge that serves the chair says whose media the programme carries now: the floor
    holder is "on air" once its picture or sound actually reaches the programme, not when granted."""
    from server.services import meetings as meeting_service

    _require_bridge(p, "trạng thái lên sóng")
    meeting = await meeting_service.ensure_visible(db, p, meeting_id)
    if not await units.is_within(db, p.unit_id, meeting.chair_unit_id):
        raise Forbidden("Chỉ bridge phục vụ chủ trì báo trạng thái lên sóng", code="forbidden")
    code = msg.get("unit")
    video, audio = msg.get("video", False), msg.get("audio", False)
    if not (code is None or isinstance(code, str)) or not isinstance(video, bool) or not isinstance(audio, bool):
        raise ValidationFailed("'unit' là mã đơn vị hoặc null; 'video', 'audio' là true/false",
                               code="on_air_invalid", field="unit")
    unit_id: int | None = None
    name = None
    if code is not None:
        unit, _path = (await _reach(db, p, meeting_id, [code]))[code]
        unit_id, name = unit.id, unit.name
    data = {"unit_id": unit_id, "code": code, "name": name, "video": video, "audio": audio, "at": now.isoformat()}
    await _publish_unordered(deps, meeting_id, "on_air", unit_id, [], data)
