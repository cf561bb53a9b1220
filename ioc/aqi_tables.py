"""The published tables of the air-quality indices: pollutants, breakpoints
and bands.

- VN_AQI: Decision 1459/QĐ-TCMT (2019-11-12), Table 1 (bands) and Table 2
  (breakpoints, µg/m³, CO too). Its segments are continuous: a breakpoint is
  the top of one segment and the bottom of the next.
- US EPA AQI: the PM breakpoints as revised by the rule of 7 February 2024
  (in effect 6 May 2024). Its segments are stepped (9.0 then 9.1 µg/m³,
  index 50 then 51) and a concentration is truncated to the table's step
  before the lookup, so it always falls inside one segment.

``docs/sensors.md`` prints these tables beside their sources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction


class Pollutant(StrEnum):
    """Pollutants of the indices, named as the air-quality sensors' measures."""

    PM25 = "pm25"
    PM10 = "pm10"
    O3 = "o3"
    NO2 = "no2"
    SO2 = "so2"
    CO = "co"


# Order of the result's sub-indices; among equal sub-indices the first is dominant.
POLLUTANTS: tuple[Pollutant, ...] = tuple(Pollutant)
PARTICLES: frozenset[Pollutant] = frozenset({Pollutant.PM25, Pollutant.PM10})


class AqiScale(StrEnum):
    VN = "vn"
    US_EPA_2024 = "us-epa-2024"


@dataclass(frozen=True)
class Segment:
    """Concentrations ``low``..``high`` map linearly to ``index_low``..``index_high``."""

    low: Fraction
    high: Fraction
    index_low: int
    index_high: int


@dataclass(frozen=True)
class BreakpointTable:
    segments: tuple[Segment, ...]
    # The index of a concentration above the top breakpoint; None: no index.
    index_above_top: int | None
    # EPA: the concentration is truncated to a multiple of this before the lookup.
    truncate_to: Fraction | None = None

    @property
    def top(self) -> Fraction:
        return self.segments[-1].high


VN_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)


def _continuous(breakpoints: Sequence[int], index_above_top: int | None) -> BreakpointTable:
    points = [Fraction(p) for p in breakpoints]
    return BreakpointTable(
        segments=tuple(
            Segment(points[i], points[i + 1], VN_LEVELS[i], VN_LEVELS[i + 1])
            for i in range(len(points) - 1)
        ),
        index_above_top=index_above_top,
    )


def _stepped(ranges: Sequence[tuple[str, str]], truncate_to: str) -> BreakpointTable:
    indices = ((0, 50), (51, 100), (101, 150), (151, 200), (201, 300), (301, 500))
    return BreakpointTable(
        segments=tuple(
            Segment(Fraction(low), Fraction(high), index_low, index_high)
            for (low, high), (index_low, index_high) in zip(ranges, indices, strict=True)
        ),
        index_above_top=500,
        truncate_to=Fraction(truncate_to),
    )


# Decision 1459, Table 2. Its last row reads "≥1.200" etc. at level 500, so a
# concentration above the top breakpoint has index 500.
VN_PM25 = _continuous((0, 25, 50, 80, 150, 250, 350, 500), 500)
VN_PM10 = _continuous((0, 50, 150, 250, 350, 420, 500, 600), 500)
VN_O3_1H = _continuous((0, 160, 200, 300, 400, 800, 1000, 1200), 500)
# No levels above 400 µg/m³ (index 300); above that the decision computes no
# 8-hour index and the day's O3 index is the 1-hour one.
VN_O3_8H = _continuous((0, 100, 120, 170, 210, 400), None)
VN_CO = _continuous((0, 10000, 30000, 45000, 60000, 90000, 120000, 150000), 500)
VN_SO2 = _continuous((0, 125, 350, 550, 800, 1600, 2100, 2630), 500)
VN_NO2 = _continuous((0, 100, 200, 700, 1200, 2350, 3100, 3850), 500)

# The 1-hour (PM: NowCast or 24-hour) tables of each scale. On the EPA scale
# only PM counts: see docs/sensors.md for why O3, NO2, SO2 and CO are left out.
TABLES: Mapping[AqiScale, Mapping[Pollutant, BreakpointTable]] = {
    AqiScale.VN: {
        Pollutant.PM25: VN_PM25,
        Pollutant.PM10: VN_PM10,
        Pollutant.O3: VN_O3_1H,
        Pollutant.NO2: VN_NO2,
        Pollutant.SO2: VN_SO2,
        Pollutant.CO: VN_CO,
    },
    AqiScale.US_EPA_2024: {
        Pollutant.PM25: _stepped(
            (
                ("0.0", "9.0"),
                ("9.1", "35.4"),
                ("35.5", "55.4"),
                ("55.5", "125.4"),
                ("125.5", "225.4"),
                ("225.5", "325.4"),
            ),
            truncate_to="0.1",
        ),
        Pollutant.PM10: _stepped(
            (
                ("0", "54"),
                ("55", "154"),
                ("155", "254"),
                ("255", "354"),
                ("355", "424"),
                ("425", "604"),
            ),
            truncate_to="1",
        ),
    },
}


@dataclass(frozen=True)
class Band:
    """A band of index values with its names and colour (Decision 1459,
    Table 1; the EPA uses the same ranges and colours)."""

    name: str
    label_vi: str
    label_epa: str
    rgb: tuple[int, int, int]
    lowest: int
    highest: int


BANDS: tuple[Band, ...] = (
    Band("good", "Tốt", "Good", (0, 228, 0), 0, 50),
    Band("moderate", "Trung bình", "Moderate", (255, 255, 0), 51, 100),
    Band("poor", "Kém", "Unhealthy for Sensitive Groups", (255, 126, 0), 101, 150),
    Band("bad", "Xấu", "Unhealthy", (255, 0, 0), 151, 200),
    Band("very_bad", "Rất xấu", "Very Unhealthy", (143, 63, 151), 201, 300),
    Band("hazardous", "Nguy hại", "Hazardous", (126, 0, 35), 301, 500),
)


def band_of(index: int) -> Band:
    """The band of a rounded index, 0..500."""
    for band in BANDS:
        if band.lowest <= index <= band.highest:
            return band
    raise ValueError(f"index {index} is outside the scale 0..500")
