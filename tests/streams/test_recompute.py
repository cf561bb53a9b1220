"""``ioc kpis recompute`` against real PostgreSQL: what it rebuilds, and the
mark that keeps workers off a half-rebuilt database."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from ioc.clock import EventTimeClock
from ioc.settings import Settings
from streams import recompute as recompute_module
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sinks.guards import RecomputeUnfinished, check_no_unfinished_recompute
from streams.sinks.postgres import PostgresSink
from streams.sinks.schema import migrate
from tests.streams.helpers import event, vn, world

pytestmark = pytest.mark.integration


def store_some_events(database_url: str) -> None:
    registry, calendar = world()

    async def run() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        proc = PartitionProcessor(
            0, calendar, registry, ScopeIndex(registry), vn("2026-03-16 08:00")
        )
        proc.apply(
            [
                event("received", "D1", "2026-03-16 09:00"),
                event("received", "D2", "2026-03-16 09:30"),
                event("processed", "D1", "2026-03-16 15:00"),
            ],
            0.0,
            EventTimeClock(),
        )
        await sink.write(proc.drain(snapshot=True), {})
        await sink.close()

    asyncio.run(run())


def test_recompute_rebuilds_and_clears_its_mark(database_url: str) -> None:
    migrate(database_url)
    store_some_events(database_url)
    registry, calendar = world()
    settings = Settings(database_url=database_url)
    result = asyncio.run(recompute_module.recompute(settings, registry, calendar, force=True))
    assert result["events"] == 3 and result["partitions"] == [0]
    check_no_unfinished_recompute(database_url)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM dossier_snapshots").fetchone()[0] > 0


def test_an_interrupted_recompute_keeps_workers_off(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(database_url)
    store_some_events(database_url)
    registry, calendar = world()
    settings = Settings(database_url=database_url)

    async def stopped(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(recompute_module, "_drain", stopped)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(recompute_module.recompute(settings, registry, calendar, force=True))
    with pytest.raises(RecomputeUnfinished, match="run it again, before starting workers"):
        check_no_unfinished_recompute(database_url)

    monkeypatch.undo()
    # run again at once, without --force: the recent commits were not a worker's
    asyncio.run(recompute_module.recompute(settings, registry, calendar))
    check_no_unfinished_recompute(database_url)


def stored_transitions(database_url: str) -> list[tuple[str, str, float]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT dossier_id, transition, extract(epoch FROM at)::float8 FROM sla_transitions "
            "ORDER BY at, dossier_id, transition"
        ).fetchall()
    return [(d, t, float(a)) for d, t, a in rows]


def test_recompute_judges_a_dossier_only_once_all_its_events_are_in(database_url: str) -> None:
    """A dossier paused before it was ever at risk has no transition: the
    recomputation moves the clock to its end only after the last events (a
    pause among them) are applied; and a dossier dated far ahead moves no
    other dossier's clock past that end."""
    migrate(database_url)
    registry, calendar = world()
    events = [
        event("received", "PAUSED", "2026-03-16 09:00"),
        event("supplement_requested", "PAUSED", "2026-03-18 10:00"),  # before 80 %
        event("received", "LATER", "2026-03-19 09:00"),  # due 03-24: on track at the end
        event("received", "FUTURE", "2099-03-16 09:00"),
    ]

    async def store() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        proc = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), 0.0)
        proc.apply(events, 0.0, EventTimeClock(limit=vn("2026-03-16 09:00")))
        await sink.write(proc.drain(snapshot=True), {})
        await sink.close()

    asyncio.run(store())
    settings = Settings(database_url=database_url)
    until = vn("2026-03-20 17:00")
    asyncio.run(recompute_module.recompute(settings, registry, calendar, until, force=True))
    assert stored_transitions(database_url) == []


def test_recompute_gives_the_transitions_of_an_ordered_pass(database_url: str) -> None:
    migrate(database_url)
    registry, calendar = world()
    events = [
        event("received", "D1", "2026-03-16 09:00"),
        event("received", "D2", "2026-03-16 10:00"),
        event("processed", "D2", "2026-03-19 11:00"),  # after it turned overdue
        event("received", "D3", "2026-03-17 09:00"),
        event("supplement_requested", "D3", "2026-03-18 09:00"),
        event("supplement_received", "D3", "2026-03-19 09:00"),
    ]
    until = vn("2026-03-23 17:00")
    ordered = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), 0.0)
    clock = EventTimeClock()
    for ev in events:  # one by one: the clock passes every instant in order
        ordered.apply([ev], 0.0, clock)
    clock.observe(until)
    ordered.move(clock.now())
    expected = sorted((a.dossier_id, a.transition, a.at) for a in ordered.drain().alerts)
    assert {t for _, t, _ in expected} == {"at_risk", "overdue", "cleared"}

    async def store() -> None:
        sink = PostgresSink(database_url)
        await sink.connect()
        proc = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), 0.0)
        proc.apply(events, 0.0, EventTimeClock(limit=vn("2026-03-16 09:00")))
        await sink.write(proc.drain(snapshot=True), {})
        await sink.close()

    asyncio.run(store())
    settings = Settings(database_url=database_url)
    asyncio.run(recompute_module.recompute(settings, registry, calendar, until, force=True))
    got = sorted(stored_transitions(database_url))
    assert got == expected
