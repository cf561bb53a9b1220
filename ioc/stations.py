"""The province's sensor stations, from a TOML file validated at load.

A station is one sensor id: its kind, the area it reports for (a commune
code or an ``[[areas]]`` id of the province file), a Vietnamese name, where
it stands, what it measures (with the unit of the reading contract and the
physical range of the instrument), how often it reports, and for water-level
stations the alarm levels I/II/III of Decision 05/2020/QĐ-TTg and the rising
rate that warns. Every problem of the file is reported at once, each naming
the entry and the field.

A reading from a sensor the file lacks is kept and flagged by the caller
(``Stations.knows``), never dropped: the file often lags the field.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeGuard

from ioc.events import SENSOR_MEASURES
from ioc.registry import Registry, RegistryError

SAMPLE_STATIONS = Path(__file__).parent / "data" / "stations-01-ha-noi.toml"

# The unit each measure has in the reading contract (ioc/events.py).
MEASURE_UNITS: dict[str, str] = {
    "pm25": "µg/m³",
    "pm10": "µg/m³",
    "o3": "µg/m³",
    "no2": "µg/m³",
    "so2": "µg/m³",
    "co": "µg/m³",
    "level": "m",
    "vehicles": "vehicles",
    "speed": "km/h",
    "laeq": "dB(A)",
    "rain_mm": "mm",
}
# A box around the mainland, Hoàng Sa and Trường Sa: it catches swapped or
# mistyped coordinates, not a border check.
LAT_RANGE = (6.0, 23.5)
LON_RANGE = (102.0, 118.0)
# Falling back below a line needs the level this far under it (see ioc/flood.py).
DEFAULT_FALL_MARGIN_M = 0.05

_STATION_KEYS = frozenset(
    (
        *("sensor_id", "kind", "area", "name", "lat", "lon", "period_s", "measures"),
        *("alarm_levels", "alarm_source", "rise_alarm_m_per_h", "fall_margin_m"),
        "stuck_readings",
    )
)
_MEASURE_KEYS = frozenset(("unit", "min", "max"))

Problem = Callable[[str], None]


class StationsError(RegistryError):
    """A stations file that cannot be used; ``problems`` lists each reason
    (reported as the province file's are)."""


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    unit: str
    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Station:
    sensor_id: str
    kind: str
    area: str
    name: str
    lat: float
    lon: float
    period_s: float
    measures: Mapping[str, Measure]
    # Water level only: the lines I, II, III in metres above the gauge datum.
    alarm_levels: tuple[float, float, float] | None = None
    alarm_source: str = ""
    rise_alarm_m_per_h: float | None = None
    fall_margin_m: float = DEFAULT_FALL_MARGIN_M
    # Identical readings in a row that count as stuck; None: the health
    # watch's default; 0: not judged (a rain gauge reads 0 for weeks).
    stuck_readings: int | None = None


@dataclass(slots=True)
class Stations:
    by_id: dict[str, Station] = field(default_factory=dict)

    def knows(self, sensor_id: str) -> bool:
        return sensor_id in self.by_id

    def get(self, sensor_id: str) -> Station | None:
        return self.by_id.get(sensor_id)

    def of_kind(self, kind: str) -> list[Station]:
        return [s for s in self.by_id.values() if s.kind == kind]

    def __iter__(self) -> Iterator[Station]:
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)


def load_stations(path: Path = SAMPLE_STATIONS, registry: Registry | None = None) -> Stations:
    """The stations of ``path``; with a ``registry``, every area must be one
    of its communes or areas."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StationsError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise StationsError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_stations(data, str(path), registry)


def parse_stations(
    data: dict[str, Any], source: str = "<stations>", registry: Registry | None = None
) -> Stations:
    problems: list[str] = []
    entries = data.get("stations", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise StationsError(source, ["'stations' must be an array of tables ([[stations]])"])
    stations = Stations()
    for i, entry in enumerate(entries):
        station = _station(entry, f"stations[{i}]", registry, problems)
        if station is None:
            continue
        if station.sensor_id in stations.by_id:
            problems.append(f"stations[{i}]: duplicate sensor_id {station.sensor_id!r}")
        stations.by_id[station.sensor_id] = station
    if problems:
        raise StationsError(source, problems)
    return stations


def _station(
    entry: dict[str, Any], where: str, registry: Registry | None, problems: list[str]
) -> Station | None:
    ident = entry.get("sensor_id")
    if isinstance(ident, str) and ident.strip():
        where = f"{where} ({ident})"

    def problem(text: str) -> None:
        problems.append(f"{where}: {text}")

    for key in sorted(entry.keys() - _STATION_KEYS):
        problem(f"unknown field {key!r}")
    texts = {k: _text(entry, k, problem) for k in ("sensor_id", "kind", "area", "name")}
    kind = texts["kind"]
    if kind and kind not in SENSOR_MEASURES:
        problem(f"'kind' is {kind!r}, expected one of {', '.join(SENSOR_MEASURES)}")
        kind = ""
    area = texts["area"]
    if (
        area
        and registry is not None
        and area not in registry.communes
        and area not in registry.areas
    ):
        problem(f"'area' {area!r} is neither a commune code nor an area of the province file")
    lat = _number(entry, "lat", problem, *LAT_RANGE)
    lon = _number(entry, "lon", problem, *LON_RANGE)
    period = _number(entry, "period_s", problem, 1.0, 7 * 86_400.0)
    measures = _measures(entry.get("measures"), kind, problem)

    water = kind == "water_level"
    levels = _alarm_levels(entry, water, problem)
    rise = _number(entry, "rise_alarm_m_per_h", problem, 0.001, 10.0, required=water)
    margin = _number(entry, "fall_margin_m", problem, 0.0, 5.0, required=False)
    if margin is not None and levels is not None:
        gap = min(b - a for a, b in pairwise(levels))
        if margin >= gap:
            problem(f"'fall_margin_m' {margin:g} must be less than the gap between lines ({gap:g})")
    if not water:
        for key in ("rise_alarm_m_per_h", "fall_margin_m", "alarm_source"):
            if key in entry:
                problem(f"'{key}' is for water_level stations only")
    stuck = entry.get("stuck_readings")
    if stuck is not None and (
        isinstance(stuck, bool) or not isinstance(stuck, int) or stuck < 0 or stuck == 1
    ):
        problem("'stuck_readings' must be 0 (not judged) or a whole number >= 2")
        stuck = None
    source = entry.get("alarm_source", "")
    if not isinstance(source, str):
        problem("'alarm_source' must be a string")
        source = ""

    if not all(texts.values()) or None in (lat, lon, period) or measures is None:
        return None
    return Station(
        sensor_id=texts["sensor_id"],
        kind=kind,
        area=area,
        name=texts["name"],
        lat=lat or 0.0,
        lon=lon or 0.0,
        period_s=period or 0.0,
        measures=measures,
        alarm_levels=levels,
        alarm_source=source,
        rise_alarm_m_per_h=rise,
        fall_margin_m=DEFAULT_FALL_MARGIN_M if margin is None else margin,
        stuck_readings=stuck,
    )


def _measures(value: Any, kind: str, problem: Problem) -> dict[str, Measure] | None:
    """``measures = { pm25 = { unit = "µg/m³", min = 0, max = 1000 }, ... }``."""
    if not isinstance(value, dict) or not value:
        problem("'measures' must be a table of measures, e.g. { level = { unit = ... } }")
        return None
    allowed = SENSOR_MEASURES.get(kind, ())
    out: dict[str, Measure] = {}
    for name, spec in value.items():
        here = f"measures.{name}"
        if kind and name not in allowed:
            problem(f"'{here}': {kind} measures are {', '.join(allowed)}")
            continue
        if not isinstance(spec, dict):
            problem(f"'{here}' must be a table with unit, min and max")
            continue
        for key in sorted(spec.keys() - _MEASURE_KEYS):
            problem(f"'{here}' has an unknown field {key!r}")
        unit = spec.get("unit")
        expected = MEASURE_UNITS.get(name)
        if unit != expected:
            problem(f"'{here}.unit' is {unit!r}; readings give {name} in {expected!r}")
        low, high = spec.get("min"), spec.get("max")
        if not (_is_number(low) and _is_number(high)):
            problem(f"'{here}' needs numbers 'min' and 'max' (the instrument's range)")
            continue
        if low >= high:
            problem(f"'{here}': 'min' {low:g} must be less than 'max' {high:g}")
            continue
        out[name] = Measure(name, expected or "", float(low), float(high))
    return out if len(out) == len(value) else None


def _alarm_levels(
    entry: dict[str, Any], water: bool, problem: Problem
) -> tuple[float, float, float] | None:
    value = entry.get("alarm_levels")
    if value is None:
        if water:
            problem("missing 'alarm_levels' (lines I, II, III in metres)")
        return None
    if not water:
        problem("'alarm_levels' is for water_level stations only")
        return None
    if not (isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)):
        problem("'alarm_levels' must be three numbers (I, II, III in metres)")
        return None
    first, second, third = (float(v) for v in value)
    if not first < second < third:
        problem(f"'alarm_levels' {value} must be strictly increasing (I < II < III)")
        return None
    return first, second, third


def _text(entry: dict[str, Any], key: str, problem: Problem) -> str:
    value = entry.get(key)
    if value is None:
        problem(f"missing '{key}'")
        return ""
    if not isinstance(value, str) or not value.strip():
        problem(f"'{key}' must be a non-empty string")
        return ""
    return value


def _number(
    entry: dict[str, Any],
    key: str,
    problem: Problem,
    low: float,
    high: float,
    required: bool = True,
) -> float | None:
    value = entry.get(key)
    if value is None:
        if required:
            problem(f"missing '{key}'")
        return None
    if not _is_number(value) or not low <= value <= high:
        problem(f"'{key}' must be a number in [{low:g}, {high:g}], not {value!r}")
        return None
    return float(value)


def _is_number(value: Any) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
