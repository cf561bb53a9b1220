"""Many deliveries per statement: starting attempts and recording them.

A worker about to send asks ``AttemptStarter.start``; a worker done
sending hands the outcome to ``AttemptRecorder.add``. Each gathers what
arrives while its previous statement runs and sends it all in the next one
(no timer: a lone request goes at once, a burst shares round trips and
commits). The guarantees stay per row: a start still succeeds only while
the row's lease is the one this process set, and an outcome still changes
the row only if no later attempt was started (``attempts`` unchanged).

Between a send and the recorder's flush the row holds its send lease, as
it did between a send and its own finish before: a crash there leaves the
row to be sent again with the same key once the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from alerts.notify_channels import Attempt, Row
from alerts.notify_config import NotifyConfig
from alerts.notify_policy import backoff_delay
from alerts.notify_sql import FINISH_MANY, START_MANY

log = logging.getLogger(__name__)
T = TypeVar("T")


class Coalescer(Generic[T]):
    """Feeds items to ``flush`` in lists: everything that arrived while the
    previous flush ran, at most ``max_items`` at a time, one flush at a
    time. ``flush`` handles its own errors."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], max_items: int) -> None:
        self._flush = flush
        self._max = max_items
        self._items: list[T] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def put(self, item: T) -> None:
        self._items.append(item)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notify flush")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._items:
                batch, self._items = self._items[: self._max], self._items[self._max :]
                try:
                    await self._flush(batch)
                except Exception:
                    log.exception("a batch of %d deliveries failed", len(batch))
            if self._closing:
                return

    async def close(self, within: float) -> None:
        """Flush what is left (waiting at most ``within`` s), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), within)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class AttemptStarter:
    """Starts attempts, many rows per statement: counts each attempt and
    renews its lease for the send, only where the lease is still ours."""

    def __init__(self, pool: Any, send_lease: float, max_rows: int) -> None:
        self.pool = pool
        self.send_lease = send_lease
        self._batches: Coalescer[tuple[Row, asyncio.Future[int | None]]] = Coalescer(
            self._flush, max_rows
        )

    async def start(self, row: Row) -> int | None:
        """The attempt's number, or None if the row is no longer ours."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._batches.put((row, done))
        return await done

    async def _flush(self, batch: list[tuple[Row, asyncio.Future[int | None]]]) -> None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    START_MANY,
                    {
                        "lease": self.send_lease,
                        "keys": [r.key for r, _ in batch],
                        "leases": [r.lease for r, _ in batch],
                    },
                )
                started = dict(await cur.fetchall())
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for row, done in batch:
            if not done.done():
                done.set_result(started.get(row.key))

    async def close(self, within: float) -> None:
        await self._batches.close(within)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to, as the recorder stores it."""

    row: Row
    attempt: int
    result: Attempt
    state: str  # sent, failed or gave_up
    delay: float  # until the next attempt, when failed

    @classmethod
    def of(cls, row: Row, attempt: int, result: Attempt, config: NotifyConfig) -> Outcome:
        if result.ok:
            return cls(row, attempt, result, "sent", 0.0)
        if not result.retry or attempt >= config.max_attempts:
            return cls(row, attempt, result, "gave_up", 0.0)
        delay = backoff_delay(attempt, config.backoff_base, config.backoff_max)
        return cls(row, attempt, result, "failed", delay)


class AttemptRecorder:
    """Stores outcomes, many per statement: a multi-row insert into
    ``alert_delivery_attempts`` and an update of the rows, together. ``recorded`` is
    called with each batch once stored (or once storing failed: those rows
    keep their send lease and are sent again when it runs out)."""

    def __init__(
        self,
        pool: Any,
        max_rows: int,
        recorded: Callable[[list[Outcome], bool], None],
    ) -> None:
        self.pool = pool
        self.recorded = recorded
        self._batches: Coalescer[Outcome] = Coalescer(self._flush, max_rows)

    def add(self, outcome: Outcome) -> None:
        self._batches.put(outcome)

    async def _flush(self, batch: list[Outcome]) -> None:
        args = {
            "keys": [o.row.key for o in batch],
            "attempts": [o.attempt for o in batch],
            "oks": [o.result.ok for o in batch],
            "statuses": [o.result.status for o in batch],
            "errors": [o.result.error for o in batch],
            "states": [o.state for o in batch],
            "delays": [o.delay for o in batch],
        }
        try:
            async with self.pool.connection() as conn:
                await conn.execute(FINISH_MANY, args)
        except Exception:
            log.exception(
                "recording %d deliveries failed (they are sent again when their lease runs out)",
                len(batch),
            )
            self.recorded(batch, False)
            return
        self.recorded(batch, True)

    async def close(self, within: float) -> None:
        await self._batches.close(within)
