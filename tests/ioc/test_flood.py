"""Flood alarm levels: crossings with hysteresis, the rising-rate warning,
late readings, state round trips and the alert signals, on the Long Biên
station of the sample (lines 9.5 / 10.5 / 11.5 m, margin 0.05 m, rising
alarm 0.25 m/h)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.rules import load_rules
from alerts.signals import flood_signals
from ioc.clock import VN_TZ
from ioc.events import SensorReading
from ioc.flood import (
    FloodWatch,
    LevelCrossed,
    RapidRise,
    StationFlood,
    alarm_level,
    rising_rate,
)
from ioc.stations import Stations, load_stations, parse_stations

STATIONS = load_stations()
LONG_BIEN = STATIONS.get("wl-long-bien")
assert LONG_BIEN is not None
T0 = datetime(2026, 8, 1, tzinfo=VN_TZ).timestamp()
LINES = (9.5, 10.5, 11.5)


def reading(
    sensor: str, minutes: float, level: float, area: str = "tram-long-bien"
) -> SensorReading:
    return SensorReading("e", sensor, area, "water_level", T0 + minutes * 60, {"level": level}, b"")


def crossings(events: list[object]) -> list[tuple[int, int, float]]:
    return [(e.from_level, e.to_level, e.level_m) for e in events if isinstance(e, LevelCrossed)]


def feed(flood: StationFlood, levels: list[float], every_min: float = 60) -> list[object]:
    """Readings an hour apart (by default), so the rate stays out of the way."""
    out: list[object] = []
    for i, level in enumerate(levels):
        out.extend(flood.add(T0 + i * every_min * 60, level))
    return out


# -- levels ------------------------------------------------------------------------


def test_alarm_level_rises_at_the_line_and_falls_past_the_margin() -> None:
    # up: the number of lines reached (>=)
    assert alarm_level(9.49, LINES, 0, 0.05) == 0
    assert alarm_level(9.50, LINES, 0, 0.05) == 1
    assert alarm_level(11.6, LINES, 0, 0.05) == 3
    # down from 1: held while >= 9.5 - 0.05 = 9.45
    assert alarm_level(9.45, LINES, 1, 0.05) == 1
    assert alarm_level(9.449, LINES, 1, 0.05) == 0
    # down from 3 to 9.47: lines II and III are passed by more than the margin
    # (9.47 < 10.45, 9.47 < 11.45), line I is held (9.47 >= 9.45)
    assert alarm_level(9.47, LINES, 3, 0.05) == 1


def test_a_flood_wave_through_every_line_with_hovering() -> None:
    flood = StationFlood(LONG_BIEN)
    levels = [
        *(9.0, 9.49, 9.50),  # 9.50 >= 9.5: 0 -> 1
        *(9.47, 9.52, 9.46, 9.50),  # hovering: each >= 9.45, stays 1
        *(10.6, 11.5),  # 1 -> 2, then 2 -> 3 (11.5 >= 11.5)
        11.46,  # 11.46 >= 11.45: stays 3
        11.44,  # 11.44 < 11.45: 3 -> 2
        10.5,  # stays 2 (10.5 >= 10.45)
        10.44,  # 10.44 < 10.45: 2 -> 1
        9.0,  # 9.0 < 9.45: 1 -> 0
    ]
    assert crossings(feed(flood, levels)) == [
        (0, 1, 9.50),
        (1, 2, 10.6),
        (2, 3, 11.5),
        (3, 2, 11.44),
        (2, 1, 10.44),
        (1, 0, 9.0),
    ]
    assert flood.level == 0


def test_a_jump_over_several_lines_is_one_crossing() -> None:
    flood = StationFlood(LONG_BIEN)
    assert crossings(feed(flood, [9.0, 11.6, 9.0])) == [(0, 3, 11.6), (3, 0, 9.0)]


def test_crossing_event_carries_time_and_station() -> None:
    flood = StationFlood(LONG_BIEN)
    (event,) = flood.add(T0 + 600, 9.8)
    assert event == LevelCrossed("wl-long-bien", "tram-long-bien", T0 + 600, 9.8, 0, 1, 1)


@given(st.lists(st.floats(min_value=9.451, max_value=10.4), min_size=1, max_size=60))
def test_hovering_within_the_margin_crosses_at_most_once(levels: list[float]) -> None:
    # every level >= 9.451 > 9.45 = 9.5 - margin and < 10.5: once at I, it stays
    flood = StationFlood(LONG_BIEN)
    found = crossings(feed(flood, levels))
    first_at_line = [x for x in levels if x >= 9.5][:1]
    assert found == [(0, 1, x) for x in first_at_line]


@given(st.lists(st.floats(min_value=8.0, max_value=13.0), min_size=1, max_size=60))
def test_every_crossing_is_justified_by_its_reading(levels: list[float]) -> None:
    flood = StationFlood(LONG_BIEN)
    for before, after, level in crossings(feed(flood, levels)):
        if after > before:
            assert level >= LINES[after - 1]
        else:
            assert level < LINES[before - 1] - 0.05
            assert after == 0 or level >= LINES[after - 1] - 0.05


# -- rising rate ---------------------------------------------------------------------


def test_rising_rate_is_the_least_squares_slope() -> None:
    # (0 h, 0 m), (0.5 h, 0.2 m), (1 h, 0.2 m): mean h 0.5, mean m 0.1333;
    # Sxy = (-0.5)(-0.1333) + 0 + (0.5)(0.0667) = 0.1; Sxx = 0.5: 0.2 m/h
    assert rising_rate([(0, 0.0), (1800, 0.2), (3600, 0.2)], 1800) == pytest.approx(0.2)
    assert rising_rate([(0, 0.0)], 1800) is None
    assert rising_rate([(0, 0.0), (1799, 5.0)], 1800) is None  # span too short


def test_rate_warning_starts_and_clears_itself() -> None:
    flood = StationFlood(LONG_BIEN)
    # every 15 min: 5.00, 5.10, 5.20, then flat at 5.20
    events = feed(flood, [5.00, 5.10, 5.20, 5.20, 5.20], every_min=15)
    rises = [
        (e.at - T0, e.rising, round(e.rate_m_per_h, 6)) for e in events if isinstance(e, RapidRise)
    ]
    assert rises == [
        # at 30 min the readings span 30 min: slope 0.2 m / 0.5 h = 0.4 >= 0.25
        (1800, True, 0.4),
        # at 45 min: h 0, .25, .5, .75 and m 5.0, 5.1, 5.2, 5.2 give
        # Sxy = .0875, Sxx = .3125: 0.28, still >= 0.25 (no event);
        # at 60 min: h 0 .. 1 and m 5.0, 5.1, 5.2, 5.2, 5.2 give
        # Sxy = .07 + .01 + 0 + .015 + .03 = .125, Sxx = .625: 0.2 < 0.25
        (3600, False, 0.2),
    ]
    assert not flood.rising


def test_rate_needs_the_span_and_forgets_readings_older_than_the_window() -> None:
    flood = StationFlood(LONG_BIEN)
    # 1 m in 20 min is fast, but 20 min < 30 min: no judgement yet
    assert feed(flood, [5.0, 6.0], every_min=20) == []
    # at 40 min the span is 40 min: (0, 5.0), (20, 6.0), (40, 6.0) -> 1.5 m/h
    (rise,) = flood.add(T0 + 40 * 60, 6.0)
    assert isinstance(rise, RapidRise) and rise.rising
    assert rise.rate_m_per_h == pytest.approx(1.5)
    # two hours later only this reading is in the window: no rate, the
    # warning holds rather than clearing on no evidence
    assert flood.add(T0 + 160 * 60, 6.0) == []
    assert flood.rising and len(flood.recent) == 1


# -- order -----------------------------------------------------------------------


def test_late_and_repeated_readings_are_ignored() -> None:
    flood = StationFlood(LONG_BIEN)
    assert crossings(flood.add(T0 + 1200, 9.6)) == [(0, 1, 9.6)]
    # an older reading below the margin would have taken it back to 0
    assert flood.add(T0 + 600, 9.0) == []
    assert flood.add(T0 + 1200, 9.0) == []  # a repeat of the same instant
    assert flood.level == 1 and flood.ignored == 2
    assert crossings(flood.add(T0 + 1800, 9.44)) == [(1, 0, 9.44)]


# -- the watch, state --------------------------------------------------------------


def two_in_one_area() -> Stations:
    entry = {
        "kind": "water_level",
        "area": "x",
        "name": "Trạm",
        "lat": 21.0,
        "lon": 105.8,
        "period_s": 600,
        "measures": {"level": {"unit": "m", "min": 0, "max": 20}},
        "alarm_levels": [1.0, 2.0, 3.0],
        "rise_alarm_m_per_h": 5.0,
    }
    return parse_stations({"stations": [{**entry, "sensor_id": s} for s in ("a", "b")]})


def test_area_level_is_the_highest_of_its_stations() -> None:
    watch = FloodWatch(two_in_one_area())
    (a_up,) = watch.add(reading("a", 0, 2.5, "x"))
    assert (a_up.to_level, a_up.area_level) == (2, 2)
    (b_up,) = watch.add(reading("b", 0, 1.2, "x"))
    assert (b_up.to_level, b_up.area_level) == (1, 2)  # a still at 2
    (a_down,) = watch.add(reading("a", 10, 0.5, "x"))
    assert (a_down.to_level, a_down.area_level) == (0, 1)  # b still at 1


def test_watch_ignores_unknown_sensors_other_kinds_and_missing_levels() -> None:
    watch = FloodWatch(STATIONS)
    assert set(watch.by_sensor) == {"wl-long-bien", "wl-son-tay"}
    assert watch.add(reading("wl-unknown", 0, 12.0)) == []
    assert (
        watch.add(SensorReading("e", "aq-00166-1", "00166", "air_quality", T0, {"pm25": 9.9}, b""))
        == []
    )
    assert (
        watch.add(SensorReading("e", "wl-long-bien", "tram-long-bien", "water_level", T0, {}, b""))
        == []
    )


def test_state_round_trips_through_json() -> None:
    levels = [9.0, 9.3, 9.6, 9.9, 10.2, 10.6, 10.4, 10.46, 10.3, 9.44]
    whole = FloodWatch(STATIONS)
    expected = [
        e for i, lv in enumerate(levels) for e in whole.add(reading("wl-long-bien", 15 * i, lv))
    ]

    first = FloodWatch(STATIONS)
    events = [
        e for i, lv in enumerate(levels[:5]) for e in first.add(reading("wl-long-bien", 15 * i, lv))
    ]
    resumed = FloodWatch(STATIONS)
    resumed.restore(json.loads(json.dumps(first.state())))
    assert resumed.state() == first.state()
    events += [
        e
        for i, lv in enumerate(levels[5:], 5)
        for e in resumed.add(reading("wl-long-bien", 15 * i, lv))
    ]
    assert events == expected
    assert resumed.state() == whole.state()


def test_restore_drops_removed_stations() -> None:
    watch = FloodWatch(STATIONS)
    watch.restore({"wl-gone": {"level": 3}})
    assert "wl-gone" not in watch.by_sensor


# -- alert signals ------------------------------------------------------------------


def test_crossings_become_flood_level_signals_the_sample_rules_judge() -> None:
    event = LevelCrossed("wl-long-bien", "tram-long-bien", T0, 10.6, 1, 2, 2)
    station_signal, area_signal = flood_signals(event)
    assert station_signal.kind == area_signal.kind == "flood_level"
    assert (station_signal.subject, station_signal.value) == ("sensor:wl-long-bien", 2.0)
    assert station_signal.unit_map() == {
        "sensor": "sensor:wl-long-bien",
        "area": "area:tram-long-bien",
    }
    assert (area_signal.subject, area_signal.value, area_signal.at) == (
        "area:tram-long-bien",
        2.0,
        T0,
    )
    rules = load_rules()
    fired = {
        r.id for r in rules.rules.values() if r.judges(area_signal) and r.breached(area_signal)
    }
    assert fired == {"flood-level-ii"}
    falls = flood_signals(LevelCrossed("wl-long-bien", "tram-long-bien", T0, 9.4, 1, 0, 0))
    assert [s.value for s in falls] == [0.0, 0.0]
    assert not rules.rules["flood-level-ii"].breached(falls[1])
