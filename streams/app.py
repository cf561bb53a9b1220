"""The faust worker: the one module that wires Kafka topics to the
processors (streams.worker holds what happens per partition).

Agents stay thin. The procedure agent hands each message (an NDJSON
envelope) to the ``ProcedureWorker``, which sends bad lines to the
dead-letter topic with their reason and merges the rest into the processor
of the message's partition. A timer flushes every processor into PostgreSQL,
then acknowledges the messages that flush covered. The sensor agent does
the same with the ``SensorWorker`` (``streams.sensor_worker``); dead
letters are stored in batches.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from functools import partial
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP, EventT, StreamT

from ioc.calendar import WorkingCalendar
from ioc.events import DecodeError
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.stations import load_stations
from ioc.topics import Topics
from streams import worker_report
from streams.catchup import Offsets
from streams.health import WriterHealth
from streams.inbox import Inbox
from streams.metrics import WorkerMetrics
from streams.partition_worker import confirmed
from streams.sensor_worker import SensorWorker
from streams.sinks.event_ids import EventIds
from streams.sinks.heartbeats import write_heartbeat
from streams.sinks.postgres import PostgresSink
from streams.sinks.retry import write_until_done
from streams.sinks.sensor_sink import SensorSink
from streams.sinks.storable import header_text
from streams.worker import ProcedureWorker

log = logging.getLogger(__name__)
SHUTDOWN_FLUSH_TIMEOUT = 10.0

# seconds between the worker's one-line report in the log
STATS_INTERVAL = 60.0
# messages taken from the stream and waiting to be merged, at most (streams.inbox)
INBOX_MESSAGES = 256
INBOX_BYTES = 8 * 1024 * 1024


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
        # A produce request lost on a dead connection (no error, no answer)
        # is noticed only after this, and until then it holds the one request
        # the producer keeps in flight to the broker: every later send waits
        # behind it. faust's default (1200 s) stalled alerts for 20 minutes.
        # It is also how long a message waits for a broker that is away
        # before it is dropped: what must not be lost (SLA transitions,
        # units' counters, signals) stays in its outbox and goes again.
        producer_request_timeout=30.0,
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
    with_fetch_wait(app, settings.fetch_max_wait)
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
    sensor_sink = SensorSink(settings.database_url)
    dead_sink = PostgresSink(settings.database_url)
    # event-id claims and heartbeats: short autocommit statements
    event_ids = EventIds(settings.database_url)
    health = WriterHealth()
    metrics = WorkerMetrics()

    async def publish_updates(message: bytes) -> None:
        await updates_topic.send(value=message)

    async def publish_alerts(message: bytes, part: int) -> None:
        # wait for the broker: the transition is marked sent after this. The
        # worker gives up waiting after a while (``streams.partition_worker``)
        await confirmed(await alerts_topic.send(value=message, partition=part))

    worker = ProcedureWorker(
        settings,
        registry,
        calendar,
        clock,
        sink,
        publish_updates,
        publish_alerts,
        event_ids,
        health,
        metrics,
        lambda part: partition_offsets(app, TP(procedures.get_topic_name(), part)),
    )
    worker_id = f"{socket.gethostname()}:{os.getpid()}"

    async def dead(err: DecodeError, event: EventT[Any]) -> None:
        msg = event.message
        item = "" if err.index is None else f"#{err.index}"
        await dead_topic.send(
            value=err.raw,
            headers={
                "source": b"worker",
                "reason": err.reason.encode(),
                "origin": f"{msg.topic}/{msg.partition}/{msg.offset}{item}".encode(),
            },
        )

    # Messages the agent has taken and the worker not yet merged: the worker
    # merges all that wait at once (one event-id claim for them all).
    inbox: Inbox[tuple[Any, EventT[Any]]] = Inbox(INBOX_MESSAGES, INBOX_BYTES)

    @app.agent(procedures)
    async def procedure_events(stream: StreamT[Any]) -> None:
        manual = cast("faust.Stream[Any]", stream).noack()
        async for event in manual.events():
            await inbox.put((manual, event), len(event.value or b""))

    @app.task
    async def merge() -> None:
        while True:
            batch = await inbox.take_all()
            try:
                await worker.handle_many(batch, dead)
            except Exception as exc:
                # The processor may hold half an envelope: stop the worker so
                # it restarts from what the database committed, rather than
                # let faust restart the agent past an unacknowledged message.
                log.exception("processing failed; stopping the worker")
                await app.crash(exc)
                raise

    @app.task
    async def commit() -> None:
        await worker.run_commits()

    @app.timer(interval=STATS_INTERVAL)
    async def report() -> None:
        worker_report.log_stats(worker)
        sensor_worker.log_stats()

    lag_since: list[float | None] = [None]  # monotonic; None while nothing waits

    @app.timer(interval=settings.heartbeat_interval)
    async def heartbeat() -> None:
        # on the claims' connection: the commit's may be busy retrying
        lag = consumer_lag(app, (procedures.get_topic_name(), sensors.get_topic_name()))
        for key, n in lag.items():
            topic, _, part = key.rpartition("/")
            metrics.lag.labels(topic, part).set(n)
        now = time.monotonic()
        if not any(lag.values()):
            lag_since[0] = None
        elif lag_since[0] is None:
            lag_since[0] = now
        lag_age = None if lag_since[0] is None else now - lag_since[0]
        try:
            await event_ids.ensure()
            async with event_ids.lock:
                await write_heartbeat(
                    event_ids.conn,
                    worker_id,
                    lag=lag,
                    lag_age=lag_age,
                    **worker_report.heartbeat(worker),
                )
        except Exception as exc:  # the database is away: /readyz says so by itself
            log.debug("heartbeat not written: %s", exc)

    sensor_worker = SensorWorker(
        settings,
        load_stations(settings.stations_file, registry),
        clock,
        sensor_sink,
        publish_updates,
        publish_alerts,
        health,
        metrics,
    )
    sensor_inbox: Inbox[tuple[Any, EventT[Any]]] = Inbox(INBOX_MESSAGES, INBOX_BYTES)

    @app.agent(sensors)
    async def sensor_readings(stream: StreamT[Any]) -> None:
        manual = cast("faust.Stream[Any]", stream).noack()
        async for event in manual.events():
            await sensor_inbox.put((manual, event), len(event.value or b""))

    @app.task
    async def merge_sensors() -> None:
        while True:
            batch = await sensor_inbox.take_all()
            try:
                await sensor_worker.handle_many(batch, dead)
            except Exception as exc:  # as for procedures: restart from the commit
                log.exception("sensor processing failed; stopping the worker")
                await app.crash(exc)
                raise

    @app.task
    async def commit_sensors() -> None:
        await sensor_worker.run_commits()

    @app.agent(dead_topic)
    async def dead_letters(stream: StreamT[Any]) -> None:
        async for batch in cast("faust.Stream[Any]", stream).take_events(500, within=1.0):
            # any producer may write to this topic: any header bytes are kept
            letters = [
                (
                    header_text((e.headers or {}).get("source"), "unknown"),
                    header_text((e.headers or {}).get("reason")),
                    header_text((e.headers or {}).get("origin")),
                    e.value if isinstance(e.value, bytes) else b"",
                )
                for e in batch
            ]
            await write_until_done(
                dead_sink, partial(dead_sink.write_dead_letters, letters), health, metrics
            )

    def ours(tps: set[TP], topic: faust.types.TopicT) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == topic.get_topic_name()}

    # faust sends the partition sets as the first positional argument
    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        # sensor messages may come while the procedure partitions load
        sensor_worker.expect(ours(assigned, sensors))
        await worker.assign(ours(assigned, procedures))
        await sensor_worker.assign(ours(assigned, sensors))

    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        await worker.revoke(ours(revoked, procedures))
        await sensor_worker.revoke(ours(revoked, sensors))

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]  # faust stub
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]

    async def close(sender: Any, *_: Any, **__: Any) -> None:
        try:  # a last commit; bounded, as the database may be what is failing
            await asyncio.wait_for(
                asyncio.gather(worker.flush(), sensor_worker.flush()), SHUTDOWN_FLUSH_TIMEOUT
            )
        except TimeoutError:
            log.warning("no final commit; Kafka redelivers the uncommitted messages")
        for db in (sink, sensor_sink, dead_sink, event_ids):
            await db.close()

    app.on_before_shutdown.connect(close)  # type: ignore[arg-type]
    return app, worker


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """faust's consumer with our fetch wait (faust fixes it at 1.5 s)."""

    fetch_max_wait_ms = 20

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts, after this
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


def with_fetch_wait(app: faust.App, seconds: float) -> None:
    """Make ``app``'s consumer wait at most ``seconds`` for new data per fetch."""

    class Thread(_ConsumerThread):
        fetch_max_wait_ms = max(1, round(seconds * 1000))

    class Consumer(faust_kafka.Consumer):
        def _new_consumer_thread(self) -> Thread:
            return Thread(self, loop=self.loop, beacon=self.beacon)

    class Transport(faust_kafka.Transport):
        pass

    Transport.Consumer = Consumer
    app.transport = Transport(app.conf.broker_consumer, app)


def partition_offsets(app: faust.App, tp: TP) -> Offsets:
    """The committed and end offsets of ``tp``, as the consumer knows them
    (None where it does not yet), for ``streams.catchup``."""

    def offsets() -> tuple[int | None, int | None]:
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        try:
            end = consumer.highwater(tp)
        except Exception:  # no fetch for it yet
            end = None
        return (
            None if committed is None else int(committed),
            None if end is None else int(end),
        )

    return offsets


def consumer_lag(app: faust.App, topics: tuple[str, ...]) -> dict[str, int]:
    """Messages not yet committed per assigned partition of ``topics``:
    the broker's end offset minus the committed offset."""
    consumer = app.consumer
    committed: Any = getattr(consumer, "_committed_offset", {})
    lag = {}
    try:
        assigned = consumer.assignment()
    except Exception:  # not started, or between assignments
        return {}
    for tp in assigned:
        if tp.topic not in topics:
            continue
        try:
            end = consumer.highwater(tp)
        except Exception as exc:  # no fetch for it yet
            log.debug("no end offset for %s: %s", tp, exc)
            end = None
        if end is None:
            continue
        done = committed.get(tp) or 0
        lag[f"{tp.topic}/{tp.partition}"] = max(0, int(end) - int(done))
    return lag
