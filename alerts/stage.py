"""``ioc alerts``: the alert engine, run on what the alerts topic carries
(SLA transitions, units' KPI shares), one engine per partition.

The worker sends the transitions of procedure partition p to alerts
partition p, and each partition's share of a unit's KPI counters to the
alerts partition of the unit's key (``alerts.unit_messages``); the stages
of one consumer group (``<prefix>alerts``) share the partitions, so each
dossier's and each unit's alerts have one writer. Per batch of a
partition: decode the messages into signals (``alerts.stage_inputs``),
feed the engine, and write the changes, the history, the outbox rows and
the partition's state (the engine's, the units' shares) with its next
offset in one transaction (``alerts.store``); only then is the Kafka offset
committed. On assignment a partition's engine is restored from its
snapshot and the consumer seeks to the stored offset, so a batch done
twice (a crash between the two commits, a redelivery) is done from the
same state, with the same result.

Every second the stage ticks each engine on the injected clock (wall mode:
the clock's time; event mode: engines keep the latest input instant they
saw) and applies the operators' actions waiting in ``alert_actions``. The
owner of partition 0 also makes the daily digest (``alerts.digest_job``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from alerts import store
from alerts.alert_messages import alert_message
from alerts.digest_job import DeliveryRow, digest_due, digest_rows
from alerts.engine import AlertEngine
from alerts.model import Outcome
from alerts.records import alert_rows, delivery_rows, history_rows, public_alert
from alerts.routing import Routing
from alerts.rules import RuleSet
from alerts.stage_inputs import decode_inputs
from alerts.unit_kpis import UnitKpis
from ioc.calendar import WorkingCalendar
from ioc.clock import EventTimeClock, WallClock, to_iso
from ioc.settings import Settings
from ioc.topics import Topics
from streams.kafka import Producer

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
COMMIT_SECONDS = 5.0  # Kafka offsets are for lag tools only: no need to hurry


@dataclasses.dataclass(slots=True)
class Owned:
    """A partition this stage owns: its engine and where it stands."""

    part: int
    engine: AlertEngine
    seqs: dict[str, int]  # the last history seq per alert the engine knows
    next_offset: int
    version: int | None
    units: UnitKpis  # the shares of the units whose alerts the partition holds
    digest_at: float | None = None  # partition 0: when the next digest falls due
    read_to: int = 0  # the offset after the last message read, for the engine or not


class AlertStage:
    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        routing: Routing,
        calendar: WorkingCalendar,
        clock: WallClock | EventTimeClock,
    ) -> None:
        self.settings = settings
        # the engines make no digest (each partition would send its own): the
        # owner of partition 0 does (alerts.digest_job)
        self.rules = dataclasses.replace(rules, digest=None)
        self.digest = rules.digest
        self.routing = routing
        self.calendar = calendar
        self.clock = clock
        self.event_time = isinstance(clock, EventTimeClock)
        self.topic = Topics(settings.topic_prefix).alerts
        self.owned: dict[int, Owned] = {}
        self.lock = asyncio.Lock()  # batches, ticks and rebalances, one at a time
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: Producer | None = None
        self.assigned: set[int] = set()  # by the group; owned once loaded
        self.stale: set[int] = set()  # assigned partitions to reload from the database
        self.to_commit: dict[TopicPartition, int] = {}  # Kafka offsets, after the database's

    # -- engine side (no Kafka) -----------------------------------------------

    def now(self, owned: Owned) -> float:
        return owned.engine.now if self.event_time else self.clock.now()

    def restore(self, part: int, snapshot: store.Snapshot | None) -> Owned:
        # from the start of time, not the clock's: the transitions already on
        # the topic move it first, the clock's time comes once they are read
        engine = AlertEngine(self.rules, self.routing, self.calendar, 0.0)
        units = UnitKpis(self.rules)
        if snapshot is None:
            return Owned(part, engine, {}, 0, None, units)
        engine.restore(snapshot.state["engine"])
        units.restore(snapshot.state.get("units", {}))
        seqs = {k: int(v) for k, v in snapshot.state.get("seqs", {}).items()}
        digest_at = snapshot.state.get("digest_at")
        return Owned(part, engine, seqs, snapshot.next_offset, snapshot.version, units, digest_at)

    def batch(
        self,
        owned: Owned,
        out: Outcome,
        next_offset: int,
        applied: list[tuple[int, str]],
        digests: list[DeliveryRow] | None = None,
    ) -> store.Batch:
        """What to write for ``out`` (and a digest's rows); advances the
        alerts' history seqs."""
        engine = owned.engine
        rows = alert_rows(out.changes, engine.find, owned.part)
        history = history_rows(out.changes, owned.seqs)
        # forget the seqs of alerts the engine forgot: they never change again
        owned.seqs = {k: v for k, v in owned.seqs.items() if engine.find(k) is not None}
        by_id = {row["id"]: row for row in rows}
        return store.Batch(
            part=owned.part,
            version=owned.version,
            next_offset=next_offset,
            state={
                "engine": engine.state(),
                "seqs": owned.seqs,
                "units": owned.units.state(),
                "digest_at": owned.digest_at,
            },
            clock=engine.now,
            alerts=rows,
            history=history,
            deliveries=delivery_rows(out.deliveries, by_id, self.rules) + (digests or []),
            applied=applied,
        )

    def apply_actions(
        self, owned: Owned, actions: list[store.Action]
    ) -> tuple[Outcome, list[tuple[int, str]]]:
        out = Outcome()
        applied: list[tuple[int, str]] = []
        for a in actions:
            at = max(owned.engine.now, self.now(owned))
            handle = owned.engine.acknowledge if a.action == "ack" else owned.engine.resolve
            one = handle(a.alert_id, a.who, at, a.comment)
            out.extend(one)
            applied.append((a.id, "applied" if one.refused is None else f"refused: {one.refused}"))
        return out, applied

    # -- I/O ------------------------------------------------------------------

    async def write(self, owned: Owned, batch: store.Batch, changes: Outcome) -> None:
        """Write a batch, then publish its alert changes. A fenced or failed
        write leaves the engine ahead of the database: the partition is
        reloaded before its next batch."""
        assert self.conn is not None
        try:
            owned.version = await store.write(self.conn, batch)
        except Exception:
            self.stale.add(owned.part)
            raise
        owned.next_offset = batch.next_offset
        self.to_commit[TopicPartition(self.topic, owned.part)] = batch.next_offset
        await self.publish(owned.part, batch, changes)

    async def publish(self, part: int, batch: store.Batch, out: Outcome) -> None:
        if not batch.alerts or self.producer is None:
            return
        kinds: dict[str, list[str]] = {}
        for c in out.changes:
            ident = getattr(c, "alert_id", None)
            if ident is not None:
                kinds.setdefault(ident, []).append(type(c).__name__.lower())
        items = [
            {"alert": public_alert(row), "changes": kinds.get(row["id"], [])}
            for row in batch.alerts
        ]
        try:
            await self.producer.send(self.topic, alert_message(part, items), partition=part)
        except Exception as exc:  # screens miss a change; the database has it
            log.warning("alert changes of partition %d not published: %s", part, exc)

    async def reload(self, parts: Iterable[int]) -> None:
        """Take the partitions' state from the database, and read on from there."""
        assert self.conn is not None
        for part in parts:
            self.owned.pop(part, None)  # until loaded: its records are skipped
            if self.conn.closed:
                self.conn = await self.connect()
            owned = self.restore(part, await store.load(self.conn, part))
            self.owned[part] = owned
            if self.consumer is not None:
                self.consumer.seek(TopicPartition(self.topic, part), owned.next_offset)
            log.info("alerts partition %d ready at offset %d", part, owned.next_offset)

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.settings.database_url, autocommit=True)

    async def handle(self, part: int, records: list[Any]) -> None:
        owned = self.owned.get(part)
        if owned is None:
            return  # revoked meanwhile
        if records:
            owned.read_to = max(owned.read_to, records[-1].offset + 1)
        records = [r for r in records if r.offset >= owned.next_offset]
        if not records:
            return
        inputs = decode_inputs((r.value for r in records), owned.units, self.event_time)
        if not inputs:
            return  # nothing for the engine: the offset moves with the next write
        out = owned.engine.feed(inputs)
        if not self.event_time and self.caught_up(owned):
            out.extend(owned.engine.tick(self.clock.now()))
        await self.write(owned, self.batch(owned, out, records[-1].offset + 1, []), out)

    def caught_up(self, owned: Owned) -> bool:
        """Wall clock: whether the partition has read what the broker holds.
        Ticked to the clock's time while behind (after a restart, an outage),
        an engine would fire at once steps that a transition later in the
        backlog, a dossier's cleared, would have stopped; so until then only
        the transitions move its time, as on a replay."""
        if self.consumer is None:
            return True
        end = self.consumer.highwater(TopicPartition(self.topic, owned.part))
        return end is None or max(owned.read_to, owned.next_offset) >= end

    async def tick(self) -> None:
        """Ticks and operators' actions, for every owned partition."""
        assert self.conn is not None
        actions = await store.unapplied_actions(self.conn, sorted(self.owned))
        for part, owned in list(self.owned.items()):
            mine = [a for a in actions if a.part == part]
            out, applied = self.apply_actions(owned, mine)
            if not self.event_time and self.caught_up(owned):
                out.extend(owned.engine.tick(self.clock.now()))
            if out.changes or out.deliveries or applied:
                try:
                    await self.write(owned, self.batch(owned, out, owned.next_offset, applied), out)
                except psycopg.OperationalError:
                    raise
                except Exception as exc:
                    self.failed(part, exc)
        first = self.owned.get(0)
        if self.digest is not None and first is not None:
            try:
                await self.make_digest(first)
            except psycopg.OperationalError:
                raise
            except Exception as exc:
                self.failed(0, exc)

    async def make_digest(self, owned: Owned) -> None:
        """The daily digest when it falls due, from every partition's open
        alerts, written with partition 0's state (so it is made once)."""
        assert self.conn is not None and self.digest is not None
        now = await store.event_clock(self.conn) if self.event_time else self.clock.now()
        if now <= 0:
            return  # event time: no input yet
        at, next_at = digest_due(self.calendar, self.digest, owned.digest_at, now)
        if next_at == owned.digest_at:
            return
        rows = []
        if at is not None:
            alerts = await store.open_alerts(self.conn)
            rows = digest_rows(alerts, self.routing, self.digest, self.calendar, at)
            log.info("daily digest of %s: %d deliveries", to_iso(at)[:10], len(rows))
        owned.digest_at = next_at
        batch = self.batch(owned, Outcome(), owned.next_offset, [], rows)
        await self.write(owned, batch, Outcome())

    async def run(self) -> None:
        stage = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
                async with stage.lock:
                    for tp in revoked:
                        stage.owned.pop(tp.partition, None)
                        stage.assigned.discard(tp.partition)

            async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
                parts = {tp.partition for tp in assigned}
                async with stage.lock:
                    stage.assigned |= parts
                    try:
                        await stage.reload(sorted(parts))
                    except Exception as exc:  # the database is away: loaded later
                        log.warning("alerts partitions not loaded yet: %s", exc)
                        stage.stale |= parts

        try:
            self.conn = await self.connect()
            self.producer = Producer(self.settings.kafka_bootstrap, client_id="ioc-alerts")
            await self.producer.start()
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=f"{self.settings.topic_prefix}alerts",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                fetch_max_wait_ms=max(1, round(self.settings.fetch_max_wait * 1000)),
            )
            self.consumer.subscribe([self.topic], listener=Listener())
            await self.consumer.start()
            await self.loop()
        finally:
            await self.stop()

    async def loop(self) -> None:
        assert self.consumer is not None
        last_tick = last_commit = time.monotonic()
        while True:
            got = await self.consumer.getmany(timeout_ms=round(TICK_SECONDS * 1000))
            due = time.monotonic() - last_tick >= TICK_SECONDS
            async with self.lock:
                await self.step(got, due)
            if due:
                last_tick = time.monotonic()
            if time.monotonic() - last_commit >= COMMIT_SECONDS:
                last_commit = time.monotonic()
                await self.commit_offsets()

    async def step(self, got: dict[TopicPartition, list[Any]], tick: bool) -> None:
        """One round: reload what a failure left stale, the batches, a tick."""
        try:
            reloaded = self.stale & self.assigned
            if reloaded:
                await self.reload(sorted(reloaded))
            self.stale.clear()
            for tp, records in sorted(got.items()):
                if tp.partition in reloaded:
                    continue  # fetched before the reload's seek: read again from there
                try:
                    await self.handle(tp.partition, records)
                except Exception as exc:
                    self.failed(tp.partition, exc)
            if tick:
                await self.tick()
        except (psycopg.Error, OSError) as exc:
            log.warning("alert stage: database unavailable (%s); retrying", exc)
            self.stale |= self.assigned
            await asyncio.sleep(1)

    def failed(self, part: int, exc: Exception) -> None:
        self.stale.add(part)
        if isinstance(exc, store.Fenced):
            log.warning("%s; reloading it", exc)
        else:
            log.error("alerts partition %d not written (%r); reloading it", part, exc)

    async def commit_offsets(self) -> None:
        """The Kafka offsets of what the database holds (for lag metrics and
        tools; the stage itself seeks to the stored offsets). Outside the lock:
        a commit may wait for a rebalance, whose listener takes the lock."""
        offsets = {tp: n for tp, n in self.to_commit.items() if tp.partition in self.owned}
        self.to_commit.clear()
        if offsets and self.consumer is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(self.consumer.commit(offsets), 5)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.consumer is not None:
                await self.consumer.stop()  # leaves the group: partitions move at once
        with contextlib.suppress(Exception):
            if self.producer is not None:
                await self.producer.stop()
        with contextlib.suppress(Exception):
            if self.conn is not None:
                await self.conn.close()


async def run_stage(
    settings: Settings,
    rules: RuleSet,
    routing: Routing,
    calendar: WorkingCalendar,
    clock: WallClock | EventTimeClock,
) -> None:
    """Run until SIGTERM or SIGINT, then leave the group at once (so the
    partitions move without waiting for the session to time out)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await AlertStage(settings, rules, routing, calendar, clock).run()
