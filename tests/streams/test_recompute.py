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
