"""The live feed and the update topics on the real broker: whoever starts
first, the feed never creates a topic, and it reads every partition."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ioc.clock import ManualClock
from ioc.feed import sum_counters
from ioc.topics import Topics
from streams.kafka import ensure_topics, topic_layout
from tests.streams.helpers import world
from ui_feed.feed import Feed
from ui_feed.hub import Hub

pytestmark = pytest.mark.integration


class NothingStored:
    """The reads a feed makes at start, of a database that holds nothing yet."""

    async def latest_by_part(self) -> list[Any]:
        return []

    async def latest_readings(self) -> list[Any]:
        return []

    async def recent_alerts(self, limit: int = 200) -> list[Any]:
        return []


async def until(check: Any, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if check():
            return True
        await asyncio.sleep(0.1)
    return False


async def read_one_update_per_partition(bootstrap: str, topics: Topics, feed: Feed) -> int:
    """Send an update to every partition of the KPI topic; how many the feed read."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topics.kpi_updates))
        for part in parts:
            update = {
                "type": "kpi",
                "part": part,
                "at": 1.0,
                "scopes": {"province": sum_counters([])},
            }
            await producer.send_and_wait(
                topics.kpi_updates, json.dumps(update).encode(), partition=part
            )
        await until(lambda: feed.messages >= len(parts), 10)
        return len(parts)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(feed: Feed, bootstrap: str) -> Any:
    task = asyncio.create_task(feed.run(bootstrap))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def new_feed() -> tuple[Feed, Topics]:
    registry, _ = world()
    topics = Topics(f"t{uuid.uuid4().hex[:6]}.")
    return Feed(Hub(clock=ManualClock()), NothingStored(), registry, topics), topics  # type: ignore[arg-type]


def test_a_feed_started_before_the_topics_waits_for_them_and_creates_none(
    kafka_bootstrap: str,
) -> None:
    # `ioc api` runs its feed beside the task that creates the topics; a broker
    # that creates topics on demand (Tansu: 4 partitions) must not be asked first
    async def run() -> tuple[bool, int, int]:
        feed, topics = new_feed()
        async with running(feed, kafka_bootstrap):
            early = await until(lambda: feed.connected, 2)
            await ensure_topics(kafka_bootstrap, topic_layout(topics, 4, 2))
            assert await until(lambda: feed.connected, 30), "the feed never connected"
            sent = await read_one_update_per_partition(kafka_bootstrap, topics, feed)
            return early, sent, feed.messages

    early, sent, read = asyncio.run(run())
    assert not early, "the feed connected to topics that did not exist yet"
    assert sent == 1, "the feed created the KPI topic before `ioc` did"
    assert read == sent


def test_a_feed_reads_every_partition_of_an_update_topic(kafka_bootstrap: str) -> None:
    # the topic made elsewhere with several partitions (ensure_topics says so)
    async def run() -> tuple[int, int]:
        feed, topics = new_feed()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topics.kpi_updates, 4, 1)])
        finally:
            await admin.close()
        await ensure_topics(kafka_bootstrap, topic_layout(topics, 4, 2))
        async with running(feed, kafka_bootstrap):
            assert await until(lambda: feed.connected, 30), "the feed never connected"
            sent = await read_one_update_per_partition(kafka_bootstrap, topics, feed)
            return sent, feed.messages

    sent, read = asyncio.run(run())
    assert sent == 4 and read == 4
