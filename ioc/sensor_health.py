"""Health of the configured sensors, judged from their readings alone.

Four problems, each raised as a ``HealthChanged`` event and cleared by
another once the sensor recovers:

- ``silent``: no reading has arrived for more than ``silent_periods`` (3)
  times the station's reporting period. Counted from the last reading's
  arrival, or, for a sensor never heard from, from the moment the watch
  was given it: a new sensor that never reports goes silent too. Judged on
  ``tick(now)``, the injected clock, so replays see it; a reading clears it.
- ``stuck``: the station's ``stuck_readings`` (default 12) readings in a
  row, in time order, carry exactly the same values; a different reading
  clears it. Repeats of a reading (the same time) do not count.
- ``out_of_range``: the latest reading has a measure outside the
  instrument's range from the stations file; an in-range one clears it.
- ``clock_skew``: the latest reading's time is more than 5 minutes ahead
  of its arrival, or more than an hour behind (a sensor's buffered backlog
  after an outage shows as skew until its current readings arrive).

Only readings count: nothing else a device sends keeps it "alive". A
reading's arrival time is the caller's (the broker's receipt, or on replay
the reading's own time). Sensors missing from the stations file are not
judged here; the caller flags them.

Pure: no I/O, no clock of its own; the state is plain JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ioc.events import SensorReading
from ioc.stations import Station, Stations


@dataclass(frozen=True, slots=True)
class HealthLimits:
    # Silent after this many reporting periods without a reading: one lost
    # message or a late one is not yet a fault.
    silent_periods: float = 3.0
    # For stations that do not set ``stuck_readings``.
    stuck_readings: int = 12
    skew_ahead_s: float = 300.0
    skew_behind_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """``problem`` was raised (``raised``) or cleared at ``at``; ``detail``
    says why; ``faulty`` says whether any problem is open after the change."""

    sensor_id: str
    area: str
    at: float
    problem: str
    raised: bool
    detail: str
    faulty: bool


@dataclass(slots=True)
class SensorHealth:
    """What the watch remembers of one sensor."""

    station: Station
    # When the watch was given the sensor: silence counts from here until a
    # first reading arrives.
    since: float
    last_heard: float | None = None
    # The newest reading in time order, and how many in a row had its values.
    last_ts: float | None = None
    last_values: dict[str, float] | None = None
    same_run: int = 0
    problems: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "last_heard": self.last_heard,
            "last_ts": self.last_ts,
            "last_values": self.last_values,
            "same_run": self.same_run,
            "problems": dict(self.problems),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.since = float(state["since"])
        self.last_heard = _optional(state["last_heard"])
        self.last_ts = _optional(state["last_ts"])
        values = state["last_values"]
        self.last_values = None if values is None else {k: float(v) for k, v in values.items()}
        self.same_run = int(state["same_run"])
        self.problems = {str(k): str(v) for k, v in state["problems"].items()}


class HealthWatch:
    """Every station of ``stations``, watched from ``now`` on."""

    def __init__(self, stations: Stations, now: float, limits: HealthLimits | None = None) -> None:
        self.limits = limits or HealthLimits()
        self.by_sensor = {s.sensor_id: SensorHealth(s, since=now) for s in stations}

    def add(self, reading: SensorReading, arrived: float) -> list[HealthChanged]:
        """The changes a reading that arrived at ``arrived`` causes."""
        sensor = self.by_sensor.get(reading.sensor_id)
        if sensor is None:
            return []
        out: list[HealthChanged] = []
        change = _Changes(sensor, arrived, out)
        if sensor.last_heard is None or arrived > sensor.last_heard:
            sensor.last_heard = arrived
        change.clear("silent", "reporting again")

        lim = self.limits
        ahead = reading.ts - arrived
        skewed = ahead > lim.skew_ahead_s or -ahead > lim.skew_behind_s
        if skewed:
            change.raise_(
                "clock_skew",
                f"reading time {ahead:+.0f} s from its arrival "
                f"(allowed +{lim.skew_ahead_s:g} s / -{lim.skew_behind_s:g} s)",
            )
        else:
            change.clear("clock_skew", "reading time agrees with arrival")

        measures = sensor.station.measures
        outside = [
            f"{name} {value:g} outside [{measures[name].low:g}, {measures[name].high:g}]"
            for name, value in sorted(reading.values.items())
            if name in measures and not measures[name].holds(value)
        ]
        if outside:
            change.raise_("out_of_range", "; ".join(outside))
        else:
            change.clear("out_of_range", "every measure in range")

        # A skewed time cannot be placed in order; a repeat is no new reading.
        if not skewed and (sensor.last_ts is None or reading.ts > sensor.last_ts):
            sensor.last_ts = reading.ts
            same = reading.values == sensor.last_values
            sensor.same_run = sensor.same_run + 1 if same else 1
            sensor.last_values = dict(reading.values)
            limit = sensor.station.stuck_readings
            limit = lim.stuck_readings if limit is None else limit
            if limit and sensor.same_run >= limit:
                change.raise_("stuck", f"the same values in {sensor.same_run} readings in a row")
            else:
                change.clear("stuck", "values changing again")
        return out

    def tick(self, now: float) -> list[HealthChanged]:
        """Silence of every sensor at ``now``."""
        out: list[HealthChanged] = []
        for sensor in self.by_sensor.values():
            limit = self.limits.silent_periods * sensor.station.period_s
            heard = sensor.last_heard if sensor.last_heard is not None else sensor.since
            if now - heard > limit and "silent" not in sensor.problems:
                what = "no reading" if sensor.last_heard is not None else "never heard from"
                _Changes(sensor, now, out).raise_(
                    "silent", f"{what} for {now - heard:.0f} s (allowed {limit:g} s)"
                )
        return out

    def problems(self, sensor_id: str) -> dict[str, str]:
        """The open problems of a sensor and why."""
        sensor = self.by_sensor.get(sensor_id)
        return dict(sensor.problems) if sensor is not None else {}

    def state(self) -> dict[str, Any]:
        return {sensor: h.state() for sensor, h in sorted(self.by_sensor.items())}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a ``state``; sensors since removed are dropped, new ones
        are watched from the ``now`` this watch was made with."""
        for sensor, saved in state.items():
            health = self.by_sensor.get(sensor)
            if health is not None:
                health.restore(saved)


class _Changes:
    """Raises and clears the problems of one sensor, noting each change."""

    def __init__(self, sensor: SensorHealth, at: float, out: list[HealthChanged]) -> None:
        self.sensor, self.at, self.out = sensor, at, out

    def raise_(self, problem: str, detail: str) -> None:
        if problem not in self.sensor.problems:
            self.sensor.problems[problem] = detail
            self._note(problem, True, detail)

    def clear(self, problem: str, detail: str) -> None:
        if self.sensor.problems.pop(problem, None) is not None:
            self._note(problem, False, detail)

    def _note(self, problem: str, raised: bool, detail: str) -> None:
        s = self.sensor
        self.out.append(
            HealthChanged(
                s.station.sensor_id,
                s.station.area,
                self.at,
                problem,
                raised,
                detail,
                bool(s.problems),
            )
        )


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)
