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

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from faust.types import EventT, StreamT

from alerts.messages import SlaTransition, sla_messages
from alerts.unit_messages import is_unit, unit_messages
from ioc.calendar import WorkingCalendar
from ioc.clock import EventTimeClock, WallClock
from ioc.events import DecodeError, ProcedureEvent, decode_procedure_event
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.updates import Trace, encode_kpi_update
from streams.catchup import CatchUp, Offsets
from streams.codec import decode_envelope, on_partition, watermark
from streams.health import WriterHealth
from streams.kafka import edge_time, partition_for
from streams.metrics import WorkerMetrics
from streams.partition_worker import Ack, PartitionWorker, Sends
from streams.processor import Drained, PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sinks.event_ids import EventIds
from streams.sinks.postgres import PostgresSink
from streams.sinks.retry import write_until_done

log = logging.getLogger(__name__)

# Published messages stay well under the broker's size limit.
UPDATE_SCOPES_PER_MESSAGE = 200
# Flush early (and wait for it) when this many events wait for their commit.
MAX_PENDING_EVENTS = 50_000


T = TypeVar("T")


@dataclass(slots=True)
class Outgoing:
    """What one partition's drain commits, acknowledges and publishes."""

    part: int
    slot: Partition
    drained: Drained
    # scope -> counters (JSON), written to kpi_latest in the commit, then published
    updates: dict[str, str]
    edges: dict[str, float]  # scope -> edge time of its oldest change
    applied: float | None  # wall clock: the first of its events applied
    acks: list[Ack]
    units: dict[str, str]  # unit -> counters (JSON), for the alert stages

    def worth_a_commit(self) -> bool:
        return bool(self.acks or self.updates or self.units or _has_rows(self.drained))


@dataclass(slots=True)
class Partition:
    processor: PartitionProcessor
    # event-time mode: this partition's own watermark. A shared clock would
    # judge a lagging partition's dossiers at another partition's time.
    clock: EventTimeClock | None
    acks: list[Ack] = field(default_factory=list)
    pending_events: int = 0
    # monotonic time the oldest message not yet committed arrived
    pending_since: float | None = None
    # the same for the events of the commit under way, until it is done
    committing_since: float | None = None
    committing: int = 0
    last_snapshot: float = field(default_factory=time.monotonic)
    # wall-clock time the first events since the last drain were applied
    applied_at: float | None = None
    # SLA transitions committed and not yet known to be with the broker
    unsent: list[SlaTransition] = field(default_factory=list)
    # every unit's counters went to the alert stages since this owner took
    # the partition (a stage adds up every partition's share of a unit)
    units_sent: bool = False
    # wall clock: whether it may judge at the clock's time (streams.catchup)
    catchup: CatchUp = field(default_factory=lambda: CatchUp(None))
    # wall clock: nothing committed yet, so its processor may start at its
    # first event's time rather than the clock's
    fresh: bool = False


class ProcedureWorker(PartitionWorker[Partition]):
    """Processors per assigned partition, and their commits
    (``streams.partition_worker`` for what both streams share)."""

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
        offsets: Callable[[int], Offsets] | None = None,
    ) -> None:
        """``offsets(part)``: the committed and end offsets of a partition,
        for a wall-clock worker to tell catching up from live."""
        super().__init__(settings)
        self.registry = registry
        self.calendar = calendar
        self.clock = clock
        self.event_time = isinstance(clock, EventTimeClock)
        self.sink = sink
        self.scopes = ScopeIndex(registry, settings.minute_kinds)
        self._publish_updates = publish_updates
        self._publish_alerts = publish_alerts
        self.event_ids = event_ids
        self.health = health or WriterHealth()
        self.metrics = metrics or WorkerMetrics()
        self.offsets = offsets
        self.started = time.monotonic()
        self.last_commit: float | None = None  # monotonic
        self.dead_letters = 0
        self.committed_events = 0
        # for ``waiting_clock``: the time spent merging (s), the merges under
        # way and since when (monotonic) one is
        self._merging = 0.0
        self._merges = 0
        self._merging_since = 0.0

    # -- partitions come and go ----------------------------------------------------

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
            proc = self._processor(part, then)
            later = [e for e in (_decode_stored(raw) for raw in stored.later) if e is not None]
            proc.restore(stored.snapshot, stored.seq, later)
            proc.restore_counters(stored.hourly_scopes, stored.hourly_hours, stored.hourly_values)
            slot = Partition(proc, watermark)
            if self.event_time:
                proc.move(now)
            else:  # the clock's time comes at a drain, once any backlog is read
                offsets = self.offsets(part) if self.offsets else None
                slot.catchup = CatchUp(offsets, self.waiting_clock)
                slot.fresh = stored.clock <= 0
            # what the last owner committed but could not send
            slot.unsent = unsent = await self.sink.unpublished(part)
            self.partitions[part] = slot
            if unsent:
                self._applied.set()
            log.info(
                "partition %d ready: %d dossiers, %d events after the snapshot, %.1f s",
                part,
                len(proc.store),
                len(later),
                time.monotonic() - started,
            )

    def _processor(self, part: int, start: float) -> PartitionProcessor:
        return PartitionProcessor(
            part,
            self.calendar,
            self.registry,
            self.scopes,
            start,
            self.settings.at_risk_share,
            self.settings.finished_retention_days,
        )

    # -- events --------------------------------------------------------------------

    def waiting_clock(self) -> float:
        """Monotonic time that stops while messages are merged: how long a
        partition has waited for its next message (``streams.catchup``). A
        merge held up by the database, or a long one, is no sign that the
        broker has stopped delivering."""
        now = time.monotonic()
        return now - self._merging - (now - self._merging_since if self._merges else 0.0)

    async def handle(self, stream: StreamT[Any], event: EventT[Any], dead: Any) -> None:
        """Merge one message's events (``handle_many`` of one)."""
        await self.handle_many([(stream, event)], dead)

    async def handle_many(self, messages: Sequence[Ack], dead: Any) -> None:
        """Merge the events of ``messages`` into their partitions'
        processors, in order. Their event ids are claimed in one transaction
        for all: a claim per message held the stream to a few hundred
        messages a second, and the HTTP ingest sends one message per
        partition and request."""
        started = time.monotonic()
        if not self._merges:
            self._merging_since = started
        self._merges += 1
        try:
            await self._handle_many(messages, dead, started)
        finally:
            self._merges -= 1
            if not self._merges:
                self._merging += time.monotonic() - self._merging_since

    async def _handle_many(self, messages: Sequence[Ack], dead: Any, started: float) -> None:
        todo: list[tuple[StreamT[Any], EventT[Any], Partition, float | None, Any, Any]] = []
        claims: list[ProcedureEvent] = []
        for stream, event in messages:
            part = event.message.partition
            slot = await self.slot_of(part)
            if slot is None:  # not ours any more: unacknowledged, the new owner reads it
                continue
            if slot.pending_since is None:  # a stuck claim or apply counts as waiting too
                slot.pending_since = started
            mark = watermark(event.value, event.headers)
            if mark is not None:
                todo.append((stream, event, slot, mark, [], []))
                continue
            # a misrouted event is refused here, before it claims its id
            count, held = self.settings.procedure_partitions, slot.processor.store.rows
            decode = on_partition(decode_procedure_event, part, count, held)
            events, errors = decode_envelope(event.value, decode)
            todo.append((stream, event, slot, None, events, errors))
            claims += events
        refused: dict[int, str] = {}
        if claims and self.event_ids is not None:
            ids = self.event_ids
            refused = dict(
                await write_until_done(ids, lambda: ids.claim(claims), self.health, self.metrics)
            )
        first = 0  # index in ``claims`` of the message's first event
        for stream, event, slot, mark, events, errors in todo:
            if mark is not None:
                if slot.clock is not None:
                    slot.clock.observe(mark)
                    slot.processor.move(slot.clock.now())
                else:  # read too: else a watermark last on the partition would stay waiting
                    slot.catchup.message(event.message.offset, None, self.clock.now())
                slot.acks.append((stream, event))
                continue
            n, first = first, first + len(events)
            if refused:
                errors += [
                    DecodeError(refused[i], ev.raw)
                    for i, ev in enumerate(events, n)
                    if i in refused
                ]
                events = [ev for i, ev in enumerate(events, n) if i not in refused]
            await self._merge(stream, event, slot, events, errors, dead, started)

    async def _merge(
        self,
        stream: StreamT[Any],
        event: EventT[Any],
        slot: Partition,
        events: list[ProcedureEvent],
        errors: list[DecodeError],
        dead: Any,
        started: float,
    ) -> None:
        for err in errors:
            await dead(err, event)
            self.metrics.refused("procedure", err.reason)
        self.dead_letters += len(errors)
        self.metrics.events_in.labels("procedure").inc(len(events) + len(errors))
        if slot.clock is None:
            newest = max((ev.ts for ev in events), default=None)
            slot.catchup.message(event.message.offset, newest, self.clock.now())
        if events:
            edge = edge_time(event.headers)
            if slot.clock is not None:
                slot.processor.apply(events, 0.0, slot.clock, edge)
            else:
                if slot.fresh:  # nothing to lose: start where its events start
                    slot.fresh = False
                    first = min(ev.ts for ev in events)
                    if first < slot.processor.now:
                        slot.processor = self._processor(event.message.partition, first)
                judge_at = slot.catchup.judge_at(self.clock.now())
                slot.processor.apply(events, judge_at, edge=edge)
            applied = time.time()
            if slot.applied_at is None:
                slot.applied_at = applied
            if edge is not None:
                self.metrics.hop.labels("edge_to_applied").observe(applied - edge)
        slot.acks.append((stream, event))
        slot.pending_events += len(events)
        if slot.pending_since is None:  # a commit took the earlier ones meanwhile
            slot.pending_since = started
        self._applied.set()
        if slot.pending_events >= MAX_PENDING_EVENTS:
            await self.flush({event.message.partition})

    def _commit_wait(self) -> float:
        """Every ``IOC_FLUSH_INTERVAL`` s for the time that passes (SLA
        transitions), and as soon as a KPI update held back by its rate
        limit is due."""
        gap = 1 / self.settings.kpi_updates_per_second
        held = any(s.processor.updates_waiting() for s in self.partitions.values())
        return min(gap, self.settings.flush_interval) if held else self.settings.flush_interval

    async def flush(self, parts: set[int] | None = None) -> None:
        """Commit what the processors hold, in one transaction, then ack and
        publish."""
        async with self._lock:
            now = time.monotonic()
            batch = [
                self._drain(part, slot, now)
                for part in sorted(self.partitions if parts is None else parts)
                if (slot := self.partitions.get(part)) is not None
            ]
            batch = [out for out in batch if out.worth_a_commit()]
            sends = self._sends()
            if not batch:
                await self._send_alerts(sends)
                return
            with self.metrics.commit_seconds.time():
                await self._commit([(out.drained, out.updates) for out in batch])
            committed = time.time()
            self.last_commit = time.monotonic()
            self.metrics.last_commit.set(committed)
            for out in batch:
                slot = out.slot
                await self.ack(out.acks)
                self.committed_events += slot.committing
                self.metrics.committed.inc(slot.committing)
                slot.committing, slot.committing_since = 0, None
                if out.drained.snapshot is not None:
                    slot.last_snapshot = time.monotonic()
                if out.applied is not None:
                    self.metrics.hop.labels("applied_to_committed").observe(committed - out.applied)
                await self._publish(out, committed, sends)
                slot.unsent += out.drained.alerts
            # after every partition's KPI updates: these wait for the broker
            await self._send_units(batch, sends)
            await self._send_alerts(sends)

    async def _send_alerts(self, sends: Sends) -> None:
        """Send the committed SLA transitions not yet sent, and mark them
        sent once the broker has them (the outbox of ``sla_transitions``).
        What cannot be sent now, or is not confirmed within ``sends``' time,
        waits for the next commit, or for the next owner of the partition; a
        transition may be sent twice, never lost (readers drop repeats by
        ``SlaTransition.key``)."""
        slots = {part: s for part, s in self.partitions.items() if s.unsent}
        if not slots:
            return
        sent = []
        for part, slot in slots.items():
            try:
                for message in sla_messages(slot.unsent):
                    # on the alerts partition of the same number: one alert stage owns both
                    await sends(self._publish_alerts, message, part)
            except Exception as exc:  # the broker is away: the next commit tries again
                log.warning("SLA transitions of partition %d not sent yet: %s", part, exc)
                continue
            sent.append(part)
        if sent:
            await write_until_done(
                self.sink, lambda: self.sink.mark_published(sent), self.health, self.metrics
            )
            for part in sent:
                slots[part].unsent = []

    async def _publish(self, out: Outgoing, committed: float, sends: Sends) -> None:
        """KPI updates of one partition, in messages of at most
        UPDATE_SCOPES_PER_MESSAGE scopes (one could pass the broker's size
        limit), each with the times its changes passed the stages. Scopes
        the producer did not take go with a later commit."""
        keys = list(out.updates)
        for i in range(0, len(keys), UPDATE_SCOPES_PER_MESSAGE):
            chunk = keys[i : i + UPDATE_SCOPES_PER_MESSAGE]
            published = time.time()
            try:
                await sends(
                    self._publish_updates,
                    encode_kpi_update(
                        out.part,
                        out.drained.clock,
                        {k: out.updates[k] for k in chunk},
                        Trace(out.applied, committed, published),
                        {k: out.edges[k] for k in chunk if k in out.edges},
                    ),
                )
            except Exception as exc:  # the broker is away
                log.warning("KPI updates of partition %d not published yet: %s", out.part, exc)
                out.slot.processor.unpublished(keys[i:])
                return
            self.metrics.hop.labels("committed_to_published").observe(published - committed)

    async def _send_units(self, batch: list[Outgoing], sends: Sends) -> None:
        """The units' counters of a commit, each to the alerts partition of
        its unit (``alerts.unit_messages``), all sent at once: each message
        holds other units, so their order does not matter. Counters are
        levels, not increments: what could not be sent, or was not confirmed
        within ``sends``' time, goes, all of it, with a later commit."""
        n = self.settings.procedure_partitions
        calls = [
            (message, target)
            for out in batch
            for target, message in unit_messages(
                out.part, out.drained.clock, out.units, lambda key: partition_for(key, n)
            )
        ]
        try:
            await sends.together(self._publish_alerts, calls)
        except Exception as exc:  # the broker is away
            log.warning("unit counters of this commit not sent yet: %s", exc)
            sent = False
        else:
            sent = True
        for out in batch:
            out.slot.units_sent = sent

    def _drain(self, part: int, slot: Partition, now: float) -> Outgoing:
        """What one partition commits: its drain, the KPI updates (each
        scope's counters encoded once, for kpi_latest and Kafka), and the
        messages to acknowledge."""
        proc = slot.processor
        if not self.event_time:
            proc.move(slot.catchup.judge_at(self.clock.now()))
        gap = 1 / self.settings.kpi_updates_per_second
        edges: dict[str, float] = {}
        updates = {k: orjson.dumps(v).decode() for k, v in proc.updates(now, gap, edges).items()}
        if slot.units_sent:
            units = {k: v for k, v in updates.items() if is_unit(k)}
        else:
            every = proc.all_counters()
            units = {k: orjson.dumps(v).decode() for k, v in every.items() if is_unit(k)}
        snapshot = time.monotonic() - slot.last_snapshot >= self.settings.snapshot_interval
        out = Outgoing(
            part,
            slot,
            proc.drain(snapshot=snapshot),
            updates,
            edges,
            slot.applied_at,
            slot.acks,
            units,
        )
        if slot.acks:  # else nothing of what waits is in this commit
            slot.committing_since, slot.pending_since = slot.pending_since, None
        slot.acks, slot.applied_at = [], None
        slot.committing, slot.pending_events = slot.pending_events, 0
        return out

    async def _commit(self, commits: list[tuple[Drained, dict[str, str]]]) -> None:
        before = self.sink.diverted
        await write_until_done(
            self.sink, lambda: self.sink.write_many(commits), self.health, self.metrics
        )
        self.metrics.diverted.inc(self.sink.diverted - before)


def _decode_stored(raw: bytes) -> ProcedureEvent | None:
    result = decode_procedure_event(json.loads(raw), raw)
    return None if isinstance(result, DecodeError) else result


def _has_rows(d: Drained) -> bool:
    return bool(
        d.raw or len(d.hourly) or len(d.minutely) or len(d.levels) or d.alerts or d.snapshot
    )
