"""The hand-checked scenario through the real system: events posted over
HTTP to a live worker, then the recomputation from the stored raw events,
then a shuffled copy with repeats replayed at full speed into a worker on
event time. All three give exactly the scenario's values."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.processes import Process, ioc_env, wait_until
from tests.scenario import check_dossier, check_kpis, check_scorecard, events, load, ndjson

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCENARIO = load()
AT = SCENARIO["evaluation_instant"]


def committed(database: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT coalesce(sum(seq), 0) FROM worker_partitions").fetchone()
    return int(row[0])


def kpis_match(base: str) -> bool:
    """True once the API serves every expected KPI value."""
    for case in SCENARIO["kpis"]:
        r = httpx.get(
            f"{base}/api/v1/kpis", params={"scope": case["scope"], "window": case["window"]}
        )
        if r.status_code != 200:
            return False
        try:
            check_kpis(case["expect"], r.json()["windows"][case["window"]], case["scope"])
        except AssertionError:
            return False
    return True


def check_everything(base: str) -> None:
    for case in SCENARIO["kpis"]:
        got = httpx.get(
            f"{base}/api/v1/kpis", params={"scope": case["scope"], "window": case["window"]}
        ).json()
        check_kpis(case["expect"], got["windows"][case["window"]], case["scope"])
    for d in SCENARIO["dossiers"]:

        def described(at: str | None, d: dict[str, Any] = d) -> dict[str, Any]:
            r = httpx.get(f"{base}/api/v1/dossiers/{d['id']}", params={"at": at or AT})
            assert r.status_code == 200, r.text
            return r.json()

        check_dossier(d, described)
    case = SCENARIO["scorecard"]
    got = httpx.get(
        f"{base}/api/v1/scorecard", params={"scope": case["scope"], "window": case["window"]}
    ).json()
    check_scorecard(case["expect"], got)


def ioc(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    """Another database on the same server, dropped on the way out."""
    name = f"ioc_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_live_recomputed_and_replayed_results_are_the_hand_checked_ones(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, mqtt_url: str
) -> None:
    n_events = len(events(SCENARIO))

    # 1. live: a worker on the wall clock, stopped at the evaluation instant
    env = ioc_env(
        tmp_path, kafka_bootstrap, database_url, mqtt_url, IOC_CLOCK_START=AT, IOC_CLOCK_SPEED=0
    )
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    ioc(env, "db", "migrate")
    worker = Process("worker", ["worker"], env, tmp_path / "live")
    api = Process("api", ["api"], env, tmp_path / "live")
    try:
        wait_until("the API", lambda: httpx.get(f"{base}/readyz").status_code == 200, 90)
        wait_until("the worker", lambda: "partition 3 ready" in worker.output(), 90)
        r = httpx.post(
            f"{base}/api/v1/procedure-events",
            content=ndjson(SCENARIO),
            headers={"content-type": "application/x-ndjson"},
        )
        assert r.status_code == 202 and r.json()["accepted"] == n_events, r.text
        wait_until("every event committed", lambda: committed(database_url) == n_events, 60)
        wait_until("the KPIs published", lambda: kpis_match(base), 30)
        check_everything(base)

        # 2. recomputation from the stored raw events
        assert worker.stop() == 0
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE worker_partitions SET updated_at = now() - INTERVAL '1 hour'")
            conn.execute("DELETE FROM kpi_latest")
            conn.commit()
        assert not kpis_match(base)
        out = ioc(env, "kpis", "recompute", "--until", AT)
        assert f"'events': {n_events}" in out
        check_everything(base)
    finally:
        api.stop()
        worker.stop()

    # 3. replay: a shuffled copy with repeats, at full speed, on event time
    with fresh_database(database_url) as replay_db:
        env = ioc_env(tmp_path, kafka_bootstrap, replay_db, mqtt_url, IOC_CLOCK="event")
        base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
        ioc(env, "db", "migrate")
        events_file = tmp_path / "scenario.ndjson"
        events_file.write_bytes(ndjson(SCENARIO))
        worker = Process("worker", ["worker"], env, tmp_path / "replay")
        api = Process("api", ["api"], env, tmp_path / "replay")
        try:
            wait_until("the worker", lambda: "partition 3 ready" in worker.output(), 90)
            out = ioc(
                env,
                "replay",
                str(events_file),
                "--speed",
                "max",
                "--shuffle",
                "11",
                "--repeat",
                "0.5",
                "--until",
                AT,
            )
            assert f"replayed {n_events + n_events // 2} events" in out
            wait_until("every event committed", lambda: committed(replay_db) == n_events, 60)
            wait_until("the API", lambda: httpx.get(f"{base}/readyz").status_code == 200, 60)
            wait_until("the KPIs published", lambda: kpis_match(base), 30)
            check_everything(base)
        finally:
            api.stop()
            worker.stop()
        for p in (worker, api):
            assert "Traceback" not in p.output(), p.output()[-3000:]
