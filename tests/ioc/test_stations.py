"""The station registry: the sample stations, and validation with every
problem named by entry and field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ioc.registry import load_registry
from ioc.settings import PACKAGE_DATA
from ioc.stations import (
    DEFAULT_FALL_MARGIN_M,
    SAMPLE_STATIONS,
    StationsError,
    load_stations,
    parse_stations,
)

REGISTRY = load_registry(PACKAGE_DATA / "province-01-ha-noi.toml")
STATIONS = load_stations(registry=REGISTRY)


def water(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "sensor_id": "wl-x",
        "kind": "water_level",
        "area": "tram-long-bien",
        "name": "Trạm thử",
        "lat": 21.04,
        "lon": 105.86,
        "period_s": 600,
        "measures": {"level": {"unit": "m", "min": -2, "max": 16}},
        "alarm_levels": [9.5, 10.5, 11.5],
        "rise_alarm_m_per_h": 0.25,
    }
    entry.update(overrides)
    return entry


def air(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "sensor_id": "aq-x",
        "kind": "air_quality",
        "area": "00166",
        "name": "Quan trắc thử",
        "lat": 21.03,
        "lon": 105.79,
        "period_s": 300,
        "measures": {"pm25": {"unit": "µg/m³", "min": 0, "max": 1000}},
    }
    entry.update(overrides)
    return entry


def problems_of(*entries: dict[str, Any]) -> list[str]:
    with pytest.raises(StationsError) as info:
        parse_stations({"stations": list(entries)}, "st.toml", REGISTRY)
    err = info.value
    assert err.source == "st.toml"
    assert str(err).splitlines()[0] == f"st.toml: {len(err.problems)} problem(s):"
    return err.problems


# -- the sample ----------------------------------------------------------------


def test_sample_has_every_kind_and_both_river_stations() -> None:
    assert SAMPLE_STATIONS.name == "stations-01-ha-noi.toml"
    assert {s.kind for s in STATIONS} == {
        "air_quality",
        "water_level",
        "traffic",
        "noise",
        "rainfall",
    }
    assert len(STATIONS.of_kind("air_quality")) == 3
    long_bien, son_tay = STATIONS.get("wl-long-bien"), STATIONS.get("wl-son-tay")
    assert long_bien is not None and son_tay is not None
    # Decision 05/2020/QĐ-TTg, Hồng river
    assert long_bien.alarm_levels == (9.5, 10.5, 11.5)
    assert son_tay.alarm_levels == (12.4, 13.4, 14.4)
    assert "05/2020" in long_bien.alarm_source
    assert son_tay.fall_margin_m == DEFAULT_FALL_MARGIN_M
    assert long_bien.measures["level"].unit == "m"


def test_sample_areas_are_the_province_files() -> None:
    for s in STATIONS:
        assert s.area in REGISTRY.communes or s.area in REGISTRY.areas
        assert 6.0 <= s.lat <= 23.5 and 102.0 <= s.lon <= 118.0
    assert REGISTRY.area_label("tram-son-tay") == "Trạm thủy văn Sơn Tây (sông Hồng)"


def test_unknown_sensor_is_reported_not_invented() -> None:
    assert STATIONS.knows("aq-00166-1")
    assert not STATIONS.knows("aq-99999-1")
    assert STATIONS.get("aq-99999-1") is None


def test_measure_range_is_inclusive() -> None:
    noise = STATIONS.get("nz-00025-1")
    assert noise is not None
    laeq = noise.measures["laeq"]
    assert laeq.holds(30.0) and laeq.holds(130.0)
    assert not laeq.holds(29.9) and not laeq.holds(130.1)


def test_without_a_registry_areas_are_not_checked() -> None:
    stations = parse_stations({"stations": [air(area="nowhere")]})
    assert stations.get("aq-x") is not None


# -- validation ------------------------------------------------------------------


def test_valid_minimal_entries_load() -> None:
    stations = parse_stations({"stations": [water(), air()]}, "st.toml", REGISTRY)
    assert len(stations) == 2
    wl = stations.get("wl-x")
    assert wl is not None and wl.stuck_readings is None


def test_every_problem_names_entry_and_field() -> None:
    problems = problems_of(
        air(kind="radar", lat=105.79, lon=21.03),  # swapped coordinates
        water(alarm_levels=[10.5, 10.5, 11.5], area="nowhere", rise_alarm_m_per_h=None),
    )
    assert problems == [
        "stations[0] (aq-x): 'kind' is 'radar', expected one of "
        "air_quality, water_level, traffic, noise, rainfall",
        "stations[0] (aq-x): 'lat' must be a number in [6, 23.5], not 105.79",
        "stations[0] (aq-x): 'lon' must be a number in [102, 118], not 21.03",
        "stations[1] (wl-x): 'area' 'nowhere' is neither a commune code nor an area "
        "of the province file",
        "stations[1] (wl-x): 'alarm_levels' [10.5, 10.5, 11.5] must be strictly increasing "
        "(I < II < III)",
        "stations[1] (wl-x): missing 'rise_alarm_m_per_h'",
    ]


def test_missing_fields_and_unknown_keys() -> None:
    entry = water()
    for key in ("sensor_id", "name", "period_s", "alarm_levels"):
        del entry[key]
    entry["colour"] = "blue"
    assert problems_of(entry) == [
        "stations[0]: unknown field 'colour'",
        "stations[0]: missing 'sensor_id'",
        "stations[0]: missing 'name'",
        "stations[0]: missing 'period_s'",
        "stations[0]: missing 'alarm_levels' (lines I, II, III in metres)",
    ]


def test_measures_must_fit_the_kind_unit_and_range() -> None:
    measures = {
        "pm25": {"unit": "mg/m³", "min": 0, "max": 1000},
        "pm10": {"unit": "µg/m³", "min": 10, "max": 10},
        "level": {"unit": "m", "min": 0, "max": 1},
        "co": {"unit": "µg/m³", "max": 5},
    }
    assert problems_of(air(measures=measures)) == [
        "stations[0] (aq-x): 'measures.pm25.unit' is 'mg/m³'; readings give pm25 in 'µg/m³'",
        "stations[0] (aq-x): 'measures.pm10': 'min' 10 must be less than 'max' 10",
        "stations[0] (aq-x): 'measures.level': air_quality measures are "
        "pm25, pm10, o3, no2, so2, co",
        "stations[0] (aq-x): 'measures.co' needs numbers 'min' and 'max' (the instrument's range)",
    ]
    assert problems_of(air(measures={})) == [
        "stations[0] (aq-x): 'measures' must be a table of measures, "
        "e.g. { level = { unit = ... } }"
    ]


def test_water_level_fields_belong_to_water_level_stations() -> None:
    entry = air(alarm_levels=[1, 2, 3], rise_alarm_m_per_h=0.2, fall_margin_m=0.1)
    assert problems_of(entry) == [
        "stations[0] (aq-x): 'alarm_levels' is for water_level stations only",
        "stations[0] (aq-x): 'rise_alarm_m_per_h' is for water_level stations only",
        "stations[0] (aq-x): 'fall_margin_m' is for water_level stations only",
    ]


def test_margin_must_be_smaller_than_the_gap_between_lines() -> None:
    # lines 9.5 / 10.0 / 11.5: the smallest gap is 10.0 - 9.5 = 0.5
    assert problems_of(water(alarm_levels=[9.5, 10.0, 11.5], fall_margin_m=0.5)) == [
        "stations[0] (wl-x): 'fall_margin_m' 0.5 must be less than the gap between lines (0.5)"
    ]
    assert problems_of(water(alarm_levels=[9.5, 10.5])) == [
        "stations[0] (wl-x): 'alarm_levels' must be three numbers (I, II, III in metres)"
    ]


def test_duplicates_and_stuck_readings() -> None:
    assert problems_of(air(), air(stuck_readings=1)) == [
        "stations[1] (aq-x): 'stuck_readings' must be 0 (not judged) or a whole number >= 2",
        "stations[1]: duplicate sensor_id 'aq-x'",
    ]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(StationsError, match="file not found"):
        load_stations(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stations]\n", encoding="utf-8")
    with pytest.raises(StationsError, match="not valid TOML"):
        load_stations(bad)
    with pytest.raises(StationsError, match=r"array of tables"):
        parse_stations({"stations": {"a": 1}})


def test_each_broken_field_gives_one_problem() -> None:
    for key, bad in [("period_s", 0), ("lat", "21"), ("name", " "), ("area", "00999")]:
        entry = copy.deepcopy(water())
        entry[key] = bad
        assert len(problems_of(entry)) == 1, key
