"""The seed meeting (Đề án 06, 17/8/2022) as minutes inputs, parsed from the seed report itself.

The report lives in ``shared/seed/`` beside the repository (``HOINGHI_SEED_DIR`` overrides).
Figures, the title, the chair and the minister's closing instructions are read from its text;
only what the report does not say (exact hours, the attendance list) is filled in here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

SEED_NAME = "de-an-06-hoi-nghi-2022-08.txt"
DEADLINE = date(2022, 12, 31)  # "từ nay đến cuối năm"


# The seed report, copied from the project's shared seed folder so the tests stand on their own.
SEED_FILE = Path(__file__).resolve().parent / "data" / SEED_NAME


def seed_path() -> Path:
    return SEED_FILE


def _number(text: str) -> int:
    return int(text.replace(".", ""))


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentences(paragraph: str) -> list[str]:
    # Split after a full stop followed by a capital (Vietnamese capitals included).
    return [s.strip() for s in re.split(r"(?<=[.”])\s+(?=[A-ZĐÂĂÊÔƠƯÁÀẢÃẠ])", paragraph) if s.strip()]


def seed_inputs(text: str) -> dict[str, Any]:
    """Keyword arguments for ``build_minutes`` carrying the seed report's meeting."""
    paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
    opening = next(p for p in paragraphs if "tổ chức hội nghị" in p)
    title = re.search(r"tổ chức (hội nghị .+?)\.", opening)
    assert title, "seed: no meeting title"
    chair = re.search(r"(Đại tướng) ([^,]+), .*?(Bộ trưởng) (Bộ Công an) chủ trì", opening)
    assert chair, "seed: no chair"

    figures = re.search(r"tiếp nhận trực tuyến ([\d.]+) hồ sơ, giải quyết ([\d.]+) hồ sơ, trong đó trả kết quả "
                        r"đúng hạn ([\d.]+) hồ sơ", text)
    services = re.search(r"hoàn thành (\d+)/(\d+) dịch vụ công", text)
    residence = re.search(r"tiếp nhận tổng số ([\d.]+)/([\d.]+) hồ sơ trực tuyến về đăng ký quản lý cư trú", text)
    passports = re.search(r"tiếp nhận tổng số ([\d.]+)/([\d.]+) hồ sơ trực tuyến về cấp hộ chiếu", text)
    late = re.search(r"còn (\d+) nhiệm vụ đang bị chậm tiến độ", text)
    assert figures and services and residence and passports and late, "seed: figures not found"
    kpis = [
        {"code": "DVC_TIEP_NHAN", "name": "Hồ sơ dịch vụ công trực tuyến tiếp nhận", "unit": "hồ sơ",
         "num": _number(figures[1]), "den": None, "phase": "concluded", "scope": "Toàn quốc"},
        {"code": "DVC_TY_LE_DUNG_HAN", "name": "Hồ sơ trả kết quả đúng hạn", "unit": "%",
         "num": _number(figures[3]), "den": _number(figures[2]), "phase": "concluded", "scope": "Toàn quốc"},
        {"code": "DVC_HOAN_THANH", "name": "Dịch vụ công trực tuyến hoàn thành theo Đề án 06", "unit": "dịch vụ",
         "num": _number(services[1]), "den": _number(services[2]), "phase": "concluded", "scope": "Bộ Công an"},
        {"code": "CU_TRU_TRUC_TUYEN", "name": "Hồ sơ đăng ký quản lý cư trú trực tuyến", "unit": "%",
         "num": _number(residence[1]), "den": _number(residence[2]), "phase": "live", "scope": "Vĩnh Phúc"},
        {"code": "HO_CHIEU_TRUC_TUYEN", "name": "Hồ sơ cấp hộ chiếu phổ thông trực tuyến", "unit": "%",
         "num": _number(passports[1]), "den": _number(passports[2]), "phase": "live", "scope": "Vĩnh Phúc"},
        {"code": "NHIEM_VU_CHAM", "name": "Nhiệm vụ chậm tiến độ", "unit": "nhiệm vụ",
         "num": _number(late[1]), "den": None, "phase": "concluded", "scope": "Toàn quốc"},
    ]

    assessment = next(p for p in paragraphs if p.startswith("Kết luận hội nghị,"))
    request = next(p for p in paragraphs if p.startswith("Bộ trưởng yêu cầu,"))
    local = next(p for p in paragraphs if p.startswith("Công an các địa phương chủ động"))
    first = re.sub(r"^Bộ trưởng yêu cầu, từ nay đến cuối năm, các đơn vị trong lực lượng công an ", "", request)
    local_sentences = _sentences(re.sub(r"^Công an các địa phương ", "", local))
    assert len(local_sentences) == 3, local_sentences
    units_of_ministry = "Các đơn vị trong lực lượng Công an nhân dân"
    provinces = "Công an các tỉnh, thành phố trực thuộc Trung ương"
    directives_ministry = [{"text": _sentence_case(first), "assignees": [units_of_ministry],
                            "lead": units_of_ministry, "deadline": DEADLINE, "priority": "urgent"}]
    directives_local = [
        {"text": _sentence_case(local_sentences[0]), "assignees": [provinces], "lead": provinces,
         "deadline": DEADLINE},
        {"text": local_sentences[1], "assignees": [provinces], "deadline": DEADLINE},
        {"text": _sentence_case(re.sub(r"^Toàn ngành ", "", local_sentences[2])),
         "assignees": [units_of_ministry, provinces], "lead": units_of_ministry,
         "cooperating": ["Báo Công an nhân dân"], "deadline": DEADLINE},
    ]
    start = datetime(2022, 8, 17, 7, 0, tzinfo=UTC)  # "Chiều 17/8": 14:00 in Hà Nội
    end = datetime(2022, 8, 17, 10, 30, tzinfo=UTC)
    return {
        "title": _sentence_case(title[1]),
        "started_at": start,
        "ended_at": end,
        "chair": {"name": chair[2], "title": chair[3], "unit": chair[4]},
        "agency": "Bộ Công an",
        "symbol": "TB-BCA",
        "place": "Hà Nội",
        "venue": "trực tuyến từ điểm cầu Bộ Công an đến điểm cầu Công an các tỉnh, thành phố và Công an cấp xã",
        "attendance": [
            {"unit_code": "BCA", "unit_name": "Bộ Công an", "level": "central", "status": "present_in_person"},
            {"unit_code": "26", "unit_name": "Công an tỉnh Vĩnh Phúc", "level": "province",
             "status": "present_online", "parent": "Bộ Công an"},
            {"unit_code": "01", "unit_name": "Công an thành phố Hà Nội", "level": "province",
             "status": "present_online", "parent": "Bộ Công an"},
            {"unit_code": "08707", "unit_name": "Công an phường Liên Bảo", "level": "commune",
             "status": "present_online", "parent": "Công an tỉnh Vĩnh Phúc"},
            {"unit_code": "08716", "unit_name": "Công an xã Đạo Tú", "level": "commune", "status": "absent",
             "reason": "Mất điện lưới", "parent": "Công an tỉnh Vĩnh Phúc"},
        ],
        "floor": [
            {"speaker": "Đại tá Đinh Ngọc Khoa", "unit_name": "Công an tỉnh Vĩnh Phúc",
             "started_at": datetime(2022, 8, 17, 8, 10, tzinfo=UTC), "ended_at": datetime(2022, 8, 17, 8, 22,
                                                                                          tzinfo=UTC)},
        ],
        "kpis": kpis,
        "conclusions": [
            {"text": assessment, "directives": directives_ministry},
            {"text": "Đối với công an các địa phương:", "directives": directives_local},
        ],
        "recipients": ["Các đồng chí Thứ trưởng", "Các đơn vị trực thuộc Bộ", "Công an các tỉnh, thành phố"],
        "signer": {"authority": "TL. BỘ TRƯỞNG", "title": "CHÁNH VĂN PHÒNG", "name": "Nguyễn Văn A"},
        "published_at": datetime(2022, 8, 19, 2, 0, tzinfo=UTC),
    }
