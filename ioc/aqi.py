"""The air-quality index of one station: VN_AQI (Decision 1459/QĐ-TCMT) and,
as a second scale, the US EPA AQI with its 2024 PM table.

Hourly means in, index values out; no I/O, no clock. Per pollutant the
caller gives the station's hourly means in µg/m³ in time order, oldest
first, the last one being the current hour (the decision's c1); ``None`` is
an hour without a valid mean. A mean labelled 01:00 covers 00:00-01:00.

Rules (``docs/sensors.md``, "Air quality index"):

- Sub-index: linear interpolation in the segment that holds the
  concentration C (the decision's formulas 1 and 2),
  ``I = (I_{i+1} - I_i) / (BP_{i+1} - BP_i) * (C - BP_i) + I_i``.
  Above the top breakpoint the sub-index is 500 (the decision's last row
  reads "≥"), flagged ``above_scale``; O3 8-hour has no index above 400.
- NowCast (PM): over the last 12 hours, w* = Cmin / Cmax of the hours
  present, w = 1/2 if w* <= 1/2 else w*, NowCast = sum(w^(i-1) c_i) /
  sum(w^(i-1)) over the hours present; none unless at least 2 of c1..c3
  are present.
- Hourly index: NowCast for PM, the current hour for O3, NO2, SO2, CO.
  Daily index: PM as the mean of the day's hours, NO2, SO2, CO as the
  highest hour, O3 as the larger of the highest-hour and highest-8-hour
  sub-indices. A daily value needs 18 of its 24 hours, an 8-hour mean 6 of
  its 8.
- The index is the largest sub-index rounded half up (50.5 gives 51), and
  exists only if PM2.5 or PM10 has a sub-index: otherwise ``None``, "no
  data", never 0.
- US EPA scale: PM2.5 and PM10 only, the same NowCast, the concentration
  truncated (PM2.5 to 0.1, PM10 to 1 µg/m³) before the lookup.

Arithmetic is exact: a mean counts as the decimal it prints as (``str``),
so a sub-index that is 50.5 by hand is 50.5 here, and 2.3 truncates to 2.3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from ioc.aqi_tables import (
    PARTICLES,
    POLLUTANTS,
    TABLES,
    VN_O3_8H,
    AqiScale,
    Band,
    BreakpointTable,
    Pollutant,
    band_of,
)

Hours = Mapping[Pollutant, Sequence[float | None]]

NOWCAST_HOURS = 12
DAY_HOURS = 24
# The decision sets no coverage; 75% is common practice (EPA: 18 of 24 hours
# for a daily value, 6 of 8 for an 8-hour mean).
DAY_COVERAGE = 18
EIGHT_HOURS = 8
EIGHT_HOUR_COVERAGE = 6
HALF = Fraction(1, 2)
ZERO = Fraction(0)


class Averaging(StrEnum):
    NOWCAST = "nowcast"
    HOUR_1 = "1h"
    HOURS_8 = "8h"
    HOURS_24 = "24h"


@dataclass(frozen=True)
class SubIndex:
    """The index of one pollutant (the decision's AQIx), before rounding."""

    pollutant: Pollutant
    averaging: Averaging
    # µg/m³ as looked up; on the EPA scale after truncation
    concentration: float
    index: float
    # hourly means the concentration was computed from
    hours: int
    # above the table's top breakpoint: the index is 500
    above_scale: bool


@dataclass(frozen=True)
class AqiValue:
    """The index of one station for an hour or a day."""

    scale: AqiScale
    index: int
    band: Band
    dominant: Pollutant
    # in the order of POLLUTANTS; pollutants without data are absent
    sub_indices: tuple[SubIndex, ...]

    def sub_index(self, pollutant: Pollutant) -> SubIndex | None:
        return next((s for s in self.sub_indices if s.pollutant == pollutant), None)


# A sub-index with its exact value, which the rounding and the maximum use.
_Found = tuple[Fraction, SubIndex]


def hourly_index(hours: Hours, scale: AqiScale = AqiScale.VN) -> AqiValue | None:
    """The index of the current hour (the last value of each sequence): PM
    from the NowCast of its last 12 hours, O3, NO2, SO2 and CO from the
    current hour. ``None`` when neither PM2.5 nor PM10 has a NowCast.
    Pollutants the scale does not use are ignored."""
    tables = TABLES[scale]
    found: list[_Found] = []
    for pollutant in POLLUTANTS:
        table, values = tables.get(pollutant), hours.get(pollutant)
        if table is None or not values:
            continue
        exact = _exact(values)
        sub: _Found | None = None
        if pollutant in PARTICLES:
            now = _nowcast(exact)
            if now is not None:
                sub = _sub_index(pollutant, Averaging.NOWCAST, table, *now)
        elif exact[-1] is not None:
            sub = _sub_index(pollutant, Averaging.HOUR_1, table, exact[-1], 1)
        if sub is not None:
            found.append(sub)
    return _combine(scale, found)


def daily_index(hours: Hours, scale: AqiScale = AqiScale.VN) -> AqiValue | None:
    """The index of a day. The last 24 values of each sequence are the day's
    hourly means, the hours ending 01:00 to 24:00 local time (the decision's
    day, 01:00 to 00:00 of the next day); for O3 up to 7 values before them
    (the previous day's last hours) complete the day's first 8-hour means.
    ``None`` when neither PM2.5 nor PM10 has 18 hours."""
    tables = TABLES[scale]
    found: list[_Found] = []
    for pollutant in POLLUTANTS:
        table, values = tables.get(pollutant), hours.get(pollutant)
        if table is None or values is None:
            continue
        if len(values) < DAY_HOURS:
            raise ValueError(f"{pollutant}: a day has {DAY_HOURS} hourly means, not {len(values)}")
        exact = _exact(values)
        day = [c for c in exact[-DAY_HOURS:] if c is not None]
        sub: _Found | None = None
        if pollutant is Pollutant.O3:
            sub = _daily_ozone(table, exact)
        elif len(day) < DAY_COVERAGE:
            continue
        elif pollutant in PARTICLES:
            mean = sum(day, ZERO) / len(day)
            sub = _sub_index(pollutant, Averaging.HOURS_24, table, mean, len(day))
        else:
            sub = _sub_index(pollutant, Averaging.HOUR_1, table, max(day), len(day))
        if sub is not None:
            found.append(sub)
    return _combine(scale, found)


def nowcast(hours: Sequence[float | None]) -> float | None:
    """The NowCast of a PM pollutant's hourly means (time order, the last
    the current hour), µg/m³; ``None`` unless 2 of the 3 most recent hours
    have a mean."""
    now = _nowcast(_exact(hours))
    return None if now is None else float(now[0])


def index_of(concentration: float, table: BreakpointTable) -> float | None:
    """The sub-index of a concentration in a table, before rounding; ``None``
    above a table that has no index there (O3 8-hour above 400 µg/m³)."""
    found = _lookup(table, _decimal(concentration))
    return None if found is None else float(found[1])


def _exact(hours: Sequence[float | None]) -> list[Fraction | None]:
    return [None if value is None else _decimal(value) for value in hours]


def _decimal(value: float) -> Fraction:
    if not math.isfinite(value):
        raise ValueError(f"hourly mean {value!r} is not a concentration")
    # A slightly negative mean is the monitor's zero drift: clean air.
    return max(Fraction(str(value)), ZERO)


def _nowcast(hours: Sequence[Fraction | None]) -> tuple[Fraction, int] | None:
    """The NowCast and the number of hours it was computed from."""
    recent_first = list(reversed(hours[-NOWCAST_HOURS:]))
    if sum(c is not None for c in recent_first[:3]) < 2:
        return None
    present = [(age, c) for age, c in enumerate(recent_first) if c is not None]
    highest = max(c for _, c in present)
    if highest == 0:
        return ZERO, len(present)
    weight = max(min(c for _, c in present) / highest, HALF)
    weighted = sum((weight**age * c for age, c in present), ZERO)
    return weighted / sum((weight**age for age, _ in present), ZERO), len(present)


def _daily_ozone(table: BreakpointTable, hours: Sequence[Fraction | None]) -> _Found | None:
    """The larger of the highest-hour and highest-8-hour sub-indices."""
    day = [c for c in hours[-DAY_HOURS:] if c is not None]
    candidates: list[_Found | None] = []
    if len(day) >= DAY_COVERAGE:
        candidates.append(_sub_index(Pollutant.O3, Averaging.HOUR_1, table, max(day), len(day)))
    means = _eight_hour_means(hours)
    if len(means) >= DAY_COVERAGE:
        mean, count = max(means)
        candidates.append(_sub_index(Pollutant.O3, Averaging.HOURS_8, VN_O3_8H, mean, count))
    present = [c for c in candidates if c is not None]
    return max(present, key=lambda found: found[0]) if present else None


def _eight_hour_means(hours: Sequence[Fraction | None]) -> list[tuple[Fraction, int]]:
    """The day's 8-hour means that have 6 of their 8 hours, each with its
    number of hours: one per hour of the day, over that hour and the 7
    before it (the decision's worked example: 24 means a day)."""
    means: list[tuple[Fraction, int]] = []
    for end in range(len(hours) - DAY_HOURS, len(hours)):
        window = [c for c in hours[max(0, end + 1 - EIGHT_HOURS) : end + 1] if c is not None]
        if len(window) >= EIGHT_HOUR_COVERAGE:
            means.append((sum(window, ZERO) / len(window), len(window)))
    return means


def _lookup(table: BreakpointTable, concentration: Fraction) -> tuple[Fraction, Fraction] | None:
    """The concentration as looked up and its sub-index."""
    if table.truncate_to is not None:
        concentration = math.floor(concentration / table.truncate_to) * table.truncate_to
    for segment in table.segments:
        if concentration <= segment.high:
            slope = Fraction(segment.index_high - segment.index_low) / (segment.high - segment.low)
            return concentration, slope * (concentration - segment.low) + segment.index_low
    if table.index_above_top is None:
        return None
    return concentration, Fraction(table.index_above_top)


def _sub_index(
    pollutant: Pollutant,
    averaging: Averaging,
    table: BreakpointTable,
    concentration: Fraction,
    hours: int,
) -> _Found | None:
    found = _lookup(table, concentration)
    if found is None:
        return None
    looked_up, index = found
    above_scale = looked_up > table.top
    sub = SubIndex(pollutant, averaging, float(looked_up), float(index), hours, above_scale)
    return index, sub


def _combine(scale: AqiScale, found: Sequence[_Found]) -> AqiValue | None:
    if not any(sub.pollutant in PARTICLES for _, sub in found):
        return None
    # max() keeps the first of equals: ties go to the earlier pollutant.
    highest, dominant = max(found, key=lambda f: f[0])
    # "làm tròn thành số nguyên": half up, not Python's round-half-to-even.
    index = math.floor(highest + HALF)
    return AqiValue(scale, index, band_of(index), dominant.pollutant, tuple(s for _, s in found))
