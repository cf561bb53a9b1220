import asyncio
import copy
import json

import psycopg
import pytest

from alerts.messages import SlaTransition
from ioc.clock import EventTimeClock
from ioc.events import ProcedureEvent
from ioc.kpis import F
from streams.processor import Drained, PartitionProcessor
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


def test_sla_transitions_read_back_as_written_until_marked_sent(database_url: str) -> None:
    migrate(database_url)
    paused = SlaTransition(
        vn("2026-03-18 13:12"), "D\t1\\x\n", "at_risk", None, 19.25, 24.0, None, "a", "c", "p", "f"
    )
    overdue = SlaTransition(
        vn("2026-03-19 09:00"),
        "D2",
        "overdue",
        vn("2026-03-19 09:00"),
        24.0,
        24.0,
        "00166",
        "ubnd-00166",
        "hcc-00166",
        "1.000001",
        "ho-tich",
    )

    async def run() -> list[list[SlaTransition]]:
        sink = PostgresSink(database_url)
        await sink.connect()
        await sink.conn.execute("DELETE FROM sla_transitions WHERE part = 41")
        await sink.write(Drained(41, vn("2026-03-19 10:00"), alerts=[overdue, paused]))
        stored = await sink.unpublished(41)
        await sink.mark_published([41])
        after = await sink.unpublished(41)
        await sink.close()
        return [stored, after]

    assert asyncio.run(run()) == [[paused, overdue], []]


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


def test_a_dead_letter_from_a_topic_with_nul_is_stored(database_url: str) -> None:
    # The bridge dead-letters an MQTT message with its topic as the origin; a
    # topic holding NUL once made that row unstorable and stalled every commit.
    migrate(database_url)

    async def run() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        await sink.write_dead_letters(
            [
                ("bridge", "topic 'ioc/x\x00' is not ioc/sensors/…", "ioc/x\x00y", b"\x00\xff"),
                ("bri\udcffdge", "reason", "origin", b"{}"),
            ]
        )
        await sink.close()

    asyncio.run(run())
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT source, origin, raw FROM dead_letters").fetchall()
    assert sorted(rows) == [
        ("bri\\udcffdge", "origin", b"{}"),
        ("bridge", "ioc/x\\x00y", b"\x00\xff"),
    ]


def unstorable(ev: ProcedureEvent) -> ProcedureEvent:
    """The event with a dossier id the server refuses (NUL): what the decoder
    never lets through, standing for any record the database refuses."""
    bad = copy.copy(ev)
    bad.dossier_id = "BAD\x00ID"
    bad.body = None
    return bad


def test_an_event_the_server_refuses_is_diverted_and_the_rest_commit(database_url: str) -> None:
    migrate(database_url)

    refused: list[bytes] = []

    async def run() -> PostgresSink:
        sink = PostgresSink(database_url)
        await sink.connect()
        p = fresh_processor(3, vn("2026-03-16 08:00"))
        p.apply(lifecycle(), 0.0, EventTimeClock())
        drained = p.drain()
        seq, ev = drained.raw[1]
        drained.raw[1] = (seq, unstorable(ev))
        refused.append(ev.raw)
        await sink.write(drained, {k: json.dumps(v) for k, v in p.updates().items()})
        # the next commit goes through as usual
        p.apply([event("processed", "P2", "2026-03-18 10:00")], 0.0, EventTimeClock())
        await sink.write(p.drain())
        await sink.close()
        return sink

    sink = asyncio.run(run())
    assert sink.diverted == 1
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT seq FROM procedure_events ORDER BY seq").fetchall()
        letters = conn.execute("SELECT source, reason, origin, raw FROM dead_letters").fetchall()
        partition = conn.execute("SELECT seq FROM worker_partitions WHERE part = 3").fetchone()
    assert [s for (s,) in stored] == [1, 3, 4, 5]
    assert partition == (5,)
    [(source, reason, origin, raw)] = letters
    assert source == "worker" and origin == "procedure_events/3/2"
    assert reason.startswith("procedure event not storable: ") and "NUL" in reason
    assert raw == refused[0]
