"""The faust worker: the one module that wires Kafka topics to the pure
processors.

Agents stay thin. The procedure agent decodes each message (an NDJSON
envelope), sends bad lines to the dead-letter topic with their reason, and
merges the rest into the processor of the message's partition. A timer
drains every processor into PostgreSQL (one transaction per partition), then
acknowledges the messages that drain covered and publishes KPI counters and
SLA transitions. Acknowledging only after the commit is what makes a restart
lose nothing; merging facts idempotently is what makes redelivery harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import faust
import orjson
from faust.types import TP, EventT, StreamT

from alerts.messages import sla_messages
from ioc.calendar import WorkingCalendar
from ioc.clock import EventTimeClock, WallClock
from ioc.events import (
    DecodeError,
    ProcedureEvent,
    decode_procedure_event,
    decode_sensor_reading,
)
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.topics import WATERMARK_HEADER, Topics
from streams.codec import decode_envelope
from streams.processor import Drained, PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sensors import LatestReadings
from streams.sinks.postgres import PostgresSink

log = logging.getLogger(__name__)
SHUTDOWN_FLUSH_TIMEOUT = 10.0

# Published messages stay well under the broker's size limit.
UPDATE_SCOPES_PER_MESSAGE = 200
# Flush early (and wait for it) when this many events wait for their commit.
MAX_PENDING_EVENTS = 50_000
# seconds between the worker's one-line report in the log
STATS_INTERVAL = 60.0


@dataclass(slots=True)
class Partition:
    processor: PartitionProcessor
    # event-time mode: this partition's own watermark. A shared clock would
    # judge a lagging partition's dossiers at another partition's time.
    clock: EventTimeClock | None
    acks: list[tuple[StreamT[Any], EventT[Any]]] = field(default_factory=list)
    pending_events: int = 0
    committing: int = 0
    last_snapshot: float = field(default_factory=time.monotonic)


async def write_until_done(sink: PostgresSink, write: Callable[[], Awaitable[object]]) -> None:
    """Retry a database write, reconnecting between tries. While the database
    is down the stream waits; its messages stay unacknowledged, so nothing
    is lost and a restart resumes from the last commit."""
    delay = 0.5
    while True:
        try:
            await sink.ensure()
            await write()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("database write failed (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            try:
                await sink.close()
                await sink.connect()
            except Exception as again:
                log.error("reconnect failed: %s", again)


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
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.calendar = calendar
        self.clock = clock
        self.event_time = isinstance(clock, EventTimeClock)
        self.sink = sink
        self.scopes = ScopeIndex(registry, tuple(settings.minute_series.split(",")))
        self.partitions: dict[int, Partition] = {}
        # partitions being loaded: faust may hand us their messages already
        self._loading: dict[int, asyncio.Event] = {}
        self._publish_updates = publish_updates
        self._publish_alerts = publish_alerts
        self._lock = asyncio.Lock()
        self._last_emit = 0.0
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
        mark = _watermark(event)
        if mark is not None:
            if slot.clock is not None:
                slot.clock.observe(mark)
                slot.processor.move(slot.clock.now())
            slot.acks.append((stream, event))
            return
        events, errors = decode_envelope(event.value, decode_procedure_event)
        for err in errors:
            await dead(err, event)
        self.dead_letters += len(errors)
        if events:
            if slot.clock is not None:
                slot.processor.apply(events, 0.0, slot.clock)
            else:
                slot.processor.apply(events, self.clock.now())
        slot.acks.append((stream, event))
        slot.pending_events += len(events)
        if slot.pending_events >= MAX_PENDING_EVENTS:
            await self.flush({part})

    async def flush(self, parts: set[int] | None = None) -> None:
        """Commit what the processors hold, in one transaction, then ack and
        publish."""
        async with self._lock:
            emit = time.monotonic() - self._last_emit >= 1 / self.settings.kpi_updates_per_second
            if emit:
                self._last_emit = time.monotonic()
            batch = []
            for part in sorted(self.partitions if parts is None else parts):
                slot = self.partitions.get(part)
                if slot is not None:
                    batch.append((part, slot, *self._drain(slot, emit)))
            batch = [b for b in batch if b[3] or b[4] or _has_rows(b[2])]
            if not batch:
                return
            await self._commit([(drained, updates) for _, _, drained, updates, _ in batch])
            for part, slot, drained, updates, acks in batch:
                for stream, event in acks:
                    await stream.ack(event)
                self.committed_events += slot.committing
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
        self, slot: Partition, emit: bool
    ) -> tuple[Drained, dict[str, str], list[tuple[StreamT[Any], EventT[Any]]]]:
        proc = slot.processor
        if not self.event_time:
            proc.move(self.clock.now())
        # each scope's counters encoded once: for kpi_latest and for Kafka
        updates = {k: orjson.dumps(v).decode() for k, v in proc.updates().items()} if emit else {}
        snapshot = time.monotonic() - slot.last_snapshot >= self.settings.snapshot_interval
        drained = proc.drain(snapshot=snapshot)
        acks, slot.acks = slot.acks, []
        slot.committing, slot.pending_events = slot.pending_events, 0
        return drained, updates, acks

    async def _commit(self, commits: list[tuple[Drained, dict[str, str]]]) -> None:
        await write_until_done(self.sink, lambda: self.sink.write_many(commits))

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


def create_app(
    settings: Settings,
    registry: Registry,
    calendar: WorkingCalendar,
) -> tuple[faust.App, ProcedureWorker]:
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        f"{settings.topic_prefix}worker",
        broker=settings.kafka_url,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        datadir=str(settings.data_dir / "faust"),
        topic_allow_declare=False,  # ``ioc`` creates its topics itself
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        producer_max_request_size=4_000_000,
        # an envelope holds up to ~900 kB of events: 16 waiting ones keep the
        # agent busy, 256 (faust's default) held ~400 MiB more when it lagged
        stream_buffer_maxsize=16,
        # Messages are acknowledged by the commit timer, which stops with the
        # app: waiting for them at shutdown would never end. Not waiting loses
        # nothing; Kafka redelivers what was not acknowledged.
        stream_wait_empty=False,
        # envelopes are large: fetch several per request
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    procedures = app.topic(topics.procedure_events, value_type=bytes, key_type=bytes)
    sensors = app.topic(topics.sensor_readings, value_type=bytes, key_type=bytes)
    dead_topic = app.topic(topics.dead_letters, value_type=bytes, key_type=bytes)
    updates_topic = app.topic(topics.kpi_updates, value_type=bytes, key_type=bytes)
    alerts_topic = app.topic(topics.alerts, value_type=bytes, key_type=bytes)

    from ioc.clock import build_clock

    clock = build_clock(
        settings.clock, settings.clock_start, settings.clock_speed, settings.clock_anchor
    )
    # one connection each: a connection runs one transaction at a time
    sink = PostgresSink(settings.database_url)
    sensor_sink = PostgresSink(settings.database_url)
    dead_sink = PostgresSink(settings.database_url)

    async def publish_updates(message: str) -> None:
        await updates_topic.send(value=message.encode())

    async def publish_alerts(message: bytes) -> None:
        await alerts_topic.send(value=message)

    worker = ProcedureWorker(
        settings, registry, calendar, clock, sink, publish_updates, publish_alerts
    )

    async def dead(err: DecodeError, event: EventT[Any]) -> None:
        msg = event.message
        await dead_topic.send(
            value=err.raw,
            headers={
                "source": b"worker",
                "reason": err.reason.encode(),
                "origin": f"{msg.topic}/{msg.partition}/{msg.offset}#{err.index}".encode(),
            },
        )

    @app.agent(procedures)
    async def procedure_events(stream: StreamT[Any]) -> None:
        manual = cast("faust.Stream[Any]", stream).noack()
        async for event in manual.events():
            try:
                await worker.handle(manual, event, dead)
            except Exception as exc:
                # The processor may hold half an envelope: stop the worker so
                # it restarts from what the database committed, rather than
                # let faust restart the agent past an unacknowledged message.
                log.exception("processing failed; stopping the worker")
                await app.crash(exc)
                raise

    @app.timer(interval=settings.flush_interval)
    async def commit() -> None:
        await worker.flush()

    @app.timer(interval=STATS_INTERVAL)
    async def report() -> None:
        worker.log_stats()

    latest = LatestReadings()

    @app.agent(sensors)
    async def sensor_readings(stream: StreamT[Any]) -> None:
        manual = cast("faust.Stream[Any]", stream).noack()
        async for event in manual.events():
            readings, errors = decode_envelope(event.value, decode_sensor_reading)
            for err in errors:
                await dead(err, event)
            if readings:
                await write_until_done(sensor_sink, partial(sensor_sink.write_readings, readings))
                latest.update(readings)
            await manual.ack(event)

    @app.timer(interval=0.5)
    async def publish_sensors() -> None:
        changed = latest.take_changed()
        if changed:
            await updates_topic.send(
                value=json.dumps({"type": "sensor", "readings": changed}).encode()
            )

    @app.agent(dead_topic)
    async def dead_letters(stream: StreamT[Any]) -> None:
        async for batch in cast("faust.Stream[Any]", stream).take_events(500, within=1.0):
            letters = [
                (
                    (e.headers or {}).get("source", b"unknown").decode(),
                    (e.headers or {}).get("reason", b"").decode(),
                    (e.headers or {}).get("origin", b"").decode(),
                    e.value,
                )
                for e in batch
            ]
            await write_until_done(dead_sink, partial(dead_sink.write_dead_letters, letters))

    def ours(tps: set[TP]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == procedures.get_topic_name()}

    # faust sends the partition sets as the first positional argument
    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        await worker.assign(ours(assigned))

    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        await worker.revoke(ours(revoked))

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # faust stub
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]

    async def close(sender: Any, *_: Any, **__: Any) -> None:
        try:  # a last commit; bounded, as the database may be what is failing
            await asyncio.wait_for(worker.flush(), SHUTDOWN_FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("no final commit; Kafka redelivers the uncommitted messages")
        for db in (sink, sensor_sink, dead_sink):
            await db.close()

    app.on_before_shutdown.connect(close)  # type: ignore[arg-type]
    return app, worker
