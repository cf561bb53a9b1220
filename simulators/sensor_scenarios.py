"""Named scenarios of the simulated city, timed from the clock's start.

Every timeline is measured in the injected clock's time from the scenario's
``start`` (``IOC_CLOCK_START`` when set, else the clock's time when the
simulator starts) and repeats every 24 hours of clock time, so a demo at
``IOC_CLOCK_SPEED=60`` shows each one within minutes (one clock hour is one
real minute) and a long run sees them again each day.

``normal``
    No event: diurnal air quality, rivers well below alarm level I.
``pollution-episode``
    Every air-quality station, PM2.5 (and PM10 with it) rises from +1 h to
    +3 h towards ~230 µg/m³ at an average site (VN_AQI "very bad", NowCast
    150-250 µg/m³; "bad" and "very bad" while it climbs), holds until +6 h
    and falls back to the normal curve by +8 h.
``flood-wave``
    Every water-level station with alarm lines (Long Biên, Sơn Tây) rises
    linearly from +1 h to +3.5 h to 0.3 m above its line III, holds until
    +4.5 h, and falls linearly back to its normal level by +7 h, more than
    3 m under line I. The lines come from the stations file; the rise is
    several metres an hour, far above any station's rising-rate threshold.
``silent-station``
    The last configured air-quality station (Cầu Giấy in the sample) sends
    nothing from +1 h for max(1 h, 6 of its periods), then reports again.
``stuck-sensor``
    The first configured station judged for stuck readings that is not a
    water-level gauge or the silent one (Ba Đình in the sample) repeats the
    values of its reading at +2 h for twice its ``stuck_readings`` readings
    (2 h at 12 x 300 s), then reads normally again.
``city``
    All of the above at once: what a demo shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ioc.sensor_health import HealthLimits
from ioc.stations import Station, Stations

HOUR = 3600.0
CYCLE = 24 * HOUR  # every timeline repeats each day of clock time

# name -> (what it does, for --help; the effects it switches on)
SCENARIOS: dict[str, tuple[str, frozenset[str]]] = {
    "normal": ("diurnal air quality, rivers below alarm level I", frozenset()),
    "pollution-episode": (
        "PM2.5 rises to the 'very bad' band from +1 h, back to normal by +8 h",
        frozenset({"pollution"}),
    ),
    "flood-wave": (
        "river gauges rise through alarm levels I, II, III from +1 h, below I by +7 h",
        frozenset({"flood"}),
    ),
    "silent-station": (
        "one air-quality station sends nothing from +1 h for an hour",
        frozenset({"silent"}),
    ),
    "stuck-sensor": (
        "one station repeats the same values from +2 h for twice its stuck count",
        frozenset({"stuck"}),
    ),
    "city": (
        "all of the above at once, for a demo",
        frozenset({"pollution", "flood", "silent", "stuck"}),
    ),
}
DEFAULT_SCENARIO = "normal"

# pollution-episode: PM2.5 at an average site on the plateau, µg/m³ (the
# VN_AQI "very bad" band is a NowCast of 150-250, docs/sensors.md).
EPISODE_PM25 = 230.0
EPISODE = (1 * HOUR, 3 * HOUR, 6 * HOUR, 8 * HOUR)  # rise from, plateau, fall from, back
# flood-wave: crest above line III, metres, and its timeline.
CREST_ABOVE_III_M = 0.3
FLOOD = (1 * HOUR, 3.5 * HOUR, 4.5 * HOUR, 7 * HOUR)
SILENT_FROM = 1 * HOUR
SILENT_AT_LEAST = 1 * HOUR
SILENT_PERIODS = 6  # twice the health watch's 3 periods
STUCK_FROM = 2 * HOUR
STUCK_TIMES = 2  # stuck for this many times the station's stuck_readings


def check_scenario(name: str) -> str:
    """``name`` if it is a scenario; else ValueError naming the valid ones."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return name


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _trapezoid(
    elapsed: float, edges: tuple[float, float, float, float], ramp: Callable[[float], float]
) -> float:
    up, top, down, end = edges
    if elapsed <= up or elapsed >= end:
        return 0.0
    if elapsed < top:
        return ramp((elapsed - up) / (top - up))
    if elapsed <= down:
        return 1.0
    return ramp((end - elapsed) / (end - down))


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario's timeline from ``start``, and the stations it acts on."""

    name: str
    start: float
    silent_id: str | None = None
    silent_for: float = 0.0
    stuck_id: str | None = None
    stuck_period: float = 0.0
    stuck_count: int = 0

    @classmethod
    def build(cls, name: str, start: float, stations: Stations) -> Scenario:
        effects = SCENARIOS[check_scenario(name)][1]
        configured = list(stations)
        silent = _silent_station(configured) if "silent" in effects else None
        stuck = _stuck_station(configured, silent) if "stuck" in effects else None
        limits = HealthLimits()
        return cls(
            name,
            start,
            silent_id=silent.sensor_id if silent else None,
            silent_for=max(SILENT_AT_LEAST, SILENT_PERIODS * silent.period_s) if silent else 0.0,
            stuck_id=stuck.sensor_id if stuck else None,
            stuck_period=stuck.period_s if stuck else 0.0,
            stuck_count=STUCK_TIMES * (stuck.stuck_readings or limits.stuck_readings)
            if stuck
            else 0,
        )

    @property
    def effects(self) -> frozenset[str]:
        return SCENARIOS[self.name][1]

    def elapsed(self, t: float) -> float:
        """Clock seconds since the start of the current day of the timeline."""
        return (t - self.start) % CYCLE

    def pollution(self, t: float) -> float:
        """0..1: how far PM2.5 has moved from the normal curve to the episode's."""
        if "pollution" not in self.effects:
            return 0.0
        return _trapezoid(self.elapsed(t), EPISODE, _smooth)

    def flood(self, t: float) -> float:
        """0..1: how far a gauge has moved from its normal level to the crest."""
        if "flood" not in self.effects:
            return 0.0
        return _trapezoid(self.elapsed(t), FLOOD, lambda x: min(max(x, 0.0), 1.0))

    def silent(self, sensor_id: str, t: float) -> bool:
        if sensor_id != self.silent_id:
            return False
        return SILENT_FROM <= self.elapsed(t) < SILENT_FROM + self.silent_for

    def frozen_at(self, sensor_id: str, t: float) -> float | None:
        """The instant whose values a stuck sensor repeats at ``t``, or None."""
        if sensor_id != self.stuck_id:
            return None
        day = t - self.elapsed(t)
        # the first of the sensor's reporting instants (start + k periods) from STUCK_FROM
        first = day + math.ceil(STUCK_FROM / self.stuck_period - 1e-9) * self.stuck_period
        if first - 1e-6 <= t < first + (self.stuck_count - 0.5) * self.stuck_period:
            return first
        return None


def _silent_station(configured: list[Station]) -> Station | None:
    air = [s for s in configured if s.kind == "air_quality"] or configured
    return air[-1] if air else None


def _stuck_station(configured: list[Station], silent: Station | None) -> Station | None:
    for s in configured:
        if s.kind != "water_level" and s.stuck_readings != 0 and s is not silent:
            return s
    return None
