"""Feeds the websocket hub from Kafka: KPI counters, sensor readings, SLA
transitions, and the alert stage's changes (channel ``alerts/state``).

Sensors: each gets a conflated channel ``sensor/{sensor_id}`` carrying its
newest item (reading and status, ``LatestReading.item()`` with the area's
display name), and each kind a stream channel ``sensors/{kind}`` whose
delta lists the items of that kind one ``sensor`` message changed (at most
200: the worker's bound). Configured stations always get channels; of the
sensor ids the stations file lacks, which any producer may invent, the
first ``SENSORS_SHOWN`` get channels and the others are only in the
database (``GET /api/v1/sensors``).

Every API instance reads the update topics in full (no consumer group), so
each can serve its own screens. It first notes the topics' ends, then loads
the last published state from the database, then applies messages from the
noted positions: nothing published in between is missed, and a message
older than what is held for a partition is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from alerts.alert_messages import TYPE as ALERT_TYPE
from alerts.alert_messages import alert_items
from alerts.messages import SlaTransition, sla_of
from alerts.signal_messages import TYPE as SIGNAL_TYPE
from alerts.unit_messages import TYPE as UNIT_TYPE
from ioc import wire
from ioc.events import SENSOR_KINDS
from ioc.feed import channel_of, kpi_view, sum_counters
from ioc.registry import Registry
from ioc.stations import Stations
from ioc.topics import Topics
from ioc.updates import KpiUpdate, LatestReading, Trace, decode_update
from ui_feed.hub import Hub
from ui_feed.queries import Reads

log = logging.getLogger(__name__)
# Sensor ids the stations file lacks that get channels, at most: a producer
# could invent any number of ids, and each would hold a channel.
SENSORS_SHOWN = 500
# transitions sent twice come within a worker's restart: far fewer than this
ALERTS_REMEMBERED = 50_000
# how long one read waits when nothing comes: the broker answers sooner with data
FETCH_TIMEOUT_MS = 1000
# messages handled in one go, without yielding the loop (the ingest shares
# it): a commit of every worker partition fits, a reconnection's backlog not
FETCH_MAX_RECORDS = 64


def _as_new(ts: float | None, held: float | None) -> bool:
    """Whether an item at ``ts`` replaces one held at ``held`` (None: no
    reading yet, older than any)."""
    if held is None:
        return True
    return ts is not None and ts >= held


class TopicsMissing(Exception):
    pass


class Feed:
    def __init__(
        self,
        hub: Hub,
        reads: Reads,
        registry: Registry,
        topics: Topics,
        observe: Callable[[str, float], None] | None = None,
        fetch_max_wait: float = 0.02,
        titles: Mapping[str, str] | None = None,
        stations: Stations | None = None,
    ) -> None:
        self.hub = hub
        # rule -> title, added to the alerts the consoles get
        self.titles = dict(titles or {})
        self.fetch_max_wait_ms = max(1, round(fetch_max_wait * 1000))
        # observe(hop, seconds): the time an update took to reach this feed
        self.observe = observe
        self.reads = reads
        self.registry = registry
        self.topics = topics
        # scope -> partition -> (at, counters)
        self.partials: dict[str, dict[int, tuple[float, dict[str, Any]]]] = {}
        self.stations = stations if stations is not None else Stations()
        # sensor id -> the item on its channel
        self.sensors: dict[str, dict[str, Any]] = {}
        # unknown sensor ids that have channels, and those refused one
        self.unknown_shown: set[str] = set()
        self.unknown_dropped = 0
        # the latest transitions' keys, to drop one a worker sends again
        self._alerts_seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self.messages = 0
        self.connected = False
        # the next offset to read per partition, kept across reconnections
        self._positions: dict[TopicPartition, int] = {}
        # scope -> (edge, trace) of its oldest change not yet in a view
        self._changed: dict[str, tuple[float | None, dict[str, Any] | None]] = {}

    def _take_kpi(self, update: KpiUpdate, fed: float | None) -> None:
        """Merge one partition's counters; the scopes' views wait for
        ``_publish_kpis``. The update's trace (the worker's stage times,
        ``fed``: when this feed read it, and per scope when its oldest change
        reached the edge) rides along in the view as ``trace``, so the hub and
        the screens can tell the latency. A scope changed by several updates
        before its view goes out carries the trace of its oldest change."""
        trace = self._trace(update.trace, fed)
        for scope, counters in update.scopes.items():
            held = self.partials.setdefault(scope, {})
            if update.part in held and held[update.part][0] > update.at:
                continue  # older than what we hold
            held[update.part] = (update.at, counters)
            edge = update.edge.get(scope)
            known = self._changed.get(scope)
            if known is None or (edge is not None and (known[0] is None or edge < known[0])):
                self._changed[scope] = (edge, trace)

    def _publish_kpis(self) -> None:
        """One view for each scope changed since the last call."""
        changed, self._changed = self._changed, {}
        for scope, (edge, trace) in changed.items():
            held = self.partials[scope]
            newest = max(a for a, _ in held.values())
            try:
                merged = sum_counters(c for _, c in held.values())
                view = kpi_view(scope, self.registry.label(scope), merged, newest)
            except (ValueError, OverflowError, TypeError, KeyError) as exc:
                # decoding checks what a view needs: this is a bug, not a bad
                # message, and must not cost the other scopes their views
                log.warning("no view of %s (%s: %s)", scope, type(exc).__name__, exc)
                continue
            if trace is not None:
                view["trace"] = {**trace, "edge": edge} if edge is not None else trace
            self.hub.publish(channel_of(scope), view, conflate=True)

    def apply_sensors(self, readings: Sequence[LatestReading]) -> None:
        """Publish each sensor's newest item on ``sensor/{id}`` and the
        changed items of each kind on ``sensors/{kind}``. An item older
        than the one held (by ``ts``) is ignored; one as old replaces it
        (the stage sends a sensor again when only its status changed). An
        item without ``ts`` (a station never heard from, from the start-up
        load) is older than any reading."""
        changed: dict[str, list[dict[str, Any]]] = {}
        for r in readings:
            known = self.stations.knows(r.sensor_id)
            old = self.sensors.get(r.sensor_id)
            if old is None and not known:
                if len(self.unknown_shown) >= SENSORS_SHOWN:
                    self.unknown_dropped += 1
                    continue
                self.unknown_shown.add(r.sensor_id)
            if old is not None and not _as_new(r.ts, old["ts"]):
                continue
            item = {**r.item(), "area_label": self.registry.area_label(r.area)}
            item.setdefault("known", known)
            self.sensors[r.sensor_id] = item
            self.hub.publish(f"sensor/{r.sensor_id}", item, conflate=True)
            if r.kind in SENSOR_KINDS:
                changed.setdefault(r.kind, []).append(item)
        for kind, items in changed.items():
            self.hub.publish(f"sensors/{kind}", {"readings": items}, conflate=False)

    def apply_alerts(self, transitions: list[SlaTransition]) -> None:
        for t in transitions:
            key = t.key()
            if key in self._alerts_seen:
                continue  # sent again by a worker that took over its partition
            self._alerts_seen[key] = None
            if len(self._alerts_seen) > ALERTS_REMEMBERED:
                self._alerts_seen.popitem(last=False)
            self.hub.publish("alerts", t.item(), conflate=False)

    def handle(self, topic: str, value: bytes) -> None:
        """Apply one message of ``topic`` (the alerts topic or the updates topic)."""
        self.handle_many([(topic, value)])

    def handle_many(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Apply messages read together, in order. A scope changed by several
        of them gets one view, after the last: with updates of the same
        scopes from every partition of the worker, that is a fraction of the
        views to build and send."""
        for topic, value in messages:
            self._handle(topic, value, time.time())
        self._publish_kpis()

    def _handle(self, topic: str, value: bytes, fed: float) -> None:
        try:
            if topic == self.topics.alerts:
                message = wire.message(value, "sla", ALERT_TYPE, UNIT_TYPE, SIGNAL_TYPE)
                if message["type"] in (UNIT_TYPE, SIGNAL_TYPE):
                    return  # for the alert stage: screens get KPIs and sensors from updates
                if message["type"] == ALERT_TYPE:
                    # the alert stage's changes, for the consoles
                    for item in alert_items(message):
                        item["alert"]["title"] = self.titles.get(item["alert"].get("rule"), "")
                        self.hub.publish("alerts/state", item, conflate=False)
                else:
                    self.apply_alerts(sla_of(message))
            else:
                update = decode_update(value)
                if isinstance(update, KpiUpdate):
                    self._take_kpi(update, fed)
                else:
                    self.apply_sensors(update)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # one malformed update must not cost the walls the ones after it
            log.warning("ignoring a malformed update (%s: %s)", type(exc).__name__, exc)
            return
        self.messages += 1

    def _trace(self, trace: Trace | None, fed: float | None) -> dict[str, Any] | None:
        """The worker's stage times with this feed's, or None without them."""
        if trace is None or fed is None:
            return None
        if self.observe is not None:
            self.observe("published_to_fed", fed - trace.published)
        return {
            "applied": trace.applied,
            "committed": trace.committed,
            "published": trace.published,
            "fed": fed,
        }

    async def run(self, bootstrap: str) -> None:
        """Consume until cancelled, reconnecting after broker failures."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                enable_auto_commit=False,
                group_id=None,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
            )
            try:
                await consumer.start()
                tps = await self._partitions(consumer)
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                await self.load()
                for tp, offset in ends.items():
                    # after a lost connection, resume where we were: alerts
                    # published meanwhile must still reach the walls
                    consumer.seek(tp, self._positions.get(tp, offset))
                self.connected = True
                while True:
                    batch = await consumer.getmany(
                        timeout_ms=FETCH_TIMEOUT_MS, max_records=FETCH_MAX_RECORDS
                    )
                    self.handle_many(
                        (msg.topic, msg.value)
                        for msgs in batch.values()
                        for msg in msgs
                        if msg.value is not None
                    )
                    for tp, msgs in batch.items():
                        self._positions[tp] = msgs[-1].offset + 1
                    # let the screens' senders drain a burst before the next one
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except TopicsMissing as exc:
                log.info("%s", exc)
                await asyncio.sleep(1)
            except Exception as exc:
                log.warning("live feed interrupted (%s); reconnecting", exc)
                await asyncio.sleep(2)
            finally:
                self.connected = False
                await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Every partition of the update topics. Nothing here may name a
        missing topic: a broker that creates topics on demand (Tansu) would
        create it with its own partition count before ``ioc`` creates it
        with one. A missing topic is ``TopicsMissing``: the caller waits and
        connects again (a new consumer starts with fresh metadata)."""
        names = (self.topics.kpi_updates, self.topics.alerts)
        tps = []
        for name in names:
            parts = consumer.partitions_for_topic(name)
            if not parts:
                raise TopicsMissing(f"waiting for the topics {', '.join(names)} to be created")
            tps += [TopicPartition(name, part) for part in sorted(parts)]
        return tps

    async def load(self) -> None:
        """State as last published, from the database."""
        for scope, part, at, counters in await self.reads.latest_by_part():
            self._take_kpi(KpiUpdate(part, at, {scope: counters}), None)
        self._publish_kpis()
        readings = await self.reads.latest_readings()
        if readings:
            self.apply_sensors(readings)
        if self.hub.snapshot("alerts") is None:
            self.apply_alerts(await self.reads.recent_alerts())
