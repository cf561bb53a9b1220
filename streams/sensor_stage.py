"""What the sensor stage computes for one partition of the sensor topic:
pure, no I/O; its clock is what the caller passes in.

Readings are keyed by area (the bridge and the HTTP ingest), so a
partition holds every station of its areas and can judge an area's flood
level and AQI by itself. Per reading, in any order:

- the rolling windows (``ioc.sensor_windows``), which keep the readings of
  the last hours and give the same results whatever the order; a reading
  they already hold (same sensor and time) is a repeat and changes nothing;
- for a configured station: its flood level (``ioc.flood``), its health
  (``ioc.sensor_health``) and, for air quality, the hourly index of each
  hour the reading changes (``ioc.aqi``; a reading changes its own hour's
  NowCast and the next 11 hours');
- unknown sensors are kept, stored and shown, flagged ``known: false``.

``drain`` hands over what one commit writes: the new readings, each changed
sensor's status (docs/sensors.md, "Status"), the AQI rows and the signals
for the alert stage. ``state`` is what a restart cannot rebuild from the
stored readings (flood levels, health, the last index values).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.model import Signal
from alerts.signals import flood_signals, health_signals, rising_signals
from ioc.aqi import AqiValue, daily_index, hourly_index
from ioc.aqi_tables import POLLUTANTS, AqiScale
from ioc.events import SensorReading
from ioc.flood import MIN_RATE_SPAN_S, FloodWatch, LevelCrossed, rising_rate
from ioc.sensor_health import HealthWatch
from ioc.sensor_windows import SensorWindows
from ioc.stations import Station, Stations

HOUR = 3600.0
DAY = 86_400.0
UTC_OFFSET = 7 * HOUR  # the decision's day runs 01:00-24:00 local time (UTC+7)
NOWCAST_HOURS = 12
# the day's 24 hours and the 7 before them, for the first 8-hour ozone means
DAY_HOURS = 24 + 7
# readings kept per sensor: a day of hours for the daily index, and its 7 before
KEEP_SECONDS = DAY_HOURS * HOUR
SCALES = (AqiScale.VN, AqiScale.US_EPA_2024)
# Unknown sensors followed per partition (windows, status) at most; the
# readings of more are stored all the same.
MAX_UNKNOWN = 20_000
SWEEP_SECONDS = 60.0
DAILY = "vn-daily"


def hour_end(ts: float) -> float:
    """The end of the hour holding ``ts`` (a mean labelled 01:00 covers (00:00, 01:00])."""
    return math.ceil(ts / HOUR) * HOUR


def day_end(hour: float) -> float:
    """The local midnight that ends the decision's day holding the hour
    that ends at ``hour``."""
    local = hour + UTC_OFFSET
    return math.ceil(local / DAY) * DAY - UTC_OFFSET


@dataclass(frozen=True, slots=True)
class AqiRow:
    hour: float  # end of the hour (or of the day, for ``vn-daily``)
    sensor_id: str
    area: str
    scale: str
    value: AqiValue


@dataclass(slots=True)
class SensorDrain:
    """What one commit of a partition writes and then publishes."""

    readings: list[SensorReading]
    # sensor_id -> (area, kind, newest reading time or None, status)
    statuses: dict[str, tuple[str, str, float | None, dict[str, Any]]]
    aqi: list[AqiRow]
    signals: list[Signal]
    state: dict[str, Any]

    def __bool__(self) -> bool:
        return bool(self.readings or self.statuses or self.aqi or self.signals)


@dataclass(slots=True)
class _Pending:
    readings: list[SensorReading] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    # sensor -> the earliest hour end whose index a new reading changed
    aqi_from: dict[str, float] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)


def stations_of(stations: Stations, part: int, partition_of: Any) -> Stations:
    """The stations whose readings reach partition ``part``."""
    return Stations({s.sensor_id: s for s in stations if partition_of(s.area) == part})


class SensorPartition:
    def __init__(self, part: int, stations: Stations, now: float) -> None:
        """``stations``: those of this partition (``stations_of``)."""
        self.part = part
        self.stations = stations
        self.windows = SensorWindows(keep_s=KEEP_SECONDS)
        self.flood = FloodWatch(stations)
        self.health = HealthWatch(stations, now)
        self.latest: dict[str, SensorReading] = {}
        # sensor -> scale -> the index of its newest hour (or day) that has one
        self.aqi: dict[str, dict[str, dict[str, Any] | None]] = {}
        # sensor -> the VN_AQI last sent to the alert stage
        self.signalled: dict[str, int] = {}
        self._pending = _Pending()
        self._status_at: dict[str, float] = {}
        self._swept = -math.inf
        # readings of unknown sensors past MAX_UNKNOWN: stored, not followed
        self.untracked = 0
        self._unknown = 0  # unknown sensors held

    # -- in -------------------------------------------------------------------------

    def add(self, readings: Iterable[SensorReading], arrived: float | None = None) -> int:
        """Take readings that arrived at ``arrived`` (the deployment's clock;
        None: each at its own time, as on replay). Returns how many were new."""
        pending = self._pending
        new = 0
        for r in readings:
            pending.readings.append(r)  # stored even when not followed
            station = self.stations.get(r.sensor_id)
            followed = self.followed(r, station, arrived)
            if followed is None or (
                r.sensor_id not in self.latest and not self._room_for(r.sensor_id)
            ):
                if followed is None and station is not None:  # say why, once
                    self._health(r, arrived)
                    pending.changed.add(r.sensor_id)
                elif followed is not None:
                    self.untracked += 1
                continue
            if not self.windows.add(r.sensor_id, r.ts, followed.values):
                continue  # a repeat, or older than the windows
            new += 1
            old = self.latest.get(r.sensor_id)
            if old is None and station is None:
                self._unknown += 1
            if old is None or r.ts >= old.ts:
                self.latest[r.sensor_id] = followed
            pending.changed.add(r.sensor_id)
            if station is None:
                continue
            for event in self.flood.add(_as_station(followed, station)):
                if isinstance(event, LevelCrossed):
                    pending.signals += flood_signals(event)
                else:
                    pending.signals += rising_signals(event)
            self._health(r, arrived)
            if station.kind == "air_quality":
                hour = hour_end(r.ts)
                pending.aqi_from[r.sensor_id] = min(pending.aqi_from.get(r.sensor_id, hour), hour)
        return new

    def _health(self, r: SensorReading, arrived: float | None) -> None:
        for change in self.health.add(r, r.ts if arrived is None else arrived):
            self._pending.signals += health_signals(change)

    def followed(
        self, r: SensorReading, station: Station | None, arrived: float | None
    ) -> SensorReading | None:
        """The part of a reading the windows, levels and index follow: not a
        reading stamped too far ahead of its arrival (one dated 2099 would
        hold the station's newest time for good), nor a configured
        measure's value outside its physical range (one absurd PM2.5 would
        weigh on 12 hours of NowCast). Both are stored, and raise the
        sensor's health problem."""
        if arrived is not None and r.ts - arrived > self.health.limits.skew_ahead_s:
            return None
        if station is None:
            return r
        values = {
            name: value
            for name, value in r.values.items()
            if name not in station.measures or station.measures[name].holds(value)
        }
        if len(values) == len(r.values):
            return r
        return replace(r, values=values) if values else None

    def _room_for(self, sensor_id: str) -> bool:
        """Whether a sensor not yet held may be: configured stations always,
        unknown ids up to ``MAX_UNKNOWN`` (producers may send any id)."""
        if sensor_id in self.stations.by_id:
            return True
        return self._unknown < MAX_UNKNOWN

    def tick(self, now: float) -> None:
        """The clock moved to ``now``: sensors silent too long; unknown
        sensors whose newest reading left the windows are forgotten."""
        for change in self.health.tick(now):
            self._pending.changed.add(change.sensor_id)
            self._pending.signals += health_signals(change)
        if now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            for sensor_id in [
                sid
                for sid, r in self.latest.items()
                if r.ts < now - KEEP_SECONDS and sid not in self.stations.by_id
            ]:
                self.forget(sensor_id)

    def forget(self, sensor_id: str) -> None:
        self.windows.drop(sensor_id)
        if self.latest.pop(sensor_id, None) is not None and sensor_id not in self.stations.by_id:
            self._unknown -= 1
        self.aqi.pop(sensor_id, None)
        self._status_at.pop(sensor_id, None)

    # -- out ------------------------------------------------------------------------

    def drain(self, now: float = 0.0, gap: float = 0.0) -> SensorDrain:
        """What a commit writes. A changed sensor's status is made at most
        once per ``gap`` (on the caller's monotonic ``now``): its windows
        cost about a millisecond, and a sensor sending many readings a second
        needs no status for each; a later drain takes the held ones."""
        pending, self._pending = self._pending, _Pending()
        aqi_rows = self._indices(pending)
        signals = pending.signals + self._aqi_signals(pending, aqi_rows)
        for row in aqi_rows:
            pending.changed.add(row.sensor_id)
        statuses = {}
        for sid in sorted(pending.changed):
            if now - self._status_at.get(sid, -math.inf) >= gap:
                self._status_at[sid] = now
                statuses[sid] = self._status(sid)
            else:
                self._pending.changed.add(sid)
        return SensorDrain(pending.readings, statuses, aqi_rows, signals, self.state())

    def holds_statuses(self) -> bool:
        """Whether a drain held back statuses that a later one must make."""
        return bool(self._pending.changed)

    def status(self, sensor_id: str) -> dict[str, Any]:
        return self._status(sensor_id)[3]

    def _status(self, sensor_id: str) -> tuple[str, str, float | None, dict[str, Any]]:
        station = self.stations.get(sensor_id)
        r = self.latest.get(sensor_id)
        area = station.area if station else r.area if r else ""
        kind = station.kind if station else r.kind if r else ""
        ts = r.ts if r else None
        problems = self.health.problems(sensor_id)
        item: dict[str, Any] = {
            "sensor_id": sensor_id,
            "area": area,
            "kind": kind,
            "known": station is not None,
            "ts": ts,
            "values": dict(r.values) if r else {},
            "windows": self.windows.stats(sensor_id, ts) if ts is not None else {},
            "aqi": self.aqi.get(sensor_id) if kind == "air_quality" and station else None,
            "flood": self._flood(sensor_id),
            "health": {"ok": not problems, "problems": problems},
        }
        return area, kind, ts, item

    def _flood(self, sensor_id: str) -> dict[str, Any] | None:
        watch = self.flood.by_sensor.get(sensor_id)
        if watch is None or watch.station.alarm_levels is None:
            return None
        last = watch.recent[-1][1] if watch.recent else None
        return {
            "level": watch.level,
            "lines": list(watch.station.alarm_levels),
            "level_m": last,
            "rising": watch.rising,
            "rate_m_per_h": rising_rate(watch.recent, MIN_RATE_SPAN_S),
        }

    def _indices(self, pending: _Pending) -> list[AqiRow]:
        """The index of every hour (and finished day) new readings changed."""
        rows: list[AqiRow] = []
        for sensor_id, first in sorted(pending.aqi_from.items()):
            station = self.stations.get(sensor_id)
            newest = self.windows.newest(sensor_id)
            if station is None or newest is None:
                continue
            last = hour_end(newest)
            days: set[float] = {day_end(last - HOUR)}
            found: list[AqiRow] = []
            hour = first
            # a reading moves its hour's NowCast and the next 11 hours'
            while hour <= min(last, first + (NOWCAST_HOURS - 1) * HOUR):
                found += self._hour(station, hour, NOWCAST_HOURS)
                days.add(day_end(hour))
                hour += HOUR
            # a day once its last hour has begun to pass
            for end in sorted(d for d in days if d <= newest):
                found += self._day(station, end)
            current = self.aqi.setdefault(sensor_id, {str(s): None for s in (*SCALES, DAILY)})
            for row in found:
                held = current.get(row.scale)
                if held is None or row.hour >= held["hour"]:
                    current[row.scale] = aqi_item(row.hour, row.value)
            rows += found
        return rows

    def _hour(self, station: Station, hour: float, n: int) -> list[AqiRow]:
        means = self._means(station, hour, n)
        out = []
        for scale in SCALES:
            value = hourly_index(means, scale)
            if value is not None:
                out.append(AqiRow(hour, station.sensor_id, station.area, str(scale), value))
        return out

    def _day(self, station: Station, end: float) -> list[AqiRow]:
        value = daily_index(self._means(station, end, DAY_HOURS), AqiScale.VN)
        return [] if value is None else [AqiRow(end, station.sensor_id, station.area, DAILY, value)]

    def _means(self, station: Station, hour: float, n: int) -> dict[Any, list[float | None]]:
        return {
            p: self.windows.hourly_means(station.sensor_id, str(p), hour, n)
            for p in POLLUTANTS
            if str(p) in station.measures
        }

    def _aqi_signals(self, pending: _Pending, rows: list[AqiRow]) -> list[Signal]:
        """The station's and its area's VN_AQI when a station's newest index changed."""
        out: list[Signal] = []
        areas: dict[str, float] = {}
        for sensor_id in sorted(pending.aqi_from):
            station = self.stations.get(sensor_id)
            held = self.aqi.get(sensor_id, {}).get(str(AqiScale.VN))
            if station is None or held is None or self.signalled.get(sensor_id) == held["index"]:
                continue
            self.signalled[sensor_id] = held["index"]
            area = f"area:{station.area}"
            out.append(
                Signal(
                    "aqi",
                    f"sensor:{sensor_id}",
                    held["hour"],
                    value=float(held["index"]),
                    units=(("area", area),),
                )
            )
            areas[station.area] = max(areas.get(station.area, 0.0), held["hour"])
        for area, at in sorted(areas.items()):
            indices = [
                v["index"]
                for s in self.stations
                if s.area == area and (v := self.aqi.get(s.sensor_id, {}).get(str(AqiScale.VN)))
            ]
            out.append(Signal("aqi", f"area:{area}", at, value=float(max(indices))))
        return out

    # -- state ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "flood": self.flood.state(),
            "health": self.health.state(),
            "aqi": self.aqi,
            "signalled": self.signalled,
        }

    def restore(
        self,
        state: dict[str, Any],
        readings: Iterable[SensorReading],
        statuses: Iterable[dict[str, Any]],
        now: float | None = None,
    ) -> None:
        """Take back a committed ``state``, the stored readings of the last
        ``KEEP_SECONDS`` (into the windows only: their flood and health
        effects are in ``state``; those ``followed`` leaves out as of
        ``now``, left out again) and the stored statuses (each sensor's
        newest reading)."""
        self.flood.restore(state.get("flood", {}))
        self.health.restore(state.get("health", {}))
        self.aqi = {k: dict(v) for k, v in state.get("aqi", {}).items()}
        self.signalled = {k: int(v) for k, v in state.get("signalled", {}).items()}
        for stored in readings:
            r = self.followed(stored, self.stations.get(stored.sensor_id), now)
            if r is None:
                continue
            self.windows.add(r.sensor_id, r.ts, r.values)
            old = self.latest.get(r.sensor_id)
            if old is None or r.ts >= old.ts:
                self.latest[r.sensor_id] = r
        ahead = self.health.limits.skew_ahead_s
        for item in statuses:
            if item.get("ts") is None or (now is not None and item["ts"] - now > ahead):
                continue
            values = dict(item.get("values", {}))
            r = SensorReading(
                "", item["sensor_id"], item["area"], item["kind"], float(item["ts"]), values, b""
            )
            if r.sensor_id not in self.latest:
                self.latest[r.sensor_id] = r
        self._unknown = sum(1 for sid in self.latest if sid not in self.stations.by_id)
        self._pending = _Pending()


def aqi_item(hour: float, value: AqiValue) -> dict[str, Any]:
    band = value.band
    return {
        "hour": hour,
        "index": value.index,
        "band": band.name,
        "label_vi": band.label_vi,
        "label_en": band.label_epa,
        "colour": "#{:02x}{:02x}{:02x}".format(*band.rgb),
        "dominant": str(value.dominant),
        "sub": {
            str(s.pollutant): {
                "index": round(s.index, 2),
                "concentration": s.concentration,
                "averaging": str(s.averaging),
                "hours": s.hours,
                "above_scale": s.above_scale,
            }
            for s in value.sub_indices
        },
    }


def _as_station(r: SensorReading, station: Station) -> SensorReading:
    """The reading under its station's configured area."""
    if r.area == station.area:
        return r
    return SensorReading(r.event_id, r.sensor_id, station.area, r.kind, r.ts, r.values, r.raw)
