"""Heartbeat rows round-trip through the real database, ages on its clock."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from streams.sinks.heartbeats import read_heartbeats, write_heartbeat
from streams.sinks.schema import migrate

pytestmark = pytest.mark.integration


def test_a_heartbeat_round_trips(database_url: str) -> None:
    migrate(database_url)

    async def run() -> list:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for pending in (3, 7):  # the second write replaces the first
                await write_heartbeat(
                    conn,
                    "host:42",
                    uptime=120.0,
                    partitions=[0, 2],
                    commit_age=None,
                    pending_events=pending,
                    pending_age=4.5,
                    failing_for=None,
                    last_error="",
                    lag={"ioc.procedure-events/0": 9},
                )
            return await read_heartbeats(conn)

    [b] = asyncio.run(run())
    assert (b.worker, b.partitions, b.pending_events) == ("host:42", (0, 2), 7)
    assert b.commit_age is None and b.failing_for is None and b.last_error == ""
    assert 0 <= b.age < 5 and 120 <= b.uptime < 125 and 4.5 <= (b.pending_age or 0) < 10
    assert b.lag == {"ioc.procedure-events/0": 9}
