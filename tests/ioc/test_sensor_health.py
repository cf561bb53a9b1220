"""Sensor health on the injected clock: silence (also of sensors never heard
from), stuck values, out-of-range values, clock skew, recovery, state round
trips and the alert signals. Sample stations: the noise meter nz-00025-1
(every 60 s, 30-130 dB(A), stuck after the default 12 readings), the rain
gauge rg-00082-1 (every 300 s, never stuck), the air station aq-00070-1
(every 300 s, PM only)."""

from __future__ import annotations

import json
from datetime import datetime

from alerts.rules import load_rules
from alerts.signals import health_signals
from ioc.clock import VN_TZ
from ioc.events import SensorReading
from ioc.sensor_health import HealthChanged, HealthLimits, HealthWatch
from ioc.stations import Stations, load_stations

STATIONS = load_stations()
T0 = datetime(2026, 3, 16, 8, tzinfo=VN_TZ).timestamp()
KINDS = {s.sensor_id: (s.area, s.kind) for s in STATIONS}


def reading(sensor: str, ts: float, **values: float) -> SensorReading:
    area, kind = KINDS.get(sensor, ("00166", "noise"))
    return SensorReading("e", sensor, area, kind, ts, values, b"")


def noise(
    watch: HealthWatch, ts: float, laeq: float, arrived: float | None = None
) -> list[HealthChanged]:
    return watch.add(reading("nz-00025-1", ts, laeq=laeq), ts if arrived is None else arrived)


def brief(events: list[HealthChanged]) -> list[tuple[str, bool, bool]]:
    return [(e.problem, e.raised, e.faulty) for e in events]


# -- silence -------------------------------------------------------------------------


def test_sensors_never_heard_from_go_silent_on_the_clock() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    # the 60-second sensors may stay quiet 3 x 60 = 180 s
    assert watch.tick(T0 + 180) == []
    events = watch.tick(T0 + 181)
    assert {e.sensor_id for e in events} == {"nz-00025-1", "tc-00008-1"}
    first = events[0]
    assert (first.problem, first.raised, first.faulty, first.at) == ("silent", True, True, T0 + 181)
    assert first.detail == "never heard from for 181 s (allowed 180 s)"
    assert watch.tick(T0 + 200) == []  # raised once
    # the 300-second stations after 900 s, the 600-second river gauges after 1800 s
    assert {e.sensor_id for e in watch.tick(T0 + 901)} == {
        "aq-00004-1",
        "aq-00070-1",
        "aq-00166-1",
        "rg-00082-1",
    }
    assert {e.sensor_id for e in watch.tick(T0 + 1801)} == {"wl-long-bien", "wl-son-tay"}


def test_a_reading_clears_silence_and_starts_the_count_again() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    watch.tick(T0 + 181)
    (back,) = noise(watch, T0 + 200, 60.0)
    assert (back.problem, back.raised, back.faulty) == ("silent", False, False)
    assert back.detail == "reporting again"
    # heard at T0 + 200: silent again after T0 + 200 + 180 = T0 + 380
    assert [e for e in watch.tick(T0 + 380) if e.sensor_id == "nz-00025-1"] == []
    (again,) = [e for e in watch.tick(T0 + 381) if e.sensor_id == "nz-00025-1"]
    assert again.detail == "no reading for 181 s (allowed 180 s)"


def test_silence_counts_from_arrival_with_custom_limits() -> None:
    watch = HealthWatch(STATIONS, now=T0, limits=HealthLimits(silent_periods=1.5))
    # a reading stamped T0 arriving at T0 + 60 (within the skew limits)
    noise(watch, T0, 60.0, arrived=T0 + 60)
    # 1.5 x 60 = 90 s after its arrival at T0 + 60
    assert not [e for e in watch.tick(T0 + 150) if e.sensor_id == "nz-00025-1"]
    assert [e.sensor_id for e in watch.tick(T0 + 151) if e.sensor_id == "nz-00025-1"] == [
        "nz-00025-1"
    ]


# -- stuck -----------------------------------------------------------------------------


def test_twelve_identical_readings_in_a_row_are_stuck() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    events = [e for i in range(11) for e in noise(watch, T0 + 60 * i, 61.5)]
    assert events == []  # 11 in a row: not yet
    (stuck,) = noise(watch, T0 + 660, 61.5)
    assert brief([stuck]) == [("stuck", True, True)]
    assert stuck.detail == "the same values in 12 readings in a row"
    assert noise(watch, T0 + 720, 61.5) == []  # still stuck, said once
    (moving,) = noise(watch, T0 + 780, 61.6)
    assert brief([moving]) == [("stuck", False, False)]


def test_repeats_and_late_readings_do_not_make_a_run() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    for i in range(11):
        noise(watch, T0 + 60 * i, 61.5)
    # the 11th delivered again, and an older one: still 11 in a row
    assert noise(watch, T0 + 600, 61.5) == []
    assert noise(watch, T0 + 30, 61.5) == []
    assert watch.by_sensor["nz-00025-1"].same_run == 11


def test_a_rain_gauge_reading_zero_for_days_is_not_stuck() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    events = [
        e
        for i in range(500)
        for e in watch.add(reading("rg-00082-1", T0 + 300 * i, rain_mm=0.0), T0 + 300 * i)
    ]
    assert events == []


# -- range -----------------------------------------------------------------------------


def test_out_of_range_is_raised_and_cleared() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    (out,) = noise(watch, T0, 131.0)
    assert brief([out]) == [("out_of_range", True, True)]
    assert out.detail == "laeq 131 outside [30, 130]"
    (back,) = noise(watch, T0 + 60, 130.0)  # the range is inclusive
    assert brief([back]) == [("out_of_range", False, False)]


def test_only_the_stations_measures_are_judged() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    # aq-00070-1 lists pm25 and pm10 only: its o3 is not judged
    assert watch.add(reading("aq-00070-1", T0, pm25=40.0, pm10=60.0, o3=1e6), T0) == []
    (out,) = watch.add(reading("aq-00070-1", T0 + 300, pm25=-6.0, pm10=2500.0), T0 + 300)
    assert out.detail == "pm10 2500 outside [-5, 2000]; pm25 -6 outside [-5, 1000]"


# -- clock skew -------------------------------------------------------------------------


def test_clock_skew_ahead_and_behind() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    assert noise(watch, T0 + 300, 60.0, arrived=T0) == []  # 300 s ahead: allowed
    (ahead,) = noise(watch, T0 + 361, 60.1, arrived=T0 + 60)  # 301 s ahead
    assert brief([ahead]) == [("clock_skew", True, True)]
    assert ahead.detail == "reading time +301 s from its arrival (allowed +300 s / -3600 s)"
    (fixed,) = noise(watch, T0 + 120, 60.2, arrived=T0 + 120)
    assert brief([fixed]) == [("clock_skew", False, False)]
    # 3600 s behind is allowed; 3601 s behind is not
    assert noise(watch, T0 + 180, 60.3, arrived=T0 + 3780) == []
    (behind,) = noise(watch, T0 + 240, 60.4, arrived=T0 + 3841)
    assert behind.detail == "reading time -3601 s from its arrival (allowed +300 s / -3600 s)"


def test_skewed_readings_do_not_count_towards_stuck() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    for i in range(11):
        noise(watch, T0 + 60 * i, 61.5)
    # the 12th identical value, but stamped a day ahead: skew, not stuck
    assert brief(noise(watch, T0 + 86_400, 61.5, arrived=T0 + 660)) == [("clock_skew", True, True)]
    assert watch.by_sensor["nz-00025-1"].same_run == 11


def test_faulty_until_the_last_problem_clears() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    assert brief(noise(watch, T0 + 400, 140.0, arrived=T0)) == [
        ("clock_skew", True, True),
        ("out_of_range", True, True),
    ]
    assert brief(noise(watch, T0 + 60, 140.0)) == [("clock_skew", False, True)]
    assert brief(noise(watch, T0 + 120, 70.0)) == [("out_of_range", False, False)]
    assert watch.problems("nz-00025-1") == {}


# -- unknown sensors, state ---------------------------------------------------------------


def test_unknown_sensors_are_left_to_the_caller() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    assert watch.add(reading("nz-99999-1", T0, laeq=500.0), T0) == []
    assert "nz-99999-1" not in watch.state()
    assert watch.problems("nz-99999-1") == {}


def test_state_round_trips_through_json() -> None:
    steps: list[tuple[str, float, float]] = [
        ("read", T0, 60.0),
        ("read", T0 + 60, 60.0),
        ("tick", T0 + 300, 0.0),  # silent: 300 - 60 = 240 > 180
        ("read", T0 + 310, 140.0),  # back, out of range
        ("read", T0 + 370, 140.0),
    ] + [("read", T0 + 430 + 60 * i, 140.0) for i in range(11)]  # 13 in a row: stuck

    def run(watch: HealthWatch, part: list[tuple[str, float, float]]) -> list[HealthChanged]:
        out: list[HealthChanged] = []
        for what, t, laeq in part:
            out += watch.tick(t) if what == "tick" else noise(watch, t, laeq)
        return out

    whole = HealthWatch(STATIONS, now=T0)
    expected = run(whole, steps)
    assert ("stuck", True, True) in brief(expected)
    first = HealthWatch(STATIONS, now=T0)
    events = run(first, steps[:4])
    resumed = HealthWatch(STATIONS, now=T0 + 9999)
    resumed.restore(json.loads(json.dumps(first.state())))
    assert resumed.state() == first.state()
    assert events + run(resumed, steps[4:]) == expected
    assert resumed.state() == whole.state()


def test_a_sensor_added_after_the_snapshot_is_watched_from_the_restore() -> None:
    old = Stations({k: v for k, v in STATIONS.by_id.items() if k != "nz-00025-1"})
    snapshot = HealthWatch(old, now=T0).state()
    watch = HealthWatch(STATIONS, now=T0 + 3600)
    watch.restore(snapshot)
    assert watch.by_sensor["nz-00025-1"].since == T0 + 3600
    assert "nz-00025-1" not in {e.sensor_id for e in watch.tick(T0 + 3600 + 180)}
    assert "nz-00025-1" in {e.sensor_id for e in watch.tick(T0 + 3600 + 181)}


# -- alert signals ---------------------------------------------------------------------


def test_health_changes_become_sensor_health_signals() -> None:
    watch = HealthWatch(STATIONS, now=T0)
    (raised,) = noise(watch, T0, 131.0)
    (cleared,) = noise(watch, T0 + 60, 70.0)
    (on,) = health_signals(raised)
    (off,) = health_signals(cleared)
    assert (on.kind, on.subject, on.value, on.at) == ("sensor_health", "sensor:nz-00025-1", 1.0, T0)
    assert on.unit_map()["area"] == "area:00025"
    assert off.value == 0.0
    rule = load_rules().rules["sensor-health"]
    assert rule.judges(on) and rule.breached(on)
    assert rule.judges(off) and not rule.breached(off)
