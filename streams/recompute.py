"""``ioc kpis recompute``: rebuild every derived table from the stored raw
events, with the same processor the workers run.

The raw events stay; hourly and 1-minute counters, the latest counters, SLA
transitions and snapshots are deleted and written again by feeding the raw
events, in time order, through one processor per partition on event time.
At the end each partition's clock is moved to ``until`` (by default where
the workers' clocks were), so the KPIs are those a live run shows at that
instant. Workers must be stopped meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import psycopg

from ioc.calendar import WorkingCalendar
from ioc.clock import EventTimeClock
from ioc.events import DecodeError, ProcedureEvent, decode_procedure_event
from ioc.registry import Registry
from ioc.settings import Settings
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sinks.postgres import PostgresSink
from streams.sinks.schema import refresh_statement

log = logging.getLogger(__name__)
APPLY_EVERY = 10_000
DRAIN_EVERY = 200_000
DERIVED = ("kpi_hourly", "kpi_points", "kpi_latest", "sla_transitions", "dossier_snapshots")


class WorkersRunning(RuntimeError):
    pass


async def recompute(
    settings: Settings,
    registry: Registry,
    calendar: WorkingCalendar,
    until: float | None = None,
    force: bool = False,
) -> dict[str, Any]:
    started = time.monotonic()
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        # commits of the last 30 s came from workers, unless they came from a
        # recompute that stopped half-way (and is being run again)
        busy = await (
            await conn.execute(
                "SELECT count(*) FROM worker_partitions WHERE updated_at > now() - INTERVAL '30 s' "
                "AND NOT EXISTS (SELECT 1 FROM recompute_running)"
            )
        ).fetchone()
        if busy and busy[0] and not force:
            raise WorkersRunning(
                "workers committed in the last 30 s: stop them first (or pass --force)"
            )
        rows = await (
            await conn.execute(
                "SELECT part, max(seq), max(ts) FROM procedure_events GROUP BY part ORDER BY part"
            )
        ).fetchall()
        stored_clocks: dict[int, float] = dict(
            await (
                await conn.execute(
                    "SELECT part, extract(epoch FROM clock)::float8 FROM worker_partitions"
                )
            ).fetchall()
        )
        # Each partition ends where its worker's clock stood (event-time
        # workers keep one per partition), or at ``until``; with neither, at
        # its newest event.
        ends = {
            part: until if until is not None else stored_clocks.get(part, newest.timestamp())
            for part, _, newest in rows
        }
        end = max(ends.values(), default=until)
        async with conn.transaction():
            await conn.execute("TRUNCATE " + ", ".join(DERIVED))
            # cleared at the end: workers refuse to start on a half rebuild
            await conn.execute(
                "INSERT INTO recompute_running DEFAULT VALUES "
                "ON CONFLICT (single) DO UPDATE SET started_at = now()"
            )
        await conn.commit()

    scopes = ScopeIndex(registry, settings.minute_kinds)
    processors: dict[int, PartitionProcessor] = {}
    clocks: dict[int, EventTimeClock] = {}
    for part, max_seq, _ in rows:
        clocks[part] = EventTimeClock(limit=ends[part])
        proc = PartitionProcessor(
            part,
            calendar,
            registry,
            scopes,
            0.0,
            settings.at_risk_share,
            settings.finished_retention_days,
        )
        proc.seq = int(max_seq)
        processors[part] = proc

    sink = PostgresSink(settings.database_url)
    await sink.connect()
    events = dead = 0
    pending: dict[int, list[ProcedureEvent]] = {p: [] for p in processors}
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as reader:
            cursor = reader.cursor(name="raw_events")
            cursor.itersize = 20_000
            await cursor.execute("SELECT part, body::text FROM procedure_events ORDER BY ts")
            async for part, body in cursor:
                raw = body.encode()
                ev = decode_procedure_event(orjson.loads(raw), raw)
                if isinstance(ev, DecodeError):
                    dead += 1
                    continue
                pending[part].append(ev)
                events += 1
                if len(pending[part]) >= APPLY_EVERY:
                    processors[part].apply(pending[part], 0.0, clocks[part])
                    pending[part] = []
                if events % DRAIN_EVERY == 0:
                    await _drain(sink, processors, pending, clocks, final=False)
            await cursor.close()
        await _drain(sink, processors, pending, clocks, final=True, ends=ends)
        if await _timescale(sink):
            await _refresh(sink, "kpi_daily")
        await sink.conn.execute("DELETE FROM recompute_running")
    finally:
        await sink.close()
    return {
        "events": events,
        "skipped": dead,
        "partitions": sorted(processors),
        "until": end,
        "seconds": round(time.monotonic() - started, 1),
    }


async def _drain(
    sink: PostgresSink,
    processors: dict[int, PartitionProcessor],
    pending: dict[int, list[ProcedureEvent]],
    clocks: dict[int, EventTimeClock],
    final: bool,
    ends: dict[int, float] | None = None,
) -> None:
    commits = []
    for part, proc in processors.items():
        if pending[part]:
            proc.apply(pending[part], 0.0, clocks[part])
            pending[part] = []
        if final and ends is not None:
            # only once every event is in: judged earlier, a dossier's later
            # pause would be missing and a false transition stored
            clocks[part].observe(ends[part])
            proc.move(clocks[part].now())
        updates = (
            {k: orjson.dumps(v).decode() for k, v in proc.all_counters().items()} if final else {}
        )
        commits.append((proc.drain(snapshot=final, keep_raw=False), updates))
    # history: nothing of it is for the screens now
    await sink.write_many(commits, published=True)


async def _refresh(sink: PostgresSink, view: str, attempts: int = 30) -> None:
    """Refresh an aggregate over its history (as migrate does); its policy's
    job may hold the lock at that moment, so wait for it a little."""
    for attempt in range(attempts):
        try:
            await sink.conn.execute(refresh_statement(view))
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == attempts - 1:
                raise
            log.info("%s is being refreshed by its policy; trying again", view)
            await asyncio.sleep(1)


async def _timescale(sink: PostgresSink) -> bool:
    row = await (
        await sink.conn.execute("SELECT timescaledb FROM schema_info ORDER BY version DESC LIMIT 1")
    ).fetchone()
    return bool(row and row[0])
