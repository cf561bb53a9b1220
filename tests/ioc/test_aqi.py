"""The air-quality index: worked examples computed by hand from the published
breakpoints (Decision 1459/QĐ-TCMT, Table 2; the EPA's 2024 PM table), the
arithmetic beside each case, and properties over random hours."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioc.aqi import (
    Averaging,
    Hours,
    daily_index,
    hourly_index,
    index_of,
    nowcast,
)
from ioc.aqi_tables import (
    BANDS,
    TABLES,
    VN_LEVELS,
    VN_O3_8H,
    AqiScale,
    BreakpointTable,
    Pollutant,
    band_of,
)

PM25, PM10, O3, NO2, SO2, CO = (
    Pollutant.PM25,
    Pollutant.PM10,
    Pollutant.O3,
    Pollutant.NO2,
    Pollutant.SO2,
    Pollutant.CO,
)
VN, EPA = AqiScale.VN, AqiScale.US_EPA_2024


def steady(c: float) -> list[float | None]:
    """Twelve equal hours: w* = 1, so the NowCast is c itself."""
    return [c] * 12


def index(hours: Hours, scale: AqiScale = VN) -> int:
    value = hourly_index(hours, scale)
    assert value is not None
    return value.index


# --- NowCast -------------------------------------------------------------
# Sequences are in time order: the last value is c1, the one before it c2.


def test_nowcast_of_steady_hours_is_their_mean() -> None:
    # w* = 40/40 = 1 -> w = 1: the plain mean of 12 hours, 40
    assert nowcast(steady(40)) == 40


def test_nowcast_with_w_star_exactly_one_half() -> None:
    # c1 = 40, c2 = 20: w* = 20/40 = 0.5 <= 1/2 -> w = 0.5
    # (40 + 0.5*20) / (1 + 0.5) = 50 / 1.5 = 33.333...
    assert nowcast([20, 40]) == pytest.approx(100 / 3)


def test_nowcast_with_w_star_below_one_half() -> None:
    # c1 = 10, c2 = 30, c3 = 50: w* = 10/50 = 0.2 -> w = 0.5
    # (10 + 0.5*30 + 0.25*50) / (1 + 0.5 + 0.25) = 37.5 / 1.75 = 21.428571...
    assert nowcast([50, 30, 10]) == pytest.approx(150 / 7)


def test_nowcast_with_w_star_above_one_half() -> None:
    # c1 = 30, c2 = 20: w* = 20/30 = 2/3 -> w = 2/3
    # (30 + 2/3*20) / (1 + 2/3) = (130/3) / (5/3) = 26
    assert nowcast([20, 30]) == pytest.approx(26)


def test_nowcast_weights_only_the_hours_present() -> None:
    # c1 = 20, c2 missing, c3 = 10, c6 = 40, others missing:
    # w* = 10/40 = 0.25 -> w = 0.5; powers by age 0, 2, 5: 1, 0.25, 0.03125
    # (20 + 0.25*10 + 0.03125*40) / (1 + 0.25 + 0.03125) = 23.75 / 1.28125 = 760/41 = 18.5366
    hours = [None] * 6 + [40, None, None, 10, None, 20]
    assert nowcast(hours) == pytest.approx(760 / 41)
    value = hourly_index({PM25: hours})
    assert value is not None
    sub = value.sub_index(PM25)
    assert sub is not None
    assert (sub.averaging, sub.hours) == (Averaging.NOWCAST, 3)
    # 760/41 in 0..25: 2 * 18.5366 = 37.07 -> 37
    assert value.index == 37


def test_nowcast_needs_two_of_the_three_most_recent_hours() -> None:
    full = [30.0] * 12
    # c1 present, c2 and c3 missing: no data, whatever the 9 older hours say
    assert nowcast([*full[:9], None, None, 30]) is None
    # c1 missing, c2 and c3 present: computed
    assert nowcast([*full[:9], 30, 30, None]) == 30
    assert nowcast([30]) is None
    assert nowcast([]) is None


def test_nowcast_uses_only_the_last_12_hours() -> None:
    # the 13th hour back (1000) is outside the window: 12 hours of 10 -> 10
    assert nowcast([1000, *steady(10)]) == 10


def test_nowcast_of_clean_air_is_zero_not_no_data() -> None:
    # Cmax = 0 leaves w* undefined; every hour present is 0, so is the NowCast
    assert nowcast([0, 0, 0]) == 0
    assert index({PM25: [0, 0, 0]}) == 0


def test_nowcast_of_the_decisions_worked_example() -> None:
    # Decision 1459, 2.3.a: 09:00..20:00; w* = 16.5/26.9 = 0.6134 > 1/2 -> w = w*
    # sum w^(i-1) c_i = 52.2695, sum w^(i-1) = 2.5792 -> 20.266, printed 20.3
    # (the decision rounds w to 0.61: 51.8345 / 2.5573 = 20.269, also 20.3)
    hours = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]
    result = nowcast(hours)
    assert result == pytest.approx(20.26577, abs=1e-5)
    assert round(result, 1) == 20.3


def test_nowcast_is_not_monotone_in_an_old_hour() -> None:
    # The decision's weights depend on Cmin/Cmax, so raising an old hour can
    # lower the NowCast. c1 = 10, c2..c12 = 15: w = 2/3,
    # (10 + 15 * 1.97688) / 2.97688 = 13.320
    before = nowcast([15] * 11 + [10])
    # c12 raised to 20: w* = 10/20 = 0.5 -> w = 0.5, the old hours count little:
    # (10 + 15 * 0.99902 + 20 * 0.00049) / 1.99951 = 12.501
    after = nowcast([20] + [15] * 10 + [10])
    assert before == pytest.approx(13.3204, abs=1e-4)
    assert after == pytest.approx(12.5006, abs=1e-4)


# --- sub-indices (VN) ----------------------------------------------------


@pytest.mark.parametrize("pollutant", [PM25, PM10, O3, NO2, SO2, CO])
def test_every_breakpoint_gives_its_level(pollutant: Pollutant) -> None:
    table = TABLES[VN][pollutant]
    points = [table.segments[0].low, *(s.high for s in table.segments)]
    assert [index_of(float(p), table) for p in points] == list(VN_LEVELS)


def test_o3_8h_breakpoints_and_no_index_above_400() -> None:
    assert [index_of(c, VN_O3_8H) for c in (0, 100, 120, 170, 210, 400)] == [
        0,
        50,
        100,
        150,
        200,
        300,
    ]
    # (300 - 200) / (400 - 210) * (305 - 210) + 200 = 100/190 * 95 + 200 = 250
    assert index_of(305, VN_O3_8H) == 250
    assert index_of(400.1, VN_O3_8H) is None


def test_sub_indices_between_breakpoints() -> None:
    # PM10 70: (100 - 50) / (150 - 50) * (70 - 50) + 50 = 0.5 * 20 + 50 = 60
    assert index_of(70, TABLES[VN][PM10]) == 60
    # CO 20000: 50 / 20000 * 10000 + 50 = 75
    assert index_of(20000, TABLES[VN][CO]) == 75
    # SO2 1000: (300 - 200) / (1600 - 800) * (1000 - 800) + 200 = 0.125 * 200 + 200 = 225
    assert index_of(1000, TABLES[VN][SO2]) == 225


def test_above_the_top_breakpoint_the_index_is_500_and_flagged() -> None:
    # PM2.5 600 > 500, the last row "≥500": 500, hazardous
    value = hourly_index({PM25: steady(600)})
    assert value is not None
    sub = value.sub_index(PM25)
    assert sub is not None
    assert (value.index, value.band.name, sub.above_scale) == (500, "hazardous", True)
    # exactly on the top breakpoint: 500, not above the scale
    at_top = hourly_index({PM10: steady(600)})
    assert at_top is not None
    top_sub = at_top.sub_index(PM10)
    assert top_sub is not None
    assert (at_top.index, top_sub.above_scale) == (500, False)


def test_a_negative_mean_counts_as_clean_air() -> None:
    # zero drift of a monitor: -2 is taken as 0 -> index 0
    assert index({PM25: steady(-2)}) == 0


def test_a_mean_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not a concentration"):
        hourly_index({PM25: [*steady(10)[:11], math.nan]})


# --- rounding and bands --------------------------------------------------


@pytest.mark.parametrize(
    ("pm25", "expected", "band"),
    [
        # 2 * 25 = 50 -> good
        (25, 50, "good"),
        # 2 * 25.2 = 50.4 -> 50
        (25.2, 50, "good"),
        # 2 * 25.25 = 50.5 -> 51 half up (round() would give 50)
        (25.25, 51, "moderate"),
        # 50 + 2 * (26.25 - 25) = 52.5 -> 53 (round() would give 52)
        (26.25, 53, "moderate"),
        # 50 + 2 * (50 - 25) = 100
        (50, 100, "moderate"),
        # 100 + 50/30 * 0.3 = 100.5 -> 101 (in floats 100.49999...)
        (50.3, 101, "poor"),
        # 150, 151: 150 + 50/70 * 0.7 = 150.5 -> 151
        (80, 150, "poor"),
        (80.7, 151, "bad"),
        # 200, 201: 200 + 100/100 * 0.5 = 200.5 -> 201
        (150, 200, "bad"),
        (150.5, 201, "very_bad"),
        # 300, 301: 300 + 100/100 * 0.5 = 300.5 -> 301
        (250, 300, "very_bad"),
        (250.5, 301, "hazardous"),
    ],
)
def test_rounding_half_up_and_band_edges(pm25: float, expected: int, band: str) -> None:
    value = hourly_index({PM25: steady(pm25)})
    assert value is not None
    assert (value.index, value.band.name) == (expected, band)


def test_bands_carry_the_decisions_labels_and_colours() -> None:
    assert [(b.label_vi, b.rgb) for b in BANDS] == [
        ("Tốt", (0, 228, 0)),
        ("Trung bình", (255, 255, 0)),
        ("Kém", (255, 126, 0)),
        ("Xấu", (255, 0, 0)),
        ("Rất xấu", (143, 63, 151)),
        ("Nguy hại", (126, 0, 35)),
    ]
    assert [band_of(i).name for i in (0, 50, 51, 100, 101, 500)] == [
        "good",
        "good",
        "moderate",
        "moderate",
        "poor",
        "hazardous",
    ]
    with pytest.raises(ValueError):
        band_of(501)


# --- hourly index --------------------------------------------------------


def test_the_decisions_hourly_example_without_its_no2_slip() -> None:
    # Decision 1459, 2.3.b: O3 136.1, NO2 118.7, NowCast PM2.5 20.3
    # O3:    50/160 * 136.1 = 42.53125   (printed 43)
    # NO2:   50/100 * (118.7 - 100) + 50 = 59.35 (printed 60: the decision's slip)
    # PM2.5: 50/25 * 20.3 = 40.6         (printed 41)
    # AQI = max = 59.35 -> 59 (the decision says 60)
    value = hourly_index({PM25: steady(20.3), O3: [136.1], NO2: [118.7]})
    assert value is not None
    assert value.index == 59
    assert value.dominant is NO2
    assert value.band.name == "moderate"
    assert [(s.pollutant, s.index, s.hours) for s in value.sub_indices] == [
        (PM25, pytest.approx(40.6), 12),
        (O3, pytest.approx(42.53125), 1),
        (NO2, pytest.approx(59.35), 1),
    ]


def test_no_particles_no_index() -> None:
    # O3 1200 alone would be 500, but without PM2.5 or PM10 there is no AQI
    assert hourly_index({O3: [1200], NO2: [500], SO2: [300], CO: [20000]}) is None
    assert hourly_index({}) is None
    assert hourly_index({PM25: [], PM10: []}) is None


def test_no_nowcast_no_index_even_with_other_pollutants() -> None:
    # PM2.5 c2 and c3 missing: no NowCast; NO2 alone makes no AQI
    assert hourly_index({PM25: [20, 20, None, None, 20], NO2: [150]}) is None


def test_either_particle_is_enough() -> None:
    # PM10 80: 50/100 * (80 - 50) + 50 = 65
    assert index({PM10: steady(80)}) == 65


def test_the_current_hour_counts_for_gases() -> None:
    # NO2: only the last value counts; an earlier 2000 is ignored, a missing
    # current hour gives no NO2 sub-index
    value = hourly_index({PM25: steady(10), NO2: [2000, 150]})
    assert value is not None
    # NO2 150: 50/100 * 50 + 50 = 75; PM2.5 10: 2 * 10 = 20
    assert (value.index, value.dominant) == (75, NO2)
    without = hourly_index({PM25: steady(10), NO2: [150, None]})
    assert without is not None
    assert (without.index, without.sub_index(NO2)) == (20, None)


def test_equal_sub_indices_name_the_earlier_pollutant() -> None:
    # PM2.5 25 -> 50, PM10 50 -> 50, SO2 125 -> 50, CO 10000 -> 50: PM2.5 first
    value = hourly_index({CO: [10000], SO2: [125], PM10: steady(50), PM25: steady(25)})
    assert value is not None
    assert (value.index, value.dominant) == (50, PM25)
    assert [s.pollutant for s in value.sub_indices] == [PM25, PM10, SO2, CO]


# --- daily index ---------------------------------------------------------


def test_the_decisions_daily_example() -> None:
    # Decision 1459, 2.3.c: O3 max 8 h 89.3, max 1 h 114.6, NO2 max 1 h 130.8,
    # PM2.5 24 h 55.7, built from hours:
    # O3 hours 1..8 = 89.3, hour 17 = 114.6, others 0. 8-hour means: those
    # ending 06..08 are 89.3 (6, 7, 8 hours), those holding hour 17 are
    # 114.6 / 8 = 14.3; 19 means have 6 hours or more (>= 18)
    o3 = [89.3] * 8 + [0.0] * 8 + [114.6] + [0.0] * 7
    no2 = [50.0] * 10 + [130.8] + [50.0] * 13
    # O3 8 h: 50/100 * 89.3 = 44.65 (printed 45); O3 1 h: 50/160 * 114.6 = 35.8125 (36)
    # NO2: 50/100 * 30.8 + 50 = 65.4 (65); PM2.5: 50/30 * 5.7 + 100 = 109.5 -> 110
    value = daily_index({PM25: [55.7] * 24, O3: o3, NO2: no2})
    assert value is not None
    assert (value.index, value.dominant, value.band.name) == (110, PM25, "poor")
    assert [(s.pollutant, s.averaging, s.index, s.hours) for s in value.sub_indices] == [
        (PM25, Averaging.HOURS_24, pytest.approx(109.5), 24),
        (O3, Averaging.HOURS_8, pytest.approx(44.65), 8),
        (NO2, Averaging.HOUR_1, pytest.approx(65.4), 24),
    ]


def test_the_decisions_eight_hour_example() -> None:
    # Decision 1459, 2.2.2.a: hours 18:00 of the day before to 00:00; the
    # 7 hours before 01:00 start the first 8-hour means (18:00..01:00 = 18.0).
    # Highest 8-hour mean, ending 17:00: (49.2 + 55.8 + 69.6 + 78.3 + 91.5
    # + 97.7 + 81.2 + 71.8) / 8 = 595.1 / 8 = 74.3875 (printed 74.4)
    # 8 h: 50/100 * 74.3875 = 37.19375; 1 h: max 97.7 -> 50/160 * 97.7 = 30.53125
    day_before = [15.7, 14.2, 17.7, 18.9, 19.3, 15.7, 19.7]
    day = [22.6, 27.1, 29.0, 31.9, 25.3, 34.7, 35.2, 41.6, 45.7, 49.2, 55.8, 69.6]
    day += [78.3, 91.5, 97.7, 81.2, 71.8, 43.5, 34.3, 21.5, 20.5, 19.4, 20.4, 21.3]
    value = daily_index({PM25: [10.0] * 24, O3: day_before + day})
    assert value is not None
    o3 = value.sub_index(O3)
    assert o3 is not None
    assert (o3.averaging, o3.concentration, o3.index, o3.hours) == (
        Averaging.HOURS_8,
        pytest.approx(74.3875),
        pytest.approx(37.19375),
        8,
    )
    # PM2.5 2 * 10 = 20 < 37.19 -> O3 dominant, 37
    assert (value.index, value.dominant) == (37, O3)


def test_o3_eight_hours_above_400_falls_back_to_the_hour() -> None:
    # every hour 400: 8 h 400 -> 300 beats 1 h 400 -> 200
    at_top = daily_index({PM25: [10.0] * 24, O3: [400.0] * 24})
    # every hour 401: 8 h above 400 -> no 8-hour index;
    # 1 h: (300 - 200) / (800 - 400) * (401 - 400) + 200 = 200.25 -> 200
    above = daily_index({PM25: [10.0] * 24, O3: [401.0] * 24})
    assert at_top is not None
    assert above is not None
    eight_hours, one_hour = at_top.sub_index(O3), above.sub_index(O3)
    assert eight_hours is not None
    assert one_hour is not None
    assert (at_top.index, eight_hours.averaging) == (300, Averaging.HOURS_8)
    assert (above.index, one_hour.averaging, one_hour.index) == (200, Averaging.HOUR_1, 200.25)


def test_a_daily_value_needs_18_of_24_hours() -> None:
    # 17 hours of PM2.5: no daily PM2.5, so no daily index at all
    assert daily_index({PM25: [30.0] * 17 + [None] * 7, NO2: [100.0] * 24}) is None
    # 18 hours: 12 of 20 and 6 of 50 -> mean (240 + 300) / 18 = 30 -> 50/25 * 5 + 50 = 60
    value = daily_index({PM25: [20.0] * 12 + [50.0] * 6 + [None] * 6})
    assert value is not None
    sub = value.sub_index(PM25)
    assert sub is not None
    assert (value.index, sub.concentration, sub.hours) == (60, 30, 18)
    # NO2 with 17 hours: no NO2 sub-index, the PM index stands
    partial = daily_index({PM25: [10.0] * 24, NO2: [500.0] * 17 + [None] * 7})
    assert partial is not None
    assert (partial.index, partial.sub_index(NO2)) == (20, None)


def test_the_day_is_the_last_24_hours_given() -> None:
    # five hours of 1000 before the day are not part of PM2.5's mean: 2 * 20 = 40
    assert daily_index({PM25: [1000.0] * 5 + [20.0] * 24}) == daily_index({PM25: [20.0] * 24})
    value = daily_index({PM25: [20.0] * 24})
    assert value is not None
    assert value.index == 40
    with pytest.raises(ValueError, match="24 hourly means"):
        daily_index({PM25: [20.0] * 23})


def test_gases_count_their_highest_hour() -> None:
    # SO2 highest hour 350 -> 100; PM10 mean 50 -> 50
    so2 = [100.0] * 23 + [350.0]
    value = daily_index({PM10: [50.0] * 24, SO2: so2})
    assert value is not None
    assert (value.index, value.dominant) == (100, SO2)


# --- US EPA, 2024 PM table -----------------------------------------------


@pytest.mark.parametrize(
    ("pm25", "expected", "looked_up"),
    [
        (9.0, 50, 9.0),
        # 9.05 truncated to 9.0 -> 50, not 50.2
        (9.05, 50, 9.0),
        (9.1, 51, 9.1),
        # 51 + 49/26.3 * (12.0 - 9.1) = 51 + 5.403 = 56.4 -> 56
        (12.0, 56, 12.0),
        (35.4, 100, 35.4),
        # 35.49 truncated to 35.4 -> 100, not the next segment
        (35.49, 100, 35.4),
        (35.5, 101, 35.5),
        (55.4, 150, 55.4),
        (55.5, 151, 55.5),
        (225.4, 300, 225.4),
        # the 2024 table joins 301..500 in one segment up to 325.4
        (225.5, 301, 225.5),
        # 301 + 199/99.9 * (275.5 - 225.5) = 301 + 99.6 = 400.6 -> 401
        (275.5, 401, 275.5),
        (325.4, 500, 325.4),
    ],
)
def test_epa_pm25_2024(pm25: float, expected: int, looked_up: float) -> None:
    value = hourly_index({PM25: steady(pm25)}, EPA)
    assert value is not None
    sub = value.sub_index(PM25)
    assert sub is not None
    assert (value.index, sub.concentration) == (expected, pytest.approx(looked_up))


def test_epa_pm10_truncates_to_whole_micrograms() -> None:
    # 54.9 -> 54 -> 50; 55 -> 51; 604 -> 500; 700 beyond the index -> 500
    assert [index({PM10: steady(c)}, EPA) for c in (54.9, 55, 154, 155, 604, 700)] == [
        50,
        51,
        100,
        101,
        500,
        500,
    ]


def test_epa_truncates_the_nowcast_not_the_hours() -> None:
    # NowCast of c1 = 40, c2 = 20: 33.333 -> truncated to 33.3
    # 51 + 49/26.3 * (33.3 - 9.1) = 51 + 1185.8/26.3 = 51 + 45.087 = 96.087 -> 96
    value = hourly_index({PM25: [20, 40]}, EPA)
    assert value is not None
    sub = value.sub_index(PM25)
    assert sub is not None
    assert (value.index, sub.concentration, sub.hours) == (96, pytest.approx(33.3), 2)
    # the same 2-of-3 rule as the decision
    assert hourly_index({PM25: [40, None, None, 40]}, EPA) is None


def test_epa_scale_counts_only_particles() -> None:
    # O3, NO2, SO2, CO are left out of the EPA scale (units, averaging times)
    value = hourly_index({PM25: steady(5.0), O3: [1200], NO2: [3000]}, EPA)
    assert value is not None
    # 50/9 * 5 = 27.8 -> 28
    assert value.index == 28
    assert [s.pollutant for s in value.sub_indices] == [PM25]
    assert hourly_index({O3: [1200]}, EPA) is None


def test_epa_daily_is_the_truncated_24_hour_mean() -> None:
    # mean (12 * 35.4 + 12 * 35.5) / 24 = 35.45; EPA: truncated to 35.4 -> 100;
    # VN: 50/25 * (35.45 - 25) + 50 = 70.9 -> 71
    hours: list[float | None] = [35.4] * 12 + [35.5] * 12
    epa = daily_index({PM25: hours}, EPA)
    vn = daily_index({PM25: hours}, VN)
    assert epa is not None
    assert vn is not None
    assert (epa.index, vn.index) == (100, 71)


# --- properties ----------------------------------------------------------


def _concentrations(table: BreakpointTable) -> st.SearchStrategy[float]:
    return st.floats(0, float(table.top) * 1.2, allow_nan=False)


@pytest.mark.parametrize(
    "table",
    [*TABLES[VN].values(), VN_O3_8H, *TABLES[EPA].values()],
    ids=[*(f"vn-{p}" for p in TABLES[VN]), "vn-o3-8h", *(f"epa-{p}" for p in TABLES[EPA])],
)
@given(data=st.data())
def test_sub_index_is_monotone_in_the_concentration(
    table: BreakpointTable, data: st.DataObject
) -> None:
    low, high = sorted(data.draw(st.lists(_concentrations(table), min_size=2, max_size=2)))
    low_index, high_index = index_of(low, table), index_of(high, table)
    if high_index is None:  # O3 8 h above 400 has no index
        assert high > float(table.top)
    else:
        assert low_index is not None
        assert low_index <= high_index


# Highest hourly mean drawn per pollutant: above every table, except O3, kept
# where its 8-hour means stay under 400 (see the test after this one).
RANGES = {PM25: 600.0, PM10: 700.0, O3: 390.0, NO2: 4000.0, SO2: 3000.0, CO: 160000.0}


def _day(pollutant: Pollutant) -> st.SearchStrategy[list[float | None]]:
    hour = st.one_of(st.none(), st.floats(0, RANGES[pollutant], allow_nan=False))
    return st.lists(hour, min_size=24, max_size=24)


@given(
    scale=st.sampled_from(list(AqiScale)),
    days=st.fixed_dictionaries({p: _day(p) for p in Pollutant}),
    pollutant=st.sampled_from(list(Pollutant)),
    hour=st.integers(0, 23),
    rise=st.floats(0, 1000, allow_nan=False),
)
def test_daily_index_is_monotone_in_each_hourly_mean(
    scale: AqiScale,
    days: dict[Pollutant, list[float | None]],
    pollutant: Pollutant,
    hour: int,
    rise: float,
) -> None:
    before = daily_index(days, scale)
    higher = list(days[pollutant])
    current = higher[hour]
    higher[hour] = None if current is None else min(current + rise, RANGES[pollutant])
    after = daily_index({**days, pollutant: higher}, scale)
    assert (before is None) == (after is None)
    if before is not None and after is not None:
        assert before.index <= after.index


@given(
    scale=st.sampled_from(list(AqiScale)),
    pm25=st.lists(st.integers(0, 300), min_size=12, max_size=12),
    gases=st.fixed_dictionaries({p: st.floats(0, RANGES[p]) for p in (O3, NO2, SO2, CO)}),
    pollutant=st.sampled_from([PM25, O3, NO2, SO2, CO]),
    factor=st.integers(1, 3),
)
def test_hourly_index_is_monotone_in_each_pollutant(
    scale: AqiScale,
    pm25: list[int],
    gases: dict[Pollutant, float],
    pollutant: Pollutant,
    factor: int,
) -> None:
    # A gas counts by its current hour; PM by its NowCast, which is monotone
    # when all its hours rise in proportion (w stays), not in one old hour.
    hours: dict[Pollutant, list[float | None]] = {PM25: [float(c) for c in pm25]}
    hours |= {p: [c] for p, c in gases.items()}
    raised = dict(hours)
    raised[pollutant] = [None if c is None else c * factor for c in hours[pollutant]]
    before, after = hourly_index(hours, scale), hourly_index(raised, scale)
    assert before is not None
    assert after is not None
    assert before.index <= after.index
