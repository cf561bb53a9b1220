"""Kafka adapter shared by the HTTP ingest, the MQTT bridge, the simulators
and the worker's publishers: topic creation, the partitioner, and envelopes
grouped by partition.

Every producer here partitions by the Kafka default (murmur2 of the key), so
a dossier's events land on one partition whether they come from the ingest,
a replay or a third-party producer keying single events by ``dossier_id``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from murmurhash2 import murmurhash2

from ioc.topics import EDGE_HEADER, Topics

log = logging.getLogger(__name__)

# Brokers refuse messages over 1 MB by default; stay well under it.
MAX_ENVELOPE_BYTES = 900_000


# The seed of Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
KAFKA_MURMUR2_SEED = 0x9747B28C


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (murmurhash2(key.encode(), KAFKA_MURMUR2_SEED) & 0x7FFFFFFF) % partitions


def edge_header(at: float) -> list[tuple[str, bytes]]:
    """The header that says when a message's events reached the edge."""
    return [(EDGE_HEADER, f"{at:.6f}".encode())]


def edge_time(headers: Any) -> float | None:
    """The edge time of a consumed message (faust gives a dict of headers,
    aiokafka a list of pairs), or None."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    for name, value in pairs:
        if name == EDGE_HEADER:
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def topic_layout(
    topics: Topics, procedure_partitions: int, sensor_partitions: int
) -> dict[str, int]:
    """Partitions per topic. Updates keep one partition: readers take
    everything, in order. Alerts have the procedure topic's partitions: SLA
    transitions of procedure partition p go to alerts partition p, so the
    alert stage that owns p is the one writer of its dossiers' alerts."""
    return {
        topics.procedure_events: procedure_partitions,
        topics.sensor_readings: sensor_partitions,
        topics.kpi_updates: 1,
        topics.alerts: procedure_partitions,
        topics.dead_letters: 1,
    }


async def ensure_topics(bootstrap: str, layout: dict[str, int], attempts: int = 30) -> None:
    """Create missing topics; retries while the broker starts."""
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, num_partitions=n, replication_factor=1)
                for name, n in layout.items()
                if name not in existing
            ]
            if missing:
                try:
                    await admin.create_topics(missing)
                    log.info("created topics %s", ", ".join(t.name for t in missing))
                except TopicAlreadyExistsError:
                    pass
            for topic in await admin.describe_topics(sorted(existing & set(layout))):
                name, count = topic.get("topic"), len(topic.get("partitions") or ())
                if name in layout and 0 < count < layout[name] and name.endswith("alerts"):
                    # an alerts topic of an earlier release (one partition)
                    await _grow(admin, name, layout[name])
                elif name in layout and count != layout[name]:
                    # someone created it first (a broker that creates topics on
                    # demand): readers take every partition, the order of
                    # updates across them is lost
                    log.warning("topic %s has %d partitions, not %d", name, count, layout[name])
            return
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise
            log.info("broker at %s not ready (%s); retrying", bootstrap, exc.__class__.__name__)
            await asyncio.sleep(1)
        finally:
            await admin.close()


async def _grow(admin: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    try:
        await admin.create_partitions({name: NewPartitions(partitions)})
        log.info("topic %s now has %d partitions", name, partitions)
    except KafkaError as exc:
        log.warning("topic %s: could not add partitions (%s)", name, exc)


def group_by_partition(
    items: Iterable[tuple[str, bytes]], partitions: int
) -> dict[int, list[bytes]]:
    """NDJSON lines grouped by the partition of their key."""
    groups: dict[int, list[bytes]] = defaultdict(list)
    for key, line in items:
        groups[partition_for(key, partitions)].append(line)
    return groups


def envelopes(lines: list[bytes], limit: int = MAX_ENVELOPE_BYTES) -> list[bytes]:
    """Lines joined into NDJSON envelopes no larger than ``limit`` bytes."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) + 1 > limit:
            out.append(b"\n".join(chunk))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        out.append(b"\n".join(chunk))
    return out


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to send; ``lines`` counts the events it carries."""

    topic: str
    value: bytes
    partition: int | None = None
    headers: list[tuple[str, bytes]] | None = None
    lines: int = 1


class Producer:
    """An aiokafka producer that sends NDJSON envelopes per partition and
    waits until the broker has them."""

    def __init__(self, bootstrap: str, client_id: str = "ioc") -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            linger_ms=5,
            max_request_size=2 * MAX_ENVELOPE_BYTES,
            request_timeout_ms=15000,
        )
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def partitions(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            n = len(await self._producer.partitions_for(topic))
            self._partitions[topic] = n
        return n

    async def keyed(
        self,
        topic: str,
        items: list[tuple[str, bytes]],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> list[Outbound]:
        """(key, line) items as envelopes, one or more per partition, each
        with ``headers``."""
        groups = group_by_partition(items, await self.partitions(topic))
        return [
            Outbound(topic, value, part, headers, value.count(b"\n") + 1)
            for part, lines in groups.items()
            for value in envelopes(lines)
        ]

    async def send_keyed(
        self,
        topic: str,
        items: list[tuple[str, bytes]],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> int:
        """Send (key, line) items as envelopes (``keyed``). Returns the number
        of messages; raises when the broker did not acknowledge them all."""
        messages = await self.keyed(topic, items, headers)
        for failure in await self.send_many(messages):
            if failure is not None:
                raise failure
        return len(messages)

    async def send_many(self, messages: Sequence[Outbound]) -> list[Exception | None]:
        """Queue every message, then wait for the broker's acknowledgements:
        a batch costs one round trip, not one per message. Returns each
        message's failure, None where the broker acknowledged it."""
        waiting: list[asyncio.Future[Any] | Exception] = []
        for m in messages:
            try:
                waiting.append(
                    await self._producer.send(
                        m.topic, m.value, partition=m.partition, headers=m.headers
                    )
                )
            except Exception as exc:  # refused before queueing: too large, no metadata
                waiting.append(exc)
        futures = [w for w in waiting if not isinstance(w, Exception)]
        settled = iter(await asyncio.gather(*futures, return_exceptions=True))
        out: list[Exception | None] = []
        for w in waiting:
            if isinstance(w, Exception):
                out.append(w)
                continue
            result = next(settled)
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: not a broker's answer
            out.append(result if isinstance(result, Exception) else None)
        return out

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        await self._producer.send_and_wait(
            topic, value, key=key, partition=partition, headers=headers
        )
