"""The worker's report to operators."""

from __future__ import annotations

import logging

import pytest

from streams import worker as worker_app
from streams.worker_report import log_stats


def test_the_worker_reports_what_it_holds_and_could_not_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ioc.clock import ManualClock
    from ioc.settings import Settings
    from streams.processor import PartitionProcessor
    from streams.worker import Partition
    from tests.streams.helpers import event, vn, world

    registry, calendar = world()
    worker = worker_app.ProcedureWorker(
        Settings(),
        registry,
        calendar,
        ManualClock(vn("2026-03-16 10:00")),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,
        None,
    )
    proc = PartitionProcessor(2, calendar, registry, worker.scopes, vn("2026-03-16 08:00"))
    received = event("received", "D1", "2026-03-16 09:00", commune="99999")
    proc.apply(
        [received, received, event("accepted", "D2", "2026-03-16 09:10")], vn("2026-03-16 10:00")
    )
    worker.partitions[2] = Partition(proc, None)
    worker.dead_letters = 4
    with caplog.at_level(logging.INFO, logger="streams.worker"):
        log_stats(worker)
    line = caplog.records[-1].getMessage()
    assert line.startswith("partitions [2]: 0 events committed, 1 open dossiers, 1 duplicates")
    assert "4 dead letters" in line and "'commune': 1" in line
