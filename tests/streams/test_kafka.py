import asyncio
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from ioc.topics import Topics
from streams.kafka import (
    Outbound,
    Producer,
    envelopes,
    group_by_partition,
    partition_for,
    topic_layout,
)


def test_partitions_match_kafkas_default_partitioner() -> None:
    parts = list(range(6))
    for key in ("H01.00166-260316-000001", "D1", "Đăng ký", "x" * 100):
        assert partition_for(key, 6) == DefaultPartitioner()(key.encode(), parts, parts)


@given(st.text(max_size=200), st.integers(min_value=1, max_value=64))
def test_any_key_lands_where_kafkas_reference_partitioner_puts_it(key: str, count: int) -> None:
    # every tail length (0-3 bytes after the 4-byte words), any UTF-8
    parts = list(range(count))
    assert partition_for(key, count) == DefaultPartitioner()(key.encode(), parts, parts)


def test_lines_are_grouped_by_their_keys_partition() -> None:
    groups = group_by_partition([("a", b"1"), ("b", b"2"), ("a", b"3")], 4)
    assert groups[partition_for("a", 4)][:2] in ([b"1", b"3"], [b"1", b"2"])
    assert sum(len(v) for v in groups.values()) == 3


def test_envelopes_stay_under_the_limit_and_keep_every_line() -> None:
    lines = [bytes([65 + i % 26]) * 300 for i in range(100)]
    out = envelopes(lines, limit=1000)
    assert all(len(e) <= 1000 for e in out)
    assert [line for e in out for line in e.split(b"\n")] == lines


def test_update_topics_have_one_partition() -> None:
    layout = topic_layout(Topics("x."), 4, 2)
    assert layout == {
        "x.procedure-events": 4,
        "x.sensor-readings": 2,
        "x.kpi-updates": 1,
        "x.alerts": 4,
        "x.dead-letters": 1,
    }


class QueueingBroker:
    """aiokafka's producer as ``send_many`` sees it: a send is queued (or
    refused at once) and acknowledged on a later turn of the loop."""

    def __init__(self) -> None:
        self.unacked = 0
        self.most_unacked = 0

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        if value == b"too large":
            raise ValueError("message too large")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.unacked += 1
        self.most_unacked = max(self.most_unacked, self.unacked)
        loop.call_soon(self._answer, future, value)
        return future

    def _answer(self, future: asyncio.Future[None], value: bytes) -> None:
        self.unacked -= 1
        if value == b"refused":
            future.set_exception(ConnectionError("not leader"))
        else:
            future.set_result(None)


class QueueingProducer(Producer):
    def __init__(self, broker: QueueingBroker) -> None:
        self._producer = broker  # type: ignore[assignment]
        self._partitions = {"t": 3}


def test_send_many_waits_for_all_at_once_and_tells_each_outcome() -> None:
    broker = QueueingBroker()
    values = [b"a", b"refused", b"b", b"too large", b"c"]
    outcomes = asyncio.run(QueueingProducer(broker).send_many([Outbound("t", v) for v in values]))
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "ConnectionError",
        "NoneType",
        "ValueError",
        "NoneType",
    ]
    assert broker.most_unacked == 4  # all queued before any answer was awaited


def test_send_keyed_raises_when_one_envelope_was_refused() -> None:
    async def run() -> None:
        producer = QueueingProducer(QueueingBroker())
        assert await producer.send_keyed("t", [("k1", b"x"), ("k2", b"y")]) >= 1
        with pytest.raises(ConnectionError):
            await producer.send_keyed("t", [("k1", b"refused")])

    asyncio.run(run())
