"""The shell answers: health, login page, anonymous redirects."""

from __future__ import annotations

from tests.conftest import LiveServer


async def test_health_and_login_page(live: LiveServer) -> None:
    http = live.client()
    resp = await http.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"ok": True, "status": "ok", "degraded": False, "database": "ok", "bus": "local"}
    page = await (await http.get("/login")).text()
    assert "Đăng nhập" in page and 'lang="vi"' in page


async def test_chair_sees_ministry_and_provinces(live: LiveServer) -> None:
    chair = await live.login("chutri")
    page = await (await chair.get("/")).text()
    assert "Bộ Công an" in page
    assert "Chủ trì hội nghị" in page
    for name in ("Thành phố Hà Nội", "Phú Thọ", "Thành phố Hồ Chí Minh"):
        assert name in page
