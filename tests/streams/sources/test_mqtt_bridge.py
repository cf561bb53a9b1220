"""The MQTT -> Kafka bridge against real Mosquitto and the Tansu broker:
forwarding, dead letters, persistent sessions and never acknowledging what
Kafka did not take."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

from ioc.events import SensorReading, decode_sensor_reading
from ioc.settings import Settings
from ioc.topics import Topics
from streams.codec import decode_envelope
from streams.kafka import Outbound, Producer, ensure_topics, topic_layout
from streams.sources.mqtt_bridge import MqttBridge, _Message
from streams.sources.mqtt_payload import default_event_id
from tests.conftest import mosquitto_binary

TS = "2026-01-15T08:00:00+07:00"
AQ = "ioc/sensors/00166/air_quality/aq-00166-1"


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


# --- the delivery of a batch, with a broker double ---------------------------------


class SlowAcks:
    """Stands in for aiokafka's producer: queues a send at once and
    acknowledges it on a later turn of the event loop, as a broker's answer
    comes later; ``refuse`` names values whose first send fails."""

    def __init__(self, refuse: frozenset[bytes] = frozenset()) -> None:
        self.unacked = 0
        self.most_unacked = 0
        self.taken: list[tuple[str, bytes]] = []
        self.refuse = set(refuse)

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unacked += 1
        self.most_unacked = max(self.most_unacked, self.unacked)
        asyncio.get_running_loop().call_soon(self._answer, future, topic, value)
        return future

    def _answer(self, future: asyncio.Future[None], topic: str, value: bytes) -> None:
        self.unacked -= 1
        if value in self.refuse:
            self.refuse.discard(value)
            future.set_exception(ConnectionError("not leader"))
        else:
            self.taken.append((topic, value))
            future.set_result(None)

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        await (await self.send(topic, value, **kwargs))


class DoubleProducer(Producer):
    """The project's producer around the broker double."""

    def __init__(self, broker: SlowAcks, partitions: dict[str, int]) -> None:
        self._producer = broker  # type: ignore[assignment]
        self._partitions = partitions

    async def start(self) -> None:
        pass


class MqttAcks:
    """The paho client's ``ack``, recording what the broker double held then."""

    def __init__(self, broker: SlowAcks) -> None:
        self.broker = broker
        self.acked: list[int] = []
        self.unacked_at_ack: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)
        self.unacked_at_ack.append(self.broker.unacked)


async def delivered(broker: SlowAcks, batch: list[_Message]) -> tuple[MqttBridge, MqttAcks, Topics]:
    """A bridge whose Kafka and MQTT are the doubles, after delivering ``batch``."""
    settings = Settings(topic_prefix="unit.", sensor_partitions=2)
    topics = Topics(settings.topic_prefix)
    bridge = MqttBridge(settings, producer=DoubleProducer(broker, {topics.sensor_readings: 2}))
    client = MqttAcks(broker)
    bridge._client = client  # type: ignore[assignment]
    bridge._connected, bridge._session = True, 1
    await bridge._deliver(batch)
    return bridge, client, topics


def junk_and_readings(junk: int, good: int) -> list[_Message]:
    out = [
        _Message(f"ioc/sensors/00166/air_quality/aq-{i}", b"{junk %d" % i, i, 1, 0.0, 1)
        for i in range(junk)
    ]
    out += [
        _Message(f"ioc/sensors/00166/noise/n-{i}", body(ts=TS, value=50 + i), junk + i, 1, 0.0, 1)
        for i in range(good)
    ]
    return out


def test_a_batch_is_sent_at_once_and_acked_after_kafka_took_all_of_it() -> None:
    broker = SlowAcks()
    batch = junk_and_readings(junk=200, good=10)
    bridge, client, topics = asyncio.run(delivered(broker, batch))
    dead = [v for t, v in broker.taken if t == topics.dead_letters]
    envelopes = [v for t, v in broker.taken if t == topics.sensor_readings]
    assert sorted(dead) == sorted(m.payload for m in batch[:200])
    assert sum(len(e.split(b"\n")) for e in envelopes) == 10
    # every dead letter and envelope waited for the broker at the same time
    assert broker.most_unacked == len(broker.taken) == 200 + len(envelopes)
    # and the MQTT messages were acknowledged only once Kafka had all of them
    assert client.acked == [m.mid for m in batch]
    assert set(client.unacked_at_ack) == {0}
    assert bridge.stats["forwarded"] == 10 and bridge.stats["dead_lettered"] == 200


def test_only_what_kafka_refused_is_sent_again_before_the_ack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_wait(delay: float) -> None:
        pass

    monkeypatch.setattr("streams.sources.mqtt_bridge.asyncio.sleep", no_wait)
    batch = junk_and_readings(junk=5, good=3)
    broker = SlowAcks(refuse=frozenset({batch[2].payload}))
    bridge, client, topics = asyncio.run(delivered(broker, batch))
    dead = [v for t, v in broker.taken if t == topics.dead_letters]
    assert sorted(dead) == sorted(m.payload for m in batch[:5])  # each once
    assert client.acked == [m.mid for m in batch]
    assert bridge.stats["kafka_errors"] == 1 and bridge.stats["dead_lettered"] == 5


# --- against Mosquitto and Tansu ------------------------------------------------


def settings_for(mqtt_url: str, kafka_bootstrap: str) -> Settings:
    return Settings(
        mqtt_url=mqtt_url,
        kafka_url=f"kafka://{kafka_bootstrap}",
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        sensor_partitions=2,
    )


async def prepare(settings: Settings) -> Topics:
    topics = Topics(settings.topic_prefix)
    layout = topic_layout(topics, settings.procedure_partitions, settings.sensor_partitions)
    await ensure_topics(settings.kafka_bootstrap, layout)
    return topics


def mqtt_client(mqtt_url: str, client_id: str, clean: bool = True) -> mqtt.Client:
    url = urlsplit(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    return client


def publish(mqtt_url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 and wait until Mosquitto has each message."""
    client = mqtt_client(mqtt_url, f"test-pub-{uuid.uuid4().hex[:8]}")
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def forget_session(mqtt_url: str, client_id: str) -> None:
    """Drop a bridge's persistent session so Mosquitto stops queueing for it."""
    client = mqtt_client(mqtt_url, client_id, clean=True)
    client.disconnect()
    client.loop_stop()


async def consume_until(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], within: float = 30
) -> list[Any]:
    """Records of ``topic`` from the start, until ``done(records)`` or ``within`` s."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(within):
            while not done(records):
                for batch in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(batch)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return records


def readings_of(records: list[Any], sensor_prefix: str) -> list[SensorReading]:
    out: list[SensorReading] = []
    for record in records:
        good, bad = decode_envelope(record.value, decode_sensor_reading)
        assert not bad, bad
        out.extend(r for r in good if r.sensor_id.startswith(sensor_prefix))
    return out


async def started(settings: Settings, **kwargs: Any) -> MqttBridge:
    bridge = MqttBridge(settings, **kwargs)
    await bridge.start()
    async with asyncio.timeout(15):
        await bridge.wait_subscribed()
    return bridge


@pytest.mark.integration
def test_readings_reach_kafka_as_envelopes(mqtt_url: str, kafka_bootstrap: str) -> None:
    settings = settings_for(mqtt_url, kafka_bootstrap)
    uid = uuid.uuid4().hex[:8]
    messages = [
        (f"ioc/sensors/00166/air_quality/aq-{uid}-{i}", body(ts=TS, values={"pm25": 10 + i}))
        for i in range(20)
    ]
    messages.append((f"ioc/sensors/tram-long-bien/water_level/wl-{uid}", body(value=3.4)))

    async def scenario() -> tuple[list[SensorReading], dict[str, int]]:
        topics = await prepare(settings)
        bridge = await started(settings)
        try:
            await asyncio.to_thread(publish, mqtt_url, messages)
            records = await consume_until(
                kafka_bootstrap,
                topics.sensor_readings,
                lambda recs: (
                    len({r.sensor_id for r in readings_of(recs, f"aq-{uid}")}) >= 20
                    and bool(readings_of(recs, f"wl-{uid}"))
                ),
            )
        finally:
            await bridge.stop()
        return readings_of(records, f"aq-{uid}") + readings_of(records, f"wl-{uid}"), bridge.stats

    try:
        readings, stats = asyncio.run(scenario())
    finally:
        forget_session(mqtt_url, f"ioc-bridge-{settings.topic_prefix}")
    by_sensor = {r.sensor_id: r for r in readings}
    assert len(by_sensor) == 21
    assert by_sensor[f"aq-{uid}-3"].values == {"pm25": 13.0}
    assert by_sensor[f"aq-{uid}-3"].area == "00166"
    assert by_sensor[f"wl-{uid}"].values == {"level": 3.4}
    assert by_sensor[f"wl-{uid}"].area == "tram-long-bien"
    assert stats["forwarded"] >= 21 and stats["kafka_errors"] == 0


@pytest.mark.integration
def test_bad_payload_is_dead_lettered_and_blocks_nothing(
    mqtt_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(mqtt_url, kafka_bootstrap)
    uid = uuid.uuid4().hex[:8]
    bad_topic = f"ioc/sensors/00166/air_quality/aq-{uid}-bad"
    unknown_topic = f"ioc/sensors/00166/air_quality/aq-{uid}-unknown"
    messages = [
        (f"ioc/sensors/00166/air_quality/aq-{uid}-1", body(ts=TS, values={"pm25": 1})),
        (bad_topic, b"{not json"),
        (unknown_topic, body(ts=TS, values={"pm1": 4})),
        (f"ioc/sensors/00166/air_quality/aq-{uid}-2", body(ts=TS, values={"pm25": 2})),
    ]

    def origins(recs: list[Any]) -> dict[str, Any]:
        return {dict(r.headers).get("origin", b"").decode(): r for r in recs}

    async def scenario() -> tuple[list[SensorReading], dict[str, Any]]:
        topics = await prepare(settings)
        bridge = await started(settings)
        try:
            await asyncio.to_thread(publish, mqtt_url, messages)
            dead = await consume_until(
                kafka_bootstrap,
                topics.dead_letters,
                lambda recs: {bad_topic, unknown_topic} <= origins(recs).keys(),
            )
            good = await consume_until(
                kafka_bootstrap,
                topics.sensor_readings,
                lambda recs: len(readings_of(recs, f"aq-{uid}")) >= 2,
            )
        finally:
            await bridge.stop()
        return readings_of(good, f"aq-{uid}"), origins(dead)

    try:
        readings, dead = asyncio.run(scenario())
    finally:
        forget_session(mqtt_url, f"ioc-bridge-{settings.topic_prefix}")
    assert sorted(r.sensor_id for r in readings) == [f"aq-{uid}-1", f"aq-{uid}-2"]
    letter = dead[bad_topic]
    headers = dict(letter.headers)
    assert letter.value == b"{not json"
    assert headers["source"] == b"bridge"
    assert headers["reason"].decode().startswith("not JSON")
    assert "unknown measure 'pm1'" in dict(dead[unknown_topic].headers)["reason"].decode()


@pytest.mark.integration
def test_message_published_while_bridge_is_down_arrives_after_restart(
    mqtt_url: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(mqtt_url, kafka_bootstrap)
    uid = uuid.uuid4().hex[:8]
    topic = f"ioc/sensors/00145/noise/nz-{uid}"

    async def scenario() -> list[SensorReading]:
        topics = await prepare(settings)
        first = await started(settings)  # creates the persistent session
        await first.stop()
        await asyncio.to_thread(publish, mqtt_url, [(topic, body(ts=TS, value=61.5))])
        second = await started(settings)
        try:
            records = await consume_until(
                kafka_bootstrap,
                topics.sensor_readings,
                lambda recs: bool(readings_of(recs, f"nz-{uid}")),
            )
        finally:
            await second.stop()
        return readings_of(records, f"nz-{uid}")

    try:
        readings = asyncio.run(scenario())
    finally:
        forget_session(mqtt_url, f"ioc-bridge-{settings.topic_prefix}")
    assert readings, "the message queued by the broker never reached Kafka"
    assert {r.event_id for r in readings} == {default_event_id(topic, body(ts=TS, value=61.5))}
    assert readings[0].values == {"laeq": 61.5}


class FailingProducer(Producer):
    """Refuses the first ``failures`` batches of readings, as a Kafka outage would."""

    def __init__(self, bootstrap: str, failures: int) -> None:
        super().__init__(bootstrap, "test-failing")
        self.failures = failures
        self.refused = asyncio.Event()

    async def send_many(self, messages: Sequence[Outbound]) -> list[Exception | None]:
        if self.failures > 0:
            self.failures -= 1
            self.refused.set()
            raise ConnectionError("simulated Kafka outage")
        return await super().send_many(messages)


@pytest.mark.integration
def test_nothing_is_acked_that_kafka_did_not_take(mqtt_url: str, kafka_bootstrap: str) -> None:
    settings = settings_for(mqtt_url, kafka_bootstrap)
    uid = uuid.uuid4().hex[:8]
    flaky = f"ioc/sensors/00166/rainfall/rg-{uid}-flaky"
    lost = f"ioc/sensors/00166/rainfall/rg-{uid}-outage"

    async def scenario() -> tuple[list[SensorReading], dict[str, int], dict[str, int]]:
        topics = await prepare(settings)
        # Kafka refuses twice, then takes the batch: retried, forwarded once.
        bridge = await started(settings, producer=FailingProducer(kafka_bootstrap, 2))
        try:
            await asyncio.to_thread(publish, mqtt_url, [(flaky, body(ts=TS, value=0.4))])
            await consume_until(
                kafka_bootstrap,
                topics.sensor_readings,
                lambda recs: bool(readings_of(recs, f"rg-{uid}-flaky")),
            )
        finally:
            await bridge.stop()
        # Kafka down for good: stopping leaves the message unacknowledged...
        outage = FailingProducer(kafka_bootstrap, 10**6)
        down = await started(settings, producer=outage, drain_timeout=1.0)
        await asyncio.to_thread(publish, mqtt_url, [(lost, body(ts=TS, value=2.0))])
        await asyncio.wait_for(outage.refused.wait(), 10)
        await down.stop()
        # ...so the broker delivers it again to the next bridge, which forwards it.
        again = await started(settings)
        try:
            records = await consume_until(
                kafka_bootstrap,
                topics.sensor_readings,
                lambda recs: bool(readings_of(recs, f"rg-{uid}-outage")),
            )
        finally:
            await again.stop()
        return readings_of(records, f"rg-{uid}"), bridge.stats, down.stats

    try:
        readings, flaky_stats, down_stats = asyncio.run(scenario())
    finally:
        forget_session(mqtt_url, f"ioc-bridge-{settings.topic_prefix}")
    assert flaky_stats["kafka_errors"] == 2 and flaky_stats["forwarded"] >= 1
    assert down_stats["forwarded"] == 0
    assert {r.sensor_id for r in readings} == {f"rg-{uid}-flaky", f"rg-{uid}-outage"}
    flaky_ids = {r.event_id for r in readings if r.sensor_id.endswith("flaky")}
    assert len(flaky_ids) == 1


def private_mosquitto(port: int, conf: Path | None = None) -> subprocess.Popen[bytes]:
    """A throw-away Mosquitto on ``port`` (the shared one must not be restarted);
    with ``conf``, that file must name the port."""
    proc = subprocess.Popen(
        [mosquitto_binary() or "mosquitto", *(("-c", str(conf)) if conf else ("-p", str(port)))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"mosquitto did not open port {port}")


@pytest.mark.integration
def test_bridge_reconnects_after_the_broker_restarts(kafka_bootstrap: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    mqtt_url = f"mqtt://127.0.0.1:{port}"
    settings = settings_for(mqtt_url, kafka_bootstrap)
    broker = private_mosquitto(port)

    async def scenario() -> list[SensorReading]:
        nonlocal broker
        topics = await prepare(settings)
        bridge = await started(settings)
        try:
            broker.terminate()
            broker.wait(10)
            bridge._subscribed.clear()  # set again when paho has reconnected
            broker = await asyncio.to_thread(private_mosquitto, port)
            async with asyncio.timeout(40):  # paho's reconnect delay is at most 30 s
                await bridge.wait_subscribed()
            await asyncio.to_thread(publish, mqtt_url, [(AQ, body(ts=TS, values={"pm25": 9}))])
            records = await consume_until(
                kafka_bootstrap, topics.sensor_readings, lambda recs: bool(readings_of(recs, "aq"))
            )
        finally:
            await bridge.stop()
        return readings_of(records, "aq-00166-1")

    try:
        readings = asyncio.run(scenario())
    finally:
        broker.terminate()
        broker.wait(10)
    assert [r.values for r in readings] == [{"pm25": 9.0}]
