"""One record can no longer stop the pipeline, and /readyz tells when it is
not moving: the real worker and API on the real broker and PostgreSQL.

Each finding of the outside probe is replayed here: a dead letter whose
origin holds NUL (an MQTT topic), a timestamp PostgreSQL cannot store, an
event id reused for another dossier; after each, later events still commit.
Then the database is made to block the worker's commits, and the worker is
killed: /readyz answers 503 with the reason each time, and 200 again when
the pipeline moves.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ioc.testing import procedure_event
from ioc.topics import Topics
from streams.kafka import Producer, partition_for
from tests.processes import Process, ioc_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def receipt(dossier: str, event_id: str, ts: str = "2026-03-16T09:00:00+07:00") -> bytes:
    return json.dumps(procedure_event("received", dossier, ts, event_id)).encode()


async def produce(
    bootstrap: str, topic: str, value: bytes, headers: Any = None, partition: int | None = None
) -> None:
    producer = Producer(bootstrap)
    await producer.start()
    try:
        await producer.send(topic, value, key=b"k", partition=partition, headers=headers)
    finally:
        await producer.stop()


def readiness(base: str) -> tuple[int, list[str]]:
    r = httpx.get(f"{base}/readyz", timeout=5)
    return r.status_code, r.json().get("problems", [])


def test_bad_records_never_block_and_readiness_tells_the_truth(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, mqtt_url: str
) -> None:
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        mqtt_url,
        IOC_CLOCK_START="2026-03-16T10:00:00+07:00",
        IOC_CLOCK_SPEED="0",
        IOC_HEARTBEAT_INTERVAL="1",
        IOC_STALL_SECONDS="4",
    )
    topics = Topics(env["IOC_TOPIC_PREFIX"])
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    logs = tmp_path / "logs"
    worker = Process("worker", ["worker"], env, logs)
    api = Process("api", ["api"], env, logs)
    try:
        wait_until(
            "the worker to own its partitions", lambda: "partition 3 ready" in worker.output(), 90
        )
        wait_until("the API to be ready", lambda: readiness(base)[0] == 200, 60)

        # 1. an MQTT topic holding NUL, dead-lettered by the bridge with it as origin
        asyncio.run(
            produce(
                kafka_bootstrap,
                topics.dead_letters,
                b"\x00raw\xff",
                [("source", b"bridge"), ("reason", b"bad topic"), ("origin", b"ioc/x\x00\xe9")],
            )
        )
        # 2. a time PostgreSQL cannot store, 3. an id reused for another dossier,
        # 4. a dossier of another partition, then ordinary events after them
        assert {partition_for(d, 4) for d in ("FIRST", "ANOTHER", "LATER-1")} == {2}
        assert partition_for("SECOND", 4) != 2
        envelope = b"\n".join(
            [
                receipt("BAD-TS", "e-ts", ts="2026-11-27T10:00:00+20:00"),
                receipt("FIRST", "e-shared"),
                receipt("ANOTHER", "e-shared"),
                receipt("SECOND", "e-second"),
                receipt("LATER-1", "e-later-1"),
            ]
        )
        asyncio.run(produce(kafka_bootstrap, topics.procedure_events, envelope, partition=2))
        post = httpx.post(
            f"{base}/api/v1/procedure-events",
            content=receipt("AFTER-2", "e-after-2"),
            headers={"content-type": "application/json"},
        )
        assert post.status_code == 202, post.text

        with psycopg.connect(database_url, autocommit=True) as conn:

            def stored() -> set[str]:
                rows = conn.execute("SELECT dossier_id FROM procedure_events").fetchall()
                return {r[0] for r in rows}

            wait_until("the later events", lambda: {"LATER-1", "AFTER-2"} <= stored(), 60)
            assert stored() == {"FIRST", "LATER-1", "AFTER-2"}
            letters = wait_until(
                "four dead letters",
                lambda: (
                    len(
                        d := dict(
                            conn.execute("SELECT origin, reason FROM dead_letters").fetchall()
                        )
                    )
                    == 4
                    and d
                ),
                30,
            )
            assert letters["ioc/x\\x00\\xe9"] == "bad topic"
            reasons = "\n".join(letters.values())
            assert "UTC offset outside -12:00..+14:00" in reasons
            assert "event_id 'e-shared' already names another event" in reasons
            assert "dossier 'SECOND' is on the wrong partition: it belongs to" in reasons
        assert httpx.get(f"{base}/api/v1/dossiers/FIRST").status_code == 200
        assert httpx.get(f"{base}/api/v1/dossiers/ANOTHER").status_code == 404
        assert httpx.get(f"{base}/api/v1/dossiers/SECOND").status_code == 404
        wait_until(
            "the live KPIs",
            lambda: (
                httpx.get(f"{base}/api/v1/kpis", params={"window": "today"}).json()["windows"][
                    "today"
                ]["received"]
                == 3
            ),
            30,
        )
        assert readiness(base)[0] == 200

        # the database blocks the worker's commits: stalled, then moving again
        with psycopg.connect(database_url) as blocker:
            # writes wait, reads (the API's) go on
            blocker.execute("LOCK TABLE worker_partitions IN EXCLUSIVE MODE")
            httpx.post(
                f"{base}/api/v1/procedure-events",
                content=receipt("DURING-LOCK", "e-lock"),
                headers={"content-type": "application/json"},
            )
            _, problems = wait_until(
                "/readyz to see the stall", lambda: (r := readiness(base))[0] == 503 and r, 60
            )
            assert any("waiting" in p and "for a commit" in p for p in problems), problems
            blocker.rollback()
        wait_until("/readyz to recover", lambda: readiness(base)[0] == 200, 60)

        # no worker at all
        worker.kill()
        _, problems = wait_until(
            "/readyz to miss the worker", lambda: (r := readiness(base))[0] == 503 and r, 30
        )
        assert problems == ["worker: none has reported in the last 3 s"], problems
    finally:
        worker.kill()
        api.stop(signal.SIGTERM)
    assert "Traceback" not in api.output(), api.output()[-3000:]


def test_worker_metrics_are_served(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, mqtt_url: str
) -> None:
    env = ioc_env(tmp_path, kafka_bootstrap, database_url, mqtt_url)
    worker = Process("worker", ["worker"], env, tmp_path / "logs")
    port = env["IOC_WORKER_METRICS_PORT"]
    try:
        text = wait_until(
            "worker metrics",
            lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text,
            60,
        )
        for name in (
            "ioc_worker_committed_events_total",
            "ioc_worker_commit_seconds_bucket",
            "ioc_worker_dead_letters_total",
            "ioc_worker_open_dossiers",
        ):
            assert name in text, text[:2000]
    finally:
        worker.stop()
