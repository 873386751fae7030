"""Dates, times and figures as a Vietnamese administrative document writes them (Decree
30/2020/NĐ-CP): "ngày 05 tháng 02 năm 2023", "14 giờ 05", "201.884", "99,66 %"."""

from __future__ import annotations

from datetime import date, datetime

from server.numbers import vn_number, vn_percent
from sessions.timezone import VN


def number_vi(n: int) -> str:
    """201884 → "201.884" (Vietnamese groups thousands with dots)."""
    return vn_number(n)


def percent_vi(x: float) -> str:
    """0.9966 → "99,66 %" (the one number format of the pages, server.numbers)."""
    return vn_percent(x * 100)


def date_words(d: date) -> str:
    """"ngày 05 tháng 02 năm 2023" / "ngày 19 tháng 8 năm 2022": Decree 30 pads days below 10
    and the months January and February with a zero."""
    month = f"{d.month:02d}" if d.month < 3 else str(d.month)
    return f"ngày {d.day:02d} tháng {month} năm {d.year}"


def deadline_vi(d: date) -> str:
    return f"trước ngày {d:%d/%m/%Y}"


def clock_vi(dt: datetime) -> str:
    local = dt.astimezone(VN)
    return f"{local.hour} giờ {local.minute:02d}"


def short_date_vi(dt: datetime) -> str:
    local = dt.astimezone(VN)
    return f"{local.day}/{local.month}/{local.year}"
