"""Flood alarm levels of water-level stations, from their readings.

A station's alarm level is 0 to 3: the number of its lines I, II, III
(Decision 05/2020/QĐ-TTg) the water has reached. The level rises as soon as
a reading is at or above a line, and falls back below a line only once a
reading is more than the station's ``fall_margin_m`` under it, so a river
hovering at a line gives one crossing, not one per reading. Each change of
level is a ``LevelCrossed`` event.

The rising rate is the least-squares slope of the station's readings over
the last ``rate_window_s`` (one hour), judged once they span at least
``min_rate_span_s`` (30 minutes); at or above the station's
``rise_alarm_m_per_h`` a ``RapidRise`` warning starts, and it ends when the
slope falls below it. While the readings are too few to judge, the warning
stays as it was.

Readings are taken in event-time order. One no newer than the station's
last is ignored (a repeat, or late): the crossings were decided when they
happened, and reopening them would make the alerts they caused flap.

Pure: no I/O, no clock; the state is plain JSON (``state`` / ``restore``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ioc.events import SensorReading
from ioc.stations import Station, Stations

RATE_WINDOW_S = 3600.0
MIN_RATE_SPAN_S = 1800.0


@dataclass(frozen=True, slots=True)
class LevelCrossed:
    """The station's alarm level changed from ``from_level`` to ``to_level``
    at ``at`` (the reading's time), with the water at ``level_m``.
    ``area_level`` is the highest level of the area's stations after it."""

    sensor_id: str
    area: str
    at: float
    level_m: float
    from_level: int
    to_level: int
    area_level: int


@dataclass(frozen=True, slots=True)
class RapidRise:
    """The rising-rate warning started (``rising``) or ended."""

    sensor_id: str
    area: str
    at: float
    level_m: float
    rate_m_per_h: float
    rising: bool


FloodEvent = LevelCrossed | RapidRise


def alarm_level(level_m: float, lines: tuple[float, ...], current: int, margin_m: float) -> int:
    """The alarm level after a reading of ``level_m`` at a station now at
    ``current``: up to every line reached, down only past ``margin_m``
    under a line."""
    reached = sum(level_m >= line for line in lines)
    held = sum(level_m >= line - margin_m for line in lines)
    return max(reached, min(current, held))


def rising_rate(readings: list[tuple[float, float]], min_span_s: float) -> float | None:
    """Least-squares slope of (epoch second, metres) readings in metres per
    hour; None for fewer than two readings or a span under ``min_span_s``."""
    if len(readings) < 2 or readings[-1][0] - readings[0][0] < min_span_s:
        return None
    hours = [(t - readings[0][0]) / 3600 for t, _ in readings]
    levels = [m for _, m in readings]
    mean_h, mean_m = sum(hours) / len(hours), sum(levels) / len(levels)
    spread = sum((h - mean_h) ** 2 for h in hours)
    return sum((h - mean_h) * (m - mean_m) for h, m in zip(hours, levels, strict=True)) / spread


@dataclass(slots=True)
class StationFlood:
    """The alarm level and rising-rate warning of one water-level station.
    Alone it knows no other station, so its crossings give its own level as
    ``area_level``; ``FloodWatch`` fills in the area's."""

    station: Station
    rate_window_s: float = RATE_WINDOW_S
    min_rate_span_s: float = MIN_RATE_SPAN_S
    level: int = 0
    rising: bool = False
    last_ts: float | None = None
    # (ts, metres) of the readings within the rate window, oldest first
    recent: list[tuple[float, float]] = field(default_factory=list)
    # readings no newer than the last, left out
    ignored: int = 0

    def add(self, ts: float, level_m: float) -> list[FloodEvent]:
        if self.last_ts is not None and ts <= self.last_ts:
            self.ignored += 1
            return []
        self.last_ts = ts
        s = self.station
        out: list[FloodEvent] = []
        lines = s.alarm_levels or ()
        new = alarm_level(level_m, lines, self.level, s.fall_margin_m)
        if new != self.level:
            out.append(LevelCrossed(s.sensor_id, s.area, ts, level_m, self.level, new, new))
            self.level = new

        self.recent.append((ts, level_m))
        self.recent = [(t, m) for t, m in self.recent if t >= ts - self.rate_window_s]
        rate = rising_rate(self.recent, self.min_rate_span_s)
        if rate is not None and s.rise_alarm_m_per_h is not None:
            rising = rate >= s.rise_alarm_m_per_h
            if rising != self.rising:
                out.append(RapidRise(s.sensor_id, s.area, ts, level_m, rate, rising))
                self.rising = rising
        return out

    def state(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "rising": self.rising,
            "last_ts": self.last_ts,
            "recent": [[t, m] for t, m in self.recent],
            "ignored": self.ignored,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])
        self.rising = bool(state["rising"])
        last = state["last_ts"]
        self.last_ts = None if last is None else float(last)
        self.recent = [(float(t), float(m)) for t, m in state["recent"]]
        self.ignored = int(state["ignored"])


class FloodWatch:
    """Every water-level station of ``stations`` that has alarm levels.

    ``add`` takes any reading and returns the events it causes; readings of
    other kinds, of unknown sensors (flagged by the caller) or without a
    ``level`` give none.
    """

    def __init__(
        self,
        stations: Stations,
        rate_window_s: float = RATE_WINDOW_S,
        min_rate_span_s: float = MIN_RATE_SPAN_S,
    ) -> None:
        self.by_sensor = {
            s.sensor_id: StationFlood(s, rate_window_s, min_rate_span_s)
            for s in stations.of_kind("water_level")
            if s.alarm_levels is not None
        }

    def add(self, reading: SensorReading) -> list[FloodEvent]:
        station = self.by_sensor.get(reading.sensor_id)
        level_m = reading.values.get("level")
        if station is None or level_m is None:
            return []
        return [
            replace(e, area_level=self.area_level(e.area)) if isinstance(e, LevelCrossed) else e
            for e in station.add(reading.ts, level_m)
        ]

    def area_level(self, area: str) -> int:
        """The highest alarm level of the area's stations."""
        return max((f.level for f in self.by_sensor.values() if f.station.area == area), default=0)

    def state(self) -> dict[str, Any]:
        return {sensor: f.state() for sensor, f in sorted(self.by_sensor.items())}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a ``state``; stations since removed are dropped, new
        ones start at level 0."""
        for sensor, saved in state.items():
            station = self.by_sensor.get(sensor)
            if station is not None:
                station.restore(saved)
