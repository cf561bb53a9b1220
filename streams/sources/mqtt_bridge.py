"""MQTT -> Kafka bridge for sensor readings (the only module here importing paho).

Subscribes to ``ioc/sensors/{area}/{kind}/{sensor_id}``; each message becomes
one line of ``ioc.events.sensor_reading_schema()`` (the payload contract is
``streams.sources.mqtt_payload``), batched (50 ms or 1000 messages) into one
NDJSON envelope per partition, the partition chosen from ``area``. A bad
message becomes one dead letter (raw payload; headers ``source``, ``reason``,
``origin``).

Delivery is at least once: the MQTT session is persistent (clean_session
false, QoS 1, manual acks) and a message is acknowledged only after Kafka
acknowledged its envelope or its dead letter. While Kafka is down, messages
stay unacknowledged and the batch is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ioc.clock import Clock, WallClock, build_clock
from ioc.events import DecodeError
from ioc.settings import Settings
from ioc.topics import Topics
from streams.kafka import Outbound, Producer, edge_header, ensure_topics, topic_layout
from streams.metrics import BridgeMetrics, serve
from streams.sources.mqtt_payload import reading_from_mqtt

log = logging.getLogger(__name__)

SUBSCRIPTION = "ioc/sensors/#"
FLUSH_SECONDS = 0.05
BATCH_MAX = 1000
# QoS 0 messages are fire-and-forget: past this backlog (Kafka down) drop them
# rather than grow without bound. QoS 1 is bounded by the broker's inflight window.
MAX_PENDING_QOS0 = 100_000
# Between the last acks of a stop and the DISCONNECT (see MqttBridge.stop).
ACK_GRACE_SECONDS = 0.2


T = TypeVar("T")


class Handoff(Generic[T]):
    """Items from paho's thread to the event loop, in order. The loop is
    woken only when the list was empty or holds a whole batch: waking it
    per message
    (``call_soon_threadsafe``) took an eighth of the bridge's time at
    20,000 messages a second."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._lock = threading.Lock()
        self._ready = asyncio.Event()  # items wait
        self._full = asyncio.Event()  # a whole batch waits
        self._most = 1
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def qsize(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """From any thread, once bound."""
        with self._lock:
            self._items.append(item)
            n = len(self._items)
        if self._loop is not None and (n == 1 or n == self._most):
            self._loop.call_soon_threadsafe((self._ready if n == 1 else self._full).set)

    async def take(self, most: int, within: float) -> list[T]:
        """The items that came within ``within`` s of the first one, at
        most ``most`` (at least one; waits for it)."""
        while True:
            await self._ready.wait()
            self._most = most
            if len(self._items) < most:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), within)
            self._full.clear()
            with self._lock:
                batch, self._items = self._items[:most], self._items[most:]
                if not self._items:
                    self._ready.clear()
            if batch:  # a wake-up may come after its items were taken
                return batch


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: float  # on the deployment's clock: the reading's time when it has none
    session: int  # which MQTT connection delivered it; acks go back on that one only
    arrived: float = 0.0  # wall clock, for the edge header


class MqttBridge:
    """Subscribes to ``ioc/sensors/#`` and forwards to Kafka; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        producer: Producer | None = None,
        drain_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.client_id = f"ioc-bridge-{settings.topic_prefix}"
        # Receive time for payloads without ``ts``: the deployment's wall clock.
        self._clock: Clock = clock or (
            build_clock("wall", settings.clock_start, settings.clock_speed, settings.clock_anchor)
            if settings.clock == "wall"
            else WallClock()
        )
        self._producer = producer
        self._drain_timeout = drain_timeout
        self.metrics = BridgeMetrics()
        self._session = 0
        self._connected = False
        self._closing = False
        self._lock = threading.Lock()  # orders acks against (re)connections
        self._client: mqtt.Client | None = None
        self._queue: Handoff[_Message | None] = Handoff()
        self._subscribed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def stats(self) -> dict[str, int]:
        m = self.metrics

        def total(counter: Any) -> int:
            return int(
                sum(s.value for s in counter.collect()[0].samples if s.name.endswith("_total"))
            )

        return {
            "received": total(m.received),
            "forwarded": total(m.forwarded),
            "dead_lettered": total(m.dead_letters),
            "kafka_errors": total(m.kafka_errors),
            "dropped_qos0": total(m.dropped_qos0),
            "pending": self._queue.qsize(),
        }

    async def start(self) -> None:
        """Connect to Kafka (retrying), then to MQTT (paho retries by itself)."""
        self._loop = asyncio.get_running_loop()
        self._queue.bind(self._loop)
        self._producer = await self._start_producer(self._producer)
        url = urlsplit(self.settings.mqtt_url)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if url.username:
            client.username_pw_set(url.username, url.password)
        client.reconnect_delay_set(1, 30)
        # An exception escaping a callback would end paho's thread: log it instead.
        client.suppress_exceptions = True
        client.on_log = self._on_log
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        client.connect_async(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
        client.loop_start()
        self._flusher = asyncio.create_task(self._flush_forever(), name="mqtt-bridge-flush")

    async def wait_subscribed(self) -> None:
        """Return once the broker confirmed the subscription (bound it with a timeout)."""
        await self._subscribed.wait()

    async def stop(self) -> None:
        """Forward and acknowledge what was received, then disconnect.

        Anything not forwarded within ``drain_timeout`` (Kafka down) stays
        unacknowledged; the broker re-delivers it on the next start."""
        self._closing = True
        if self._flusher is not None:
            self._queue.put(None)
            try:
                await asyncio.wait_for(self._flusher, self._drain_timeout)
            except TimeoutError:
                log.warning("bridge stopped with messages not forwarded; they stay unacked")
            except Exception:
                log.exception("bridge flusher failed")
        if self._client is not None:
            # paho closes the socket right after DISCONNECT; with messages the
            # broker sent meanwhile still unread, the close is a reset and the
            # broker may drop the PUBACKs just sent (the batch comes again).
            # Reading on for a moment lets the broker take the acks first.
            await asyncio.sleep(ACK_GRACE_SECONDS)
            self._client.disconnect()  # queued PUBACKs go out before DISCONNECT
            await asyncio.to_thread(self._client.loop_stop)
        if self._producer is not None:
            await self._producer.stop()

    async def _start_producer(self, given: Producer | None) -> Producer:
        if given is not None:  # a test double: its failures are the test's business
            await given.start()
            return given
        delay = 0.5
        while True:
            producer = Producer(self.settings.kafka_bootstrap, self.client_id)
            try:
                await producer.start()
                return producer
            except Exception as exc:  # aiokafka raises several kinds while the broker is away
                self.metrics.kafka_errors.inc()
                log.warning("Kafka unreachable (%r); retrying in %.1f s", exc, delay)
                await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    # paho's network thread --------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection: %s", reason)
            return
        with self._lock:
            if self._session:
                self.metrics.reconnects.inc()
            self._session += 1
            self._connected = True
        self.metrics.connected.set(1)
        log.info("MQTT connected (session present: %s)", flags.session_present)
        client.subscribe(SUBSCRIPTION, qos=1)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._session += 1
            self._connected = False
        self.metrics.connected.set(0)
        if not self._closing:
            log.warning("MQTT disconnected (%s); paho reconnects", reason)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("MQTT subscription to %s refused: %s", SUBSCRIPTION, reasons)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_log(self, _c: mqtt.Client, _u: Any, level: int, text: str) -> None:
        # paho 2.2 reports its idle loop after a disconnect as an error: noise.
        if level == mqtt.MQTT_LOG_ERR and not text.startswith("Client is not connected"):
            log.error("paho: %s", text)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # A message skipped here stays unacknowledged and comes back later.
        if self._closing or self._loop is None:
            return
        if msg.qos == 0 and self._queue.qsize() >= MAX_PENDING_QOS0:
            self.metrics.dropped_qos0.inc()
            return
        now = self._clock.now()
        item = _Message(
            msg.topic, bytes(msg.payload), msg.mid, msg.qos, now, self._session, time.time()
        )
        self._queue.put(item)
        self.metrics.received.labels(str(msg.qos)).inc()
        self.metrics.pending.inc()

    # asyncio side --------------------------------------------------------------

    async def _flush_forever(self) -> None:
        """Deliver what arrives within FLUSH_SECONDS (at most BATCH_MAX) as one
        batch, until ``stop()`` queues None."""
        last = False
        while not last:
            batch = await self._queue.take(BATCH_MAX, FLUSH_SECONDS)
            last = batch[-1] is None
            await self._deliver([m for m in batch if m is not None])

    async def _deliver(self, batch: list[_Message]) -> None:
        """Forward one batch, retrying until Kafka took all of it, then ack it.

        Envelopes and dead letters go out together and are awaited together:
        awaiting each dead letter in turn made a flood of junk crawl, and the
        broker dropped QoS 1 messages once its queue for the bridge was full."""
        assert self._producer is not None
        lines: list[tuple[str, bytes]] = []
        outgoing: list[tuple[Outbound, str | None]] = []  # a dead letter's reason
        for m in batch:
            result = reading_from_mqtt(m.topic, m.payload, m.received_at)
            if isinstance(result, DecodeError):
                headers = [("source", b"bridge"), ("reason", result.reason.encode())]
                headers.append(("origin", m.topic.encode()))
                letter = Outbound(self.topics.dead_letters, m.payload, headers=headers)
                outgoing.append((letter, result.reason))
            else:
                lines.append((result[0]["area"], result[1]))
        delay = 0.25
        while lines or outgoing:
            try:
                if lines:  # needs the partition count: fails while Kafka is away
                    edge = edge_header(min(m.arrived for m in batch))
                    topic = self.topics.sensor_readings
                    outgoing += [(o, None) for o in await self._producer.keyed(topic, lines, edge)]
                    lines = []
                failures = await self._producer.send_many([o for o, _ in outgoing])
            except Exception as exc:  # nothing was sent
                failures = [exc] * len(outgoing)
                error: Exception | None = exc
            else:
                error = next((f for f in failures if f is not None), None)
            for (message, reason), failure in zip(outgoing, failures, strict=True):
                if failure is None and reason is None:
                    self.metrics.forwarded.inc(message.lines)
                elif failure is None and reason is not None:
                    self.metrics.refused(reason)
            # only what Kafka did not take is sent again
            outgoing = [o for o, failure in zip(outgoing, failures, strict=True) if failure]
            if error is not None:
                self.metrics.kafka_errors.inc()
                log.warning("Kafka refused a batch (%r); retry in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._ack(batch)
        self.metrics.pending.dec(len(batch))

    def _ack(self, batch: list[_Message]) -> None:
        # In receipt order (MQTT 3.1.1 4.6). A message from an earlier
        # connection is not acked: the broker re-delivers it anyway, and its
        # packet id may already name another message.
        if self._client is None:
            return
        with self._lock:
            if not self._connected:
                return
            for m in batch:
                if m.qos > 0 and m.session == self._session:
                    self._client.ack(m.mid, m.qos)


async def run_bridge(settings: Settings) -> None:
    """``ioc bridge``: ensure the topics, bridge until SIGINT/SIGTERM, stop cleanly."""
    topics = Topics(settings.topic_prefix)
    layout = topic_layout(topics, settings.procedure_partitions, settings.sensor_partitions)
    await ensure_topics(settings.kafka_bootstrap, layout)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bridge = MqttBridge(settings)
    serve(bridge.metrics.registry, settings.api_host, settings.bridge_metrics_port, "bridge")
    await bridge.start()
    log.info("bridging %s from %s to %s", SUBSCRIPTION, settings.mqtt_url, settings.kafka_bootstrap)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 60)
            except TimeoutError:
                log.info("bridge stats %s", bridge.stats)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await bridge.stop()
        log.info("bridge stopped; stats %s", bridge.stats)
