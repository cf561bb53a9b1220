"""``/api/v1/sensors``: the configured stations with the sensor stage's view
of each, a sensor's readings per bucket, and a station's hourly AQI.

Read with the read token. Parameters are checked before anything is read
(400 with the reason); instants follow ``ui_feed.rest.parse_time``. A
sensor's status (``known``, ``ts``, ``values``, ``windows``, ``aqi``,
``flood``, ``health``) is passed through as the stage stores it
(docs/sensors.md, "Status"): its ``ts`` is epoch seconds, as on the live
channels, so a screen can merge both by ``ts``. A station the stage has
judged but never heard from has ``ts`` null, ``values`` empty and its
``health`` (``silent``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from ioc.aqi_tables import BANDS, AqiScale
from ioc.clock import to_iso
from ioc.events import MAX_ID, SENSOR_KINDS
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.stations import Station, Stations, load_stations
from ioc.updates import LatestReading
from streams.sources.http_ingest import problem_responses
from ui_feed.queries import BUCKETS, MAX_BUCKETS, Reads
from ui_feed.rest import EXAMPLE_INSTANT, INSTANT, date_time, parse_time

# Points a default bucket gives at most; a chosen bucket may give up to MAX_BUCKETS.
DEFAULT_POINTS = 500
READINGS_SPAN = 24 * 3600  # default range of a readings read
AQI_SPAN = 48 * 3600  # default range of an AQI read
AQI_HOURS = MAX_BUCKETS  # values an AQI read covers at most (hours, or days)
DAILY = "vn-daily"  # the daily VN_AQI, labelled by the end of the decision's day
DAILY_SPAN = 30 * 86400  # default range of a daily AQI read
SCALES = (*(s.value for s in AqiScale), DAILY)
STATUS_FIELDS = ("known", "ts", "values", "windows", "aqi", "flood", "health")
BAND_BY_NAME = {band.name: band for band in BANDS}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def stations_of(settings: Settings, registry: Registry | None = None) -> Stations:
    """The stations of ``IOC_STATIONS_FILE``, checked against the province
    file as the worker checks them."""
    return load_stations(settings.stations_file, registry)


def colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def station_view(station: Station, registry: Registry) -> dict[str, Any]:
    """A configured station as listed, before its status."""
    return {
        "sensor_id": station.sensor_id,
        "kind": station.kind,
        "area": station.area,
        "area_label": registry.area_label(station.area),
        "name": station.name,
        "location": {"lat": station.lat, "lon": station.lon},
        "period_s": station.period_s,
        "measures": {
            m.name: {"unit": m.unit, "min": m.low, "max": m.high} for m in station.measures.values()
        },
        "alarm_levels": list(station.alarm_levels) if station.alarm_levels else None,
        **dict.fromkeys(STATUS_FIELDS),
        "known": True,
    }


def unknown_view(reading: LatestReading, registry: Registry) -> dict[str, Any]:
    return {
        "sensor_id": reading.sensor_id,
        "kind": reading.kind,
        "area": reading.area,
        "area_label": registry.area_label(reading.area),
        "name": None,
        "location": None,
        "period_s": None,
        "measures": None,
        "alarm_levels": None,
        **dict.fromkeys(STATUS_FIELDS),
    }


def merged(view: dict[str, Any], reading: LatestReading | None, known: bool) -> dict[str, Any]:
    """``view`` with the status fields of ``reading`` (the stage's row)."""
    if reading is not None:
        item = reading.item()
        for key in STATUS_FIELDS:
            if key in item:
                view[key] = item[key]
    view["known"] = known
    return view


def _text(value: str | None, name: str) -> str | None:
    if value is not None and (not value or len(value) > MAX_ID or _CONTROL.search(value)):
        raise HTTPException(400, f"{name} has 1–{MAX_ID} characters, none of them control")
    return value


def default_bucket(span: float) -> str:
    """The finest bucket giving at most DEFAULT_POINTS points over ``span``."""
    for name, size in BUCKETS.items():
        if span / size <= DEFAULT_POINTS:
            return name
    return next(reversed(BUCKETS))


def sensors_router(
    stations: Stations,
    registry: Registry,
    reads: Callable[[], Reads],
    now: Callable[[], Awaitable[float]],
    reader: Callable[..., Awaitable[None]],
) -> APIRouter:
    """The sensor reads; ``reader`` is the read-token dependency and ``now``
    the pipeline's time (the default end of a range)."""
    router = APIRouter(prefix="/api/v1", tags=["sensors"], dependencies=[Depends(reader)])
    errors = problem_responses(400, 401, 503)
    found_errors = problem_responses(400, 401, 404, 503)

    async def span(start: str | None, end: str | None, default: float) -> tuple[float, float]:
        t_end = parse_time(end, "to")
        t_start = parse_time(start, "from")
        if t_end is None:
            t_end = await now()
        if t_start is None:
            t_start = t_end - default
        if t_start >= t_end:
            raise HTTPException(400, "from must be before to")
        return t_start, t_end

    async def sensor(sensor_id: str) -> tuple[str, str, bool]:
        """(area, kind, known) of a configured or seen sensor; else 404."""
        station = stations.get(sensor_id)
        if station is not None:
            return station.area, station.kind, True
        if len(sensor_id) <= MAX_ID and not _CONTROL.search(sensor_id):
            for row in await reads().sensor_statuses(sensor_id=sensor_id):
                return row.area, row.kind, False
            seen = await reads().sensor_seen(sensor_id)
            if seen is not None:
                return seen[0], seen[1], False
        raise HTTPException(404, f"no sensor {sensor_id[:MAX_ID]!r}")

    instant_from = Query(
        None,
        alias="from",
        description=f"{INSTANT}; default: a span before `to`",
        examples=[EXAMPLE_INSTANT],
        json_schema_extra=date_time,
    )
    instant_to = Query(
        None,
        alias="to",
        description=f"{INSTANT}; default: the pipeline's time",
        examples=["2026-03-16T17:00:00+07:00"],
        json_schema_extra=date_time,
    )

    @router.get("/sensors", responses=errors)
    async def list_sensors(
        kind: str | None = Query(None, description=f"one of {', '.join(SENSOR_KINDS)}"),
        area: str | None = Query(None, description="a commune code or an area id"),
    ) -> dict[str, Any]:
        """Every configured station with the sensor stage's status of it
        (null fields before the stage has seen it), and every sensor the
        stage has seen that the stations file lacks (``known`` false)."""
        if kind is not None and kind not in SENSOR_KINDS:
            raise HTTPException(400, f"kind must be one of {', '.join(SENSOR_KINDS)}")
        _text(area, "area")
        rows = {r.sensor_id: r for r in await reads().sensor_statuses(kind=kind, area=area)}
        out = []
        for station in stations:
            if (kind is None or station.kind == kind) and (area is None or station.area == area):
                view = station_view(station, registry)
                out.append(merged(view, rows.pop(station.sensor_id, None), True))
        for row in rows.values():
            if not stations.knows(row.sensor_id):
                out.append(merged(unknown_view(row, registry), row, False))
        out.sort(key=lambda s: (not s["known"], s["kind"], s["sensor_id"]))
        return {"sensors": out}

    @router.get("/sensors/{sensor_id:path}/readings", responses=found_errors)
    async def readings(
        sensor_id: str = Path(examples=["aq-00166-1"]),
        bucket: str | None = Query(
            None,
            description=f"one of {', '.join(BUCKETS)}; default: the finest giving at most "
            f"{DEFAULT_POINTS} points",
        ),
        start: str | None = instant_from,
        end: str | None = instant_to,
    ) -> dict[str, Any]:
        """A sensor's readings per bucket of [from, to) (default: the last
        24 h): per measure the mean, min, max and count of the bucket's
        readings. Buckets without readings are left out."""
        if bucket is not None and bucket not in BUCKETS:
            raise HTTPException(400, f"bucket must be one of {', '.join(BUCKETS)}")
        t_start, t_end = await span(start, end, READINGS_SPAN)
        name = bucket or default_bucket(t_end - t_start)
        size = BUCKETS[name]
        if (t_end - t_start) / size > MAX_BUCKETS:
            raise HTTPException(
                400, f"at most {MAX_BUCKETS} points; widen the bucket or shorten the range"
            )
        area, kind, known = await sensor(sensor_id)
        points: dict[float, dict[str, Any]] = {}
        for t, measure, mean, low, high, count in await reads().sensor_series(
            sensor_id, size, t_start, t_end
        ):
            point = points.setdefault(t, {"at": to_iso(t), "values": {}})
            point["values"][measure] = {"mean": mean, "min": low, "max": high, "count": count}
        return {
            "sensor_id": sensor_id,
            "kind": kind,
            "area": area,
            "known": known,
            "bucket": name,
            "from": to_iso(t_start),
            "to": to_iso(t_end),
            "points": [points[t] for t in sorted(points)],
        }

    @router.get("/sensors/{sensor_id:path}/aqi", responses=found_errors)
    async def aqi(
        sensor_id: str = Path(examples=["aq-00166-1"]),
        scale: str = Query("vn", description=f"one of {', '.join(SCALES)}"),
        start: str | None = instant_from,
        end: str | None = instant_to,
    ) -> dict[str, Any]:
        """A station's index values with from <= hour < to, oldest first;
        ``hour`` is the end of the hour the value covers (default range: the
        last 48 h). ``vn-daily``: the daily VN_AQI, ``hour`` the end of the
        decision's day (local midnight; default range: the last 30 days).
        An hour or day without a value is absent (no data, never 0)."""
        if scale not in SCALES:
            raise HTTPException(400, f"scale must be one of {', '.join(SCALES)}")
        daily = scale == DAILY
        t_start, t_end = await span(start, end, DAILY_SPAN if daily else AQI_SPAN)
        if (t_end - t_start) / (86400 if daily else 3600) > AQI_HOURS:
            what = "days" if daily else "hours"
            raise HTTPException(400, f"at most {AQI_HOURS} {what}; shorten the range")
        area, kind, known = await sensor(sensor_id)
        hours = []
        for hour, index, band_name, dominant, detail in await reads().sensor_aqi(
            sensor_id, scale, t_start, t_end
        ):
            band = BAND_BY_NAME.get(band_name)
            hours.append(
                {
                    "hour": to_iso(hour),
                    "index": index,
                    "band": band_name,
                    "label_vi": band.label_vi if band else None,
                    "label_en": band.label_epa if band else None,
                    "colour": colour(band.rgb) if band else None,
                    "dominant": dominant,
                    "detail": detail,
                }
            )
        return {
            "sensor_id": sensor_id,
            "kind": kind,
            "area": area,
            "known": known,
            "scale": scale,
            "from": to_iso(t_start),
            "to": to_iso(t_end),
            "hours": hours,
        }

    return router
