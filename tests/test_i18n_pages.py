"""The meetings list and scheduling form, the home page's figures link and the minutes
correction form in English; the same pages unchanged in Vietnamese; the minutes document itself
stays Vietnamese in both (it is the official record)."""

from __future__ import annotations

from tests.conftest import Client, LiveServer
from tests.test_minutes_flow import concluded_meeting

MEETINGS_VI = ["Lên lịch hội nghị mới", "Bắt đầu (giờ Việt Nam)", "Thời gian bắt đầu (giờ Việt Nam)",
               "Đơn vị (tìm theo tên)", "Tỉnh/Thành phố", "Lên lịch</button>", "Biên bản</a>"]
MEETINGS_EN = ["Schedule a new meeting", "Starts (Vietnam time)", "Start time (Vietnam time)", "Unit (search by name)",
               "Province", "Schedule</button>", "Minutes</a>", "Concluded"]
CORRECTION_VI = ["Đính chính biên bản", "Chức danh người chủ trì", "Lý do đính chính (bắt buộc)"]
CORRECTION_EN = ["Correct the minutes", "Chair&#39;s title", "Reason for the correction (required)"]


async def _page(client: Client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, (path, resp.status)
    text = await resp.text()
    return text.split('id="i18n-js"', 1)[0] + text.split("</script>", 1)[-1]  # not the embedded catalog


async def _english(srv: LiveServer, user: str) -> Client:
    client = await srv.login(user)
    assert (await client.get("/lang/en?next=/")).status == 303
    return client


async def test_meetings_home_and_correction_form_in_both_languages(live_sqlite: LiveServer) -> None:
    mid, chair = await concluded_meeting(live_sqlite)
    vi_list = await _page(chair, "/meetings")
    assert all(label in vi_list for label in MEETINGS_VI), [x for x in MEETINGS_VI if x not in vi_list]
    assert "Đã kết thúc" in vi_list
    vi_minutes = await _page(chair, f"/meetings/{mid}/minutes")
    assert all(label in vi_minutes for label in CORRECTION_VI)

    en = await _english(live_sqlite, "chutri")
    en_list = await _page(en, "/meetings")
    assert all(label in en_list for label in MEETINGS_EN), [x for x in MEETINGS_EN if x not in en_list]
    assert not [x for x in MEETINGS_VI if x in en_list]
    assert "Hội nghị giao ban Đề án 06 tháng 8" in en_list  # the title is data
    home = await _page(en, "/")
    assert "Indicator figures of Bộ Công an" in home and "Số liệu chỉ tiêu" not in home
    en_minutes = await _page(en, f"/meetings/{mid}/minutes")
    assert all(label in en_minutes for label in CORRECTION_EN), [x for x in CORRECTION_EN if x not in en_minutes]
    assert not [x for x in CORRECTION_VI if x in en_minutes]
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in en_minutes.upper()  # the record itself stays Vietnamese
