"""Writes what a partition processor drains, in one transaction per drain.

Raw events, hourly and minute counters, SLA transitions, the latest
counters, the partition's sequence number and (now and then) a snapshot are
committed together, and only then are the Kafka messages acknowledged. So
the database always holds the counters of exactly the events it holds, and
after a crash the worker rebuilds from it and the redelivered messages merge
as duplicates.

Rows go in with COPY. Counter rows are increments, added on conflict, which
is safe because a drain is written once: the dossier facts it came from are
part of the same commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from alerts.messages import SLA_COLUMNS, SLA_INSTANTS, SLA_SELECT, SlaTransition
from ioc.clock import utc_datetime
from ioc.events import ProcedureEvent, stored_body
from ioc.kpis import FLOWS, LEVELS
from streams.processor import Drained
from streams.sinks.copyformat import (
    BINARY_HEADER,
    BINARY_TRAILER,
    NULL,
    chunks,
    counter_rows,
    text,
)
from streams.sinks.schema import FLOW_COLUMNS, LEVEL_COLUMNS
from streams.sinks.storable import is_data_error, storable_text

log = logging.getLogger(__name__)

_FLOWS = ", ".join(FLOW_COLUMNS)
_LEVELS = ", ".join(LEVEL_COLUMNS)
_ADD_FLOWS = ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in FLOW_COLUMNS)
SNAPSHOTS_KEPT = 2


ALERT_COLUMNS = ", ".join((*SLA_COLUMNS, "part", "published"))


def _instant(t: float) -> str:
    return utc_datetime(t).isoformat()


def _event_line(part: int, seq: int, ev: ProcedureEvent) -> str:
    """A raw event as a COPY text line: the instant and body the decoder
    produced, never the producer's text."""
    return (
        f"{_instant(ev.ts)}\t{text(ev.event_id)}\t{text(ev.dossier_id)}\t{ev.type}"
        f"\t{part}\t{seq}\t{text(stored_body(ev).decode())}\n"
    )


def _alert_line(t: SlaTransition, part: int, published: bool) -> str:
    """A transition as a COPY text line of ``ALERT_COLUMNS``."""
    cells = [_alert_cell(name, value) for name, value in zip(SLA_COLUMNS, t.row(), strict=True)]
    return "\t".join((*cells, str(part), "t" if published else "f")) + "\n"


def _alert_cell(name: str, value: Any) -> str:
    if value is None:
        return NULL
    if name in SLA_INSTANTS:
        return _instant(value)
    return text(value) if isinstance(value, str) else str(value)


class PostgresSink:
    """One connection; ``write`` commits one drain."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._ids: dict[str, int] = {}
        # records the server refused and that went to the dead letters instead
        self.diverted = 0

    async def ensure(self) -> None:
        """Connect unless connected."""
        if self._conn is None or self._conn.closed:
            await self.connect()

    async def connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self._conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS hourly_in (LIKE kpi_hourly) ON COMMIT DELETE ROWS"
        )
        await self._conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS events_in (LIKE procedure_events) "
            "ON COMMIT DELETE ROWS"
        )
        await self._conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS latest_in (LIKE kpi_latest) ON COMMIT DELETE ROWS"
        )

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("PostgresSink is not connected")
        return self._conn

    # -- writing -------------------------------------------------------------------

    async def write(self, drained: Drained, latest: dict[str, str] | None = None) -> None:
        """Commit one drain (and the counters just published, JSON-encoded
        per scope, if any)."""
        await self.write_many([(drained, latest or {})])

    async def write_many(
        self, commits: Sequence[tuple[Drained, dict[str, str]]], published: bool = False
    ) -> None:
        """Commit the drains of several partitions in one transaction (one
        WAL flush instead of one per partition).

        If the server refuses the data itself (``is_data_error``), the same
        drains are written again with the raw events one by one: a refused
        event goes to the dead letters with the reason, the rest commit."""
        try:
            await self._write(commits, published, careful=False)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("a commit was refused (%s); writing its events one by one", exc)
            await self._write(commits, published, careful=True)

    async def _write(
        self, commits: Sequence[tuple[Drained, dict[str, str]]], published: bool, careful: bool
    ) -> None:
        conn = self.conn
        drains = [d for d, _ in commits]
        async with conn.transaction():
            if any(d.raw for d in drains):
                if careful:
                    await self._events_carefully(conn, drains)
                else:
                    await self._events(conn, drains, "procedure_events")
            cells = [d for d in drains if len(d.hourly) or len(d.minutely) or len(d.levels)]
            if cells:
                ids = await self._scope_ids(conn, max((d.scope_keys for d in cells), key=len))
                hourly = [
                    counter_rows(
                        d.hourly.bucket * 3600, ids[d.hourly.scope], d.part, d.hourly.values
                    )
                    for d in cells
                    if len(d.hourly)
                ]
                if hourly:
                    await self._copy_binary(
                        conn, f"COPY hourly_in (hour, scope_id, part, {_FLOWS})", b"".join(hourly)
                    )
                    await conn.execute(
                        f"INSERT INTO kpi_hourly AS t SELECT * FROM hourly_in "
                        f"ON CONFLICT (scope_id, part, hour) DO UPDATE SET {_ADD_FLOWS}"
                    )
                points = b"".join(self._points(d, ids) for d in cells)
                if points:
                    await self._copy_binary(
                        conn,
                        f"COPY kpi_points (minute, scope_id, part, {_FLOWS}, {_LEVELS})",
                        points,
                    )
            if any(d.alerts for d in drains):
                lines = (_alert_line(a, d.part, published) for d in drains for a in d.alerts)
                async with conn.cursor().copy(
                    f"COPY sla_transitions ({ALERT_COLUMNS}) FROM STDIN"
                ) as copy:
                    for chunk in chunks(lines):
                        await copy.write(chunk)
            latest = (
                f"{text(scope)}\t{d.part}\t{_instant(d.clock)}\t{text(encoded)}\n"
                for d, published in commits
                for scope, encoded in published.items()
            )
            if any(published for _, published in commits):
                # COPY and one upsert: several thousand scopes a second at full pace
                async with conn.cursor().copy(
                    "COPY latest_in (scope, part, at, counters) FROM STDIN"
                ) as copy:
                    for chunk in chunks(latest):
                        await copy.write(chunk)
                await conn.execute(
                    "INSERT INTO kpi_latest SELECT * FROM latest_in "
                    "ON CONFLICT (scope, part) DO UPDATE SET at = EXCLUDED.at, "
                    "counters = EXCLUDED.counters"
                )
            await conn.cursor().executemany(
                "INSERT INTO worker_partitions (part, seq, clock) VALUES (%s, %s, %s) "
                "ON CONFLICT (part) DO UPDATE SET seq = EXCLUDED.seq, clock = EXCLUDED.clock, "
                "updated_at = now()",
                [(d.part, d.seq, utc_datetime(d.clock)) for d in drains],
            )
            for d in drains:
                if d.snapshot is not None:
                    await self._snapshot(conn, d)

    async def _snapshot(self, conn: psycopg.AsyncConnection[Any], d: Drained) -> None:
        assert d.snapshot is not None
        await conn.execute(
            "DELETE FROM dossier_snapshots WHERE part = %s AND seq = %s", (d.part, d.seq)
        )
        for i, chunk in enumerate(d.snapshot):
            await conn.execute(
                "INSERT INTO dossier_snapshots (part, seq, chunk, body) VALUES (%s, %s, %s, %s)",
                (d.part, d.seq, i, chunk),
            )
        await conn.execute(
            "DELETE FROM dossier_snapshots WHERE part = %s AND seq < ("
            "SELECT min(seq) FROM (SELECT DISTINCT seq FROM dossier_snapshots WHERE part = %s "
            "ORDER BY seq DESC LIMIT %s) kept)",
            (d.part, d.part, SNAPSHOTS_KEPT),
        )

    async def _scope_ids(
        self, conn: psycopg.AsyncConnection[Any], keys: list[str]
    ) -> npt.NDArray[np.int64]:
        """Database ids of scope keys, by the processor's scope index."""
        missing = [k for k in keys if k not in self._ids]
        if missing:
            await conn.execute(
                "INSERT INTO scopes (key) SELECT unnest(%s::text[]) ON CONFLICT (key) DO NOTHING",
                (missing,),
            )
            rows = await (
                await conn.execute("SELECT key, id FROM scopes WHERE key = ANY(%s)", (missing,))
            ).fetchall()
            self._ids.update(rows)
        return np.array([self._ids[k] for k in keys], dtype=np.int64)

    async def _copy_binary(
        self, conn: psycopg.AsyncConnection[Any], statement: str, rows: bytes
    ) -> None:
        async with conn.cursor().copy(f"{statement} FROM STDIN (FORMAT BINARY)") as copy:
            await copy.write(BINARY_HEADER + rows + BINARY_TRAILER)

    async def _events(
        self, conn: psycopg.AsyncConnection[Any], drains: Sequence[Drained], table: str
    ) -> None:
        rows = (_event_line(d.part, seq, ev) for d in drains for seq, ev in d.raw)
        async with conn.cursor().copy(
            f"COPY {table} (ts, event_id, dossier_id, type, part, seq, body) FROM STDIN"
        ) as copy:
            for chunk in chunks(rows):
                await copy.write(chunk)

    async def _events_carefully(
        self, conn: psycopg.AsyncConnection[Any], drains: Sequence[Drained]
    ) -> None:
        """Raw events that are not stored already; any the server refuses go
        to the dead letters (their counters stay: recompute leaves them out)."""
        try:
            async with conn.transaction():  # a savepoint
                await self._events(conn, drains, "events_in")
                await conn.execute(
                    "INSERT INTO procedure_events SELECT * FROM events_in ON CONFLICT DO NOTHING"
                )
            return
        except Exception as exc:
            if not is_data_error(exc):
                raise
        for d in drains:
            for seq, ev in d.raw:
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "INSERT INTO procedure_events (ts, event_id, dossier_id, type, part, "
                            "seq, body) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (
                                utc_datetime(ev.ts),
                                ev.event_id,
                                ev.dossier_id,
                                ev.type,
                                d.part,
                                seq,
                                stored_body(ev).decode(),
                            ),
                        )
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    self.diverted += 1
                    await self._divert(
                        conn,
                        f"procedure event not storable: {exc}",
                        f"procedure_events/{d.part}/{seq}",
                        ev.raw,
                    )

    async def _divert(
        self, conn: psycopg.AsyncConnection[Any], reason: str, origin: str, raw: bytes
    ) -> None:
        log.error("%s (%s): stored as a dead letter", reason, origin)
        await conn.execute(
            "INSERT INTO dead_letters (source, reason, origin, raw) VALUES ('worker', %s, %s, %s)",
            (storable_text(reason), storable_text(origin), raw),
        )

    def _points(self, d: Drained, ids: npt.NDArray[np.int64]) -> bytes:
        """Binary rows for kpi_points: flow increments (levels NULL) and level
        samples (flows 0)."""
        parts: list[bytes] = []
        if len(d.minutely):
            parts.append(
                counter_rows(
                    d.minutely.bucket * 60,
                    ids[d.minutely.scope],
                    d.part,
                    d.minutely.values,
                    nullable=len(LEVELS),
                )
            )
        if len(d.levels):
            zeros = np.zeros((len(d.levels), len(FLOWS)), dtype=np.int64)
            values = np.concatenate([zeros, d.levels], axis=1)
            parts.append(counter_rows(d.level_minutes * 60, ids[d.level_scopes], d.part, values))
        return b"".join(parts)

    async def write_dead_letters(self, letters: Sequence[tuple[str, str, str, bytes]]) -> None:
        """Store dead letters as (source, reason, origin, raw bytes). Text from
        outside (a topic with NUL, a header in Latin-1) is made storable
        first; the raw bytes are kept as they came."""
        rows = [
            (storable_text(source), storable_text(reason), storable_text(origin), raw)
            for source, reason, origin, raw in letters
        ]
        conn = self.conn
        try:
            async with conn.transaction():
                await self._dead_letters(conn, rows)
            return
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("a batch of dead letters was refused (%s); storing them one by one", exc)
        async with conn.transaction():
            for row in rows:
                try:
                    async with conn.transaction():
                        await self._dead_letters(conn, [row])
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    self.diverted += 1
                    log.error("a dead letter could not be stored (%s): %r", exc, row[:3])

    async def _dead_letters(
        self, conn: psycopg.AsyncConnection[Any], rows: Sequence[tuple[str, str, str, bytes]]
    ) -> None:
        async with conn.cursor().copy(
            "COPY dead_letters (source, reason, origin, raw) FROM STDIN"
        ) as copy:
            for row in rows:
                await copy.write_row(row)

    async def mark_published(self, parts: Sequence[int]) -> None:
        """The unpublished transitions of ``parts`` are with the broker now.
        Called under the worker's commit lock, so no commit adds one between
        the send and this."""
        await self.conn.execute(
            "UPDATE sla_transitions SET published = true WHERE part = ANY(%s) AND NOT published",
            (list(parts),),
        )

    async def unpublished(self, part: int) -> list[SlaTransition]:
        """The transitions of ``part`` stored but not known to be sent."""
        rows = await (
            await self.conn.execute(
                f"SELECT {SLA_SELECT} FROM sla_transitions WHERE part = %s AND NOT published "
                "ORDER BY at",
                (part,),
            )
        ).fetchall()
        return [SlaTransition.from_row(row) for row in rows]

    # -- reading back after a restart ---------------------------------------------------

    async def load_partition(self, part: int, since: float) -> StoredPartition:
        """What a processor needs to resume a partition; hourly counters are
        read from ``since`` on."""
        conn = self.conn
        row = await (
            await conn.execute("SELECT max(seq) FROM dossier_snapshots WHERE part = %s", (part,))
        ).fetchone()
        snap_seq = int(row[0]) if row and row[0] is not None else 0
        chunks = [
            bytes(r[0])
            for r in await (
                await conn.execute(
                    "SELECT body FROM dossier_snapshots WHERE part = %s AND seq = %s "
                    "ORDER BY chunk",
                    (part, snap_seq),
                )
            ).fetchall()
        ]
        state = await (
            await conn.execute(
                "SELECT seq, extract(epoch FROM clock) FROM worker_partitions WHERE part = %s",
                (part,),
            )
        ).fetchone()
        later = await (
            await conn.execute(
                "SELECT body::text FROM procedure_events WHERE part = %s AND seq > %s ORDER BY seq",
                (part, snap_seq),
            )
        ).fetchall()
        hourly = await (
            await conn.execute(
                sql.SQL(
                    "SELECT s.key, (extract(epoch FROM h.hour) / 3600)::bigint, {} "
                    "FROM kpi_hourly h JOIN scopes s ON s.id = h.scope_id "
                    "WHERE h.part = %s AND h.hour >= %s"
                ).format(sql.SQL(", ".join(f"h.{c}" for c in FLOW_COLUMNS))),
                (part, utc_datetime(since)),
            )
        ).fetchall()
        return StoredPartition(
            snapshot=chunks,
            snapshot_seq=snap_seq,
            seq=int(state[0]) if state else 0,
            clock=float(state[1]) if state else 0.0,
            later=[r[0].encode() for r in later],
            hourly_scopes=[r[0] for r in hourly],
            hourly_hours=np.array([r[1] for r in hourly], dtype=np.int64),
            hourly_values=np.array([r[2:] for r in hourly], dtype=np.int64).reshape(
                len(hourly), len(FLOWS)
            ),
        )


@dataclass(slots=True)
class StoredPartition:
    snapshot: list[bytes]  # compressed chunks; empty without a snapshot
    snapshot_seq: int
    seq: int  # the last raw sequence number stored
    clock: float  # the partition's clock at its last commit
    later: list[bytes]  # raw events stored after the snapshot
    hourly_scopes: list[str]
    hourly_hours: npt.NDArray[np.int64]
    hourly_values: npt.NDArray[np.int64]
