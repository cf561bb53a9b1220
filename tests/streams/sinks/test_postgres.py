import asyncio
import json

import psycopg
import pytest

from ioc.clock import EventTimeClock
from ioc.kpis import F
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sinks.postgres import PostgresSink
from streams.sinks.schema import migrate
from tests.streams.helpers import event, vn, world

pytestmark = pytest.mark.integration


def lifecycle() -> list:
    return [
        event("received", "P1", "2026-03-16 09:00"),
        event("processed", "P1", "2026-03-17 10:00"),
        event("received", "P2", "2026-03-16 09:30"),
        event("supplement_requested", "P2", "2026-03-16 11:00"),
    ]


def fresh_processor(part: int, now: float) -> PartitionProcessor:
    registry, calendar = world()
    return PartitionProcessor(part, calendar, registry, ScopeIndex(registry), now)


def test_a_drain_round_trips_through_the_database(database_url: str) -> None:
    migrate(database_url)

    async def run() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        p = fresh_processor(7, vn("2026-03-16 08:00"))
        clock = EventTimeClock()
        p.apply(lifecycle()[:3], 0.0, clock)
        await sink.write(p.drain(snapshot=True), {k: json.dumps(v) for k, v in p.updates().items()})
        p.apply(lifecycle()[3:], 0.0, clock)
        await sink.write(p.drain(), {k: json.dumps(v) for k, v in p.updates().items()})

        stored = await sink.load_partition(7, since=vn("2026-01-01 00:00"))
        assert stored.seq == 4 and stored.snapshot_seq == 3
        assert len(stored.later) == 1 and b"supplement_requested" in stored.later[0]
        i = stored.hourly_scopes.index("province")
        by_hour = {
            (s, int(h)): v
            for s, h, v in zip(
                stored.hourly_scopes, stored.hourly_hours, stored.hourly_values, strict=True
            )
        }
        received = sum(v[F["received"]] for (s, _), v in by_hour.items() if s == "province")
        assert received == 2
        assert stored.hourly_values[i].sum() > 0
        await sink.close()

    asyncio.run(run())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM procedure_events WHERE part = 7").fetchone() == (
            4,
        )
        points = conn.execute(
            "SELECT count(*) FILTER (WHERE level_open IS NOT NULL), sum(received) "
            "FROM kpi_points p JOIN scopes s ON s.id = p.scope_id WHERE s.key = 'province' "
            "AND part = 7"
        ).fetchone()
        assert points[0] >= 1 and points[1] == 2
        latest = conn.execute(
            "SELECT counters FROM kpi_latest WHERE scope = 'province' AND part = 7"
        ).fetchone()
        assert latest[0]["flows"]["month"][F["received"]] == 2


def test_an_event_id_reused_for_other_content_keeps_the_first(database_url: str) -> None:
    migrate(database_url)

    async def run() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        a = fresh_processor(8, vn("2026-03-16 08:00"))
        a.apply([event("received", "Q1", "2026-03-16 09:00")], 0.0, EventTimeClock())
        await sink.write(a.drain())
        # another dossier store (a replay elsewhere) sends the same event again
        b = fresh_processor(8, vn("2026-03-16 08:00"))
        b.seq = 1
        b.apply([event("received", "Q1", "2026-03-16 09:00")], 0.0, EventTimeClock())
        await sink.write(b.drain())  # must not raise
        await sink.close()

    asyncio.run(run())
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM procedure_events WHERE dossier_id = 'Q1'"
        ).fetchone() == (1,)
