"""The seed meeting of 17 August 2022 (../shared/seed/de-an-06-hoi-nghi-2022-08.txt) as test data:
the minister's closing instructions, the Vĩnh Phúc units that break one down, and helpers that
start a server whose injected clock stands at the meeting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from demo import directives as demo_directives
from server.db import transaction
from server.state import DB
from sessions.store import units as units_store
from sessions.store import users as users_store
from sessions.units import Level, UnitRow
from tests.conftest import _HASH, Client, FakeClock, LiveServer
from tests.live_util import set_state

# 15:00 on 17/8/2022 in Hà Nội: the minister concludes.
MEETING_AT = datetime(2022, 8, 17, 8, 0, tzinfo=UTC)
DUE = "2022-12-31"

# The closing instructions of Đại tướng Tô Lâm, verbatim from the seed report (one copy, shared with
# the demo). The tree holds territorial units only, so "các đơn vị trong lực lượng công an",
# "Công an các địa phương" and "Toàn ngành" all reach every provincial police.
INSTRUCTIONS = demo_directives.INSTRUCTIONS
CONCLUSION = demo_directives.CONCLUSION
# Colonel Đinh Ngọc Khoa's follow-up at the Vĩnh Phúc bridge: the province breaks instruction 2 down.
VP_PLAN = ("Công an các đơn vị, địa phương khẩn trương xây dựng kế hoạch, cụ thể hóa chỉ đạo của Bộ trưởng; chỉ rõ "
           "những việc chưa làm được và đề ra giải pháp, ấn định thời gian thực hiện.")
VP_GUIDES = "Bố trí cán bộ hướng dẫn khi người dân đến nộp trực tiếp tại trụ sở Công an phường."

# Vĩnh Phúc (legacy province 26) with three of its district-level units and two wards of Vĩnh Yên.
VINH_PHUC = [
    UnitRow("26", "Tỉnh Vĩnh Phúc", Level.PROVINCE, "BCA"),
    UnitRow("243", "Thành phố Vĩnh Yên", Level.DISTRICT, "26"),
    UnitRow("244", "Thành phố Phúc Yên", Level.DISTRICT, "26"),
    UnitRow("246", "Huyện Lập Thạch", Level.DISTRICT, "26"),
    UnitRow("08710", "Phường Tích Sơn", Level.COMMUNE, "243"),
    UnitRow("08713", "Phường Liên Bảo", Level.COMMUNE, "243"),
]
VP_ACCOUNTS = {"vinhphuc": ("bridge_operator", "26"), "tp_vinhyen": ("site_operator", "243"),
               "phucyen": ("site_operator", "244"), "lapthach": ("site_operator", "246"),
               "tichson": ("site_operator", "08710"), "lienbao": ("site_operator", "08713"),
               "xem_vinhphuc": ("viewer", "26")}
PROVINCES = ("01", "25", "26", "79")


async def add_vinh_phuc(live: LiveServer) -> None:
    async with transaction(live.app[DB]) as db:
        await units_store.import_units(db, list(VINH_PHUC))
        for username, (role, code) in VP_ACCOUNTS.items():
            unit = await units_store.get_by_code(db, code)
            await users_store.create_user(db, username=username, full_name=username, password_hash=_HASH,
                                          unit_id=unit.id, role=role)


async def start_seed_server(server_factory: Callable[..., Any], db_url: str, **overrides: Any) -> LiveServer:
    """A server at the meeting's hour, whose sessions outlive the months the test walks through."""
    live: LiveServer = await server_factory(db_url, FakeClock(MEETING_AT), session_ttl_minutes=1_000_000,
                                            **overrides)
    await add_vinh_phuc(live)
    return live


async def live_meeting(chair: Client) -> int:
    resp = await chair.api("POST", "/api/meetings", json={
        "title": "Hội nghị trực tuyến toàn quốc sơ kết 6 tháng triển khai Đề án 06",
        "agenda": ["Báo cáo sơ kết", "Thảo luận", "Kết luận của Bộ trưởng"], "start": "2022-08-17T14:00:00+07:00",
        "participants": [{"unit": "BCA", "levels": ["province", "district", "commune"]}]})
    assert resp.status == 201, await resp.text()
    meeting_id = int((await resp.json())["meeting"]["id"])
    await set_state(chair, meeting_id, "rehearsal", "live")
    return meeting_id


def every_province(text: str, deadline: str = DUE, **extra: Any) -> dict[str, Any]:
    return {"text": text, "deadline": deadline, "every": {"unit": "BCA", "level": "province"}, **extra}


async def ok(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, f"{resp.method} {resp.url.path}: {resp.status} {body}"
    return body


async def refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert (resp.status, body.get("error", {}).get("code")) == (status, code), \
        f"{resp.method} {resp.url.path}: {resp.status} {body}"
    return dict(body["error"])
