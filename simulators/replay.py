"""Record, generate and replay procedure-event loads.

- ``generate``: a simulated load (simulators.procedures) for a period, as
  NDJSON, in time order.
- ``record``: what the procedure-events topic holds, as NDJSON.
- ``replay``: an NDJSON file into the procedure-events topic, paced by the
  events' own times ``speed`` times faster than real time (or as fast as
  possible), grouped per partition. With ``until``, each partition then gets
  a watermark, so workers on event time (``IOC_CLOCK=event``) see that
  instant: the KPIs they publish are those of a live run at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from ioc.calendar import WorkingCalendar
from ioc.clock import parse_instant
from ioc.registry import Registry
from ioc.settings import Settings
from ioc.topics import WATERMARK_HEADER, Topics
from simulators.procedures import DossierPlanner, Profile, encode, generate

log = logging.getLogger(__name__)
BATCH = 5000
# A shuffled replay sends this many events per batch, so that one dossier's
# events come in many messages, out of order: the worker sorts each message
# by time, and one message per partition would test only the repeats.
SHUFFLED_BATCH = 40
# A paced replay sends together the events due within this many seconds.
PACE_WINDOW = 0.05


def read_events(source: IO[bytes]) -> list[tuple[float, str, bytes]]:
    """(time, dossier id, line) of each event of an NDJSON stream; lines that
    are not events with a time and a dossier are sent as they are (the
    worker dead-letters them)."""
    out = []
    for line in source:
        line = line.strip()
        if not line:
            continue
        try:
            obj = orjson.loads(line)
            ts = datetime.fromisoformat(obj["ts"]).timestamp()
            key = str(obj["dossier_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            ts, key = float("-inf"), ""
        out.append((ts, key, line))
    return out


def shuffled_with_repeats(
    events: list[tuple[float, str, bytes]], seed: int, repeats: float
) -> list[tuple[float, str, bytes]]:
    """The events in random order, a share of them twice (for testing that
    order and repeats do not matter)."""
    rng = random.Random(seed)
    out = events + rng.sample(events, int(len(events) * repeats))
    rng.shuffle(out)
    return out


async def replay(
    settings: Settings,
    events: list[tuple[float, str, bytes]],
    speed: float | None = None,
    until: float | None = None,
    keep_order: bool = False,
) -> int:
    """Send events to Kafka; returns how many messages were sent."""
    from streams.kafka import Producer, ensure_topics, topic_layout

    topics = Topics(settings.topic_prefix)
    layout = topic_layout(topics, settings.procedure_partitions, settings.sensor_partitions)
    await ensure_topics(settings.kafka_bootstrap, layout)
    if not keep_order:
        events = sorted(events, key=lambda e: e[0])
    producer = Producer(settings.kafka_bootstrap, client_id="ioc-replay")
    await producer.start()
    sent = 0
    try:
        start_real = time.monotonic()
        first_ts = next((ts for ts, _, _ in events if ts != float("-inf")), 0.0)
        for batch in batches(events, SHUFFLED_BATCH if keep_order else BATCH, speed, first_ts):
            if speed:
                # wait until the batch's first event is due at this speed
                due = start_real + (max(batch[0][0], first_ts) - first_ts) / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent += await producer.send_keyed(
                topics.procedure_events, [(key, line) for _, key, line in batch]
            )
        if until is not None:
            for part in range(await producer.partitions(topics.procedure_events)):
                await producer.send(
                    topics.procedure_events,
                    b"",
                    partition=part,
                    headers=[(WATERMARK_HEADER, repr(until).encode())],
                )
                sent += 1
    finally:
        await producer.stop()
    return sent


def batches(
    events: list[tuple[float, str, bytes]], size: int, speed: float | None, first_ts: float
) -> Iterator[list[tuple[float, str, bytes]]]:
    """The events in batches of at most ``size``; at a ``speed``, a batch
    holds only events due within PACE_WINDOW of its first one."""
    batch: list[tuple[float, str, bytes]] = []
    batch_due = 0.0
    for event in events:
        due = (max(event[0], first_ts) - first_ts) / speed if speed else 0.0
        if batch and (len(batch) >= size or due - batch_due > PACE_WINDOW):
            yield batch
            batch = []
        if not batch:
            batch_due = due
        batch.append(event)
    if batch:
        yield batch


async def record(settings: Settings, out: IO[bytes], idle: float = 5.0) -> int:
    """Write the procedure-events topic as NDJSON, from its start until no
    message came for ``idle`` seconds."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topics = Topics(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    written = 0
    try:
        parts = consumer.partitions_for_topic(topics.procedure_events) or set()
        tps = [TopicPartition(topics.procedure_events, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle * 1000), max_records=1000)
            if not batch:
                return written
            for messages in batch.values():
                for msg in messages:
                    for line in (msg.value or b"").split(b"\n"):
                        if line.strip():
                            out.write(line.strip() + b"\n")
                            written += 1
    finally:
        await consumer.stop()


def generated(
    registry: Registry,
    calendar: WorkingCalendar,
    start: str,
    days: float,
    per_office_hour: float | None,
    seed: int,
) -> Iterator[bytes]:
    profile = Profile.load()
    planner = DossierPlanner(registry, calendar, profile, seed=seed)
    t0 = parse_instant(start)
    rate = per_office_hour or profile.dossiers_per_office_hour
    for event in generate(planner, t0, t0 + days * 86400, rate):
        yield encode(event)


def write_lines(lines: Iterable[bytes], path: str) -> int:
    n = 0
    with open_out(path) as out:
        for line in lines:
            out.write(line + b"\n")
            n += 1
    return n


def open_out(path: str) -> Any:
    """A binary file to write, or standard output for ``-`` (left open)."""
    return contextlib.nullcontext(sys.stdout.buffer) if path == "-" else Path(path).open("wb")


def open_in(path: str) -> Any:
    return contextlib.nullcontext(sys.stdin.buffer) if path == "-" else Path(path).open("rb")
