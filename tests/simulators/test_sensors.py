"""The simulated sensors: deterministic, valid for the bridge, physically
plausible, with rush hours; and, against Mosquitto, published live."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import uuid
from collections import defaultdict
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ioc.clock import ManualClock, parse_instant, to_datetime
from ioc.events import DecodeError
from ioc.registry import Registry, load_registry
from ioc.settings import PACKAGE_DATA, Settings
from simulators.sensors import SensorSimulator, publish_sensors, sensor_fleet
from streams.sources.mqtt_payload import parse_topic, reading_from_mqtt

WINTER_MONDAY = parse_instant("2026-01-12T00:00:00+07:00")
SUMMER_MONDAY = parse_instant("2026-07-13T00:00:00+07:00")

# Physical bounds a plausible reading stays inside (sensor-health limits are
# stricter rules elsewhere; these only catch a broken generator).
BOUNDS = {
    "pm25": (0, 500),
    "pm10": (0, 600),
    "o3": (0, 400),
    "no2": (0, 400),
    "so2": (0, 350),
    "co": (0, 30_000),
    "level": (
        0,
        12.4,
    ),  # below line I at Sơn Tây (each gauge vs its own lines: test_sensor_scenarios)
    "vehicles": (0, 200),  # per reading: a minute at the sample's counters
    "speed": (0, 90),
    "laeq": (30, 100),
    "rain_mm": (0, 20),  # per reading: five minutes at the sample's gauges
}


@cache
def registry() -> Registry:
    return load_registry(PACKAGE_DATA / "province-01-ha-noi.toml")


def week(start: float, step: float = 900, **kwargs: Any) -> list[tuple[float, str, bytes]]:
    """Every reading of a simulated week, sampled every ``step`` seconds."""
    clock = ManualClock(start)
    sim = SensorSimulator(registry(), clock, **kwargs)
    out = []
    while clock.now() < start + 7 * 86_400:
        out.extend((clock.now(), topic, payload) for topic, payload in sim.tick())
        clock.advance(step)
    return out


def test_fleet_is_deterministic_and_consistent_with_the_registry() -> None:
    reg = registry()
    fleet = sensor_fleet(reg, 24)
    assert fleet == sensor_fleet(reg, 24)
    assert len(fleet) == 24 and len({s.sensor_id for s in fleet}) == 24
    assert sensor_fleet(reg, 10) == fleet[:10]
    assert {s.kind for s in fleet} == {"air_quality", "water_level", "traffic", "noise", "rainfall"}
    assert any(s.gases for s in fleet) and not all(
        s.gases for s in fleet if s.kind == "air_quality"
    )
    for s in fleet:
        assert s.area in reg.communes or s.area in reg.areas
        assert parse_topic(s.topic) == (s.area, s.kind, s.sensor_id)
    gauge = next(s for s in fleet if s.kind == "water_level")
    assert (gauge.sensor_id, gauge.area) == ("wl-long-bien", "tram-long-bien")
    assert any(s.sensor_id == "aq-00166-1" for s in sensor_fleet(reg, 40))


def test_same_seed_same_readings() -> None:
    t = WINTER_MONDAY + 8 * 3600
    one = SensorSimulator(registry(), ManualClock(t), seed=3, count=24)
    two = SensorSimulator(registry(), ManualClock(t), seed=3, count=24)
    other = SensorSimulator(registry(), ManualClock(t), seed=4, count=24)
    assert one.tick() == two.tick() == one.readings_at(t)
    assert one.readings_at(t + 5) == two.readings_at(t + 5) != one.readings_at(t)
    assert other.readings_at(t) != one.readings_at(t)


def test_every_payload_passes_the_bridge_with_the_clock_time() -> None:
    for t, topic, payload in week(WINTER_MONDAY, step=3600) + week(SUMMER_MONDAY, step=3600):
        result = reading_from_mqtt(topic, payload, received_at=0.0)
        assert not isinstance(result, DecodeError), (topic, payload, result)
        reading, _ = result
        assert "ts_from" not in reading
        assert parse_instant(reading["ts"]) == pytest.approx(t, abs=0.001)


def test_values_stay_in_physical_ranges() -> None:
    seen: set[str] = set()
    for _, topic, payload in week(WINTER_MONDAY, 1800) + week(SUMMER_MONDAY, 1800):
        result = reading_from_mqtt(topic, payload, 0.0)
        assert not isinstance(result, DecodeError)
        for measure, value in result[0]["values"].items():
            low, high = BOUNDS[measure]
            assert low <= value <= high, (topic, measure, value)
            seen.add(measure)
    assert seen == set(BOUNDS)


def test_seasons_and_rush_hours() -> None:
    by_hour: dict[str, list[float]] = defaultdict(list)
    pm25_by_season: dict[str, list[float]] = defaultdict(list)
    speed: dict[str, list[float]] = defaultdict(list)
    for season, start in (("winter", WINTER_MONDAY), ("summer", SUMMER_MONDAY)):
        for t, _topic, payload in week(start):
            hour = to_datetime(t).hour
            slot = "rush" if hour in (7, 8, 17, 18) else "night" if hour < 5 else "other"
            values = json.loads(payload).get("values", {})
            if "pm25" in values:
                by_hour[slot].append(values["pm25"])
                pm25_by_season[season].append(values["pm25"])
            if "speed" in values:
                speed[slot].append(values["speed"])
    assert statistics.mean(by_hour["rush"]) > 1.15 * statistics.mean(by_hour["night"])
    assert statistics.mean(speed["rush"]) < statistics.mean(speed["night"]) - 10
    assert 45 <= statistics.mean(pm25_by_season["winter"]) <= 100
    assert 12 <= statistics.mean(pm25_by_season["summer"]) <= 35


def test_bad_share_injects_refused_payloads() -> None:
    bad = week(WINTER_MONDAY, step=3600, bad_share=1.0)
    assert all(isinstance(reading_from_mqtt(tp, p, 0.0), DecodeError) for _, tp, p in bad)
    some = week(WINTER_MONDAY, step=3600, bad_share=0.1)
    refused = sum(isinstance(reading_from_mqtt(tp, p, 0.0), DecodeError) for _, tp, p in some)
    assert 0.05 * len(some) < refused < 0.15 * len(some)


@pytest.mark.integration
def test_publish_sensors_over_mqtt(mqtt_url: str) -> None:
    """Readings published live reach a subscriber, stamped by the injected clock."""
    settings = Settings(mqtt_url=mqtt_url, sim_sensors=6, sim_seed=11)
    clock = ManualClock(WINTER_MONDAY + 8 * 3600)
    expected = {s.topic for s in SensorSimulator(registry(), clock, count=6).sensors}
    assert len(expected) > 6  # the configured stations beyond the first six
    ours = to_datetime(clock.now()).isoformat(timespec="milliseconds")
    received: dict[str, bytes] = {}
    all_in = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        # Another simulator may publish on the same topics: keep ours only.
        if json.loads(msg.payload).get("ts") == ours:
            received[msg.topic] = msg.payload
            if expected <= received.keys():
                all_in.set()

    url = urlsplit(mqtt_url)
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    listener.on_message = on_message
    listener.connect(url.hostname or "127.0.0.1", url.port or 1883)
    listener.subscribe([(topic, 1) for topic in expected])
    listener.loop_start()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(publish_sensors(settings, registry(), clock, stop))
        try:
            assert await asyncio.to_thread(all_in.wait, 15), received.keys()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        listener.disconnect()
        listener.loop_stop()
    for topic in expected:
        result = reading_from_mqtt(topic, received[topic], 0.0)
        assert not isinstance(result, DecodeError), result
        assert parse_instant(result[0]["ts"]) == clock.now()
