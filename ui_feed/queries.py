"""Reads for the REST API, from PostgreSQL (TimescaleDB or not: same SQL).

KPI counters are stored per partition; every read sums the partitions and
derives the KPIs with ``ioc.kpis``, the same code the workers run.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from alerts.messages import SLA_SELECT, SlaTransition
from ioc.clock import utc_datetime
from ioc.feed import sum_counters
from ioc.kpis import FLOWS, LEVELS
from ioc.updates import READING_FIELDS, LatestReading
from streams.sinks.schema import DAY_ORIGIN, FLOW_COLUMNS, LEVEL_COLUMNS

BUCKETS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
MAX_BUCKETS = 5000


def status_reading(row: Any) -> LatestReading:
    """A ``sensor_status`` row (sensor_id, area, kind, ts, status) as the
    item a ``sensor`` message would carry; ``ts`` None (and no values) for a
    station that never reported."""
    sensor_id, area, kind, ts, status = row
    status = status if isinstance(status, dict) else {}
    values = status.get("values")
    return LatestReading(
        sensor_id,
        area,
        kind,
        float(ts) if ts is not None else None,
        values if isinstance(values, dict) else {},
        {k: v for k, v in status.items() if k not in READING_FIELDS},
    )


class Reads:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def ping(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1 FROM worker_partitions LIMIT 1")

    async def pipeline_clock(self) -> float | None:
        """The workers' clock at their last commit (the newest partition's)."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT extract(epoch FROM max(clock)) FROM worker_partitions")
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def latest(self, scope: str | None = None) -> dict[str, tuple[float, dict[str, Any]]]:
        """Summed counters and their newest time, per scope (one or all)."""
        query = "SELECT scope, extract(epoch FROM at), counters FROM kpi_latest"
        params: tuple[Any, ...] = ()
        if scope is not None:
            query += " WHERE scope = %s"
            params = (scope,)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query, params)).fetchall()
        parts: dict[str, list[dict[str, Any]]] = {}
        at: dict[str, float] = {}
        for key, when, counters in rows:
            parts.setdefault(key, []).append(counters)
            at[key] = max(at.get(key, 0.0), float(when))
        return {key: (at[key], sum_counters(p)) for key, p in parts.items()}

    async def latest_by_part(self) -> list[tuple[str, int, float, dict[str, Any]]]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT scope, part, extract(epoch FROM at), counters FROM kpi_latest"
                )
            ).fetchall()
        return [(r[0], int(r[1]), float(r[2]), r[3]) for r in rows]

    async def dossier_events(self, dossier_id: str) -> list[bytes]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT body::text FROM procedure_events WHERE dossier_id = %s ORDER BY ts",
                    (dossier_id,),
                )
            ).fetchall()
        return [r[0].encode() for r in rows]

    async def recent_alerts(self, limit: int = 200) -> list[SlaTransition]:
        """The latest SLA transitions, oldest first."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {SLA_SELECT} FROM sla_transitions ORDER BY at DESC LIMIT %s",
                    (limit,),
                )
            ).fetchall()
        return [SlaTransition.from_row(row) for row in reversed(rows)]

    async def latest_readings(self) -> list[LatestReading]:
        """Each sensor as the sensor stage last stored it (``sensor_status``,
        ``ts`` None for a station never heard from).
        Before the stage has stored any, the newest stored reading of each
        sensor of the last 30 days (without status fields)."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT sensor_id, area, kind, extract(epoch FROM ts), status "
                    "FROM sensor_status ORDER BY sensor_id"
                )
            ).fetchall()
            if rows:
                return [status_reading(r) for r in rows]
            rows = await (
                await conn.execute(
                    "SELECT DISTINCT ON (sensor_id) sensor_id, area, kind, "
                    'extract(epoch FROM ts), "values" FROM sensor_readings '
                    "WHERE ts > now() - INTERVAL '30 days' ORDER BY sensor_id, ts DESC"
                )
            ).fetchall()
        return [LatestReading(r[0], r[1], r[2], float(r[3]), r[4]) for r in rows]

    async def sensor_statuses(
        self, kind: str | None = None, area: str | None = None, sensor_id: str | None = None
    ) -> list[LatestReading]:
        """Rows of ``sensor_status``, filtered by kind, area or id."""
        where, args = [], []
        for column, value in (("kind", kind), ("area", area), ("sensor_id", sensor_id)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        query = "SELECT sensor_id, area, kind, extract(epoch FROM ts), status FROM sensor_status"
        if where:
            query += " WHERE " + " AND ".join(where)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query + " ORDER BY sensor_id", args)).fetchall()
        return [status_reading(r) for r in rows]

    async def sensor_seen(self, sensor_id: str) -> tuple[str, str] | None:
        """(area, kind) of a sensor's newest stored reading, or None."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT area, kind FROM sensor_readings WHERE sensor_id = %s "
                    "ORDER BY ts DESC LIMIT 1",
                    (sensor_id,),
                )
            ).fetchone()
        return (row[0], row[1]) if row else None

    async def sensor_series(
        self, sensor_id: str, bucket: int, start: float, end: float
    ) -> list[tuple[float, str, float, float, float, int]]:
        """(bucket start, measure, mean, min, max, count) per bucket of
        [start, end) and measure, buckets aligned to local days (``date_bin``:
        the same SQL on PostgreSQL and TimescaleDB)."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT extract(epoch FROM date_bin(%(bucket)s::interval, ts, "
                    "%(origin)s::timestamptz)) AS b, m.key, avg((m.value)::float8), "
                    "min((m.value)::float8), max((m.value)::float8), count(*) "
                    'FROM sensor_readings, jsonb_each("values") AS m(key, value) '
                    "WHERE sensor_id = %(sid)s AND ts >= %(from)s AND ts < %(to)s "
                    "AND jsonb_typeof(m.value) = 'number' "
                    "GROUP BY b, m.key ORDER BY b, m.key",
                    {
                        "bucket": f"{bucket} seconds",
                        "origin": DAY_ORIGIN,
                        "sid": sensor_id,
                        "from": utc_datetime(start),
                        "to": utc_datetime(end),
                    },
                )
            ).fetchall()
        return [(float(r[0]), r[1], float(r[2]), float(r[3]), float(r[4]), int(r[5])) for r in rows]

    async def sensor_aqi(
        self, sensor_id: str, scale: str, start: float, end: float
    ) -> list[tuple[float, int, str, str, dict[str, Any]]]:
        """(hour, index, band, dominant, detail) of a station's stored hourly
        index values with start <= hour < end, oldest first."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT extract(epoch FROM hour), aqi, band, dominant, detail "
                    "FROM sensor_aqi WHERE sensor_id = %s AND scale = %s "
                    "AND hour >= %s AND hour < %s ORDER BY hour",
                    (sensor_id, scale, utc_datetime(start), utc_datetime(end)),
                )
            ).fetchall()
        return [(float(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    async def series(
        self, scope: str, bucket: int, start: float, end: float
    ) -> list[tuple[float, list[int], list[int]]]:
        """(bucket start, flows summed over the bucket, levels at its end) per
        bucket of [start, end). Levels carry forward through buckets where
        they did not change."""
        flows_sum = ", ".join(f"sum({c})" for c in FLOW_COLUMNS)
        levels = ", ".join(LEVEL_COLUMNS)
        origin = DAY_ORIGIN
        async with self.pool.connection() as conn:
            sid = await (
                await conn.execute("SELECT id FROM scopes WHERE key = %s", (scope,))
            ).fetchone()
            if sid is None:
                return []
            interval = f"{bucket} seconds"
            args = {
                "sid": sid[0],
                "from": utc_datetime(start),
                "to": utc_datetime(end),
                "bucket": interval,
                "origin": origin,
            }
            flow_rows = await (
                await conn.execute(
                    "SELECT extract(epoch FROM date_bin(%(bucket)s::interval, minute, "
                    f"%(origin)s::timestamptz)), {flows_sum} FROM kpi_points "
                    "WHERE scope_id = %(sid)s AND minute >= %(from)s AND minute < %(to)s "
                    "GROUP BY 1 ORDER BY 1",
                    args,
                )
            ).fetchall()
            level_rows = await (
                await conn.execute(
                    "SELECT DISTINCT ON (b, part) b, part, " + levels + " FROM ("
                    "SELECT extract(epoch FROM date_bin(%(bucket)s::interval, minute, "
                    f"%(origin)s::timestamptz)) AS b, part, minute, {levels} FROM kpi_points "
                    "WHERE scope_id = %(sid)s AND minute >= %(from)s AND minute < %(to)s "
                    f"AND {LEVEL_COLUMNS[0]} IS NOT NULL) x ORDER BY b, part, minute DESC",
                    args,
                )
            ).fetchall()
            before = await (
                await conn.execute(
                    f"SELECT DISTINCT ON (part) part, {levels} FROM kpi_points "
                    "WHERE scope_id = %(sid)s AND minute < %(from)s "
                    f"AND {LEVEL_COLUMNS[0]} IS NOT NULL ORDER BY part, minute DESC",
                    args,
                )
            ).fetchall()
        flows_at = {float(r[0]): [int(v) for v in r[1:]] for r in flow_rows}
        current = {int(r[0]): [int(v) for v in r[1:]] for r in before}
        samples: dict[float, dict[int, list[int]]] = {}
        for r in level_rows:
            samples.setdefault(float(r[0]), {})[int(r[1])] = [int(v) for v in r[2:]]
        out: list[tuple[float, list[int], list[int]]] = []
        first = float(flow_rows[0][0]) if flow_rows else None
        keys = sorted(set(flows_at) | set(samples))
        if not keys:
            return []
        t = min(keys[0], first if first is not None else keys[0])
        zero = [0] * len(FLOWS)
        while t < end and len(out) < MAX_BUCKETS:
            current.update(samples.get(t, {}))
            summed = [sum(col) for col in zip(*current.values(), strict=True)] if current else []
            out.append((t, flows_at.get(t, zero), summed or [0] * len(LEVELS)))
            t += bucket
        return out
