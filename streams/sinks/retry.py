"""Writes that wait out a database that is away: retried, with a
reconnect between tries, for as long as it takes. Only what a retry can cure
reaches this loop (``streams.sinks.storable`` diverts the data the server
refuses)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from streams.health import WriterHealth
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")


class Reconnecting(Protocol):
    async def ensure(self) -> None: ...
    async def close(self) -> None: ...
    async def connect(self) -> None: ...


async def write_until_done(
    sink: Reconnecting,
    write: Callable[[], Awaitable[T]],
    health: WriterHealth | None = None,
    metrics: WorkerMetrics | None = None,
) -> T:
    """Retry a database write, reconnecting between tries. While the database
    is down the stream waits; its messages stay unacknowledged, so nothing
    is lost and a restart resumes from the last commit.

    Refusals of the data itself never reach this loop as far as the sinks can
    help it: they store what the server takes and divert the rest to the
    dead letters (``streams.sinks.storable``). What does reach it is retried
    and reported (``health``, the log, ``/readyz``), never dropped."""
    delay = 0.5
    while True:
        try:
            await sink.ensure()
            result = await write()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if health is not None:
                health.failed(exc)
            if metrics is not None:
                metrics.write_failures.inc()
            log.error("database write failed (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            try:
                await sink.close()
                await sink.connect()
            except Exception as again:
                log.error("reconnect failed: %s", again)
            continue
        if health is not None:
            health.ok()
        return result
