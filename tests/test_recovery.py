"""The worker killed with SIGKILL (or stopped with SIGTERM) in the middle of
a replay and restarted: the final dossier states and KPIs equal those of an
uninterrupted run; a SIGTERM stop is prompt and clean. State
comes back from the last snapshot plus the raw events committed after it;
messages Kafka redelivers merge as duplicates; nothing is counted twice or
lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ioc.clock import EventTimeClock, parse_instant
from ioc.events import ProcedureEvent, decode_procedure_event
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from tests.processes import Process, ioc_env, wait_until
from tests.streams.helpers import world

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START = "2026-03-02T00:00:00+07:00"
UNTIL = "2026-03-09T12:00:00+07:00"


def waiting(database: str) -> int:
    """Events the worker has applied and not committed yet (its heartbeat)."""
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT coalesce(sum(pending_events), 0) FROM worker_heartbeats")
        return int(row.fetchone()[0])


def committed(database: str) -> int:
    with psycopg.connect(database) as conn:
        return int(
            conn.execute("SELECT coalesce(sum(seq), 0) FROM worker_partitions").fetchone()[0]
        )


def stored_counters(database: str) -> dict[str, dict[str, Any]]:
    """The latest counters per scope, summed over partitions."""
    from ioc.feed import sum_counters

    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT scope, counters FROM kpi_latest").fetchall()
    parts: dict[str, list[Any]] = {}
    for scope, counters in rows:
        parts.setdefault(scope, []).append(counters)
    return {scope: sum_counters(p) for scope, p in parts.items()}


REPLAY = [sys.executable, "-m", "ioc.cli", "replay"]


def replay(env: dict[str, str], events: Path, *args: str) -> None:
    subprocess.run(
        [*REPLAY, str(events), "--speed", "max", *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def uninterrupted(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    """The counters of the same events through one processor, no Kafka, no
    database, no crash."""
    registry, calendar = world()
    proc = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), 0.0)
    clock = EventTimeClock()
    decoded = [decode_procedure_event(json.loads(line), line) for line in lines]
    proc.apply([e for e in decoded if isinstance(e, ProcedureEvent)], 0.0, clock)
    clock.observe(parse_instant(UNTIL))
    proc.move(clock.now())
    return proc.all_counters()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_worker_stopped_mid_replay_resumes_without_loss_or_double_counting(
    stop: signal.Signals, tmp_path: Path, kafka_bootstrap: str, database_url: str, mqtt_url: str
) -> None:
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        mqtt_url,
        IOC_CLOCK="event",
        IOC_SNAPSHOT_INTERVAL="2",
        IOC_HEARTBEAT_INTERVAL="0.5",
    )
    load = tmp_path / "load.ndjson"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ioc.cli",
            "generate",
            "--start",
            START,
            "--days",
            "7",
            "--rate",
            "300",
            "--out",
            str(load),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    lines = [line for line in load.read_bytes().split(b"\n") if line]
    lines = [line for line in lines if json.loads(line)["ts"] < UNTIL]
    expected = uninterrupted(lines)
    subprocess.run(
        [sys.executable, "-m", "ioc.cli", "db", "migrate"], env=env, check=True, capture_output=True
    )

    # The replay goes in three parts, and the stop comes at a point no
    # machine speed can move: the first part is committed; then the database
    # blocks the worker's commits (a lock on the table every commit writes)
    # while the second part reaches the worker, which applies it and waits in
    # its commit; then the worker is stopped. The third part reaches Kafka
    # while no worker runs.
    lines.sort(key=lambda line: json.loads(line)["ts"])
    half, cut = len(lines) // 3, len(lines) * 2 // 3
    first, second, rest = (tmp_path / f"{n}.ndjson" for n in ("first", "second", "rest"))
    first.write_bytes(b"\n".join(lines[:half]))
    second.write_bytes(b"\n".join(lines[half:cut]))
    rest.write_bytes(b"\n".join(lines[cut:]))

    worker = Process("worker", ["worker"], env, tmp_path / "logs")
    try:
        wait_until("the worker", lambda: "partition 3 ready" in worker.output(), 90)
        replay(env, first)
        wait_until("the first part committed", lambda: committed(database_url) == half, 120)
        with psycopg.connect(database_url) as blocker:
            blocker.execute("LOCK TABLE worker_partitions IN EXCLUSIVE MODE")
            replay(env, second)
            wait_until(
                "the second part applied and waiting for its commit",
                lambda: waiting(database_url) >= cut - half,
                120,
            )
            worker.proc.send_signal(stop)
            if stop == signal.SIGKILL:
                code = worker.proc.wait(30)  # killed in the middle of a commit
            blocker.rollback()  # SIGTERM: the worker's last commit goes through
            if stop == signal.SIGTERM:
                code = worker.proc.wait(30)
        at_stop = committed(database_url)
    finally:
        worker.kill()
    if stop == signal.SIGTERM:
        assert code == 0, worker.output()[-3000:]
        assert at_stop == cut, "a SIGTERM stop commits what the worker had applied"
    else:
        assert at_stop == half, "a SIGKILL loses the commit under way, and only that"
    replay(env, rest, "--until", UNTIL)

    restarted = Process("worker-2", ["worker"], env, tmp_path / "logs")
    try:
        wait_until("every event committed", lambda: committed(database_url) == len(lines), 180)
        wait_until(
            "the final counters published",
            lambda: stored_counters(database_url).get("province") == expected["province"],
            60,
        )
        got = stored_counters(database_url)
        for scope, counters in expected.items():
            assert got.get(scope) == counters, scope
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM procedure_events").fetchone()[0] == len(lines)
            duplicates = conn.execute(
                "SELECT count(*) FROM (SELECT event_id FROM procedure_events GROUP BY event_id "
                "HAVING count(*) > 1) d"
            ).fetchone()[0]
            assert duplicates == 0
    finally:
        assert restarted.stop() == 0
    assert "ready" in restarted.output()
