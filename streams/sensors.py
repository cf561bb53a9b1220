"""Latest reading per sensor, for the wall screens.

The skeleton of the sensor pipeline: each reading replaces the sensor's
previous one if it is newer; the changed sensors are published together.
AQI, flood levels and sensor health build on this.
"""

from __future__ import annotations

from collections.abc import Iterable

from ioc.events import SensorReading
from ioc.updates import LatestReading


class LatestReadings:
    def __init__(self) -> None:
        self.latest: dict[str, SensorReading] = {}
        self._changed: set[str] = set()

    def update(self, readings: Iterable[SensorReading]) -> None:
        for r in readings:
            old = self.latest.get(r.sensor_id)
            if old is None or r.ts >= old.ts:
                self.latest[r.sensor_id] = r
                self._changed.add(r.sensor_id)

    def take_changed(self) -> list[LatestReading]:
        """The sensors updated since the last call."""
        out = [as_latest(self.latest[s]) for s in sorted(self._changed)]
        self._changed.clear()
        return out


def as_latest(r: SensorReading) -> LatestReading:
    return LatestReading(r.sensor_id, r.area, r.kind, r.ts, r.values)
