"""Benchmark: render the minutes (notice of conclusions) of a national meeting with 3,355 sites.

    python bench/minutes_pdf.py              # 3,355 sites (central + 34 provinces + 3,320 communes), 20 directives
    python bench/minutes_pdf.py --sites 10811 --rounds 1

The attendance, floor history, KPI snapshot and directives are synthetic but shaped like the
seed meeting. The figure is the median wall time of building the PDF bytes (fonts included) over
the rounds; DOCX is reported alongside. The last line is machine-readable:

    RESULT minutes_pdf_s=… minutes_docx_s=… minutes_pdf_pages=…
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.exports.fonts import find_serif_font
from server.exports.minutes_docx import render_docx
from server.exports.minutes_pdf import render_pdf
from sessions.minutes import Minutes, build_minutes

START = datetime(2022, 8, 17, 7, 0, tzinfo=UTC)
ABSENT_REASONS = ("Mất điện lưới", "Đường truyền gián đoạn do mưa bão", "Cán bộ đi công tác đột xuất",
                  "Thiết bị điểm cầu hỏng, đã báo Bộ phận kỹ thuật Công an tỉnh")
PRIORITIES = ("urgent", "normal", "normal", "very_urgent", "normal", "flash")


def synthetic_minutes(sites: int = 3355, directives: int = 20, provinces: int = 34) -> Minutes:
    """A concluded national meeting: central + ``provinces`` + communes up to ``sites`` rows."""
    attendance: list[dict[str, Any]] = [{"unit_code": "BCA", "unit_name": "Bộ Công an", "level": "central",
                                         "status": "present_in_person"}]
    province_names = [f"Công an tỉnh Số {p:02d}" for p in range(1, provinces + 1)]
    for p, name in enumerate(province_names, 1):
        attendance.append({"unit_code": f"P{p:02d}", "unit_name": name, "level": "province",
                           "status": "present_online", "parent": "Bộ Công an"})
    for i in range(sites - len(attendance)):
        parent = province_names[i % provinces]
        row: dict[str, Any] = {"unit_code": f"X{i:05d}", "unit_name": f"Công an phường Hòa Bình Số {i + 1}",
                               "level": "commune", "status": "present_online", "parent": parent}
        if i % 50 == 7:
            row.update(status="absent", reason=ABSENT_REASONS[i % len(ABSENT_REASONS)])
        elif i % 31 == 3:
            row["status"] = "present_in_person"
        elif i % 211 == 5:
            row["status"] = "not_called"
        attendance.append(row)
    floor = [{"speaker": f"Đại tá Nguyễn Văn Quyết {k}", "unit_name": province_names[k % provinces],
              "started_at": START + timedelta(minutes=20 + 6 * k),
              "ended_at": START + timedelta(minutes=25 + 6 * k)} for k in range(30)]
    kpis = [{"code": f"K{k}", "name": f"Tỷ lệ hồ sơ trực tuyến được giải quyết đúng hạn, nhóm {k}", "unit": "%",
             "num": 74_336 - k * 1000, "den": 74_587, "phase": "concluded" if k % 2 else "live",
             "scope": "Toàn quốc"} for k in range(9)]
    conclusions = []
    per = 4
    for c in range((directives + per - 1) // per):
        items = []
        for d in range(c * per, min(directives, (c + 1) * per)):
            # One directive to every province (a group), one to a dozen named ones, the rest to two.
            pair = [province_names[d % provinces], province_names[(d + 5) % provinces]]
            assignees = province_names if d == 0 else province_names[:12] if d == 1 else pair
            items.append({"assignee_group": "Công an các tỉnh, thành phố" if d == 0 else "",
                          "text": f"Chỉ đạo số {d + 1}: khẩn trương số hóa hồ sơ, kết quả giải quyết thủ tục hành "
                                  "chính; bảo đảm người dân không phải khai báo lại giấy tờ đã số hóa.",
                          "assignees": assignees, "lead": assignees[0], "deadline": date(2022, 12, 31),
                          "priority": PRIORITIES[d % len(PRIORITIES)]})
        conclusions.append({"text": f"Kết luận {c + 1}: đánh giá cao nỗ lực của công an các đơn vị, địa phương.",
                            "directives": items})
    return build_minutes(title="Hội nghị trực tuyến toàn quốc sơ kết 6 tháng triển khai Đề án 06",
                         started_at=START, ended_at=START + timedelta(hours=3, minutes=30),
                         chair={"name": "Tô Lâm", "title": "Bộ trưởng", "unit": "Bộ Công an"},
                         agency="Bộ Công an", symbol="TB-BCA", attendance=attendance, floor=floor, kpis=kpis,
                         conclusions=conclusions, recipients=["Các đồng chí Thứ trưởng", "Công an các tỉnh, thành phố"],
                         published_at=START + timedelta(days=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3355)
    parser.add_argument("--directives", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    doc = synthetic_minutes(args.sites, args.directives)
    font = find_serif_font()
    print(f"font: {font.family} ({font.files['']})")
    pdf_times, docx_times = [], []
    pdf = b""
    for _ in range(args.rounds):
        t = time.perf_counter()
        pdf = render_pdf(doc, font=font)
        pdf_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        render_docx(doc)
        docx_times.append(time.perf_counter() - t)
    from pypdf import PdfReader

    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    pdf_s, docx_s = statistics.median(pdf_times), statistics.median(docx_times)
    ok = "ok" if pdf_s < 10 else "OVER TARGET"
    print(f"{args.sites} sites, {args.directives} directives: PDF {pdf_s:.2f} s ({len(pdf) / 1e6:.1f} MB, "
          f"{pages} pages; target < 10 s: {ok}), DOCX {docx_s:.2f} s")
    print(f"RESULT minutes_pdf_s={pdf_s:.3f} minutes_docx_s={docx_s:.3f} minutes_pdf_pages={pages}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
