"""The bridge's persistent MQTT session across restarts of ``ioc bridge``,
against the shared Mosquitto and the Tansu broker.

A publisher sends QoS 1 readings without a break while the bridge is stopped
(SIGTERM, or SIGKILL), stays down, and is started again: every reading must
reach the Kafka sensor topic at least once, the ones published while the
bridge was down included (Mosquitto queued them for the bridge's session).
Duplicates are allowed at this hop (the worker stores a reading once per
event id); a SIGTERM drains and acknowledges what it forwarded, so it gives
none.

The bridge subscribes to ``ioc/sensors/#`` whatever the topic prefix (the
prefix only makes its client id, so its session, unique): it also receives
what other tests publish on the shared broker. Each test therefore names its
own sensors and counts only those.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from ioc.settings import Settings
from tests.processes import Process, ioc_env, wait_until
from tests.streams.sources.test_mqtt_bridge import (
    consume_until,
    forget_session,
    mqtt_client,
    prepare,
    readings_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TS = "2026-01-15T08:00:00+07:00"
PER_PHASE = 150  # readings in each of: up, down, up again (Mosquitto queues 1000 at most)
SPACING = 0.004  # seconds between two publications


class Publisher(threading.Thread):
    """Publishes QoS 1 readings one after the other, each on one of 20
    sensors, until told to stop; notes the phase each was published in and
    that Mosquitto acknowledged it."""

    def __init__(self, mqtt_url: str, uid: str) -> None:
        super().__init__(daemon=True)
        self.client = mqtt_client(mqtt_url, f"test-pub-{uid}")
        self.uid = uid
        self.phase = "up"
        self.phases: list[str] = []
        self.unacked: list[mqtt.MQTTMessageInfo] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def event_id(self, i: int) -> str:
        return f"{self.uid}-{i}"

    def count(self, phase: str) -> int:
        return self.phases.count(phase)

    def run(self) -> None:
        try:
            i = 0
            while not self.stopping.is_set():
                topic = f"ioc/sensors/00166/air_quality/ps-{self.uid}-{i % 20}"
                body = {"ts": TS, "values": {"pm25": i % 500}, "event_id": self.event_id(i)}
                info = self.client.publish(topic, json.dumps(body), qos=1)
                self.phases.append(self.phase)
                self.unacked.append(info)
                i += 1
                time.sleep(SPACING)
            for info in self.unacked:
                info.wait_for_publish(timeout=10)
                assert info.is_published(), "Mosquitto did not acknowledge a reading"
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def bridge(env: dict[str, str], logs: Path) -> Process:
    return Process("bridge", ["bridge"], env, logs)


def wait_forwarding(proc: Process, mqtt_url: str, bootstrap: str, topic: str, uid: str) -> None:
    """Publish probes until one of them reaches Kafka: the bridge is connected
    and subscribed (on a first start, the subscription is what is waited for)."""
    probe = f"ioc/sensors/00166/noise/probe-{uid}"
    publisher = mqtt_client(mqtt_url, f"test-probe-{uid}")

    def arrived() -> bool:
        assert proc.alive(), proc.output()[-3000:]
        publisher.publish(probe, json.dumps({"ts": TS, "value": 50.0}), qos=1)
        records = asyncio.run(
            consume_until(bootstrap, topic, lambda recs: bool(readings_of(recs, f"probe-{uid}")), 2)
        )
        return bool(readings_of(records, f"probe-{uid}"))

    try:
        wait_until("the bridge forwarding", arrived, timeout=60, every=0.1)
    finally:
        publisher.disconnect()
        publisher.loop_stop()


def restart_scenario(
    tmp_path: Path, mqtt_url: str, kafka_bootstrap: str, sig: int
) -> tuple[Publisher, Counter[str], dict[str, Any]]:
    """Up, stopped with ``sig`` while the publisher runs, down, up again.
    Returns the publisher, how many times Kafka got each of its event ids,
    and the bridge processes' exit codes."""
    uid = uuid.uuid4().hex[:8]
    env = ioc_env(tmp_path, kafka_bootstrap, "postgresql://unused@127.0.0.1/none", mqtt_url)
    settings = Settings(
        mqtt_url=mqtt_url,
        kafka_url=env["IOC_KAFKA_URL"],
        topic_prefix=env["IOC_TOPIC_PREFIX"],
    )
    topics = asyncio.run(prepare(settings))
    topic = topics.sensor_readings
    logs = tmp_path / "logs"
    publisher = Publisher(mqtt_url, uid)
    codes: dict[str, Any] = {}
    first = bridge(env, logs)
    second: Process | None = None
    try:
        wait_forwarding(first, mqtt_url, kafka_bootstrap, topic, uid)
        publisher.start()
        wait_until("readings with the bridge up", lambda: publisher.count("up") >= PER_PHASE)
        publisher.phase = "down"  # from here on, possibly in no bridge's hands
        codes["first"] = first.stop(sig)
        wait_until("readings with the bridge down", lambda: publisher.count("down") >= PER_PHASE)
        publisher.phase = "restarting"
        second = bridge(env, logs)
        wait_forwarding(second, mqtt_url, kafka_bootstrap, topic, uid)
        publisher.phase = "up again"
        wait_until("readings after the restart", lambda: publisher.count("up again") >= PER_PHASE)
        publisher.stopping.set()
        publisher.join(30)
        assert publisher.error is None, publisher.error
        total = len(publisher.phases)
        records = asyncio.run(
            consume_until(
                kafka_bootstrap,
                topic,
                lambda recs: len({r.event_id for r in readings_of(recs, f"ps-{uid}")}) >= total,
                within=60,
            )
        )
        codes["second"] = second.stop(signal.SIGTERM)
    finally:
        publisher.stopping.set()
        first.kill()
        if second is not None:
            second.kill()
        forget_session(mqtt_url, f"ioc-bridge-{settings.topic_prefix}")
    counts = Counter(r.event_id for r in readings_of(records, f"ps-{uid}"))
    return publisher, counts, codes


def check_every_reading_arrived(publisher: Publisher, counts: Counter[str]) -> None:
    expected = {publisher.event_id(i) for i in range(len(publisher.phases))}
    missing = expected - counts.keys()
    by_phase = Counter(publisher.phases[int(e.rsplit("-", 1)[1])] for e in missing)
    assert not missing, f"{len(missing)} readings never reached Kafka, by phase: {by_phase}"
    assert counts.keys() == expected
    # the broker kept for the stopped bridge what was published meanwhile
    assert publisher.count("down") >= PER_PHASE


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restarted_bridge_loses_nothing_the_broker_kept(
    tmp_path: Path, mqtt_url: str, kafka_bootstrap: str, sig: int
) -> None:
    publisher, counts, codes = restart_scenario(tmp_path, mqtt_url, kafka_bootstrap, sig)
    check_every_reading_arrived(publisher, counts)
    duplicates = sum(counts.values()) - len(counts)
    print(
        f"{signal.Signals(sig).name}: {len(publisher.phases)} readings "
        f"({Counter(publisher.phases)}), {duplicates} duplicates on Kafka"
    )
    assert codes["second"] == 0
    if sig == signal.SIGTERM:
        # a clean stop forwards and acknowledges what it received: no re-delivery
        assert codes["first"] == 0
        assert duplicates == 0, counts.most_common(5)
    else:
        assert codes["first"] == -signal.SIGKILL
