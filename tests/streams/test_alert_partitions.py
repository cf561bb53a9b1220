"""SLA transitions go to the alerts partition of the procedure partition they
came from, so one alert stage owns each dossier's alerts."""

from __future__ import annotations

import asyncio
from typing import Any

from alerts.messages import SlaTransition
from ioc.topics import Topics
from streams import worker as worker_app
from streams.kafka import topic_layout


class FakeSink:
    def __init__(self) -> None:
        self.marked: list[list[int]] = []

    async def ensure(self) -> None:
        pass

    async def mark_published(self, parts: list[int]) -> None:
        self.marked.append(sorted(parts))


def test_each_partitions_transitions_go_to_the_same_alerts_partition() -> None:
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from streams.worker import Partition
    from tests.streams.helpers import world

    sent: list[tuple[bytes, int]] = []

    async def publish(message: bytes, part: int) -> None:
        sent.append((message, part))

    registry, calendar = world()
    sink = FakeSink()
    worker = worker_app.ProcedureWorker(
        Settings(),
        registry,
        calendar,
        ManualClock(0.0),  # type: ignore[arg-type]
        sink,  # type: ignore[arg-type]
        None,
        publish,
    )
    for part in (1, 3):
        slot = Partition(None, None)  # type: ignore[arg-type]
        slot.unsent = [
            SlaTransition(
                1.0, f"D{part}", "overdue", 1.0, 8.0, 8.0, None, "ubnd-00166", "hcc", "1.1", "f"
            )
        ]
        worker.partitions[part] = slot
    asyncio.run(worker._send_alerts(worker._sends()))
    assert sorted((part, msg.count(b'"D%d"' % part)) for msg, part in sent) == [(1, 1), (3, 1)]
    assert sink.marked == [[1, 3]]


def test_the_alerts_topic_has_the_procedure_topics_partitions() -> None:
    layout: dict[str, Any] = topic_layout(Topics("x."), 6, 2)
    assert layout["x.alerts"] == layout["x.procedure-events"] == 6
