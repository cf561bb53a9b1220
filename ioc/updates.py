"""The messages on ``ioc.kpi-updates``: the one definition of each, with
its encoder and decoder side by side.

**KPI updates**, from the worker after each commit, one message per
partition and at most 200 scopes::

    {"type": "kpi", "part": 2, "at": <epoch s>,
     "scopes": {"commune:00166": {"flows": {"today": [...], "24h": [...],
                                            "month": [...], "ytd": [...]},
                                  "levels": [...]}, ...},
     "trace": {"applied": <epoch s or null>, "committed": ..., "published": ...},
     "edge": {"commune:00166": <epoch s>, ...}}

Counters, not rates, travel (vectors in the order of ``ioc.kpis.FLOWS``
and ``LEVELS``): each reader sums the latest counters of every partition
and derives the KPIs with ``ioc.kpis.derive``, so partial results of
several workers add up exactly. ``trace`` holds the wall-clock times the
message's changes passed the worker's stages; ``edge``, per scope, when
its oldest change reached the edge (HTTP ingest, MQTT bridge).

**Sensor updates**, from the sensor stage after each commit that changed
sensors, at most 200 sensors a message: each changed sensor's newest
reading and its status (docs/sensors.md, "Status": ``known``,
``windows``, ``aqi``, ``flood``, ``health``, passed through as given)::

    {"type": "sensor", "readings": [{"sensor_id": ..., "area": ..., "kind": ...,
                                     "ts": <epoch s>, "values": {...},
                                     "known": true, "windows": {...}, ...}, ...]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ioc import wire
from ioc.events import EVENT_YEARS_END, MAX_YEAR
from ioc.kpis import FLOWS, LEVELS, WINDOWS

# {"flows": {window: [int] * len(FLOWS)}, "levels": [int] * len(LEVELS)}
Counters = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Trace:
    """Wall-clock times (epoch seconds) an update passed the worker's stages."""

    applied: float | None  # the first of its events; None when only time passed
    committed: float
    published: float


@dataclass(frozen=True, slots=True)
class KpiUpdate:
    part: int
    at: float  # the partition's clock
    scopes: dict[str, Counters]
    trace: Trace | None = None  # None from a sender that does not trace
    edge: dict[str, float] = field(default_factory=dict)


def encode_kpi_update(
    part: int, at: float, scopes: Mapping[str, str], trace: Trace, edge: Mapping[str, float]
) -> bytes:
    """A KPI update from each scope's counters **already encoded as JSON**:
    the worker encodes them once, for ``kpi_latest`` and for this message,
    and splices them in (a commit at full pace publishes thousands)."""
    body = ",".join([f"{orjson.dumps(k).decode()}:{v}" for k, v in scopes.items()])
    return (
        f'{{"type":"kpi","part":{int(part)},"at":{orjson.dumps(at).decode()},'
        f'"scopes":{{{body}}},"trace":{orjson.dumps(trace).decode()},'
        f'"edge":{orjson.dumps(edge).decode()}}}'
    ).encode()


def decode_kpi_update(raw: bytes) -> KpiUpdate:
    """ValueError naming the field when one is missing or wrong."""
    return _kpi_update(wire.message(raw, "kpi"))


def _kpi_update(obj: dict[str, Any]) -> KpiUpdate:
    scopes = wire.mapping(obj, "scopes")
    for key, value in scopes.items():
        check_counters(value, f"scopes.{key}")
    edge = wire.mapping(obj, "edge") if "edge" in obj else {}
    return KpiUpdate(
        part=wire.integer(obj, "part"),
        at=_clock_time(wire.number(obj, "at")),
        scopes=scopes,
        trace=_trace(wire.mapping(obj, "trace")) if "trace" in obj else None,
        edge={key: wire.number(edge, key, "edge.") for key in edge},
    )


def _clock_time(at: float) -> float:
    """A worker's clock: 0 before its first event, never past the event
    years (a view takes local dates of it)."""
    if not 0 <= at < EVENT_YEARS_END:
        raise ValueError(f"field 'at' must be epoch seconds from 1970 to the end of {MAX_YEAR}")
    return at


def _trace(obj: dict[str, Any]) -> Trace:
    return Trace(
        applied=wire.number_or_none(obj, "applied", "trace."),
        committed=wire.number(obj, "committed", "trace."),
        published=wire.number(obj, "published", "trace."),
    )


def check_counters(counters: Any, where: str) -> None:
    """ValueError naming the field unless ``counters`` is one scope's counters."""
    if not isinstance(counters, dict):
        raise ValueError(f"field '{where}' must be an object")
    flows = wire.mapping(counters, "flows", f"{where}.")
    for window in WINDOWS:
        _check_vector(wire.array(flows, window, f"{where}.flows."), len(FLOWS), f"{where}.flows.")
    _check_vector(wire.array(counters, "levels", f"{where}."), len(LEVELS), f"{where}.levels")


def _check_vector(vector: list[Any], size: int, where: str) -> None:
    if len(vector) != size or not all(type(v) is int for v in vector):
        raise ValueError(f"field '{where}' must be {size} integers")


# -- sensor updates ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestReading:
    """The newest reading of one sensor."""

    sensor_id: str
    area: str  # a commune code or a configured area id
    kind: str
    # epoch seconds; None for a configured station never heard from (its
    # stored status says so: ``health``, ``values`` empty)
    ts: float | None
    values: dict[str, float]
    # the stage's status fields (docs/sensors.md, "Status"), as given
    status: dict[str, Any] = field(default_factory=dict)

    def item(self) -> dict[str, Any]:
        return {
            **self.status,
            "sensor_id": self.sensor_id,
            "area": self.area,
            "kind": self.kind,
            "ts": self.ts,
            "values": self.values,
        }


def encode_sensor_update(readings: Sequence[LatestReading]) -> bytes:
    return orjson.dumps({"type": "sensor", "readings": [r.item() for r in readings]})


def decode_sensor_update(raw: bytes) -> list[LatestReading]:
    """The readings of one message; ValueError naming the field when one is
    missing or wrong."""
    return _readings(wire.message(raw, "sensor"))


def _readings(obj: dict[str, Any]) -> list[LatestReading]:
    readings = wire.array(obj, "readings")
    return [_reading(item, f"readings[{i}].") for i, item in enumerate(readings)]


def _reading(item: Any, where: str) -> LatestReading:
    if not isinstance(item, dict):
        raise ValueError(f"field '{where.rstrip('.')}' must be an object")
    values = wire.mapping(item, "values", where)
    return LatestReading(
        sensor_id=wire.text(item, "sensor_id", where),
        area=wire.text(item, "area", where),
        kind=wire.text(item, "kind", where),
        ts=wire.number(item, "ts", where),
        values={name: wire.number(values, name, f"{where}values.") for name in values},
        status={k: v for k, v in item.items() if k not in READING_FIELDS},
    )


# the fields of a reading, outside its status
READING_FIELDS = frozenset(("sensor_id", "area", "kind", "ts", "values"))


def decode_update(raw: bytes) -> KpiUpdate | list[LatestReading]:
    """Any message of the topic: a KPI update, or a sensor update's readings."""
    obj = wire.message(raw, "kpi", "sensor")
    return _kpi_update(obj) if obj["type"] == "kpi" else _readings(obj)
