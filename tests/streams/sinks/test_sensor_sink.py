"""The sensor stage's commits and what a new owner loads, on PostgreSQL."""

import asyncio
from typing import Any

import psycopg
import pytest

from ioc.events import SensorReading
from streams.sensor_stage import KEEP_SECONDS, SensorDrain
from streams.sinks.schema import migrate
from streams.sinks.sensor_sink import PartitionMoved, SensorSink, StoredSensors
from tests.streams.helpers import vn

pytestmark = pytest.mark.integration


def reading(n: int, sensor: str = "aq-1", value: float = 40.0) -> SensorReading:
    return SensorReading(
        f"r{n}", sensor, "00166", "air_quality", vn("2026-03-16 09:00") + n, {"pm25": value}, b""
    )


def status(r: SensorReading) -> dict[str, Any]:
    return {"sensor_id": r.sensor_id, "area": r.area, "kind": r.kind, "ts": r.ts,
            "values": r.values, "known": False}  # fmt: skip


def drain(readings: list[SensorReading], state: dict[str, Any]) -> SensorDrain:
    newest = max(readings, key=lambda r: r.ts)
    statuses = {newest.sensor_id: (newest.area, newest.kind, newest.ts, status(newest))}
    return SensorDrain(readings, statuses, [], [], state)


def run(url: str, action: Any) -> Any:
    async def go() -> Any:
        sink = SensorSink(url)
        await sink.connect()
        try:
            return await action(sink)
        finally:
            await sink.close()

    return asyncio.run(go())


def test_a_commit_is_loaded_back_by_the_next_owner(database_url: str) -> None:
    migrate(database_url)
    first = [reading(i) for i in range(3)]
    # the same sensor and instant again, with another value and id: the first stays
    again = SensorReading("r9", "aq-1", "00166", "air_quality", first[0].ts, {"pm25": 500.0}, b"")
    run(database_url, lambda s: s.write_sensors([(1, 7, drain(first, {"clock": 5.0}))]))
    run(database_url, lambda s: s.write_sensors([(1, 8, drain([again], {"clock": 6.0}))]))
    stored: StoredSensors = run(database_url, lambda s: s.load_sensors(1, KEEP_SECONDS))
    assert stored.next_offset == 8 and stored.state == {"clock": 6.0}
    assert [(r.event_id, r.values) for r in stored.readings] == [
        (r.event_id, r.values) for r in first
    ]
    assert [s["sensor_id"] for s in stored.statuses] == ["aq-1"]
    assert run(database_url, lambda s: s.load_sensors(0, KEEP_SECONDS)).next_offset is None


def test_a_worker_that_lost_its_partition_cannot_put_an_older_state_back(
    database_url: str,
) -> None:
    migrate(database_url)
    run(database_url, lambda s: s.write_sensors([(0, 10, drain([reading(1)], {"v": 2}))]))
    with pytest.raises(PartitionMoved):
        run(database_url, lambda s: s.write_sensors([(0, 9, drain([reading(2)], {"v": 1}))]))
    with psycopg.connect(database_url) as conn:
        # the refused commit left nothing behind
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone() == (1,)
        assert conn.execute("SELECT state FROM sensor_partitions").fetchone() == ({"v": 2},)


def test_a_reading_the_server_refuses_is_diverted_and_the_rest_stored(database_url: str) -> None:
    migrate(database_url)
    good = [reading(i) for i in range(3)]
    bad = SensorReading("r-bad", "aq\x00", "00166", "air_quality", good[0].ts, {}, b"raw bad")

    stored = run(database_url, lambda s: s.write_readings([good[0], bad, *good[1:]]))

    assert stored == 3
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone() == (3,)
        assert conn.execute("SELECT raw FROM dead_letters").fetchall() == [(b"raw bad",)]
