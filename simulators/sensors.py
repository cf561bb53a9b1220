"""Simulated city sensors of the sample province, published over MQTT.

``sensor_fleet`` places sensors on the registry's communes and areas (one
water-level gauge per configured area, e.g. the Long Biên station; air
quality, traffic, noise and rainfall in the communes) and includes every
configured station of the stations file (``ioc/stations.py``), with its own
area, kind, measures and reporting period; the other sensors are unknown to
the stations file and flagged downstream. ``SensorSimulator`` computes
plausible readings: every value is a pure function of the seed, the
scenario (and its start), the sensor and the instant, so replays and tests
see the same data. A sensor reports at ``start + k x period`` of the
injected clock's time, stamped with that instant; ``publish_sensors`` sends
each reading with paho (QoS 1) once the clock reaches it, in the bridge's
payload contract (see ``streams.sources.mqtt_bridge``). A faster clock
(``IOC_CLOCK_SPEED``) shrinks the real time between readings accordingly.

Named scenarios (``normal``, ``pollution-episode``, ``flood-wave``,
``silent-station``, ``stuck-sensor``, ``city``) and their timelines are in
``simulators.sensor_scenarios`` and docs/sensors.md, "Simulated city".

Typical ranges are modelling assumptions unless a source is named; they aim
at the right order of magnitude and shape (seasons, rush hours), not at a
calibrated model. A configured station's values are kept inside its
instrument range.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import uuid
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ioc.clock import Clock, parse_instant, to_datetime
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.stations import SAMPLE_STATIONS, Station, Stations, load_stations
from simulators.sensor_scenarios import CREST_ABOVE_III_M, DEFAULT_SCENARIO, EPISODE_PM25, Scenario

log = logging.getLogger(__name__)

PREFIX = {
    "air_quality": "aq",
    "water_level": "wl",
    "traffic": "tc",
    "noise": "nz",
    "rainfall": "rg",
}
# Commune sensors are handed out in this order: air quality twice as often.
KIND_CYCLE = ("air_quality", "traffic", "noise", "air_quality", "rainfall")
SHORTHAND_KINDS = ("water_level", "rainfall")  # simple devices send one "value"
BAD_PAYLOADS = (
    b'{"ts": "2026-01-01T00:00:00+07:00", "values": ',
    b"not json at all",
    b'{"ts": "2026-01-01T00:00:00+07:00", "values": {"pm1": 3}}',
    b'{"ts": "yesterday", "value": 1}',
)
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Sensor:
    sensor_id: str
    area: str  # a commune code or a registry area id
    kind: str
    gases: bool = False  # air quality: also O3, NO2, SO2, CO
    site: float = 1.0  # a busy crossroads reads higher than a park
    period_s: float = 5.0  # seconds of clock time between readings
    # The configured station (its measures and ranges, alarm lines), if any.
    station: Station | None = field(default=None, hash=False)

    @property
    def topic(self) -> str:
        return f"ioc/sensors/{self.area}/{self.kind}/{self.sensor_id}"


def sensor_fleet(
    registry: Registry, count: int, stations: Stations | None = None, period: float = 5.0
) -> list[Sensor]:
    """``count`` sensors, always the same ones for the same registry, and
    every configured station of ``stations`` not among them. A configured
    sensor reports on its own period; another one on the shortest period of
    the configured stations of its kind, or ``period`` if there are none."""
    sensors = [
        Sensor(f"wl-{area.removeprefix('tram-')}", area, "water_level")
        for area in sorted(registry.areas)
    ][:count]
    communes = sorted(registry.communes)
    per_kind: dict[tuple[str, str], int] = {}
    air_stations = 0
    i = 0
    while len(sensors) < count and communes:
        code = communes[i % len(communes)]
        # Shift the cycle each round so a commune gets a new kind each time.
        kind = KIND_CYCLE[(i + i // len(communes)) % len(KIND_CYCLE)]
        n = per_kind[kind, code] = per_kind.get((kind, code), 0) + 1
        sensor_id = f"{PREFIX[kind]}-{code}-{n}"
        gases = kind == "air_quality" and air_stations % 2 == 0
        air_stations += kind == "air_quality"
        sensors.append(Sensor(sensor_id, code, kind, gases, _site(sensor_id)))
        i += 1
    configured = stations or Stations()
    kind_period: dict[str, float] = {}
    for st in configured:
        kind_period[st.kind] = min(st.period_s, kind_period.get(st.kind, st.period_s))
    fleet = []
    for s in sensors:
        station = configured.get(s.sensor_id)
        if station is not None:
            fleet.append(_configured(station, s.site))
        else:
            fleet.append(Sensor(**{**_fields(s), "period_s": kind_period.get(s.kind, period)}))
    have = {s.sensor_id for s in fleet}
    fleet += [_configured(st, _site(st.sensor_id)) for st in configured if st.sensor_id not in have]
    return fleet


def _site(sensor_id: str) -> float:
    return 0.85 + 0.3 * (zlib.crc32(sensor_id.encode()) % 1000) / 1000


def _fields(sensor: Sensor) -> dict[str, Any]:
    return {name: getattr(sensor, name) for name in Sensor.__slots__}


def _configured(station: Station, site: float) -> Sensor:
    return Sensor(
        station.sensor_id,
        station.area,
        station.kind,
        gases="o3" in station.measures,
        site=site,
        period_s=station.period_s,
        station=station,
    )


def _bump(hour: float, centre: float, width: float) -> float:
    """A bell over the hours of the day (wrapping at midnight), 1 at ``centre``."""
    d = abs(hour - centre) % 24
    d = min(d, 24 - d)
    return math.exp(-0.5 * (d / width) ** 2)


def rush(hour: float, weekday: int) -> float:
    """0..1: the morning (07-09) and evening (17-19) rush, weaker at weekends."""
    level = max(_bump(hour, 8.0, 0.9), _bump(hour, 18.0, 1.0))
    return level * (0.4 if weekday >= 5 else 1.0)


def daytime(hour: float) -> float:
    """0 at night, 1 from about 07:00 to 21:00."""
    return 1 / (1 + math.exp(-(hour - 6) * 1.5)) / (1 + math.exp((hour - 22) * 1.5))


def winter(t: float) -> float:
    """1 in mid-January, 0 in mid-July."""
    doy = to_datetime(t).timetuple().tm_yday
    return 0.5 + 0.5 * math.cos(2 * math.pi * (doy - 15) / 365.25)


@lru_cache(maxsize=4096)
def _city_draw(seed: int, what: str, index: int) -> tuple[float, float]:
    """Two uniform draws shared by every sensor for one day or hour."""
    rng = random.Random(f"{seed}:{what}:{index}")
    return rng.random(), rng.random()


class SensorSimulator:
    """The fleet's readings under one scenario. ``start`` (default: the
    clock's time now) is when the scenario's timeline begins and the first
    instant every sensor reports at."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        seed: int = 7,
        count: int = 24,
        period: float = 5.0,
        bad_share: float = 0.0,
        *,
        scenario: str = DEFAULT_SCENARIO,
        stations: Stations | None = None,
        start: float | None = None,
    ) -> None:
        if stations is None:
            stations = load_stations(SAMPLE_STATIONS, registry)
        self.sensors = sensor_fleet(registry, count, stations, period)
        self.clock = clock
        self.seed = seed
        self.bad_share = bad_share  # for tests of the dead-letter path; 0 by default
        self.start = clock.now() if start is None else start
        self.scenario = Scenario.build(scenario, self.start, stations)
        self._next = [self.start] * len(self.sensors)

    def tick(self) -> list[tuple[str, bytes]]:
        """The readings due by the clock's time now and not yet given: per
        sensor, its latest reporting instant (a late tick skips, it does not
        burst)."""
        now = self.clock.now()
        out = []
        for i, sensor in enumerate(self.sensors):
            if self._next[i] > now:
                continue
            k = math.floor((now - self.start) / sensor.period_s + 1e-9)
            t = self.start + k * sensor.period_s
            self._next[i] = self.start + (k + 1) * sensor.period_s
            out.extend(self.reading(sensor, t))
        return out

    def next_due(self) -> float:
        """The clock instant of the next reading due."""
        return min(self._next, default=math.inf)

    def readings_at(self, t: float) -> list[tuple[str, bytes]]:
        """(MQTT topic, JSON payload) of every sensor at instant ``t``; a
        sensor the scenario silences gives none."""
        return [r for sensor in self.sensors for r in self.reading(sensor, t)]

    def series(self, sensor_id: str, since: float, until: float) -> list[tuple[float, bytes]]:
        """(instant, payload) of one sensor at its reporting instants in
        [since, until); silent instants are left out."""
        sensor = next(s for s in self.sensors if s.sensor_id == sensor_id)
        k = math.ceil((since - self.start) / sensor.period_s - 1e-9)
        out: list[tuple[float, bytes]] = []
        while (t := self.start + k * sensor.period_s) < until:
            out.extend((t, payload) for _, payload in self.reading(sensor, t))
            k += 1
        return out

    def reading(self, sensor: Sensor, t: float) -> list[tuple[str, bytes]]:
        """The sensor's reading at ``t``, stamped ``t``; none while silent."""
        if self.scenario.silent(sensor.sensor_id, t):
            return []
        ts = to_datetime(t).isoformat(timespec="milliseconds")
        rng = random.Random(f"{self.seed}:{sensor.sensor_id}:{t:.3f}")
        if self.bad_share and rng.random() < self.bad_share:
            return [(sensor.topic, rng.choice(BAD_PAYLOADS))]
        frozen = self.scenario.frozen_at(sensor.sensor_id, t)
        if frozen is not None:  # a stuck sensor repeats the values of ``frozen``
            rng = random.Random(f"{self.seed}:{sensor.sensor_id}:{frozen:.3f}")
            if self.bad_share:
                rng.random()
        values = self.values(sensor, t if frozen is None else frozen, rng)
        if sensor.station is not None:
            values = _in_range(values, sensor.station)
        body: dict[str, Any] = {"ts": ts}
        if sensor.kind in SHORTHAND_KINDS:
            body["value"] = next(iter(values.values()))
        else:
            body["values"] = values
        return [(sensor.topic, json.dumps(body, separators=(",", ":")).encode())]

    def values(self, sensor: Sensor, t: float, rng: random.Random) -> dict[str, float]:
        local = to_datetime(t)
        hour = local.hour + local.minute / 60 + local.second / 3600
        r = rush(hour, local.weekday())
        if sensor.kind == "air_quality":
            return self._air(sensor, t, hour, r, rng)
        if sensor.kind == "water_level":
            return {"level": self._level(sensor, t, local.timetuple().tm_yday, hour, rng)}
        if sensor.kind == "rainfall":
            return {"rain_mm": self._rain(sensor, t, rng)}
        if sensor.kind == "traffic":
            # Assumed urban arterial: ~250 vehicles/h at night, up to ~5,000/h at
            # rush hour (motorbikes mostly); mean speed ~45 km/h falling to
            # ~15-20 km/h in the rush.
            per_hour = sensor.site * (250 + 2500 * daytime(hour) + 2300 * r)
            mean = per_hour * sensor.period_s / 3600
            vehicles = max(0, round(rng.gauss(mean, math.sqrt(mean) + 0.1)))
            speed = 45 - 27 * r * sensor.site + rng.gauss(0, 2)
            return {"vehicles": vehicles, "speed": round(min(max(speed, 5.0), 70.0), 1)}
        # Noise, roadside LAeq: assumed ~56 dB(A) at night and 68-72 by day;
        # QCVN 26:2010/BTNMT limits ordinary areas to 70 by day, 55 at night.
        laeq = 56 + 12 * daytime(hour) + 3 * r + 10 * (sensor.site - 1) + rng.gauss(0, 1.5)
        return {"laeq": round(laeq, 1)}

    def _air(
        self, sensor: Sensor, t: float, hour: float, r: float, rng: random.Random
    ) -> dict[str, float]:
        # Hà Nội PM2.5: winter monthly means often 50-100 µg/m³, summer 15-35
        # (public monitoring, e.g. the US Embassy and CEM stations). The daily
        # shape is assumed: rush-hour peaks, a cleaner mid-afternoon (deeper
        # mixing layer), and pollution episodes lasting a few days.
        # A night inversion (centred on 01:00) holds the day's particles low.
        w = winter(t)
        diurnal = 0.85 + 0.5 * r + 0.2 * _bump(hour, 1.0, 2.5) - 0.2 * _bump(hour, 14.5, 2.5)
        pm25 = (22 + 50 * w) * diurnal * self._episode(t) * sensor.site
        # The pollution-episode scenario moves it towards EPISODE_PM25.
        blend = self.scenario.pollution(t)
        pm25 += blend * (EPISODE_PM25 * sensor.site - pm25)
        pm25 *= rng.lognormvariate(0, 0.12)
        # PM2.5/PM10 ratio ~0.55-0.7 in Hà Nội (assumption from published studies).
        values = {"pm25": round(pm25, 1), "pm10": round(pm25 / rng.uniform(0.55, 0.7), 1)}
        if sensor.gases:
            # Assumed 1-hour levels, µg/m³: O3 peaks in the sunny afternoon
            # (well under the 160 of VN_AQI 50 at most hours); NO2 and CO follow
            # traffic; SO2 stays low.
            noise = rng.lognormvariate(0, 0.1)
            values["o3"] = round((25 + 75 * _bump(hour, 14, 2.5)) * (1.2 - 0.4 * w) * noise, 1)
            values["no2"] = round((25 + 35 * r) * (0.8 + 0.4 * w) * sensor.site * noise, 1)
            values["so2"] = round((8 + 10 * w) * noise, 1)
            values["co"] = round((700 + 1200 * r) * (0.8 + 0.5 * w) * sensor.site * noise)
        return values

    def _level(self, sensor: Sensor, t: float, doy: int, hour: float, rng: random.Random) -> float:
        # Hồng river at Long Biên: assumed ~1.5-2.5 m in the dry season and
        # ~5-7 m at the flood-season peak (early August), i.e. 7.7 to 3.1 m
        # under line I (9.5 m, Decision 05/2020/QĐ-TTg). A configured gauge
        # keeps that distance under its own line I; the daily swing stands in
        # for upstream hydropower releases.
        wet = 0.5 + 0.5 * math.cos(2 * math.pi * (doy - 215) / 365.25)
        swing = 0.25 * math.sin(2 * math.pi * (hour - 4) / 24)
        lines = sensor.station.alarm_levels if sensor.station else None
        line_one = lines[0] if lines else 9.5
        level = line_one - 7.7 + 4.6 * wet + swing
        if lines:  # the flood-wave scenario moves it towards the crest
            level += self.scenario.flood(t) * (lines[2] + CREST_ABOVE_III_M - level)
        return round(level + rng.gauss(0, 0.02), 2)

    def _episode(self, t: float) -> float:
        """City-wide day-to-day weather factor (0.7-1.4), smooth across midnight."""
        day, frac = divmod(t / DAY, 1.0)
        today, tomorrow = (
            0.7 + 0.7 * _city_draw(self.seed, "day", int(d))[0] for d in (day, day + 1)
        )
        return today + (tomorrow - today) * frac

    def _rain(self, sensor: Sensor, t: float, rng: random.Random) -> float:
        # Hà Nội gets ~1,600-1,700 mm a year, ~80% of it May-October; showers
        # last an hour or two. Assumed: raining ~1% of hours in winter and ~9%
        # in summer, ~4 mm/h on average. Whether it rains is city-wide per hour.
        chance, size = _city_draw(self.seed, "rain", int(t // 3600))
        if chance >= 0.01 + 0.08 * (1 - winter(t)):
            return 0.0
        intensity = -4.0 * math.log(1 - size)  # mm/h, exponential with mean 4
        return round(intensity * sensor.period_s / 3600 * rng.uniform(0.5, 1.5), 3)


def _in_range(values: dict[str, float], station: Station) -> dict[str, float]:
    """The values the station lists, each within its instrument's range."""
    out: dict[str, float] = {}
    for name, value in values.items():
        measure = station.measures.get(name)
        if measure is not None:
            out[name] = type(value)(min(max(value, measure.low), measure.high))
    return out


async def publish_sensors(
    settings: Settings,
    registry: Registry,
    clock: Clock,
    stop: asyncio.Event,
    scenario: str | None = None,
) -> None:
    """Publish the fleet's readings as the clock reaches them, until ``stop``
    is set; paho queues while the broker is away and reconnects.

    The scenario is ``scenario``, else the settings' ``sim_scenario``
    (``ioc simulate --scenario``, ``IOC_SIM_SCENARIO``); its timeline
    starts at ``IOC_CLOCK_START`` when set (the same start and seed give the
    same readings), else at the clock's time now."""
    import paho.mqtt.client as mqtt  # only the live path needs paho
    from paho.mqtt.enums import CallbackAPIVersion

    name = scenario or settings.sim_scenario
    start = parse_instant(settings.clock_start) if settings.clock_start else None
    sim = SensorSimulator(
        registry,
        clock,
        settings.sim_seed,
        settings.sim_sensors,
        settings.sim_sensor_period,
        scenario=name,
        stations=load_stations(settings.stations_file, registry),
        start=start,
    )
    if not sim.sensors:
        return
    log.info("simulating %d sensors, scenario %s, seed %d", len(sim.sensors), name, sim.seed)
    url = urlsplit(settings.mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ioc-sim-{uuid.uuid4().hex[:8]}")
    if url.username:
        client.username_pw_set(url.username, url.password)
    client.max_queued_messages_set(20_000)  # bounded while the broker is away
    client.reconnect_delay_set(1, 30)

    def on_disconnect(*_: Any) -> None:
        if not stop.is_set():
            log.warning("sensor simulator disconnected from %s; reconnecting", settings.mqtt_url)

    client.on_disconnect = on_disconnect
    client.connect_async(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    dropped = 0
    try:
        while not stop.is_set():
            for topic, payload in sim.tick():
                if client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    dropped += 1
            # Real seconds until the next reading is due; look again at least
            # every second, so a clock that is not the settings' still drives it.
            ahead = sim.next_due() - clock.now()
            speed = settings.clock_speed
            wait = ahead / speed if speed > 0 else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(max(wait, 0.005), 1.0))
    finally:
        if dropped:
            log.warning("sensor simulator dropped %d readings while the broker was away", dropped)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
