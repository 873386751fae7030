"""Minutes as a document: canonical JSON, versioned corrections, validation, and the PDF/DOCX
notices of conclusions checked through the text extracted from the files."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sessions import minutes as m
from sessions.errors import ValidationFailed
from sessions.meetings import Attendance
from sessions.units import Level
from tests.seed_minutes import DEADLINE, seed_inputs, seed_path

T0 = datetime(2022, 8, 17, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seed_text() -> str:
    path = seed_path()
    if path is None:
        pytest.skip("shared/seed/ not beside the repository (set HOINGHI_SEED_DIR)")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed_doc(seed_text: str) -> m.Minutes:
    return m.build_minutes(**seed_inputs(seed_text))


def small_inputs(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Hội nghị giao ban trực tuyến quý III",
        "started_at": T0,
        "ended_at": T0 + timedelta(hours=2),
        "chair": m.Chair(name="Nguyễn Văn Bình", title="Thứ trưởng", unit="Bộ Công an"),
        "agency": "Bộ Công an",
        "symbol": "TB-BCA",
        "attendance": [m.SiteAttendance("01", "Hà Nội", Level.PROVINCE, Attendance.PRESENT_ONLINE),
                       m.SiteAttendance("26", "Vĩnh Phúc", Level.PROVINCE, Attendance.ABSENT, reason="Mất kết nối")],
        "conclusions": [{"text": "Đẩy nhanh tiến độ.", "directives": [
            {"text": "Rà soát hồ sơ tồn đọng", "assignees": ["Hà Nội", "Vĩnh Phúc"], "lead": "Hà Nội",
             "deadline": "2022-12-31"}]}],
        "published_at": T0 + timedelta(days=1),
    }
    base.update(over)
    return base


# --- the document -----------------------------------------------------------------------------


def test_json_round_trip_is_canonical(seed_doc: m.Minutes) -> None:
    text = m.to_json(seed_doc)
    back = m.from_json(text)
    assert back == seed_doc
    assert m.to_json(back) == text
    assert m.content_hash(back) == m.content_hash(seed_doc)
    # Vietnamese kept as text (not \\u escapes), times in UTC, dates ISO.
    assert "Đề án 06" in text and "\\u" not in text
    assert '"started_at":"2022-08-17T07:00:00+00:00"' in text
    assert '"deadline":"2022-12-31"' in text


def test_same_content_same_hash_whatever_the_input_form() -> None:
    from_objects = m.build_minutes(**small_inputs())
    # Same content given as plain strings, another time zone, and decomposed Unicode (NFD).
    import unicodedata
    plain = small_inputs(started_at="2022-08-17T14:00:00+07:00", ended_at=(T0 + timedelta(hours=2)).isoformat(),
                         title=unicodedata.normalize("NFD", "  Hội nghị giao ban trực tuyến quý III "),
                         chair={"name": "Nguyễn Văn Bình", "title": "Thứ trưởng", "unit": "Bộ Công an"},
                         attendance=[{"unit_code": "01", "unit_name": "Hà Nội", "level": "province",
                                      "status": "present_online"},
                                     {"unit_code": "26", "unit_name": "Vĩnh Phúc", "level": "province",
                                      "status": "absent", "reason": "Mất kết nối"}])
    assert m.content_hash(m.build_minutes(**plain)) == m.content_hash(from_objects)


def test_seed_document_carries_the_report(seed_doc: m.Minutes) -> None:
    assert seed_doc.chair.name == "Tô Lâm" and seed_doc.chair.title == "Bộ trưởng"
    assert seed_doc.title.startswith("Hội nghị trực tuyến toàn quốc sơ kết 6 tháng triển khai Đề án 06")
    on_time = next(k for k in seed_doc.kpis if k.code == "DVC_TY_LE_DUNG_HAN")
    assert (on_time.num, on_time.den) == (74_336, 74_587)
    assert f"{on_time.value:.2%}" == "99.66%"
    assert len(seed_doc.directives) == 4
    assert all(d.deadline == DEADLINE for d in seed_doc.directives)
    assert seed_doc.issued_on == date(2022, 8, 19)
    levels = {s.level: s for s in m.attendance_by_level(seed_doc)}
    assert (levels[Level.COMMUNE].online, levels[Level.COMMUNE].absent) == (1, 1)
    assert m.total_attendance(seed_doc).total == len(seed_doc.attendance)


def test_correction_makes_a_new_version_and_keeps_the_old(seed_doc: m.Minutes) -> None:
    before_json = m.to_json(seed_doc)
    before_hash = m.content_hash(seed_doc)
    first = seed_doc.conclusions[1]
    fixed_directive = dataclasses.replace(first.directives[0], deadline=date(2022, 11, 30))
    changes = {"conclusions": [seed_doc.conclusions[0],
                               dataclasses.replace(first, directives=(fixed_directive, *first.directives[1:]))]}
    at = datetime(2022, 8, 20, 3, 0, tzinfo=UTC)
    v2 = m.correct(seed_doc, changes, "  Sửa thời hạn tập huấn theo ý kiến Văn phòng Bộ ", at=at)
    assert (v2.version, v2.correction_reason, v2.published_at) == (2, "Sửa thời hạn tập huấn theo ý kiến Văn phòng Bộ",
                                                                  at)
    assert v2.supersedes == before_hash
    assert v2.conclusions[1].directives[0].deadline == date(2022, 11, 30)
    assert m.content_hash(v2) != before_hash
    # The old version is untouched, byte for byte, and still frozen.
    assert m.to_json(seed_doc) == before_json and seed_doc.version == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed_doc.title = "khác"  # type: ignore[misc]
    # A second correction chains on the first.
    v3 = m.correct(v2, {"number": "125"}, "Cấp số văn bản", at=at + timedelta(hours=1))
    assert (v3.version, v3.supersedes, v3.number) == (3, m.content_hash(v2), "125")
    assert m.from_json(m.to_json(v3)) == v3


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_correction_needs_a_reason(seed_doc: m.Minutes, reason: Any) -> None:
    with pytest.raises(ValidationFailed) as err:
        m.correct(seed_doc, {"number": "1"}, reason, at=datetime(2022, 9, 1, tzinfo=UTC))
    assert err.value.code == "reason_required"
    assert "lý do" in err.value.message


def test_correction_refusals(seed_doc: m.Minutes) -> None:
    at = datetime(2022, 9, 1, tzinfo=UTC)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "no_changes"),
        ({"title": seed_doc.title}, "no_changes"),
        ({"version": 7}, "field_not_correctable"),
        ({"published_at": at}, "field_not_correctable"),
        ({"conclusions": [{"text": "x", "directives": [{"text": "y", "assignees": [], "deadline": "2022-12-31"}]}]},
         "assignee_required"),
    ]
    for changes, code in cases:
        with pytest.raises(ValidationFailed) as err:
            m.correct(seed_doc, changes, "lý do", at=at)
        assert err.value.code == code, changes
    with pytest.raises(ValidationFailed) as err:
        m.correct(seed_doc, {"number": "2"}, "lý do", at=datetime(2022, 8, 18, tzinfo=UTC))
    assert err.value.code == "correction_before_publish"
    draft = m.build_minutes(**small_inputs(published_at=None))
    with pytest.raises(ValidationFailed) as err:
        m.correct(draft, {"number": "2"}, "lý do", at=at)
    assert err.value.code == "not_published"


@pytest.mark.parametrize(("over", "code", "words"), [
    ({"title": "  "}, "title_required", "tên hội nghị"),
    ({"ended_at": T0 - timedelta(minutes=1)}, "time_order", "kết thúc"),
    ({"started_at": datetime(2022, 8, 17, 14, 0)}, "time_naive", "múi giờ"),
    ({"attendance": [{"unit_code": "26", "unit_name": "Vĩnh Phúc", "level": "province", "status": "absent"}]},
     "reason_required", "lý do"),
    ({"attendance": [{"unit_code": "26", "unit_name": "Vĩnh Phúc", "level": "tinh", "status": "absent"}]},
     "enum_invalid", "Cấp đơn vị"),
    ({"conclusions": [{"text": "a", "directives": [{"text": "b", "assignees": ["X"], "lead": "Y",
                                                   "deadline": "2022-12-31"}]}]}, "lead_invalid", "chủ trì"),
    ({"conclusions": [{"text": "a", "directives": [{"text": "b", "assignees": ["X"], "deadline": "2022-08-01"}]}]},
     "deadline_before_meeting", "trước ngày họp"),
    ({"conclusions": [{"text": "a", "directives": [{"text": " ", "assignees": ["X"], "deadline": "2022-12-31"}]}]},
     "directive_text_required", "Kết luận 1, chỉ đạo 1"),
    ({"kpis": [{"code": "K", "name": "Tỷ lệ", "unit": "%", "num": 5, "den": 3, "phase": "live"}]},
     "numerator_above_denominator", "tử số"),
    ({"kpis": [{"code": "K", "name": "Tỷ lệ", "unit": "%", "num": 1, "den": 3, "phase": "sau"}]},
     "enum_invalid", "Thời điểm"),
    ({"version": 2}, "reason_required", "lý do"),
    ({"colour": "red"}, "unknown_field", "colour"),
])
def test_bad_input_is_refused_in_vietnamese(over: dict[str, Any], code: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        m.build_minutes(**small_inputs(**over))
    assert err.value.code == code
    assert words in err.value.message


def test_from_json_refuses_garbage_and_other_schemas(seed_doc: m.Minutes) -> None:
    for text in ("{", "[]", m.to_json(seed_doc).replace('"schema":1', '"schema":99')):
        with pytest.raises(ValidationFailed):
            m.from_json(text)


def test_floor_durations_and_directive_order(seed_doc: m.Minutes) -> None:
    assert seed_doc.floor[0].duration == timedelta(minutes=12)
    texts = [d.text for d in seed_doc.directives]
    assert texts[0].startswith("Tiếp tục tham mưu lãnh đạo Bộ")
    assert re.search(r"“Luồng nộp trực tuyến” và “Luồng nộp trực tiếp”", texts[1])
