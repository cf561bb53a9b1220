"""``ioc notify``: sends the deliveries the alert stage decided.

The alert stage inserts rows into ``alert_deliveries``; this process claims
the due ones and sends them (webhook or email), recording every attempt in
``alert_delivery_attempts`` and the row's state.

Ownership without long transactions. Claiming is one short statement:
``SELECT ... FOR UPDATE SKIP LOCKED`` picks due rows no one else is
claiming, and the same statement pushes their ``next_attempt_at`` forward
(the lease), so no other notifier finds them due. Just before sending, a
second statement checks that the lease is still the one this process set
(compare-and-set) and renews it for the send; if another process
re-claimed the row meanwhile, the check fails and nothing is sent. So two
live notifiers never send the same row twice. Those checks, and the
recording of outcomes, go many rows per statement (``notify_batch``).

The at-least-once window: a crash after the receiver accepted a request
and before its outcome is recorded leaves the row with its lease; once the
lease runs out another notifier sends it again. Receivers drop such repeats
by ``Idempotency-Key`` (emails by Message-ID).

One slow or dead endpoint never delays another: each endpoint (webhook
origin, SMTP server) has its own bounded queue, its own workers and
connection pool, and its own circuit breaker. The claim skips endpoints
whose queue has no room for a whole claim or whose circuit is open (their
rows wait in the table); rows already queued when a circuit opens are
handed back with ``next_attempt_at`` at the end of the cool-down, never lost.
An endpoint that answers quickly gets more workers while rows wait for it
(``InflightLimit``), up to ``max_concurrency``.

Channel ``websocket`` has nothing to send: the alert stage stores those
rows as sent with the commit that decides them (consoles read the alert
and follow ``alerts/state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool

from alerts.notify_batch import AttemptRecorder, AttemptStarter, Outcome
from alerts.notify_channels import (
    Attempt,
    EmailSender,
    Row,
    WebhookSender,
    describe,
    endpoint_of,
)
from alerts.notify_config import NotifyConfig
from alerts.notify_metrics import NotifyMetrics
from alerts.notify_policy import CircuitBreaker, Clock, InflightLimit
from alerts.notify_sql import CLAIM, POSTPONE
from alerts.notify_wake import listen, wait_any
from alerts.tables import ensure_alert_tables_async

log = logging.getLogger(__name__)
CHANNELS = ("webhook", "email")


class Sender(Protocol):
    async def send(self, row: Row) -> Attempt: ...
    async def close(self) -> None: ...


class Endpoint:
    def __init__(
        self,
        name: str,
        channel: str,
        sender: Sender,
        breaker: CircuitBreaker,
        limit: InflightLimit,
        size: int,
    ):
        self.name = name
        self.channel = channel
        self.sender = sender
        self.breaker = breaker
        self.limit = limit  # requests it may have in flight: its workers
        self.queue: asyncio.Queue[Row] = asyncio.Queue(size)
        self.tasks: list[asyncio.Task[None]] = []


class Notifier:
    """The dispatcher loop and one set of workers per endpoint."""

    def __init__(
        self,
        database_url: str,
        config: NotifyConfig,
        metrics: NotifyMetrics | None = None,
        breaker_clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.database_url = database_url
        self.metrics = metrics or NotifyMetrics()
        self.breaker_clock = breaker_clock
        self.pool = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=config.concurrency + 4,
            open=False,
            configure=_configure,
            # every statement is a transaction of its own: one round trip
            kwargs={"autocommit": True},
        )
        self.endpoints: dict[str, Endpoint] = {}
        self.starter = AttemptStarter(self.pool, config.send_lease, config.batch)
        self.recorder = AttemptRecorder(self.pool, config.batch, self._recorded)
        # rows queued, being sent or being recorded here, by key: a re-claim
        # updates the lease
        self.inflight: dict[str, Row] = {}
        # without an SMTP server, email rows stay pending until one is set
        self.channels = [c for c in CHANNELS if c != "email" or config.smtp.host]
        self._smtp_name = f"smtp://{config.smtp.host}:{config.smtp.port}"
        # set by workers as they take rows: a full queue has room again
        self._room = asyncio.Event()
        self._idle = asyncio.Event()  # set when nothing is queued, sending or recording
        self._wake = asyncio.Event()  # set when deliveries were inserted
        self.listening = asyncio.Event()  # while subscribed to those inserts

    async def __aenter__(self) -> Notifier:
        await self.pool.open(wait=True)
        async with self.pool.connection() as conn:
            await ensure_alert_tables_async(conn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        # rows queued but not started go back at once, for another notifier
        queued: list[Row] = []
        for ep in self.endpoints.values():
            while not ep.queue.empty():
                row = ep.queue.get_nowait()
                queued.append(self.inflight.pop(row.key, row))
        if queued:
            try:
                await self._postpone(*[(r, 0.0, "stopping") for r in queued])
            except Exception:
                log.exception("handing back queued deliveries failed (their leases run out)")
        # sends in flight may finish; one cut short keeps its lease and is
        # resent when it runs out (the at-least-once window)
        self._idle.clear()
        if self.inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.config.grace)
        tasks = [t for ep in self.endpoints.values() for t in ep.tasks]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.starter.close(0.0)
        # outcomes already known are stored, so those rows are not sent again
        await self.recorder.close(self.config.grace + 5.0)
        for ep in self.endpoints.values():
            await ep.sender.close()
        self.endpoints.clear()
        await self.pool.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and dispatch until ``stop`` is set."""
        listener = asyncio.create_task(
            listen(self.database_url, self._wake, self.listening, self.config.poll_interval)
        )
        try:
            while not stop.is_set():
                self._room.clear()
                self._wake.clear()
                try:
                    claimed, full = await self.dispatch_once()
                except Exception:
                    # the database is away: keep the process, try again shortly
                    log.exception("claiming deliveries failed")
                    claimed, full = 0, False
                if claimed >= self.limit:
                    continue
                # claim again when rows are inserted, as soon as a full queue
                # has room, or a poll later (retries coming due)
                woken_by = (stop, self._wake, self._room) if full else (stop, self._wake)
                await wait_any(self.config.poll_interval, *woken_by)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    @property
    def limit(self) -> int:
        """Rows per claim: never more than a queue holds."""
        return min(self.config.batch, self.config.queue_size)

    def _blocked(self) -> tuple[list[str], list[str], bool]:
        """What not to claim now: endpoints whose queue has no room for a
        whole claim (so a claim never overflows a queue, and a slow
        endpoint's backlog stays in the table instead of churning through
        claims) or whose circuit is cooling down. Returns LIKE patterns of
        blocked webhook origins, the channels still claimed, and whether a
        queue was too full."""
        patterns: list[str] = []
        channels = list(self.channels)
        full = False
        for ep in self.endpoints.values():
            no_room = ep.queue.maxsize - ep.queue.qsize() < self.limit
            if not (no_room or not ep.breaker.allow_queueing()):
                continue
            full = full or no_room
            if ep.channel == "email":
                channels = [c for c in channels if c != "email"]
                continue
            o = ep.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            patterns += [o, o + "/%", o + "?%", o + "#%"]
        return patterns, channels, full

    async def dispatch_once(self) -> tuple[int, bool]:
        """One claim; returns how many rows, and whether a queue was too
        full to claim for."""
        blocked, channels, full = self._blocked()
        if not channels:
            return 0, full
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                CLAIM,
                {
                    "lease": self.config.lease,
                    "channels": channels,
                    "blocked": blocked,
                    "limit": self.limit,
                },
            )
            rows = [
                Row(k, ch, addr, payload, float(dec), att, lease)
                for k, ch, addr, payload, dec, att, lease in await cur.fetchall()
            ]
        later: list[tuple[Row, float, str]] = []
        for row in rows:
            known = self.inflight.get(row.key)
            if known is not None:
                # our own row again (its claim lease ran out while queued)
                self.inflight[row.key] = row
                continue
            ep = self._endpoint(row)
            if not ep.breaker.allow_queueing():
                later.append((row, max(ep.breaker.retry_in(), 0.1), "circuit_open"))
                continue
            try:
                ep.queue.put_nowait(row)
            except asyncio.QueueFull:
                full = True
                later.append((row, self.config.poll_interval, "queue_full"))
                continue
            self.inflight[row.key] = row
        self.metrics.queued.set(len(self.inflight))
        if later:
            await self._postpone(*later)
        return len(rows), full

    def _endpoint(self, row: Row) -> Endpoint:
        name = endpoint_of(row.channel, row.address, self._smtp_name)
        ep = self.endpoints.get(name)
        if ep is None:
            c = self.config
            sender: Sender
            if row.channel == "email":
                # one SMTP connection per message: a relay is not opened more of them
                limit = InflightLimit(c.concurrency, c.concurrency, c.quick_answer)
                sender = EmailSender(c.smtp, c.timeout)
            else:
                limit = InflightLimit(c.concurrency, c.max_concurrency, c.quick_answer)
                sender = WebhookSender(c.webhook_secret, c.timeout, limit.high)
            breaker = CircuitBreaker(c.breaker_failures, c.breaker_cooldown, self.breaker_clock)
            ep = Endpoint(name, row.channel, sender, breaker, limit, c.queue_size)
            self.endpoints[name] = ep
            self._add_workers(ep)
        return ep

    def _add_workers(self, ep: Endpoint) -> None:
        while len(ep.tasks) < ep.limit.value:
            name = f"notify {ep.name} #{len(ep.tasks)}"
            ep.tasks.append(asyncio.create_task(self._work(ep), name=name))

    async def _work(self, ep: Endpoint) -> None:
        while True:
            if len(ep.tasks) > ep.limit.value:
                # the limit went down: this worker is one too many
                task = asyncio.current_task()
                if task in ep.tasks:
                    ep.tasks.remove(task)
                    return
            row = await ep.queue.get()
            self._room.set()
            recording = False
            try:
                recording = await self._deliver(ep, self.inflight.get(row.key, row))
            except asyncio.CancelledError:
                raise
            except Exception:
                # the row keeps its lease and is claimed again when it runs out
                log.exception("delivery %s: starting failed", row.key)
            finally:
                if not recording:
                    self._done_with(row.key)

    async def _deliver(self, ep: Endpoint, row: Row) -> bool:
        """Send ``row`` if it is still ours; True once its outcome is handed
        to the recorder (which then lets go of the row)."""
        if not ep.breaker.allow():
            await self._postpone((row, max(ep.breaker.retry_in(), 0.1), "circuit_open"))
            self._count_open()
            return False
        try:
            attempt = await self.starter.start(row)
        except BaseException:
            ep.breaker.release_trial()
            raise
        if attempt is None:
            ep.breaker.release_trial()
            return False  # another notifier owns it now, or it is done
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout):
                result = await ep.sender.send(row)
        except TimeoutError:
            result = Attempt(False, None, f"timed out after {self.config.timeout:g} s")
        except Exception as exc:
            result = Attempt(False, None, describe(exc))
        took = time.perf_counter() - t0
        self.metrics.attempt_seconds.labels(row.channel).observe(took)
        # a refusal (4xx) shows the endpoint is up: only retryable failures
        # trip the breaker or lower the limit
        healthy = result.ok or not result.retry
        if healthy:
            ep.breaker.success()
        else:
            ep.breaker.failure()
        ep.limit.answered(took, healthy, not ep.queue.empty())
        self._add_workers(ep)
        self._count_open()
        self.recorder.add(Outcome.of(row, attempt, result, self.config))
        return True

    def _recorded(self, batch: list[Outcome], stored: bool) -> None:
        for o in batch:
            self._done_with(o.row.key)
            if not stored:
                continue
            self.metrics.outcomes.labels(o.state, o.row.channel).inc()
            if not o.result.ok:
                log.info(
                    "delivery %s attempt %d: %s (%s)", o.row.key, o.attempt, o.result.error, o.state
                )

    def _done_with(self, key: str) -> None:
        self.inflight.pop(key, None)
        self.metrics.queued.set(len(self.inflight))
        if not self.inflight:
            self._idle.set()

    async def _postpone(self, *rows: tuple[Row, float, str]) -> None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                POSTPONE, [{"key": r.key, "lease_at": r.lease, "delay": d} for r, d, _ in rows]
            )
        for _, _, reason in rows:
            self.metrics.postponed.labels(reason).inc()

    def _count_open(self) -> None:
        self.metrics.open_circuits.set(sum(ep.breaker.is_open for ep in self.endpoints.values()))


async def _configure(conn: Any) -> None:
    # Leases and states need not wait for the disk: a server crash can only
    # forget the last fraction of a second of them, which at most sends a
    # row again, the case the idempotency key covers anyway. Live notifiers
    # still see each other's commits and locks at once.
    await conn.execute("SET synchronous_commit = off")


async def run_notifier(settings: Any, stop: asyncio.Event | None = None) -> None:
    """``ioc notify``: serve metrics, then dispatch until stopped."""
    import signal

    from streams.metrics import serve

    config = NotifyConfig.from_settings(settings)
    metrics = NotifyMetrics()
    serve(metrics.registry, settings.api_host, settings.notify_metrics_port, "notify")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Notifier(settings.database_url, config, metrics) as notifier:
        log.info("notify: dispatching deliveries (webhook, email)")
        await notifier.run(stop)
