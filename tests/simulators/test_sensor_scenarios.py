"""The simulated city's scenarios, computed without MQTT: reproducible from
the seed and the start, each showing what its timeline promises, with the
configured stations' periods and ranges."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from functools import cache
from itertools import pairwise
from typing import Any

import pytest

from ioc import cli
from ioc.clock import ManualClock, parse_instant
from ioc.flood import LevelCrossed, RapidRise, StationFlood
from ioc.registry import Registry, load_registry
from ioc.settings import PACKAGE_DATA, Settings
from ioc.stations import SAMPLE_STATIONS, Stations, load_stations
from simulators.sensor_scenarios import SCENARIOS, check_scenario
from simulators.sensors import SensorSimulator

START = parse_instant("2026-01-12T06:00:00+07:00")  # dry season: the river far below I
HOUR = 3600.0


@cache
def registry() -> Registry:
    return load_registry(PACKAGE_DATA / "province-01-ha-noi.toml")


@cache
def stations() -> Stations:
    return load_stations(SAMPLE_STATIONS, registry())


def sim(scenario: str, seed: int = 7, start: float = START) -> SensorSimulator:
    return SensorSimulator(registry(), ManualClock(start), seed, scenario=scenario)


def measure(payload: bytes, name: str) -> float:
    body = json.loads(payload)
    return float(body["value"] if "value" in body else body["values"][name])


def values(payload: bytes) -> Any:
    body = json.loads(payload)
    return body.get("values", body.get("value"))


def day_of_ticks(s: SensorSimulator, hours: float = 24) -> list[tuple[str, bytes]]:
    """What the publisher sends over ``hours``, ticking every minute."""
    clock = s.clock
    assert isinstance(clock, ManualClock)
    out = []
    while clock.now() < s.start + hours * HOUR:
        out.extend(s.tick())
        clock.advance(60)
    return out


def test_the_fleet_has_every_configured_station_with_its_own_period() -> None:
    s = sim("normal")
    by_id = {x.sensor_id: x for x in s.sensors}
    for st in stations():
        sensor = by_id[st.sensor_id]
        assert (sensor.area, sensor.kind, sensor.period_s) == (st.area, st.kind, st.period_s)
        assert sensor.topic == f"ioc/sensors/{st.area}/{st.kind}/{st.sensor_id}"
    # the unconfigured commune sensors are kept, on their kind's period
    extra = [x for x in s.sensors if x.station is None]
    assert extra and all(x.period_s in (60, 300, 600) for x in extra)
    # a reading is due every period of clock time, stamped with its instant
    sent = day_of_ticks(s, hours=1)
    per_topic: dict[str, list[str]] = defaultdict(list)
    for topic, payload in sent:
        per_topic[topic].append(json.loads(payload)["ts"])
    long_bien = "ioc/sensors/tram-long-bien/water_level/wl-long-bien"
    noise = "ioc/sensors/00025/noise/nz-00025-1"
    assert len(per_topic[long_bien]) == 6 and len(per_topic[noise]) == 60
    assert per_topic[long_bien][1] == "2026-01-12T06:10:00.000+07:00"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_seed_and_start_give_the_same_bytes(scenario: str) -> None:
    one = day_of_ticks(sim(scenario, seed=5), hours=9)
    assert one == day_of_ticks(sim(scenario, seed=5), hours=9)
    assert one != day_of_ticks(sim(scenario, seed=6), hours=9)


def test_the_flood_wave_crosses_every_line_upward_then_falls_below_one() -> None:
    s = sim("flood-wave")
    for gauge in stations().of_kind("water_level"):
        assert gauge.alarm_levels is not None and gauge.rise_alarm_m_per_h is not None
        watch = StationFlood(gauge)
        levels, events = [], []
        for t, payload in s.series(gauge.sensor_id, START, START + 12 * HOUR):
            events += watch.add(t, measure(payload, "level"))
            levels.append(watch.level)
        crossed = [(e.from_level, e.to_level) for e in events if isinstance(e, LevelCrossed)]
        assert crossed[:3] == [(0, 1), (1, 2), (2, 3)], (gauge.sensor_id, crossed)
        assert crossed[-1][1] == 0 and levels[-1] == 0
        assert any(isinstance(e, RapidRise) and e.rising for e in events)
        series = [measure(p, "level") for _, p in s.series(gauge.sensor_id, START, START + HOUR)]
        assert max(series) < gauge.alarm_levels[0]  # before the wave
        rise = s.series(gauge.sensor_id, START + 1.5 * HOUR, START + 2.5 * HOUR + 1)
        rate = (measure(rise[-1][1], "level") - measure(rise[0][1], "level")) / 1.0
        assert rate > gauge.rise_alarm_m_per_h


def test_normal_rivers_stay_below_line_one_all_year() -> None:
    for month in range(1, 13):
        start = parse_instant(f"2026-{month:02d}-15T00:00:00+07:00")
        s = sim("city", start=start)
        for gauge in stations().of_kind("water_level"):
            assert gauge.alarm_levels is not None
            quiet = s.series(gauge.sensor_id, start + 8 * HOUR, start + 24 * HOUR)
            assert max(measure(p, "level") for _, p in quiet) < gauge.alarm_levels[0] - 0.5


def test_the_silent_station_misses_more_than_three_periods_then_resumes() -> None:
    s = sim("silent-station")
    target = s.scenario.silent_id
    station = stations().get(target or "")
    assert station is not None and station.kind == "air_quality"
    instants = [t for t, _ in s.series(station.sensor_id, START, START + 6 * HOUR)]
    gaps = [b - a for a, b in pairwise(instants)]
    assert max(gaps) > 3 * station.period_s
    assert sum(g > station.period_s for g in gaps) == 1  # one gap, then it reports again
    assert instants[-1] > instants[0] + 5 * HOUR
    # the others keep reporting
    others = {json.loads(p)["ts"] for _, p in s.series("aq-00004-1", START, START + 6 * HOUR)}
    assert len(others) == 6 * 12
    # the publisher sends nothing for it during the gap either
    topic = f"ioc/sensors/{station.area}/air_quality/{station.sensor_id}"
    sent = [json.loads(p)["ts"] for tp, p in day_of_ticks(sim("silent-station"), 3) if tp == topic]
    assert len(sent) == 3 * 12 - 12  # three hours of 5-minute readings, one hour silent


def test_the_stuck_sensor_repeats_its_values_then_recovers() -> None:
    s = sim("stuck-sensor")
    station = stations().get(s.scenario.stuck_id or "")
    assert station is not None and station.stuck_readings != 0
    needed = station.stuck_readings or 12
    readings = [values(p) for _, p in s.series(station.sensor_id, START, START + 8 * HOUR)]
    runs, run = [], 1
    for a, b in pairwise(readings):
        if a == b:
            run += 1
        else:
            runs.append(run)
            run = 1
    runs.append(run)
    assert max(runs) >= needed
    assert runs[-1] == 1  # it changes again afterwards
    assert sorted(runs)[-2] == 1  # and that run is the only one


def test_the_pollution_episode_reaches_the_very_bad_band_then_clears() -> None:
    s = sim("pollution-episode")
    for st in stations().of_kind("air_quality"):
        hourly = []
        for h in range(12):
            hour = s.series(st.sensor_id, START + h * HOUR, START + (h + 1) * HOUR)
            hourly.append(statistics.mean(measure(p, "pm25") for _, p in hour))
        assert sum(m > 150 for m in hourly) >= 2, (st.sensor_id, hourly)
        assert max(hourly) < 350
        assert hourly[0] < 150 and hourly[-1] < 150


def test_city_values_stay_in_the_configured_ranges() -> None:
    s = sim("city")
    by_id = {x.sensor_id: x for x in s.sensors}
    for topic, payload in day_of_ticks(s):
        station = by_id[topic.rsplit("/", 1)[1]].station
        if station is None:
            continue
        body = json.loads(payload)
        got = body.get("values") or {next(iter(station.measures)): body["value"]}
        assert got.keys() <= station.measures.keys()
        for name, value in got.items():
            assert station.measures[name].holds(value), (topic, name, value)


def test_unknown_scenario_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="choose one of: normal, pollution-episode"):
        check_scenario("flood")


def test_the_cli_parses_the_scenario_and_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli.parser().parse_args(["simulate", "--scenario", "flood-wave", "--seed", "3"])
    assert (args.scenario, args.seed) == ("flood-wave", 3)
    assert cli.parser().parse_args(["simulate"]).scenario is None  # IOC_SIM_SCENARIO decides
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args(["simulate", "--scenario", "tsunami"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'tsunami'" in err
    assert all(name in err for name in SCENARIOS)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["simulate", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in SCENARIOS)

    seen: list[Settings] = []

    async def fake_run(settings: Settings, *_: Any, **__: Any) -> None:
        seen.append(settings)

    monkeypatch.setattr("simulators.live.run_simulators", fake_run)
    assert cli.cmd_simulate(Settings(sim_seed=9), args) == 0
    assert getattr(seen[0], "sim_scenario", None) == "flood-wave" and seen[0].sim_seed == 3
    default = cli.parser().parse_args(["simulate"])
    assert cli.cmd_simulate(Settings(sim_seed=9), default) == 0
    assert getattr(seen[1], "sim_scenario", None) == "normal" and seen[1].sim_seed == 9
