"""Event ids: the first event to use one owns it.

Producers promise that an ``event_id`` names one event. When one is reused
for other content (another dossier, another type, another time), applying
both would count two events live while storage, recomputation and a replay
keep one. So before a worker applies events it claims their ids in the
``event_ids`` table, in arrival order: an id claimed by an event with the
same canonical body (``ioc.events.digest``) is the same event sent again and
goes on (the dossier store treats it as a duplicate); an id claimed by other
content is refused with a reason and becomes a dead letter. The table's
primary key makes the claim atomic across partitions and workers, so the
rule holds whatever runs concurrently, and a claim survives restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg

from ioc.clock import to_iso, utc_datetime
from ioc.events import ProcedureEvent, digest, stored_body
from streams.sinks.copyformat import chunks, text


def _line(n: int, ev: ProcedureEvent) -> str:
    return (
        f"{n}\t{text(ev.event_id)}\t{digest(stored_body(ev))}\t{text(ev.dossier_id)}"
        f"\t{ev.type}\t{utc_datetime(ev.ts).isoformat()}\n"
    )


class EventIds:
    """Claims on one connection of its own (autocommit, short transactions)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # held by a claim's transaction; others sharing the connection
        # (the worker's heartbeat) take it too, to stay out of that transaction
        self.lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self._conn is None or self._conn.closed:
            await self.connect()

    async def connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        # A claim need not wait for the disk: the commit of the events it
        # claimed for does, and flushes the log up to there, claim included;
        # a claim a crash loses was for events not acknowledged, claimed
        # again when they are redelivered. Waiting here cost a flush per
        # inbox batch, in series with applying events.
        await self._conn.execute("SET synchronous_commit = off")
        await self._conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS claims_in (n int, event_id text, digest bigint, "
            "dossier_id text, type text, ts timestamptz) ON COMMIT DELETE ROWS"
        )

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("EventIds is not connected")
        return self._conn

    async def claim(self, events: Sequence[ProcedureEvent]) -> list[tuple[int, str]]:
        """Claim the ids of ``events`` (in order); returns (index, reason) of
        the events refused because their id names other content."""
        if not events:
            return []
        conn = self.conn
        async with self.lock, conn.transaction():
            async with conn.cursor().copy(
                "COPY claims_in (n, event_id, digest, dossier_id, type, ts) FROM STDIN"
            ) as copy:
                for chunk in chunks(_line(n, ev) for n, ev in enumerate(events)):
                    await copy.write(chunk)
            # in arrival order: of two new events with one id in a batch, the first wins
            await conn.execute(
                "INSERT INTO event_ids (event_id, digest, dossier_id, type, ts) "
                "SELECT event_id, digest, dossier_id, type, ts FROM claims_in ORDER BY n "
                "ON CONFLICT (event_id) DO NOTHING"
            )
            rows = await (
                await conn.execute(
                    "SELECT c.n, e.dossier_id, e.type, extract(epoch FROM e.ts) FROM claims_in c "
                    "JOIN event_ids e ON e.event_id = c.event_id WHERE e.digest <> c.digest "
                    "ORDER BY c.n"
                )
            ).fetchall()
        return [
            (
                int(n),
                f"event_id {events[n].event_id!r} already names another event "
                f"(type {kind!r} of dossier {dossier!r} at {to_iso(float(at))!r}); "
                "the first event to use an id keeps it",
            )
            for n, dossier, kind, at in rows
        ]
