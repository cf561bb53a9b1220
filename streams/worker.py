"""Per-partition processing and its commits: the part of the worker that
faust does not see.

``ProcedureWorker`` holds one processor per assigned partition. ``handle``
merges a message's events into its partition's processor; ``flush`` drains
every processor into PostgreSQL in one transaction, then acknowledges the
messages that drain covered and publishes KPI counters and SLA transitions.
Acknowledging only after the commit is what makes a restart lose nothing;
merging facts idempotently is what makes redelivery harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
from faust.types import EventT, StreamT

from alerts.messages import sla_messages
from ioc.calendar import WorkingCalendar
from ioc.clock import EventTimeClock, WallClock
from ioc.events import DecodeError, ProcedureEvent, decode_procedure_event
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.topics import WATERMARK_HEADER
from streams.codec import decode_envelope
from streams.health import WriterHealth
from streams.metrics import WorkerMetrics
from streams.processor import Drained, PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sinks.event_ids import EventIds
from streams.sinks.postgres import PostgresSink

log = logging.getLogger(__name__)

# Published messages stay well under the broker's size limit.
UPDATE_SCOPES_PER_MESSAGE = 200
# Flush early (and wait for it) when this many events wait for their commit.
MAX_PENDING_EVENTS = 50_000


T = TypeVar("T")


class Reconnecting(Protocol):
    async def ensure(self) -> None: ...
    async def close(self) -> None: ...
    async def connect(self) -> None: ...


@dataclass(slots=True)
class Partition:
    processor: PartitionProcessor
    # event-time mode: this partition's own watermark. A shared clock would
    # judge a lagging partition's dossiers at another partition's time.
    clock: EventTimeClock | None
    acks: list[tuple[StreamT[Any], EventT[Any]]] = field(default_factory=list)
    pending_events: int = 0
    # monotonic time the oldest message not yet committed arrived
    pending_since: float | None = None
    # the same for the events of the commit under way, until it is done
    committing_since: float | None = None
    committing: int = 0
    last_snapshot: float = field(default_factory=time.monotonic)


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


class ProcedureWorker:
    """Processors per assigned partition, and their commits."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        calendar: WorkingCalendar,
        clock: WallClock | EventTimeClock,
        sink: PostgresSink,
        publish_updates: Any,
        publish_alerts: Any,
        event_ids: EventIds | None = None,
        health: WriterHealth | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.calendar = calendar
        self.clock = clock
        self.event_time = isinstance(clock, EventTimeClock)
        self.sink = sink
        self.scopes = ScopeIndex(registry, settings.minute_kinds)
        self.partitions: dict[int, Partition] = {}
        # partitions being loaded: faust may hand us their messages already
        self._loading: dict[int, asyncio.Event] = {}
        self._publish_updates = publish_updates
        self._publish_alerts = publish_alerts
        self._lock = asyncio.Lock()
        # set when events are applied: the commit loop commits them at once
        self._applied = asyncio.Event()
        self.event_ids = event_ids
        self.health = health or WriterHealth()
        self.metrics = metrics or WorkerMetrics()
        self.started = time.monotonic()
        self.last_commit: float | None = None  # monotonic
        self.dead_letters = 0
        self.committed_events = 0

    # -- partitions come and go ----------------------------------------------------

    async def assign(self, parts: set[int]) -> None:
        new = sorted(parts - set(self.partitions))
        for part in new:
            self._loading.setdefault(part, asyncio.Event())
        try:
            await self._load(new)
        finally:
            for part in new:
                self._loading.pop(part).set()

    async def _load(self, parts: list[int]) -> None:
        await self.sink.ensure()
        for part in parts:
            started = time.monotonic()
            now = self.clock.now()
            stored = await self.sink.load_partition(part, since=now - 400 * 86400)
            watermark = None
            if self.event_time:
                watermark = EventTimeClock(max(stored.clock, now))
                now = watermark.now()
            # Rebuild as of the last commit, whose transitions are stored
            # already; the time since then passes afterwards, so SLA
            # transitions that fell due while no worker ran are sent.
            then = min(stored.clock, now) if stored.clock > 0 else now
            proc = PartitionProcessor(
                part,
                self.calendar,
                self.registry,
                self.scopes,
                then,
                self.settings.at_risk_share,
                self.settings.finished_retention_days,
            )
            later = [e for e in (_decode_stored(raw) for raw in stored.later) if e is not None]
            proc.restore(stored.snapshot, stored.seq, later)
            proc.restore_counters(stored.hourly_scopes, stored.hourly_hours, stored.hourly_values)
            proc.move(now)
            self.partitions[part] = Partition(proc, watermark)
            log.info(
                "partition %d ready: %d dossiers, %d events after the snapshot, %.1f s",
                part,
                len(proc.store),
                len(later),
                time.monotonic() - started,
            )

    async def revoke(self, parts: set[int]) -> None:
        await self.flush(parts & set(self.partitions))
        for part in parts:
            self.partitions.pop(part, None)

    # -- events --------------------------------------------------------------------

    async def handle(self, stream: StreamT[Any], event: EventT[Any], dead: Any) -> None:
        part = event.message.partition
        slot = self.partitions.get(part)
        if slot is None and part in self._loading:
            await self._loading[part].wait()
            slot = self.partitions.get(part)
        if slot is None:  # not ours any more: unacknowledged, the new owner reads it
            return
        if slot.pending_since is None:  # a stuck claim or apply counts as waiting too
            slot.pending_since = time.monotonic()
        mark = _watermark(event)
        if mark is not None:
            if slot.clock is not None:
                slot.clock.observe(mark)
                slot.processor.move(slot.clock.now())
            slot.acks.append((stream, event))
            return
        events, errors = decode_envelope(event.value, decode_procedure_event)
        if events and self.event_ids is not None:
            ids = self.event_ids
            refused = await write_until_done(
                ids, lambda: ids.claim(events), self.health, self.metrics
            )
            if refused:
                gone = {i for i, _ in refused}
                errors += [DecodeError(why, events[i].raw) for i, why in refused]
                events = [ev for i, ev in enumerate(events) if i not in gone]
        for err in errors:
            await dead(err, event)
            self.metrics.refused("procedure", err.reason)
        self.dead_letters += len(errors)
        self.metrics.events_in.labels("procedure").inc(len(events) + len(errors))
        if events:
            if slot.clock is not None:
                slot.processor.apply(events, 0.0, slot.clock)
            else:
                slot.processor.apply(events, self.clock.now())
        slot.acks.append((stream, event))
        slot.pending_events += len(events)
        self._applied.set()
        if slot.pending_events >= MAX_PENDING_EVENTS:
            await self.flush({part})

    async def run_commits(self) -> None:
        """Commit as soon as events are applied; events applied during a
        commit go into the next one (group commit, so a busy stream makes
        fewer, larger commits). Between events, commit every
        ``IOC_FLUSH_INTERVAL`` s for the time that passes (SLA transitions),
        and as soon as a KPI update held back by its rate limit is due."""
        gap = 1 / self.settings.kpi_updates_per_second
        while True:
            held = any(s.processor.updates_waiting() for s in self.partitions.values())
            wait = min(gap, self.settings.flush_interval) if held else self.settings.flush_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), wait)
            self._applied.clear()
            await self.flush()

    async def flush(self, parts: set[int] | None = None) -> None:
        """Commit what the processors hold, in one transaction, then ack and
        publish."""
        async with self._lock:
            now = time.monotonic()
            batch = []
            for part in sorted(self.partitions if parts is None else parts):
                slot = self.partitions.get(part)
                if slot is not None:
                    batch.append((part, slot, *self._drain(slot, now)))
            batch = [b for b in batch if b[3] or b[4] or _has_rows(b[2])]
            if not batch:
                return
            with self.metrics.commit_seconds.time():
                await self._commit([(drained, updates) for _, _, drained, updates, _ in batch])
            self.last_commit = time.monotonic()
            self.metrics.last_commit.set_to_current_time()
            for part, slot, drained, updates, acks in batch:
                for stream, event in acks:
                    await stream.ack(event)
                self.committed_events += slot.committing
                self.metrics.committed.inc(slot.committing)
                slot.committing, slot.committing_since = 0, None
                if drained.snapshot is not None:
                    slot.last_snapshot = time.monotonic()
                # in chunks: one message per drain could pass the broker's size limit
                keys = list(updates)
                for i in range(0, len(keys), UPDATE_SCOPES_PER_MESSAGE):
                    scopes = ",".join(
                        f"{json.dumps(k)}:{updates[k]}"
                        for k in keys[i : i + UPDATE_SCOPES_PER_MESSAGE]
                    )
                    await self._publish_updates(
                        f'{{"type":"kpi","part":{part},"at":{drained.clock},"scopes":{{{scopes}}}}}'
                    )
                for message in sla_messages(drained.alerts):
                    await self._publish_alerts(message)

    def _drain(
        self, slot: Partition, now: float
    ) -> tuple[Drained, dict[str, str], list[tuple[StreamT[Any], EventT[Any]]]]:
        proc = slot.processor
        if not self.event_time:
            proc.move(self.clock.now())
        # each scope's counters encoded once: for kpi_latest and for Kafka
        gap = 1 / self.settings.kpi_updates_per_second
        updates = {k: orjson.dumps(v).decode() for k, v in proc.updates(now, gap).items()}
        snapshot = time.monotonic() - slot.last_snapshot >= self.settings.snapshot_interval
        drained = proc.drain(snapshot=snapshot)
        acks, slot.acks = slot.acks, []
        slot.committing, slot.pending_events = slot.pending_events, 0
        slot.committing_since, slot.pending_since = slot.pending_since, None
        return drained, updates, acks

    async def _commit(self, commits: list[tuple[Drained, dict[str, str]]]) -> None:
        before = self.sink.diverted
        await write_until_done(
            self.sink, lambda: self.sink.write_many(commits), self.health, self.metrics
        )
        self.metrics.diverted.inc(self.sink.diverted - before)

    def heartbeat(self) -> dict[str, Any]:
        """What this worker reports to ``/readyz`` (ages in seconds)."""
        now = time.monotonic()
        slots = self.partitions.values()
        waiting = [t for s in slots for t in (s.pending_since, s.committing_since) if t]
        open_dossiers = sum(s.processor.stats()["open"] for s in slots)
        self.metrics.open_dossiers.set(open_dossiers)
        self.metrics.partitions.set(len(self.partitions))
        return {
            "uptime": now - self.started,
            "partitions": sorted(self.partitions),
            "commit_age": None if self.last_commit is None else now - self.last_commit,
            "pending_events": sum(s.pending_events + s.committing for s in slots),
            "pending_age": now - min(waiting) if waiting else None,
            "failing_for": self.health.failing_for(),
            "last_error": self.health.last_error if self.health.failing_since else "",
        }

    def log_stats(self) -> None:
        """One line for operators: what the worker holds and what it refused
        or could not place (unknown codes are counted under their own code)."""
        stats = self.stats()
        parts = stats["per_partition"].values()
        anomalies: Counter[str] = Counter()
        for part in self.partitions.values():
            anomalies.update(part.processor.store.anomaly_counts)
        log.info(
            "partitions %s: %d events committed, %d open dossiers, %d duplicates, "
            "%d for evicted dossiers, %d dead letters, unknown codes %s, anomalies %s",
            stats["partitions"],
            stats["committed_events"],
            sum(p["open"] for p in parts),
            sum(p["duplicates"] for p in parts),
            sum(p["after_eviction"] for p in parts),
            stats["dead_letters"],
            stats["unknown_codes"] or "none",
            dict(anomalies) or "none",
        )

    def stats(self) -> dict[str, Any]:
        per_part = {p: s.processor.stats() for p, s in self.partitions.items()}
        return {
            "partitions": sorted(self.partitions),
            "dead_letters": self.dead_letters,
            "committed_events": self.committed_events,
            "unknown_codes": dict(self.scopes.unknown),
            "per_partition": per_part,
        }


def _watermark(event: EventT[Any]) -> float | None:
    """The instant of a watermark message, or None for an ordinary one."""
    if event.value:
        return None
    headers = event.headers or {}
    value = headers.get(WATERMARK_HEADER)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        log.warning("ignoring a watermark that is not a number: %r", value)
        return None


def _decode_stored(raw: bytes) -> ProcedureEvent | None:
    result = decode_procedure_event(json.loads(raw), raw)
    return None if isinstance(result, DecodeError) else result


def _has_rows(d: Drained) -> bool:
    return bool(
        d.raw or len(d.hourly) or len(d.minutely) or len(d.levels) or d.alerts or d.snapshot
    )
