"""Writes what the sensor stage drains, one transaction per commit, and
reads back what a partition's new owner starts from.

A commit holds the new readings, the changed sensors' statuses, the AQI
rows, and per partition the next Kafka offset its state covers with the
state itself (``sensor_partitions``). A new owner skips the messages
before that offset, so a reading is counted once however often Kafka
delivers it. The offset only moves forward: a worker that lost its
partition and still writes (a zombie after a rebalance) is refused
instead of putting an older state back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ioc.clock import utc_datetime
from ioc.events import SensorReading
from streams.sensor_stage import AqiRow, SensorDrain, aqi_item
from streams.sinks.postgres import PostgresSink
from streams.sinks.storable import is_data_error

log = logging.getLogger(__name__)


class PartitionMoved(RuntimeError):
    """Another worker committed this partition further: this one lost it."""


@dataclass(slots=True)
class StoredSensors:
    next_offset: int | None  # None: nothing committed yet
    state: dict[str, Any]
    readings: list[SensorReading]
    statuses: list[dict[str, Any]]


def _dumps(value: Any) -> Jsonb:
    return Jsonb(value, dumps=lambda v: orjson.dumps(v).decode())


class SensorSink(PostgresSink):
    async def write_sensors(self, commits: Sequence[tuple[int, int, SensorDrain]]) -> None:
        """Commit (partition, next offset, drain) of several partitions at once."""
        conn = self.conn
        async with conn.transaction():
            for part, next_offset, drain in commits:
                await self.write_readings(drain.readings)
                await self._statuses(conn, part, drain)
                await self._aqi(conn, drain.aqi)
                await self._partition(conn, part, next_offset, drain.state)

    async def write_readings(self, readings: Sequence[SensorReading]) -> int:
        """Store readings not stored already; returns how many were new. A
        reading the server refuses goes to the dead letters, the rest commit
        (within a commit's transaction: savepoints)."""
        conn = self.conn
        try:
            async with conn.transaction():
                return await self._readings(conn, readings)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("a batch of readings was refused (%s); storing them one by one", exc)
        stored = 0
        async with conn.transaction():
            for r in readings:
                try:
                    async with conn.transaction():
                        stored += await self._readings(conn, [r])
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    self.diverted += 1
                    await self._divert(
                        conn, f"sensor reading not storable: {exc}", "sensor_readings", r.raw
                    )
        return stored

    async def _readings(
        self, conn: psycopg.AsyncConnection[Any], readings: Sequence[SensorReading]
    ) -> int:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS readings_in (LIKE sensor_readings) "
            "ON COMMIT DELETE ROWS"
        )
        async with conn.cursor().copy(
            'COPY readings_in (ts, event_id, sensor_id, area, kind, "values") FROM STDIN'
        ) as copy:
            for r in readings:
                await copy.write_row(
                    (
                        utc_datetime(r.ts),
                        r.event_id,
                        r.sensor_id,
                        r.area,
                        r.kind,
                        orjson.dumps(r.values).decode(),
                    )
                )
        cur = await conn.execute(
            "INSERT INTO sensor_readings SELECT * FROM readings_in ON CONFLICT DO NOTHING"
        )
        return cur.rowcount

    async def _statuses(
        self, conn: psycopg.AsyncConnection[Any], part: int, drain: SensorDrain
    ) -> None:
        rows = [
            (sid, area, kind, part, None if ts is None else utc_datetime(ts), _dumps(item))
            for sid, (area, kind, ts, item) in drain.statuses.items()
        ]
        if not rows:
            return
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO sensor_status (sensor_id, area, kind, part, ts, status) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (sensor_id) DO UPDATE SET "
                "area = EXCLUDED.area, kind = EXCLUDED.kind, part = EXCLUDED.part, "
                "ts = EXCLUDED.ts, status = EXCLUDED.status, updated_at = now()",
                rows,
            )

    async def _aqi(self, conn: psycopg.AsyncConnection[Any], rows: Sequence[AqiRow]) -> None:
        if not rows:
            return
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO sensor_aqi "
                "(hour, sensor_id, area, scale, aqi, band, dominant, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (sensor_id, scale, hour) DO UPDATE SET area = EXCLUDED.area, "
                "aqi = EXCLUDED.aqi, band = EXCLUDED.band, dominant = EXCLUDED.dominant, "
                "detail = EXCLUDED.detail",
                [
                    (
                        utc_datetime(r.hour),
                        r.sensor_id,
                        r.area,
                        r.scale,
                        r.value.index,
                        r.value.band.name,
                        str(r.value.dominant),
                        _dumps(aqi_item(r.hour, r.value)),
                    )
                    for r in rows
                ],
            )

    async def _partition(
        self, conn: psycopg.AsyncConnection[Any], part: int, next_offset: int, state: Any
    ) -> None:
        cur = await conn.execute(
            "INSERT INTO sensor_partitions AS p (part, next_offset, state) VALUES (%s, %s, %s) "
            "ON CONFLICT (part) DO UPDATE SET next_offset = EXCLUDED.next_offset, "
            "state = EXCLUDED.state, saved_at = now() "
            "WHERE p.next_offset <= EXCLUDED.next_offset",
            (part, next_offset, _dumps(state)),
        )
        if cur.rowcount != 1:
            raise PartitionMoved(
                f"sensor partition {part} was committed past offset {next_offset} by another worker"
            )

    async def load_sensors(self, part: int, keep_s: float) -> StoredSensors:
        """The committed state of partition ``part``, its sensors' statuses
        and their readings of the last ``keep_s`` seconds before each one's newest."""
        conn = self.conn
        row = await (
            await conn.execute(
                "SELECT next_offset, state FROM sensor_partitions WHERE part = %s", (part,)
            )
        ).fetchone()
        statuses = [
            r[0]
            for r in await (
                await conn.execute(
                    # those still in the windows: an unknown id heard once long
                    # ago is not followed any more
                    "SELECT status FROM sensor_status WHERE part = %s AND (ts IS NULL OR "
                    "ts > (SELECT max(ts) FROM sensor_status WHERE part = %s) "
                    "- make_interval(secs => %s))",
                    (part, part, keep_s),
                )
            ).fetchall()
        ]
        ids = [s["sensor_id"] for s in statuses if s.get("ts") is not None]
        readings: list[SensorReading] = []
        if ids:
            cur = await conn.execute(
                "SELECT r.event_id, r.sensor_id, r.area, r.kind, extract(epoch FROM r.ts), "
                'r."values" FROM sensor_readings r JOIN sensor_status s USING (sensor_id) '
                "WHERE s.part = %s AND r.ts > s.ts - make_interval(secs => %s) "
                "ORDER BY r.ts, r.event_id",
                (part, keep_s),
            )
            readings = [
                SensorReading(eid, sid, area, kind, float(ts), values, b"")
                for eid, sid, area, kind, ts, values in await cur.fetchall()
            ]
        if row is None:
            return StoredSensors(None, {}, readings, statuses)
        return StoredSensors(int(row[0]), dict(row[1]), readings, statuses)
