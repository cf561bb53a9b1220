"""The sensor stage per assigned partition of the sensor topic, and its
commits: the sensor side of what ``streams.worker`` is for dossiers.

The same discipline: a message is merged into its partition's state
(``streams.sensor_stage``), a commit writes what the states drained in one
transaction, and only then are the messages acknowledged, the changed
sensors published and the signals sent. What makes it exactly once is the
offset committed with the state: a new owner of a partition loads the
state and skips every message before that offset, and rebuilds the windows
from the readings stored. A reading that comes twice through MQTT (another
offset, the same sensor and time) is a repeat to the windows and, by its
event id, to the table.

Signals are committed with the state before they are sent ("unsent"), so
a worker killed in between has the next owner send them: a signal may go
twice, never be lost; they are levels, and a repeat changes no alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.types import EventT

from alerts.model import Signal
from alerts.signal_messages import signal_item, signal_messages, signals_of
from ioc.clock import Clock, EventTimeClock
from ioc.events import decode_sensor_reading
from ioc.settings import Settings
from ioc.stations import Stations
from ioc.updates import READING_FIELDS, LatestReading, encode_sensor_update
from streams.codec import decode_envelope
from streams.health import WriterHealth
from streams.kafka import edge_time, partition_for
from streams.metrics import WorkerMetrics
from streams.partition_worker import Ack, PartitionWorker, Sends
from streams.sensor_stage import KEEP_SECONDS, SensorDrain, SensorPartition, stations_of
from streams.sinks.retry import write_until_done
from streams.sinks.sensor_sink import SensorSink

log = logging.getLogger(__name__)

# Sensors per message on the updates topic: well under the broker's size limit.
SENSORS_PER_MESSAGE = 200
# A sensor's status (windows, AQI) is made at most this often (seconds).
STATUS_GAP = 1.0


@dataclass(slots=True)
class SensorSlot:
    stage: SensorPartition
    # the first offset not in the committed state: earlier messages are skipped
    committed_offset: int
    # the offset after the last message merged
    next_offset: int
    # event time: the newest reading merged (the partition's clock)
    watermark: float = 0.0
    acks: list[Ack] = field(default_factory=list)
    # committed, not yet known to be with the broker
    unsent: list[Signal] = field(default_factory=list)


class SensorWorker(PartitionWorker[SensorSlot]):
    """The sensor stage of each assigned partition, and its commits
    (``streams.partition_worker`` for what both streams share)."""

    def __init__(
        self,
        settings: Settings,
        stations: Stations,
        clock: Clock,
        sink: SensorSink,
        publish_updates: Callable[[bytes], Awaitable[None]],
        publish_alerts: Callable[[bytes, int], Awaitable[None]],
        health: WriterHealth | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        super().__init__(settings)
        self.stations = stations
        self.clock = clock
        self.event_time = isinstance(clock, EventTimeClock)
        self.sink = sink
        self._publish_updates = publish_updates
        self._publish_alerts = publish_alerts
        self.health = health or WriterHealth()
        self.metrics = metrics or WorkerMetrics()
        self.dead_letters = 0

    def _arrived(self, event: EventT[Any]) -> float:
        """When a message's readings arrived, on the deployment's clock: at
        the edge (the bridge, the HTTP ingest) when it says, so a backlog
        read after an outage is not taken for readings hours late."""
        now = self.clock.now()
        edge = edge_time(event.headers)
        return now if edge is None else now - max(0.0, time.time() - edge)

    def log_stats(self) -> None:
        """One line for operators, beside the procedure worker's."""
        stages = [(part, slot.stage) for part, slot in sorted(self.partitions.items())]
        log.info(
            "sensor partitions %s: %d sensors followed (%d configured), %d readings of "
            "unknown sensors past the bound, %d dead letters",
            [part for part, _ in stages],
            sum(len(stage.latest) for _, stage in stages),
            sum(len(stage.stations) for _, stage in stages),
            sum(stage.untracked for _, stage in stages),
            self.dead_letters,
        )

    def _partition_of(self, key: str) -> int:
        return partition_for(key, self.settings.sensor_partitions)

    # -- partitions come and go ----------------------------------------------------

    async def _load(self, parts: list[int]) -> None:
        await write_until_done(self.sink, lambda: self._load_all(parts), self.health, self.metrics)

    async def _load_all(self, parts: list[int]) -> None:
        for part in parts:
            if part in self.partitions:
                continue
            started = time.monotonic()
            stored = await self.sink.load_sensors(part, KEEP_SECONDS)
            now = self.clock.now()
            mine = stations_of(self.stations, part, self._partition_of)
            stage = SensorPartition(part, mine, now)
            stage.restore(
                stored.state, stored.readings, stored.statuses, None if self.event_time else now
            )
            offset = stored.next_offset or 0
            slot = SensorSlot(stage, offset, offset, float(stored.state.get("clock", 0.0)))
            slot.unsent = signals_of({"signals": stored.state.get("unsent", [])})
            self.partitions[part] = slot
            if slot.unsent:
                self._applied.set()
            log.info(
                "sensor partition %d ready: %d stations, %d readings, from offset %d, %.1f s",
                part,
                len(mine),
                len(stored.readings),
                offset,
                time.monotonic() - started,
            )

    # -- messages ------------------------------------------------------------------

    async def handle_many(self, messages: Sequence[Ack], dead: Any) -> None:
        """Merge the readings of ``messages`` into their partitions' states."""
        for stream, event in messages:
            slot = await self.slot_of(event.message.partition)
            if slot is None:  # not ours any more: unacknowledged, the new owner reads it
                continue
            offset = event.message.offset
            slot.acks.append((stream, event))
            if offset < slot.committed_offset:
                continue  # in the committed state already
            slot.next_offset = max(slot.next_offset, offset + 1)
            readings, errors = decode_envelope(event.value, decode_sensor_reading)
            for err in errors:
                await dead(err, event)
                self.metrics.refused("sensor", err.reason)
            self.dead_letters += len(errors)
            self.metrics.events_in.labels("sensor").inc(len(readings) + len(errors))
            if readings:
                if self.event_time:
                    slot.watermark = max(slot.watermark, max(r.ts for r in readings))
                    slot.stage.add(readings)
                else:
                    slot.stage.add(readings, self._arrived(event))
        self._applied.set()

    # -- commits -------------------------------------------------------------------

    async def flush(self, parts: set[int] | None = None) -> None:
        async with self._lock:
            now = time.monotonic()
            batch: list[tuple[int, SensorSlot, SensorDrain, list[Ack]]] = []
            for part in sorted(self.partitions if parts is None else parts):
                slot = self.partitions.get(part)
                if slot is None:
                    continue
                slot.stage.tick(slot.watermark if self.event_time else self.clock.now())
                drain = slot.stage.drain(now, STATUS_GAP)
                acks, slot.acks = slot.acks, []
                if drain or slot.next_offset != slot.committed_offset:
                    batch.append((part, slot, drain, acks))
                elif acks:  # only messages already committed
                    await self.ack(acks)
            sends = self._sends()
            if batch:
                await self._commit(batch, sends)
            await self._send_signals(sends)

    async def _commit(
        self, batch: list[tuple[int, SensorSlot, SensorDrain, list[Ack]]], sends: Sends
    ) -> None:
        for _, slot, drain, _ in batch:
            slot.unsent += drain.signals
            drain.state = {
                **drain.state,
                "clock": slot.watermark,
                "unsent": [signal_item(s) for s in slot.unsent],
            }
        commits = [(part, slot.next_offset, drain) for part, slot, drain, _ in batch]
        before = self.sink.diverted
        await write_until_done(
            self.sink, lambda: self.sink.write_sensors(commits), self.health, self.metrics
        )
        self.metrics.diverted.inc(self.sink.diverted - before)
        for part, slot, drain, acks in batch:
            slot.committed_offset = slot.next_offset
            self.metrics.sensor_readings.inc(len(drain.readings))
            await self.ack(acks)
            await self._publish(part, drain, sends)

    async def _publish(self, part: int, drain: SensorDrain, sends: Sends) -> None:
        items = [
            LatestReading(
                sid,
                area,
                kind,
                ts,
                status["values"],
                {k: v for k, v in status.items() if k not in READING_FIELDS},
            )
            for sid, (area, kind, ts, status) in drain.statuses.items()
            if ts is not None
        ]
        try:
            for i in range(0, len(items), SENSORS_PER_MESSAGE):
                await sends(
                    self._publish_updates, encode_sensor_update(items[i : i + SENSORS_PER_MESSAGE])
                )
        except Exception as exc:  # the screens read the statuses at their next connect
            log.warning("sensor statuses of partition %d not published: %s", part, exc)

    async def _send_signals(self, sends: Sends) -> None:
        """The committed signals not yet sent, each to the alerts partition
        of its subject; what cannot go now, or is not confirmed within
        ``sends``' time, goes after a later commit."""
        alerts = self.settings.procedure_partitions
        # a partition may come or go while a send is awaited
        for part, slot in list(self.partitions.items()):
            if not slot.unsent:
                continue
            try:
                for target, message in signal_messages(
                    part, slot.unsent, lambda key: partition_for(key, alerts)
                ):
                    await sends(self._publish_alerts, message, target)
            except Exception as exc:  # the broker is away
                log.warning("sensor signals of partition %d not sent yet: %s", part, exc)
                continue
            for s in slot.unsent:
                self.metrics.sensor_signals.labels(s.kind).inc()
            slot.unsent = []
