"""KPI rules: the indicator catalog, roll-up arithmetic and status colours. Plain Python.

Roll-up is additive: a unit's value for a period is its own reports plus the sum of its
children's. A ratio rolls up as Σ numerators ÷ Σ denominators at every level — never as an
average of the children's ratios (a commune with 3 dossiers must not weigh like a city with
30,000).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sessions.errors import ValidationFailed
from sessions.units import Level, deepest_first
from sessions.values import reject_controls


class Kind(StrEnum):
    COUNT = "count"
    RATIO = "ratio"


class Direction(StrEnum):
    HIGHER = "higher"  # higher is better
    LOWER = "lower"


class Colour(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    NONE = "none"  # no data, or no thresholds


@dataclass(frozen=True, slots=True)
class Thresholds:
    """For ``higher`` indicators: green ≥ green_at, amber ≥ amber_at, else red (reversed for
    ``lower``). Ratios are compared as fractions (0.95 = 95 %)."""

    green_at: float
    amber_at: float


# One report's value (or denominator): a count of dossiers, people or tasks of one unit in one
# period. A billion is far above any real figure, and 10,000 reports a batch at that bound still
# sum far below 2**63 (the BIGINT totals of the commune, the province and the nation stay exact).
MAX_VALUE = 10**9


@dataclass(frozen=True, slots=True)
class Indicator:
    code: str
    name: str
    kind: Kind
    unit: str
    direction: Direction = Direction.HIGHER
    target: float | None = None
    thresholds: Thresholds | None = None
    by_level: Mapping[str, Thresholds] = field(default_factory=dict)
    period: str = "campaign"  # month | quarter | campaign (to date)
    max_value: int = MAX_VALUE  # the largest value (and denominator) one report may carry

    def thresholds_for(self, level: str) -> Thresholds | None:
        return self.by_level.get(level, self.thresholds)


@dataclass(frozen=True, slots=True)
class Value:
    """Additive pair: counts use ``num`` only; ratios are num ÷ den."""

    num: int = 0
    den: int = 0

    def __add__(self, other: Value) -> Value:
        return Value(self.num + other.num, self.den + other.den)

    def __sub__(self, other: Value) -> Value:
        return Value(self.num - other.num, self.den - other.den)

    def ratio(self) -> float | None:
        return self.num / self.den if self.den else None


def _bound(ind: Indicator, x: int, fld: str) -> None:
    limit = ind.max_value
    if x > limit:
        what = "mẫu số" if fld == "denominator" else "giá trị"
        shown = f"{limit:,}".replace(",", ".")  # Vietnamese thousands separator
        raise ValidationFailed(f"{ind.code} ({ind.name}): {what} vượt giới hạn {shown}", code="value_too_large",
                               field=fld, limit=limit)


def validate_value(ind: Indicator, num: int, den: int | None) -> Value:
    """A report's figures as a Value: integers (not bool, float, text, list), not negative, at
    most the indicator's bound; a ratio's numerator at most its denominator (0–100 %)."""
    if isinstance(num, bool) or not isinstance(num, int):
        raise ValidationFailed(f"{ind.code}: giá trị phải là số nguyên", code="value_invalid", field="value")
    if num < 0:
        raise ValidationFailed(f"{ind.code}: giá trị không được âm", code="value_negative", field="value")
    _bound(ind, num, "value")
    if ind.kind is Kind.COUNT:
        if den not in (None, 0):
            raise ValidationFailed(f"{ind.code}: chỉ tiêu đếm không có mẫu số", code="denominator_unexpected",
                                   field="denominator")
        return Value(num, 0)
    if den is None or isinstance(den, bool) or not isinstance(den, int):
        raise ValidationFailed(f"{ind.code}: cần mẫu số (số nguyên)", code="denominator_required",
                               field="denominator")
    if den < 0:
        raise ValidationFailed(f"{ind.code}: mẫu số không được âm", code="value_negative", field="denominator")
    _bound(ind, den, "denominator")
    if num > den:
        raise ValidationFailed(f"{ind.code}: tử số ({num}) lớn hơn mẫu số ({den})", code="numerator_above_denominator",
                               field="value")
    return Value(num, den)


def display(ind: Indicator, v: Value) -> float | None:
    return v.ratio() if ind.kind is Kind.RATIO else float(v.num)


def colour(ind: Indicator, v: Value, level: str) -> Colour:
    t = ind.thresholds_for(level)
    x = display(ind, v)
    if t is None or x is None:
        return Colour.NONE
    if ind.direction is Direction.HIGHER:
        return Colour.GREEN if x >= t.green_at else Colour.AMBER if x >= t.amber_at else Colour.RED
    return Colour.GREEN if x <= t.green_at else Colour.AMBER if x <= t.amber_at else Colour.RED


def rollup(parent_of: Mapping[int, int | None], own: Mapping[int, Value]) -> dict[int, Value]:
    """Full roll-up of one indicator/period: every unit's own value plus all descendants'.
    Children are summed into parents in order of decreasing depth (no recursion)."""
    total = {uid: own.get(uid, Value()) for uid in parent_of}
    for uid in deepest_first(parent_of):
        parent = parent_of[uid]
        if parent is not None:
            total[parent] = total[parent] + total[uid]
    return total


def apply_delta(totals: dict[int, Value], ancestors_and_self: Iterable[int], delta: Value) -> None:
    """Incremental: one report changes its unit and each ancestor by the same delta."""
    for uid in ancestors_and_self:
        totals[uid] = totals.get(uid, Value()) + delta


def rank(values: Mapping[int, float | None], direction: Direction) -> dict[int, int]:
    """1-based competition rank among siblings; units with no data rank last."""
    known = sorted(((x, u) for u, x in values.items() if x is not None),
                   key=lambda p: -p[0] if direction is Direction.HIGHER else p[0])
    out: dict[int, int] = {}
    prev: float | None = None
    place = 0
    for i, (x, u) in enumerate(known, 1):
        if x != prev:
            place, prev = i, x
        out[u] = place
    for u, maybe in values.items():
        if maybe is None:
            out[u] = len(values)
    return out


CATALOG: tuple[Indicator, ...] = (
    Indicator("DVC_TIEP_NHAN", "Hồ sơ dịch vụ công trực tuyến tiếp nhận", Kind.COUNT, "hồ sơ"),
    Indicator("DVC_GIAI_QUYET", "Hồ sơ đã giải quyết", Kind.COUNT, "hồ sơ"),
    Indicator("DVC_DUNG_HAN", "Hồ sơ trả kết quả đúng hạn", Kind.COUNT, "hồ sơ"),
    Indicator("DVC_TY_LE_DUNG_HAN", "Tỷ lệ hồ sơ giải quyết đúng hạn", Kind.RATIO, "%", target=0.95,
              thresholds=Thresholds(0.95, 0.90)),
    Indicator("CU_TRU_TRUC_TUYEN", "Hồ sơ đăng ký cư trú trực tuyến / tổng số", Kind.RATIO, "%", target=0.8,
              thresholds=Thresholds(0.80, 0.60)),
    Indicator("HO_CHIEU_TRUC_TUYEN", "Hồ sơ cấp hộ chiếu phổ thông trực tuyến / tổng số", Kind.RATIO, "%",
              target=0.9, thresholds=Thresholds(0.90, 0.70)),
    Indicator("DVC_HOAN_THANH", "Dịch vụ công trực tuyến hoàn thành / kế hoạch", Kind.RATIO, "%", target=1.0,
              thresholds=Thresholds(1.0, 0.75)),
    Indicator("NV_CHAM_TIEN_DO", "Nhiệm vụ chậm tiến độ", Kind.COUNT, "nhiệm vụ", direction=Direction.LOWER,
              target=0, thresholds=Thresholds(0, 5), by_level={"commune": Thresholds(0, 1)}),
    Indicator("NV_HOAN_THANH", "Nhiệm vụ hoàn thành / tổng số", Kind.RATIO, "%", target=1.0,
              thresholds=Thresholds(0.9, 0.7)),
)
CATALOG_BY_CODE = {i.code: i for i in CATALOG}
# Figures of one unit and period that bound each other, as (part, whole): the part never exceeds
# the whole (dossiers resolved ≤ received, resolved on time ≤ resolved ≤ received).
RELATED: tuple[tuple[str, str], ...] = (("DVC_GIAI_QUYET", "DVC_TIEP_NHAN"), ("DVC_DUNG_HAN", "DVC_GIAI_QUYET"),
                                        ("DVC_DUNG_HAN", "DVC_TIEP_NHAN"))
RELATED_CODES = frozenset(code for pair in RELATED for code in pair)


def contradictions(own: Mapping[str, int]) -> list[tuple[str, str]]:
    """The (part, whole) pairs of ``RELATED`` that ``own`` (one unit's figures for one period, by
    indicator code; an indicator without a report is absent) contradicts."""
    return [(part, whole) for part, whole in RELATED if part in own and whole in own and own[part] > own[whole]]


class Catalog:
    """The indicators in force: the built-in Đề án 06 ones first, then those an admin added (in the
    order they were added). Immutable; the store builds a new one when the table changes."""

    __slots__ = ("by_code", "items")

    def __init__(self, extra: Iterable[Indicator] = ()) -> None:
        self.items: tuple[Indicator, ...] = CATALOG + tuple(extra)
        self.by_code: dict[str, Indicator] = {i.code: i for i in self.items}

    def get(self, code: object) -> Indicator | None:
        return self.by_code.get(code) if isinstance(code, str) else None

    def __iter__(self) -> Iterator[Indicator]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self.by_code


BUILTIN = Catalog()
LEVELS = tuple(level.value for level in Level)

SPEC_FIELDS = ("code", "name", "kind", "unit", "direction", "target", "green_at", "amber_at", "period",
               "level_thresholds")
PERIODS = {"month": "tháng", "quarter": "quý", "campaign": "từ đầu đợt tới nay"}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
_LEVEL_T = re.compile(r"^\s*([a-z]+)\s*=\s*([0-9.,]+)\s*/\s*([0-9.,]+)\s*$")
_DECIMAL = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?\Z", re.ASCII)


def _number(raw: str, fld: str, label: str, percent: bool) -> float | None:
    text = raw.strip().replace(",", ".").rstrip("%").strip()
    if not text:
        return None
    try:
        if not _DECIMAL.match(text):  # float() would read "١٢٣", "1e3", "nan" and "inf" too
            raise ValueError(text)
        x = float(text)
    except ValueError:
        raise ValidationFailed(f"{label}: '{raw}' không phải là số", code="kpi_indicator_invalid",
                               field=fld) from None
    if not math.isfinite(x) or x < 0:
        raise ValidationFailed(f"{label}: phải là số không âm", code="kpi_indicator_invalid", field=fld)
    if percent:
        if x > 100:
            raise ValidationFailed(f"{label}: tỷ lệ không quá 100 %", code="kpi_indicator_invalid", field=fld)
        return x / 100
    return x


def indicator_from_spec(spec: Mapping[str, str], taken: Iterable[str] = ()) -> Indicator:
    """A new indicator from the admin's form or file (all values as text; ratios' target and
    thresholds in percent). ``level_thresholds``: ``commune=90/80; province=95/90``.
    Raises ValidationFailed naming the field."""
    unknown = sorted(set(spec) - set(SPEC_FIELDS))
    if unknown:
        raise ValidationFailed(f"Cột không được hỗ trợ: {', '.join(unknown)}", code="kpi_indicator_invalid",
                               field=unknown[0])

    def text(fld: str) -> str:
        value = spec.get(fld) or ""
        return reject_controls(value, fld).strip() if isinstance(value, str) else str(value)

    code = text("code").upper()
    if not _CODE.match(code):
        raise ValidationFailed("Mã chỉ tiêu: 2–32 ký tự A–Z, 0–9 hoặc _, bắt đầu bằng chữ",
                               code="kpi_indicator_invalid", field="code")
    if code in set(taken) or code in BUILTIN:
        raise ValidationFailed(f"Mã chỉ tiêu '{code}' đã có trong danh mục", code="kpi_indicator_exists",
                               field="code")
    name = text("name")
    if not name or len(name) > 255:
        raise ValidationFailed("Tên chỉ tiêu: bắt buộc, tối đa 255 ký tự", code="kpi_indicator_invalid",
                               field="name")
    try:
        kind = Kind(text("kind") or "count")
    except ValueError:
        raise ValidationFailed("Loại chỉ tiêu: count (đếm) hoặc ratio (tỷ lệ)", code="kpi_indicator_invalid",
                               field="kind") from None
    unit = text("unit") or ("%" if kind is Kind.RATIO else "")
    if not unit or len(unit) > 32:
        raise ValidationFailed("Đơn vị tính: bắt buộc, tối đa 32 ký tự", code="kpi_indicator_invalid",
                               field="unit")
    try:
        direction = Direction(text("direction") or "higher")
    except ValueError:
        raise ValidationFailed("Chiều đánh giá: higher (càng cao càng tốt) hoặc lower (càng thấp càng tốt)",
                               code="kpi_indicator_invalid", field="direction") from None
    period = text("period") or "campaign"
    if period not in PERIODS:
        raise ValidationFailed("Kỳ: month, quarter hoặc campaign", code="kpi_indicator_invalid", field="period")
    pct = kind is Kind.RATIO
    target = _number(text("target"), "target", "Mục tiêu", pct)

    def pair(green_raw: str, amber_raw: str, fld: str) -> Thresholds | None:
        green = _number(green_raw, fld, "Ngưỡng đạt", pct)
        amber = _number(amber_raw, fld, "Ngưỡng gần đạt", pct)
        if green is None and amber is None:
            return None
        if green is None or amber is None:
            raise ValidationFailed("Cần cả ngưỡng đạt và ngưỡng gần đạt", code="kpi_indicator_invalid", field=fld)
        if (direction is Direction.HIGHER and amber > green) or (direction is Direction.LOWER and amber < green):
            raise ValidationFailed("Ngưỡng gần đạt phải nằm phía kém hơn ngưỡng đạt", code="kpi_indicator_invalid",
                                   field=fld)
        return Thresholds(green, amber)

    thresholds = pair(text("green_at"), text("amber_at"), "green_at")
    by_level: dict[str, Thresholds] = {}
    for part in filter(None, (p.strip() for p in text("level_thresholds").split(";"))):
        m = _LEVEL_T.match(part)
        if m is None or m.group(1) not in LEVELS:
            raise ValidationFailed(f"Ngưỡng theo cấp '{part}': dạng commune=90/80; cấp: {', '.join(LEVELS)}",
                                   code="kpi_indicator_invalid", field="level_thresholds")
        t = pair(m.group(2), m.group(3), "level_thresholds")
        assert t is not None
        by_level[m.group(1)] = t
    return Indicator(code, name, kind, unit, direction, target, thresholds, by_level, period)
