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


def _line(n: int, ev: ProcedureEvent, body_digest: int) -> str:
    return (
        f"{n}\t{text(ev.event_id)}\t{body_digest}\t{text(ev.dossier_id)}"
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
        digests = [digest(stored_body(ev)) for ev in events]
        async with self.lock, conn.transaction():
            async with conn.cursor().copy(
                "COPY claims_in (n, event_id, digest, dossier_id, type, ts) FROM STDIN"
            ) as copy:
                lines = (_line(n, ev, digests[n]) for n, ev in enumerate(events))
                for chunk in chunks(lines):
                    await copy.write(chunk)
            # in arrival order: of two new events with one id in a batch, the first wins
            claimed = await (
                await conn.execute(
                    "INSERT INTO event_ids (event_id, digest, dossier_id, type, ts) "
                    "SELECT event_id, digest, dossier_id, type, ts FROM claims_in ORDER BY n "
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
                )
            ).fetchall()
            # only the events whose id was claimed before (or earlier in the
            # batch) are looked up: most batches have none, and need no join
            new = {event_id for (event_id,) in claimed}
            known = [n for n, ev in enumerate(events) if not _take(new, ev.event_id)]
            if not known:
                return []
            rows = await (
                await conn.execute(
                    "SELECT event_id, digest, dossier_id, type, extract(epoch FROM ts) "
                    "FROM event_ids WHERE event_id = ANY(%s)",
                    ([events[n].event_id for n in known],),
                )
            ).fetchall()
        owners = {row[0]: row[1:] for row in rows}
        refused = []
        for n in known:
            d, dossier, kind, at = owners[events[n].event_id]
            if int(d) != digests[n]:
                refused.append(
                    (
                        n,
                        f"event_id {events[n].event_id!r} already names another event "
                        f"(type {kind!r} of dossier {dossier!r} at {to_iso(float(at))!r}); "
                        "the first event to use an id keeps it",
                    )
                )
        return refused


def _take(ids: set[str], event_id: str) -> bool:
    """Whether ``event_id`` is in ``ids``, removing it: an id claimed by a
    batch belongs to its first event with that id."""
    if event_id in ids:
        ids.remove(event_id)
        return True
    return False
