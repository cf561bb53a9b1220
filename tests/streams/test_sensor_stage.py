"""The sensor stage of one partition, without Kafka or a database."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest

from ioc.clock import parse_instant
from ioc.events import SensorReading
from ioc.stations import SAMPLE_STATIONS, Stations, load_stations
from streams import sensor_stage
from streams.sensor_stage import SensorPartition, day_end, hour_end, stations_of

SAMPLE = load_stations(SAMPLE_STATIONS)


def ts(text: str) -> float:
    return parse_instant(f"2026-03-16T{text}+07:00")


def reading(sensor: str, clock: str, n: int = 0, **values: float) -> SensorReading:
    station = SAMPLE.get(sensor)
    area, kind = (station.area, station.kind) if station else ("00025", "noise")
    return SensorReading(f"{sensor}/{clock}/{n}", sensor, area, kind, ts(clock), values, b"")


def stage(*ids: str, now: str = "07:00:00") -> SensorPartition:
    return SensorPartition(0, Stations({i: SAMPLE.by_id[i] for i in ids}), ts(now))


AIR = [
    reading("aq-00166-1", f"{h:02d}:{m:02d}:00", pm25=40.0, pm10=60.0)
    for h, m in [(7, 35), (7, 45), (7, 55), (8, 5), (8, 15), (8, 25)]
]


def test_the_hourly_index_of_a_station_by_hand() -> None:
    # Hours ending 08:00 (07:35, 07:45, 07:55) and 09:00 (08:05 ... 08:25): means
    # 40 and 60 in both, so 2 of the last 3 hours and the NowCasts are 40 and 60.
    # PM2.5: 50 + (100 - 50) / (50 - 25) x (40 - 25) = 80; PM10: 50 + 50/100 x 10 = 55.
    s = stage("aq-00166-1")
    s.add(AIR, ts("08:30:00"))
    drain = s.drain()
    vn = [r for r in drain.aqi if r.scale == "vn"]
    # the hour ending 08:00 has 1 of its 3 (07:00 and 06:00 are empty): no value
    assert [(r.hour, r.value.index) for r in vn] == [(ts("09:00:00"), 80)]
    status = drain.statuses["aq-00166-1"][3]
    assert status["aqi"]["vn"]["index"] == 80 and status["aqi"]["vn"]["hour"] == ts("09:00:00")
    assert status["aqi"]["vn"]["sub"]["pm25"]["hours"] == 2
    assert status["aqi"]["vn"]["colour"] == "#ffff00" and status["aqi"]["vn-daily"] is None
    # (07:25, 08:25] holds all six; (08:10, 08:25] two
    assert status["windows"]["pm25"]["1h"]["count"] == 6
    assert status["windows"]["pm25"]["15m"]["count"] == 2
    assert status["windows"]["pm25"]["1m"]["count"] == 1
    aqi = [(g.subject, g.value) for g in drain.signals if g.kind == "aqi"]
    assert aqi == [("sensor:aq-00166-1", 80.0), ("area:00166", 80.0)]
    # the same index again sends nothing
    s.add([reading("aq-00166-1", "08:28:00", pm25=40.0, pm10=60.0)], ts("08:30:00"))
    assert [g for g in s.drain().signals if g.kind == "aqi"] == []


def test_order_and_repeats_do_not_change_the_results() -> None:
    rng = random.Random(5)
    readings = [
        reading("aq-00166-1", f"{h:02d}:{m:02d}:00", pm25=rng.uniform(5, 300), pm10=50.0)
        for h in range(0, 12)
        for m in range(0, 60, 10)
    ]
    ordered, shuffled = stage("aq-00166-1"), stage("aq-00166-1")
    ordered.add(readings, None)
    mixed = readings * 2
    rng.shuffle(mixed)
    shuffled.add(mixed, None)

    def final(s: SensorPartition) -> tuple[Any, ...]:
        drain = s.drain()
        rows = {(r.hour, r.scale): r.value.index for r in drain.aqi}
        return rows, drain.statuses["aq-00166-1"][3]["windows"], len(drain.readings)

    a, b = final(ordered), final(shuffled)
    assert a[:2] == b[:2]
    assert (a[2], b[2]) == (72, 144)  # every copy is stored; the table drops repeats by id


def test_a_river_crossing_its_lines_signals_the_station_and_its_area() -> None:
    s = stage("wl-long-bien")
    levels = [("07:50:00", 9.0), ("08:00:00", 9.3), ("08:10:00", 9.6), ("08:20:00", 10.6)]
    s.add([reading("wl-long-bien", c, level=v) for c, v in levels], ts("08:25:00"))
    drain = s.drain()
    floods = [(g.subject, g.value) for g in drain.signals if g.kind == "flood_level"]
    assert floods == [
        ("sensor:wl-long-bien", 1.0),
        ("area:tram-long-bien", 1.0),
        ("sensor:wl-long-bien", 2.0),
        ("area:tram-long-bien", 2.0),
    ]
    flood = drain.statuses["wl-long-bien"][3]["flood"]
    assert (flood["level"], flood["lines"], flood["level_m"]) == (2, [9.5, 10.5, 11.5], 10.6)
    # 30 min of readings rising 1.6 m: well above 0.25 m/h
    assert flood["rising"] is True and flood["rate_m_per_h"] > 0.25
    rising = [(g.subject, g.value) for g in drain.signals if g.kind == "flood_rising"]
    assert rising == [("sensor:wl-long-bien", 1.0)]


def test_a_silent_station_raises_and_clears_its_health_on_the_clock() -> None:
    s = stage("tc-00008-1", now="08:00:00")  # reports every 60 s
    s.add([reading("tc-00008-1", "08:00:00", vehicles=12.0)], ts("08:00:00"))
    s.drain()
    s.tick(ts("08:03:01"))  # 181 s > 3 periods
    drain = s.drain()
    assert [(g.subject, g.value) for g in drain.signals] == [("sensor:tc-00008-1", 1.0)]
    assert "silent" in drain.statuses["tc-00008-1"][3]["health"]["problems"]
    s.add([reading("tc-00008-1", "08:04:00", vehicles=15.0)], ts("08:04:00"))
    drain = s.drain()
    assert [(g.subject, g.value) for g in drain.signals] == [("sensor:tc-00008-1", 0.0)]
    assert drain.statuses["tc-00008-1"][3]["health"] == {"ok": True, "problems": {}}


def test_an_unknown_sensor_is_kept_and_flagged() -> None:
    s = stage("aq-00166-1")
    s.add([reading("nz-somewhere", "08:00:00", laeq=55.0)], ts("08:00:00"))
    drain = s.drain()
    status = drain.statuses["nz-somewhere"][3]
    assert status["known"] is False and status["aqi"] is None and status["flood"] is None
    assert status["values"] == {"laeq": 55.0} and len(drain.readings) == 1
    assert drain.signals == []


def test_a_restored_partition_goes_on_as_the_first_would() -> None:
    first = stage("aq-00166-1", "wl-long-bien")
    first.add([*AIR[:4], reading("wl-long-bien", "08:00:00", level=9.7)], ts("08:10:00"))
    drain = first.drain()
    again = stage("aq-00166-1", "wl-long-bien")
    statuses = [item for _, _, _, item in drain.statuses.values()]
    again.restore(drain.state, drain.readings, statuses)
    rest = [*AIR[4:], reading("wl-long-bien", "08:20:00", level=10.6)]
    first.add(rest, ts("08:30:00"))
    again.add(rest, ts("08:30:00"))
    a, b = first.drain(), again.drain()
    assert a.statuses == b.statuses
    assert [(r.hour, r.scale, r.value) for r in a.aqi] == [
        (r.hour, r.scale, r.value) for r in b.aqi
    ]
    assert a.signals == b.signals  # level I was in the state: only the crossing to II


def test_a_finished_day_gets_its_daily_index() -> None:
    # PM2.5 30 µg/m³ every 20 min on 16 March (local), then one reading after
    # midnight: the day's mean is 30, VN_AQI 50 + 50/25 x 5 = 60.
    s = stage("aq-00166-1")
    day = [
        SensorReading(
            f"d{i}",
            "aq-00166-1",
            "00166",
            "air_quality",
            ts("00:10:00") + i * 1200,
            {"pm25": 30.0},
            b"",
        )
        for i in range(72)
    ]
    after = reading("aq-00166-1", "00:10:00", pm25=30.0)
    after = SensorReading(
        "next", after.sensor_id, after.area, after.kind, ts("00:10:00") + 86400, after.values, b""
    )
    s.add([*day, after], None)
    daily = [r for r in s.drain().aqi if r.scale == "vn-daily"]
    end = datetime.fromisoformat("2026-03-17T00:00:00+07:00").timestamp()
    assert [(r.hour, r.value.index) for r in daily] == [(end, 60)]


def test_hours_and_days_by_their_end() -> None:
    assert hour_end(ts("08:00:00")) == ts("08:00:00")
    assert hour_end(ts("08:00:01")) == ts("09:00:00")
    assert (
        day_end(ts("09:00:00")) == datetime.fromisoformat("2026-03-17T00:00:00+07:00").timestamp()
    )


def test_a_partition_holds_the_stations_of_its_areas() -> None:
    parts = [stations_of(SAMPLE, p, lambda area: len(area) % 2) for p in (0, 1)]
    assert sum(len(p) for p in parts) == len(SAMPLE)
    for p, held in enumerate(parts):
        assert all(len(s.area) % 2 == p for s in held)


def test_unknown_sensors_are_followed_up_to_a_bound_and_forgotten_when_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sensor_stage, "MAX_UNKNOWN", 3)
    s = stage("aq-00166-1")
    s.add([reading(f"nz-{i}", "08:00:00", laeq=50.0) for i in range(5)], ts("08:00:00"))
    s.add([reading("aq-00166-1", "08:00:00", pm25=10.0)], ts("08:00:00"))
    drain = s.drain()
    assert len(drain.readings) == 6  # every reading is stored
    assert sorted(drain.statuses) == ["aq-00166-1", "nz-0", "nz-1", "nz-2"]
    assert s.untracked == 2
    s.tick(ts("08:00:00") + sensor_stage.KEEP_SECONDS + 1)
    assert sorted(s.latest) == ["aq-00166-1"]  # a station is never forgotten
    s.add([reading("nz-4", "08:00:00", laeq=50.0)], ts("08:00:00"))
    assert "nz-4" in s.latest  # room again


def test_a_reading_dated_far_ahead_is_stored_flagged_and_not_followed() -> None:
    s = stage("wl-son-tay")
    far = SensorReading(
        "x", "wl-son-tay", "tram-son-tay", "water_level", 4102333200.0, {"level": 5.1}, b""
    )
    s.add([reading("wl-son-tay", "08:00:00", level=5.0), far], ts("08:00:00"))
    drain = s.drain()
    assert len(drain.readings) == 2
    status = drain.statuses["wl-son-tay"][3]
    assert status["ts"] == ts("08:00:00") and "clock_skew" in status["health"]["problems"]
    # the station goes on: 15.0 m is above line III (14.4 m)
    s.add([reading("wl-son-tay", "08:10:00", level=15.0)], ts("08:10:00"))
    drain = s.drain()
    assert drain.statuses["wl-son-tay"][3]["flood"]["level"] == 3
    assert drain.statuses["wl-son-tay"][3]["health"]["ok"] is True
    # a restart leaves it out again
    again = stage("wl-son-tay")
    again.restore(drain.state, [far], [], ts("08:10:00"))
    assert again.windows.newest("wl-son-tay") is None


def test_a_value_outside_its_range_is_flagged_and_kept_out_of_the_index() -> None:
    s = stage("aq-00070-1")  # PM2.5 0..1000 µg/m³
    s.add(
        [
            reading("aq-00070-1", "09:40:00", pm25=10.0, pm10=20.0),
            reading("aq-00070-1", "10:02:00", pm25=9_999_999.0, pm10=20.0),
        ],
        ts("10:03:00"),
    )
    status = s.drain().statuses["aq-00070-1"][3]
    assert "out_of_range" in status["health"]["problems"]
    assert status["values"] == {"pm10": 20.0}  # the in-range measure is followed
    s.add([reading("aq-00070-1", "10:30:00", pm25=10.0, pm10=20.0)], ts("10:31:00"))
    status = s.drain().statuses["aq-00070-1"][3]
    assert status["health"]["ok"] is True
    assert status["windows"]["pm25"]["24h"]["max"] == 10.0
    assert status["windows"]["pm10"]["24h"]["count"] == 3
    # PM2.5 10 in both hours: 50 / 25 x 10 = 20; PM10 20: 50 / 50 x 20 = 20
    assert status["aqi"]["vn"]["index"] == 20


def test_of_two_readings_at_one_instant_the_first_stays() -> None:
    s = stage("aq-00004-1")
    first = reading("aq-00004-1", "21:25:00", pm25=46.0)
    second = SensorReading(
        "other", first.sensor_id, first.area, first.kind, first.ts, {"pm25": 500.0}, b""
    )
    s.add([first, second], ts("21:26:00"))
    status = s.drain().statuses["aq-00004-1"][3]
    assert status["values"] == {"pm25": 46.0} and status["windows"]["pm25"]["1m"]["count"] == 1
