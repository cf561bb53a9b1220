"""Worker heartbeat rows: written by each worker, read by ``/readyz``."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg

from streams.health import WorkerBeat
from streams.sinks.storable import storable_text


async def write_heartbeat(
    conn: psycopg.AsyncConnection[Any],
    worker: str,
    uptime: float,
    partitions: list[int],
    commit_age: float | None,
    pending_events: int,
    pending_age: float | None,
    failing_for: float | None,
    last_error: str,
    lag: dict[str, int],
    lag_age: float | None = None,
) -> None:
    """Upsert this worker's row; ages become instants on the database's clock."""

    def ago(seconds: float | None) -> str | None:
        return None if seconds is None else f"{seconds:.3f} seconds"

    await conn.execute(
        "INSERT INTO worker_heartbeats (worker, at, started_at, partitions, last_commit_at, "
        "pending_events, oldest_pending_at, failing_since, last_error, lag, lag_since) VALUES "
        "(%(worker)s, now(), now() - %(uptime)s::interval, %(parts)s, "
        "now() - %(commit)s::interval, %(pending)s, now() - %(pending_age)s::interval, "
        "now() - %(failing)s::interval, %(error)s, %(lag)s, now() - %(lag_age)s::interval) "
        "ON CONFLICT (worker) DO UPDATE SET at = EXCLUDED.at, started_at = EXCLUDED.started_at, "
        "partitions = EXCLUDED.partitions, "
        "last_commit_at = EXCLUDED.last_commit_at, pending_events = EXCLUDED.pending_events, "
        "oldest_pending_at = EXCLUDED.oldest_pending_at, failing_since = EXCLUDED.failing_since, "
        "last_error = EXCLUDED.last_error, lag = EXCLUDED.lag, lag_since = EXCLUDED.lag_since",
        {
            "worker": storable_text(worker),
            "uptime": ago(uptime),
            "parts": partitions,
            "commit": ago(commit_age),
            "pending": pending_events,
            "pending_age": ago(pending_age),
            "failing": ago(failing_for),
            "error": storable_text(last_error) or None,
            "lag": orjson.dumps(lag).decode(),
            "lag_age": ago(lag_age),
        },
    )
    # rows of workers gone for a day are forgotten by the next writer
    await conn.execute("DELETE FROM worker_heartbeats WHERE at < now() - INTERVAL '1 day'")


async def read_heartbeats(conn: psycopg.AsyncConnection[Any]) -> list[WorkerBeat]:
    rows = await (
        await conn.execute(
            "SELECT worker, extract(epoch FROM now() - at), extract(epoch FROM now() - started_at),"
            " partitions, extract(epoch FROM now() - last_commit_at), pending_events, "
            "extract(epoch FROM now() - oldest_pending_at), "
            "extract(epoch FROM now() - failing_since), coalesce(last_error, ''), lag, "
            "extract(epoch FROM now() - lag_since) "
            "FROM worker_heartbeats"
        )
    ).fetchall()

    def seconds(value: Any) -> float | None:
        return None if value is None else float(value)

    return [
        WorkerBeat(
            worker=r[0],
            age=float(r[1]),
            uptime=float(r[2]),
            partitions=tuple(r[3]),
            commit_age=seconds(r[4]),
            pending_events=int(r[5]),
            pending_age=seconds(r[6]),
            failing_for=seconds(r[7]),
            last_error=r[8],
            lag={str(k): int(v) for k, v in (r[9] or {}).items()},
            lag_age=seconds(r[10]),
        )
        for r in rows
    ]
