"""The demo's concluded meeting: the seed report's conference of 17 August 2022
(../shared/seed/de-an-06-hoi-nghi-2022-08.txt) as the system would have recorded it — roll call,
floor, KPI snapshot, the minister's conclusion and his three instructions to every provincial
police due 31/12/2022, Phú Thọ's breakdown of the second one to two of its wards (Vĩnh Yên and
Phúc Yên, which were Vĩnh Phúc's when the report was written), progress that puts assignments in
all four buckets, and the published minutes. Created once; later runs find it by title.

Everything goes through the same store functions the routes use, with the clock set to the
moment each thing happened.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from sessions.directives import AssigneeSpec, DirectiveInput, Priority
from sessions.meetings import MeetingState
from sessions.store import audit, backfill, kpi_snapshots, meetings, units
from sessions.store import directives as directive_store
from sessions.store import minutes as minutes_store
from sessions.units import Level

TITLE = ("Hội nghị trực tuyến toàn quốc sơ kết 6 tháng triển khai Đề án 06 theo chức năng của lực lượng "
         "Công an (17/8/2022)")
START = datetime(2022, 8, 17, 7, 0, tzinfo=UTC)  # 14:00 in Hà Nội
END = datetime(2022, 8, 17, 9, 30, tzinfo=UTC)
DUE = date(2022, 12, 31)
CHAIR_NAME, CHAIR_TITLE = "Tô Lâm", "Bộ trưởng"
CONCLUSION = ("Đánh giá cao nỗ lực của công an các đơn vị, địa phương trong triển khai Đề án 06; còn 10 nhiệm vụ "
              "đang bị chậm tiến độ so với kế hoạch đã đề ra; chưa có sự thống nhất về quy trình quản lý, kết nối và "
              "chia sẻ dữ liệu số trong lực lượng CAND.")
# The minister's closing instructions, verbatim from the seed report.
INSTRUCTIONS = (
    "Từ nay đến cuối năm, các đơn vị trong lực lượng công an tiếp tục tham mưu lãnh đạo Bộ chỉ đạo, hướng dẫn "
    "các địa phương số hóa hồ sơ, kết quả giải quyết thủ tục hành chính, phục vụ kết nối, chia sẻ để các bộ, ban, "
    "ngành tái sử dụng; bảo đảm người dân không phải khai báo lại các giấy tờ, kết quả đã số hóa khi thực hiện các "
    "thủ tục hành chính trên cổng dịch vụ công Bộ Công an.",
    "Công an các địa phương chủ động tập huấn cho CBCS trực tiếp xử lý hồ sơ về quy trình thực hiện số hóa, phân loại "
    "nguồn số hóa, bảo đảm quy định về an ninh an toàn, bảo mật thông tin cá nhân; bố trí hai luồng nộp hồ sơ gồm "
    "“Luồng nộp trực tuyến” và “Luồng nộp trực tiếp”. Bố trí cán bộ hướng dẫn khi người dân đến nộp trực tiếp.",
    "Toàn ngành đẩy mạnh tuyên truyền kết quả thực hiện cũng như vai trò, ý nghĩa quan trọng của Đề án 06 để người "
    "dân nắm rõ, thực hiện, đồng hành cùng lực lượng công an trong thực hiện các thủ tục hành chính, góp phần thực "
    "hiện thành công chương trình chuyển đổi số quốc gia.",
)
BREAKDOWN = "Bố trí cán bộ hướng dẫn khi người dân đến nộp trực tiếp tại trụ sở Công an phường."
BREAKDOWN_UNITS = ("08707", "08740")  # Phường Vĩnh Yên, Phường Phúc Yên (Phú Thọ)
SPEAKERS = (("01", 10), ("25", 8), ("79", 7))  # province, minutes at the floor
ABSENT = {"Mất điện lưới khu vực, không kết nối được": 3, "Đường truyền gián đoạn": 2}


async def load(db: AsyncSession, ministry_code: str) -> int:
    """Create the concluded seed meeting (the caller's transaction); returns its id."""
    found = await meetings.latest_titled(db, TITLE)
    if found is not None:
        return found
    ministry = await units.get_by_code(db, ministry_code)
    mid = await meetings.schedule(db, title=TITLE, agenda=[
        "Báo cáo sơ kết 6 tháng triển khai Đề án 06", "Phát biểu của các điểm cầu", "Kết luận của Bộ trưởng"],
        start=START, chair_unit_id=ministry.id, created_by_id=None,
        selectors=[meetings.Selector(ministry_code, (Level.PROVINCE, Level.COMMUNE))])
    actor = audit.Actor("cli", name="demo")
    for target in (MeetingState.REHEARSAL, MeetingState.LIVE):
        await meetings.change_state(db, mid, target, at=START, by_user_id=None, by_name="demo")
    await kpi_snapshots.freeze(db, mid, "live", START)
    await _roll_call(db, mid)
    await _floor(db, mid)

    cid = await directive_store.add_conclusion(db, mid, CONCLUSION, actor, END - timedelta(minutes=10))
    every = AssigneeSpec(every_under=ministry_code, every_level=Level.PROVINCE)
    made = [await directive_store.create_directive(
        db, cid, DirectiveInput(text, DUE, Priority.URGENT, every, True), actor=actor, now=END - timedelta(minutes=9))
        for text in INSTRUCTIONS]
    await meetings.change_state(db, mid, MeetingState.CONCLUDED, at=END, by_user_id=None, by_name="demo")
    await kpi_snapshots.freeze(db, mid, "concluded", END)
    await minutes_store.freeze(db, mid, END, "demo", chair_name=CHAIR_NAME, chair_title=CHAIR_TITLE)
    await _follow_up(db, made, actor)
    return mid


async def _roll_call(db: AsyncSession, mid: int) -> None:
    """Every site present online for the whole meeting but a few absent with their reasons."""
    seats = await backfill.seats(db, mid)
    absent: dict[int, str] = {}
    communes = [uid for uid, code in seats if len(code) == 5]
    pick = iter(communes[7::97])
    for reason, count in ABSENT.items():
        for _ in range(count):
            absent[next(pick)] = reason
    present = [uid for uid, _code in seats if uid not in absent]
    await backfill.roll_call(db, mid, present, absent, START, END, "demo")


async def _floor(db: AsyncSession, mid: int) -> None:
    at = START + timedelta(minutes=45)
    for code, minutes in SPEAKERS:
        unit = await units.get_by_code(db, code)
        await backfill.floor_turn(db, mid, unit.id, at, at + timedelta(minutes=minutes), "demo")
        at += timedelta(minutes=minutes + 2)


async def _follow_up(db: AsyncSession, made: list[directive_store.Created], actor: audit.Actor) -> None:
    """After the meeting: Phú Thọ breaks instruction 2 down; progress and completions spread the
    assignments over the four buckets (as seen today)."""
    ids = {u.code: u.id for u in await units.subtree(db, (await units.get_by_code(db, "25")).id)}
    phutho = ids["25"]
    training = made[1].assignment_ids[phutho]
    sep = datetime(2022, 9, 5, 2, 0, tzinfo=UTC)
    wards = tuple(code for code in BREAKDOWN_UNITS if code in ids)
    if wards:
        await directive_store.break_down(
            db, training, DirectiveInput(BREAKDOWN, date(2022, 10, 31), Priority.URGENT,
                                         AssigneeSpec(units=wards, lead=wards[0]), True),
            actor=audit.Actor("cli", name="Công an tỉnh Phú Thọ"), now=sep)
        child = await backfill.assignment_of(db, wards[0], depth=1)
        await directive_store.report_progress(db, child, text="Đã bố trí 2 cán bộ hướng dẫn tại bộ phận một cửa.",
                                              percent=100, files=[], actor=actor, now=sep + timedelta(days=20))
        await directive_store.complete(db, child, actor=actor, now=sep + timedelta(days=20))
    await directive_store.report_progress(db, training, text="Đã tập huấn 1.250 lượt CBCS; đang bố trí hai luồng "
                                          "nộp hồ sơ tại các phường.", percent=70, files=[], actor=actor,
                                          now=sep + timedelta(days=30))
    # The others: Hà Nội finished instruction 1 on time, Hồ Chí Minh City late; the rest still open.
    for code, index, when in (("01", 0, datetime(2022, 12, 20, 3, 0, tzinfo=UTC)),
                              ("79", 0, datetime(2023, 1, 12, 3, 0, tzinfo=UTC)),
                              ("01", 2, datetime(2022, 11, 30, 3, 0, tzinfo=UTC))):
        unit_id = (await units.get_by_code(db, code)).id
        aid = made[index].assignment_ids.get(unit_id)
        if aid is None:
            continue
        await directive_store.report_progress(db, aid, text="Đã hoàn thành theo kế hoạch.", percent=100, files=[],
                                              actor=actor, now=when)
        await directive_store.complete(db, aid, actor=actor, now=when)
