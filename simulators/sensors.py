"""Simulated city sensors of the sample province, published over MQTT.

``sensor_fleet`` places sensors on the registry's communes and areas (one
water-level gauge per configured area, e.g. the Long Biên station; air
quality, traffic, noise and rainfall in the communes). ``SensorSimulator``
computes plausible readings: every value is a pure function of the seed, the
sensor and the instant, so replays and tests see the same data.
``publish_sensors`` sends them with paho (QoS 1) every ``period`` seconds of
real time, stamped by the injected clock, in the bridge's payload contract
(see ``streams.sources.mqtt_bridge``).

Typical ranges are modelling assumptions unless a source is named; they aim
at the right order of magnitude and shape (seasons, rush hours), not at a
calibrated model.
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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ioc.clock import Clock, to_datetime
from ioc.registry import Registry
from ioc.settings import Settings

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

    @property
    def topic(self) -> str:
        return f"ioc/sensors/{self.area}/{self.kind}/{self.sensor_id}"


def sensor_fleet(registry: Registry, count: int) -> list[Sensor]:
    """``count`` sensors, always the same ones for the same registry."""
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
        site = 0.85 + 0.3 * (zlib.crc32(sensor_id.encode()) % 1000) / 1000
        sensors.append(Sensor(sensor_id, code, kind, gases, site))
        i += 1
    return sensors


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
    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        seed: int = 7,
        count: int = 24,
        period: float = 5.0,
        bad_share: float = 0.0,
    ) -> None:
        self.sensors = sensor_fleet(registry, count)
        self.clock = clock
        self.seed = seed
        self.period = period
        self.bad_share = bad_share  # for tests of the dead-letter path; 0 by default

    def tick(self) -> list[tuple[str, bytes]]:
        return self.readings_at(self.clock.now())

    def readings_at(self, t: float) -> list[tuple[str, bytes]]:
        """(MQTT topic, JSON payload) of every sensor at instant ``t``."""
        ts = to_datetime(t).isoformat(timespec="milliseconds")
        out = []
        for sensor in self.sensors:
            rng = random.Random(f"{self.seed}:{sensor.sensor_id}:{t:.3f}")
            if self.bad_share and rng.random() < self.bad_share:
                out.append((sensor.topic, rng.choice(BAD_PAYLOADS)))
                continue
            values = self.values(sensor, t, rng)
            body: dict[str, Any] = {"ts": ts}
            if sensor.kind in SHORTHAND_KINDS:
                body["value"] = next(iter(values.values()))
            else:
                body["values"] = values
            out.append((sensor.topic, json.dumps(body, separators=(",", ":")).encode()))
        return out

    def values(self, sensor: Sensor, t: float, rng: random.Random) -> dict[str, float]:
        local = to_datetime(t)
        hour = local.hour + local.minute / 60 + local.second / 3600
        r = rush(hour, local.weekday())
        if sensor.kind == "air_quality":
            return self._air(sensor, t, hour, r, rng)
        if sensor.kind == "water_level":
            # Hồng river at Long Biên: assumed ~1.5-2.5 m in the dry season and
            # ~5-7 m at the flood-season peak (early August); the alarm levels
            # 9.5/10.5/11.5 m (Decision 05/2020/QĐ-TTg) are never reached. The
            # daily swing stands in for upstream hydropower releases.
            doy = local.timetuple().tm_yday
            wet = 0.5 + 0.5 * math.cos(2 * math.pi * (doy - 215) / 365.25)
            swing = 0.25 * math.sin(2 * math.pi * (hour - 4) / 24)
            return {"level": round(1.8 + 4.6 * wet + swing + rng.gauss(0, 0.02), 2)}
        if sensor.kind == "rainfall":
            return {"rain_mm": self._rain(t, rng)}
        if sensor.kind == "traffic":
            # Assumed urban arterial: ~250 vehicles/h at night, up to ~5,000/h at
            # rush hour (motorbikes mostly); mean speed ~45 km/h falling to
            # ~15-20 km/h in the rush.
            per_hour = sensor.site * (250 + 2500 * daytime(hour) + 2300 * r)
            mean = per_hour * self.period / 3600
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
        w = winter(t)
        diurnal = 0.85 + 0.5 * r - 0.2 * _bump(hour, 14.5, 2.5)
        pm25 = (22 + 50 * w) * diurnal * self._episode(t) * sensor.site
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

    def _episode(self, t: float) -> float:
        """City-wide day-to-day weather factor (0.7-1.4), smooth across midnight."""
        day, frac = divmod(t / DAY, 1.0)
        today, tomorrow = (
            0.7 + 0.7 * _city_draw(self.seed, "day", int(d))[0] for d in (day, day + 1)
        )
        return today + (tomorrow - today) * frac

    def _rain(self, t: float, rng: random.Random) -> float:
        # Hà Nội gets ~1,600-1,700 mm a year, ~80% of it May-October; showers
        # last an hour or two. Assumed: raining ~1% of hours in winter and ~9%
        # in summer, ~4 mm/h on average. Whether it rains is city-wide per hour.
        chance, size = _city_draw(self.seed, "rain", int(t // 3600))
        if chance >= 0.01 + 0.08 * (1 - winter(t)):
            return 0.0
        intensity = -4.0 * math.log(1 - size)  # mm/h, exponential with mean 4
        return round(intensity * self.period / 3600 * rng.uniform(0.5, 1.5), 3)


async def publish_sensors(
    settings: Settings, registry: Registry, clock: Clock, stop: asyncio.Event
) -> None:
    """Publish the fleet's readings every ``sim_sensor_period`` real seconds until
    ``stop`` is set; paho queues while the broker is away and reconnects."""
    import paho.mqtt.client as mqtt  # only the live path needs paho
    from paho.mqtt.enums import CallbackAPIVersion

    sim = SensorSimulator(
        registry, clock, settings.sim_seed, settings.sim_sensors, settings.sim_sensor_period
    )
    if not sim.sensors:
        return
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
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    dropped = 0
    try:
        while not stop.is_set():
            for topic, payload in sim.tick():
                if client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    dropped += 1
            next_at = max(next_at + sim.period, loop.time())  # late: skip, do not burst
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next_at - loop.time())
    finally:
        if dropped:
            log.warning("sensor simulator dropped %d readings while the broker was away", dropped)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
