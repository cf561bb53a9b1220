"""Rolling windows of sensor readings on event time: 1 min, 15 min, 1 h and
24 h ending at a given instant, per sensor and measure, with mean, min,
max, p95, count and the last reading; and the hourly means the air-quality
index is computed from (``ioc.aqi``).

The results are a function of the set of readings, not of their arrival:
a late reading is inserted in time order, so late and repeated readings
give what an ordered pass gives. Per (sensor, measure) the readings of the
last ``keep_s`` seconds (31 hours by default: 24 for the daily index, 7
more for its first 8-hour O3 means) are held as sorted numpy arrays.

- A reading whose (sensor, measure, ts) is already held is a repeat and is
  ignored: the first one wins. Redelivery sends the same reading again; a
  sensor sending two values for one instant is a fault the first value
  does not make worse.
- A reading older than the sensor's horizon (its newest ts held minus
  ``keep_s``) is ignored: it would be pruned at once in an ordered pass.
- Non-finite values (and times) are not kept; the payload contract already
  refuses them, this is defence.

Windows are labelled by their end and hold the readings with
``end - window < ts <= end``: open at the start, closed at the end, like an
hourly mean labelled 01:00 covering 00:00-01:00 (the decision's hours). A
reading at exactly 01:00 belongs to the hour ending 01:00, and no reading
belongs to two adjacent hours. A window holding nothing is ``None``: no
data, never 0.

The statistics are ``Aggregator``s (``initialize`` / ``add`` / ``result``
over small numpy-computed states), so live windows, replays and
recomputations share one definition.

Pure: no I/O, no clock. The state is JSON (``state`` / ``restore``), or
raw float64 bytes behind a small JSON header (``state_bytes`` /
``from_bytes``), which is smaller and much faster to write and read for a
partition's worth of readings.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

WINDOWS: dict[str, float] = {"1m": 60.0, "15m": 900.0, "1h": 3600.0, "24h": 86400.0}
HOUR_S = 3600.0
# 24 hours for the daily index, 7 before them for its first 8-hour O3 means.
KEEP_S = 31 * HOUR_S
PERCENTILE = 95.0

# What one window's statistics hold: floats, the count, None where empty.
Stats = dict[str, float | int | None]
Floats = NDArray[np.float64]

S = TypeVar("S")

_BYTES_FORMAT = "ioc.sensor_windows/1"
_WIRE = np.dtype("<f8")  # little-endian float64, whatever the machine
_FIRST_CAPACITY = 16


class Aggregator(ABC, Generic[S]):
    """One statistic over readings: ``initialize`` an empty state, ``add``
    chunks of (ts, value) arrays to it in any order, read the ``result``.
    States are values: ``add`` returns a new one, the aggregator holds
    none."""

    @abstractmethod
    def initialize(self) -> S: ...

    @abstractmethod
    def add(self, state: S, ts: Floats, values: Floats) -> S: ...

    @abstractmethod
    def result(self, state: S) -> Stats: ...


class Mean(Aggregator[tuple[float, int]]):
    """Sum and count; the mean is ``None`` without readings."""

    def initialize(self) -> tuple[float, int]:
        return 0.0, 0

    def add(self, state: tuple[float, int], ts: Floats, values: Floats) -> tuple[float, int]:
        return state[0] + float(np.sum(values)), state[1] + len(values)

    def result(self, state: tuple[float, int]) -> Stats:
        total, count = state
        return {"mean": total / count if count else None}


class Min(Aggregator[float | None]):
    def initialize(self) -> float | None:
        return None

    def add(self, state: float | None, ts: Floats, values: Floats) -> float | None:
        if len(values) == 0:
            return state
        low = float(np.min(values))
        return low if state is None else min(state, low)

    def result(self, state: float | None) -> Stats:
        return {"min": state}


class Max(Aggregator[float | None]):
    def initialize(self) -> float | None:
        return None

    def add(self, state: float | None, ts: Floats, values: Floats) -> float | None:
        if len(values) == 0:
            return state
        high = float(np.max(values))
        return high if state is None else max(state, high)

    def result(self, state: float | None) -> Stats:
        return {"max": state}


class P95(Aggregator[tuple[Floats, ...]]):
    """The 95th percentile by numpy's default linear interpolation
    (``np.percentile(values, 95)``: rank 0.95 * (n - 1) between the sorted
    values). A percentile does not merge, so the state keeps the values."""

    def initialize(self) -> tuple[Floats, ...]:
        return ()

    def add(self, state: tuple[Floats, ...], ts: Floats, values: Floats) -> tuple[Floats, ...]:
        return (*state, values) if len(values) else state

    def result(self, state: tuple[Floats, ...]) -> Stats:
        if not state:
            return {"p95": None}
        values = state[0] if len(state) == 1 else np.concatenate(state)
        return {"p95": percentile(values, PERCENTILE)}


def percentile(values: Floats, q: float) -> float:
    """``np.percentile(values, q)`` (linear), by a partial sort of the two
    values around the rank: the same figure at a fraction of the cost
    (numpy's general routine took most of a status's time)."""
    rank = q / 100 * (len(values) - 1)
    lo = int(rank)
    t = rank - lo
    if t == 0 or lo + 1 >= len(values):
        return float(np.partition(values, lo)[lo])
    part = np.partition(values, (lo, lo + 1))
    a, b = float(part[lo]), float(part[lo + 1])
    # numpy's _lerp, so the figure is the same to the last bit
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


class Count(Aggregator[int]):
    def initialize(self) -> int:
        return 0

    def add(self, state: int, ts: Floats, values: Floats) -> int:
        return state + len(values)

    def result(self, state: int) -> Stats:
        return {"count": state}


class Last(Aggregator[tuple[float, float] | None]):
    """The newest reading's value and ts; chunks may come in any order, and
    of readings with the same ts the first added stays."""

    def initialize(self) -> tuple[float, float] | None:
        return None

    def add(
        self, state: tuple[float, float] | None, ts: Floats, values: Floats
    ) -> tuple[float, float] | None:
        if len(ts) == 0:
            return state
        i = int(np.argmax(ts))
        if state is not None and ts[i] <= state[0]:
            return state
        return float(ts[i]), float(values[i])

    def result(self, state: tuple[float, float] | None) -> Stats:
        if state is None:
            return {"last": None, "last_ts": None}
        return {"last": state[1], "last_ts": state[0]}


class WindowStats(Aggregator[tuple[Any, ...]]):
    """Mean, min, max, p95, count and last together, one state each."""

    def __init__(self) -> None:
        self.parts: tuple[Aggregator[Any], ...] = (Mean(), Min(), Max(), P95(), Count(), Last())

    def initialize(self) -> tuple[Any, ...]:
        return tuple(part.initialize() for part in self.parts)

    def add(self, state: tuple[Any, ...], ts: Floats, values: Floats) -> tuple[Any, ...]:
        return tuple(part.add(s, ts, values) for part, s in zip(self.parts, state, strict=True))

    def result(self, state: tuple[Any, ...]) -> Stats:
        out: Stats = {}
        for part, s in zip(self.parts, state, strict=True):
            out.update(part.result(s))
        return out


WINDOW_STATS = WindowStats()
MEAN = Mean()


class Series:
    """The readings of one sensor's measure, sorted by ts, ts unique.

    The arrays have spare capacity at the end (doubled when full) and pruned
    readings leave room at the start, reclaimed when the end is reached, so
    an in-order reading is one store and pruning is moving an index."""

    __slots__ = ("_end", "_last", "_start", "_ts", "_values")

    def __init__(self, capacity: int = _FIRST_CAPACITY) -> None:
        self._ts: Floats = np.empty(max(capacity, 1), np.float64)
        self._values: Floats = np.empty(max(capacity, 1), np.float64)
        self._start = 0
        self._end = 0
        self._last: float | None = None

    @classmethod
    def of(cls, ts: Floats, values: Floats) -> Series:
        """A series holding these readings; ts must be strictly increasing."""
        series = cls(len(ts))
        series._ts[: len(ts)] = ts
        series._values[: len(ts)] = values
        series._end = len(ts)
        series._last = float(ts[-1]) if len(ts) else None
        return series

    @property
    def ts(self) -> Floats:
        """The readings' times, oldest first (a view: do not keep it across adds)."""
        return self._ts[self._start : self._end]

    @property
    def values(self) -> Floats:
        """The readings' values, in the order of ``ts`` (a view, likewise)."""
        return self._values[self._start : self._end]

    @property
    def newest(self) -> float | None:
        return self._last

    def __len__(self) -> int:
        return self._end - self._start

    def add(self, ts: float, value: float) -> bool:
        """Insert a reading in time order; False for a repeat of a held ts."""
        end = self._end
        if self._last is None or ts > self._last:
            if end == len(self._ts):
                self._make_room()
                end = self._end
            self._ts[end] = ts
            self._values[end] = value
            self._end = end + 1
            self._last = ts
            return True
        held = self._ts[self._start : end]
        i = int(np.searchsorted(held, ts))  # ts <= last, so i < len(held)
        if held[i] == ts:
            return False
        i += self._start
        if end == len(self._ts):
            start = self._start
            self._make_room()
            i += self._start - start
            end = self._end
        # numpy copies overlapping slices as if through a temporary
        self._ts[i + 1 : end + 1] = self._ts[i:end]
        self._values[i + 1 : end + 1] = self._values[i:end]
        self._ts[i] = ts
        self._values[i] = value
        self._end = end + 1
        return True

    def oldest(self) -> float | None:
        return float(self._ts[self._start]) if self._end > self._start else None

    def prune(self, before: float) -> None:
        """Drop the readings older than ``before``."""
        cut = int(np.searchsorted(self.ts, before, side="left"))
        self._start += cut
        if self._start == self._end:
            self._start = self._end = 0
            self._last = None

    def _make_room(self) -> None:
        """Room for one more at the end: move the readings to the front when
        pruning freed at least half the arrays, else double them. Either
        copy is paid for by as many cheap appends, so appends stay O(1)
        amortised."""
        start, end, capacity = self._start, self._end, len(self._ts)
        n = end - start
        if start >= capacity // 2 and start > 0:
            self._ts[:n] = self._ts[start:end]
            self._values[:n] = self._values[start:end]
        else:
            ts = np.empty(2 * capacity, np.float64)
            values = np.empty(2 * capacity, np.float64)
            ts[:n] = self._ts[start:end]
            values[:n] = self._values[start:end]
            self._ts, self._values = ts, values
        self._start, self._end = 0, n


def window_stats(series: Series, window_seconds: float, end: float) -> Stats | None:
    """Mean, min, max, p95, count, last and last_ts of the readings with
    ``end - window_seconds < ts <= end``; ``None`` when there are none."""
    ts, values = series.ts, series.values
    lo = int(np.searchsorted(ts, end - window_seconds, side="right"))
    hi = int(np.searchsorted(ts, end, side="right"))
    if hi <= lo:
        return None
    return WINDOW_STATS.result(
        WINDOW_STATS.add(WINDOW_STATS.initialize(), ts[lo:hi], values[lo:hi])
    )


class SensorWindows:
    """The readings of the last ``keep_s`` seconds of every sensor of a
    worker partition, per measure, and the windows over them.

    ``keep_s`` must cover the longest window (24 h); the default 31 hours
    also gives ``hourly_means`` the 24 + 7 hours of a daily AQI. Windows
    ending before the sensor's newest reading minus ``keep_s`` minus their
    length see only what is still held."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        if not math.isfinite(keep_s) or keep_s < max(WINDOWS.values()):
            raise ValueError(f"keep_s {keep_s!r} is shorter than the 24 h window")
        self.keep_s = float(keep_s)
        self._series: dict[str, dict[str, Series]] = {}
        self._newest: dict[str, float] = {}

    def add(self, sensor_id: str, ts: float, values: Mapping[str, float]) -> bool:
        """Take a reading's values; True if any was kept (False for repeats,
        readings beyond the horizon and non-finite values)."""
        if not math.isfinite(ts):
            return False
        ts = float(ts)
        newest = self._newest.get(sensor_id)
        if newest is not None and ts < newest - self.keep_s:
            return False
        series = self._series.get(sensor_id)
        kept = False
        for measure, value in values.items():
            if not math.isfinite(value):
                continue
            if series is None:
                series = self._series[sensor_id] = {}
            one = series.get(measure)
            if one is None:
                one = series[measure] = Series()
            if one.add(ts, float(value)):
                kept = True
        if kept and (newest is None or ts > newest):
            self._newest[sensor_id] = ts
            if newest is not None:
                self._prune(sensor_id, ts - self.keep_s)
        return kept

    def stats(self, sensor_id: str, end: float) -> dict[str, dict[str, Stats | None]]:
        """Per measure of the sensor, per window of ``WINDOWS``, the window
        ending at ``end``; ``{}`` for a sensor with nothing held."""
        series = self._series.get(sensor_id, {})
        return {
            measure: {name: window_stats(one, length, end) for name, length in WINDOWS.items()}
            for measure, one in sorted(series.items())
        }

    def hourly_means(
        self, sensor_id: str, measure: str, end_hour: float, hours: int
    ) -> list[float | None]:
        """The means of the ``hours`` hours ending at ``end_hour``, oldest
        first: hour k, ending at h, covers ``h - 3600 < ts <= h``; ``None``
        for an hour without a reading. What ``ioc.aqi.hourly_index`` and
        ``daily_index`` take."""
        if hours < 0:
            raise ValueError(f"hours {hours} is negative")
        one = self._series.get(sensor_id, {}).get(measure)
        if one is None:
            return [None] * hours
        ts, values = one.ts, one.values
        edges = end_hour - HOUR_S * np.arange(hours, -1, -1, dtype=np.float64)
        cuts = np.searchsorted(ts, edges, side="right")
        out: list[float | None] = []
        for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            mean = MEAN.result(MEAN.add(MEAN.initialize(), ts[lo:hi], values[lo:hi]))["mean"]
            out.append(None if mean is None else float(mean))
        return out

    def newest(self, sensor_id: str) -> float | None:
        """The newest reading's ts held for the sensor."""
        return self._newest.get(sensor_id)

    def sensors(self) -> list[str]:
        return sorted(self._series)

    def measures(self, sensor_id: str) -> list[str]:
        return sorted(self._series.get(sensor_id, {}))

    def drop(self, sensor_id: str) -> None:
        """Forget a sensor (moved to another partition, or removed)."""
        self._series.pop(sensor_id, None)
        self._newest.pop(sensor_id, None)

    def state(self) -> dict[str, Any]:
        """Plain JSON: per sensor and measure the held ts and values as
        lists of floats (JSON floats read back to the same doubles)."""
        return {
            "keep_s": self.keep_s,
            "sensors": {
                sensor: {
                    measure: {"ts": one.ts.tolist(), "values": one.values.tolist()}
                    for measure, one in sorted(series.items())
                }
                for sensor, series in sorted(self._series.items())
            },
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace everything held with a ``state``. This instance's
        ``keep_s`` applies: a shorter one prunes what the state held."""
        self._series, self._newest = {}, {}
        for sensor, series in state["sensors"].items():
            for measure, saved in series.items():
                self._put(sensor, measure, saved["ts"], saved["values"])
        self._settle()

    def state_bytes(self) -> bytes:
        """The state as one line of JSON header (keep_s, and per series its
        sensor, measure and length) and then each series' ts and values as
        little-endian float64. Not much smaller than the JSON (16 bytes a
        reading against some 20: an epoch ts with decimals alone is 13
        characters), but writing it is a copy instead of formatting every
        float, an order of magnitude faster when a partition holds millions
        of readings, and the snapshot is taken while readings wait."""
        order = [
            (sensor, measure, one)
            for sensor, series in sorted(self._series.items())
            for measure, one in sorted(series.items())
        ]
        header = {
            "format": _BYTES_FORMAT,
            "keep_s": self.keep_s,
            "series": [[sensor, measure, len(one)] for sensor, measure, one in order],
        }
        parts = [json.dumps(header, ensure_ascii=False).encode(), b"\n"]
        for _, _, one in order:
            parts.append(one.ts.astype(_WIRE, copy=False).tobytes())
            parts.append(one.values.astype(_WIRE, copy=False).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, keep_s: float | None = None) -> SensorWindows:
        """The windows ``state_bytes`` wrote; ``keep_s`` by default as saved."""
        line, sep, body = data.partition(b"\n")
        header = json.loads(line) if sep else None
        if not isinstance(header, dict) or header.get("format") != _BYTES_FORMAT:
            raise ValueError(f"not a {_BYTES_FORMAT} state")
        windows = cls(float(header["keep_s"]) if keep_s is None else keep_s)
        floats = np.frombuffer(body, dtype=_WIRE)
        expected = 2 * sum(int(n) for _, _, n in header["series"])
        if len(floats) != expected:
            raise ValueError(f"state holds {len(floats)} floats, its header {expected}")
        at = 0
        for sensor, measure, n in header["series"]:
            n = int(n)
            windows._put(sensor, measure, floats[at : at + n], floats[at + n : at + 2 * n])
            at += 2 * n
        windows._settle()
        return windows

    def _put(
        self,
        sensor: str,
        measure: str,
        ts: Sequence[float] | Floats,
        values: Sequence[float] | Floats,
    ) -> None:
        t = np.array(ts, dtype=np.float64)
        v = np.array(values, dtype=np.float64)
        if t.ndim != 1 or t.shape != v.shape:
            raise ValueError(f"{sensor}/{measure}: ts and values differ in length")
        if not (np.isfinite(t).all() and np.isfinite(v).all()):
            raise ValueError(f"{sensor}/{measure}: a time or value is not finite")
        if len(t) > 1 and not (np.diff(t) > 0).all():
            raise ValueError(f"{sensor}/{measure}: times are not strictly increasing")
        if len(t):
            self._series.setdefault(str(sensor), {})[str(measure)] = Series.of(t, v)

    def _settle(self) -> None:
        """Newest per sensor from what was put, then prune to this horizon."""
        for sensor, series in self._series.items():
            self._newest[sensor] = max(float(one.ts[-1]) for one in series.values())
        for sensor, newest in self._newest.items():
            self._prune(sensor, newest - self.keep_s)

    def _prune(self, sensor_id: str, before: float) -> None:
        """Drop the sensor's readings older than ``before``, and measures
        left with none (as if their readings had come too late to keep)."""
        series = self._series[sensor_id]
        for measure, one in list(series.items()):
            oldest = one.oldest()
            if oldest is not None and oldest < before:
                one.prune(before)
                if len(one) == 0:
                    del series[measure]
