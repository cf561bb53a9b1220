"""The API fuzzed from its own OpenAPI (schemathesis), served as ``ioc api``
serves it, on PostgreSQL and the Kafka-protocol broker: no answer is a
server error, and every status code, content type, header and body is one
the schema declares.

Every operation is called three ways per generated case: with the token
its role needs, with none, and with another role's token; the last two must
be 401. The run is derandomized with a fixed seed (the same cases every
time) and keeps no example database, so it cannot flake on what an earlier
run found.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error

from ioc.calendar import load_calendar
from ioc.clock import parse_instant
from ioc.events import ProcedureEvent, canonical_body, decode_procedure_event
from ioc.registry import load_registry
from ioc.settings import Settings
from ioc.testing import procedure_event
from streams.kafka import partition_for
from streams.recompute import recompute
from streams.sinks.schema import migrate
from tests.processes import Process, ioc_env, wait_until
from ui_feed.app import create_app

pytestmark = pytest.mark.integration

READ, INGEST, OPERATOR = "fuzz-read-token-0123", "fuzz-ingest-token-01", "fuzz-operator-token-"
SEED = 20260316
CLOCK_START = "2026-03-16T12:00:00+07:00"  # the API's clock stands still there
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",  # schema-valid and schema-violating data
            "max-examples": 30,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,  # tokens are set per call below
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    }
)
# NDJSON bodies are text; schemathesis sends them as it sends text/plain.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

DOSSIER = "000.00.24.H22-260316-0005"  # received, then waiting for a supplement


def history() -> list[ProcedureEvent]:
    """A few dossiers of one morning: the reads have something to show."""
    raw: list[dict[str, Any]] = []
    for i in range(6):
        dossier = f"000.00.24.H22-260316-000{i + 1}"
        ts = f"2026-03-16T0{8 + i // 3}:{10 * i:02d}:00+07:00"
        raw.append(procedure_event("received", dossier, ts))
        if i % 2:
            raw.append(procedure_event("processed", dossier, "2026-03-16T11:00:00+07:00"))
        if i == 4:
            raw.append(
                procedure_event("supplement_requested", dossier, "2026-03-16T10:30:00+07:00")
            )
    out = []
    for n, fields in enumerate(raw):
        ev = decode_procedure_event({**fields, "event_id": f"fuzz-{n}"}, b"")
        assert isinstance(ev, ProcedureEvent), ev
        out.append(ev)
    return out


def seed(settings: Settings) -> None:
    """Raw events as the worker stores them, then the derived tables rebuilt
    from them (``ioc kpis recompute``)."""
    migrate(settings.database_url)
    with psycopg.connect(settings.database_url) as conn:
        for seq, ev in enumerate(history(), start=1):
            conn.execute(
                "INSERT INTO procedure_events (ts, event_id, dossier_id, type, part, seq, body) "
                "VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s)",
                (
                    ev.ts,
                    ev.event_id,
                    ev.dossier_id,
                    ev.type,
                    partition_for(ev.dossier_id, settings.procedure_partitions),
                    seq,
                    canonical_body(ev).decode(),
                ),
            )
    registry = load_registry(settings.province_file)
    calendar = load_calendar(settings.calendar_file)
    until = parse_instant(CLOCK_START)
    asyncio.run(recompute(settings, registry, calendar, until, force=True))


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database for the whole run (``database_url`` is made per test, and
    here every operation is a test)."""
    base = os.environ.get("IOC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ioc_fuzz_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def api_settings(**fields: Any) -> Settings:
    return Settings(
        read_token=READ,
        ingest_token=INGEST,
        operator_token=OPERATOR,
        clock_start=CLOCK_START,
        clock_speed=0,
        **fields,
    )


@pytest.fixture(scope="module")
def api(
    database: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The base URL of ``ioc api``, ready, on seeded servers. A process of its
    own: in a thread, its Kafka client's use of ``random`` would disturb
    Hypothesis, which watches the global random state."""
    tmp = tmp_path_factory.mktemp("fuzz")
    env = ioc_env(
        tmp,
        kafka_bootstrap,
        database,
        "mqtt://127.0.0.1:1",  # the API does not use MQTT
        IOC_READ_TOKEN=READ,
        IOC_INGEST_TOKEN=INGEST,
        IOC_OPERATOR_TOKEN=OPERATOR,
        IOC_CLOCK_START=CLOCK_START,
        IOC_CLOCK_SPEED=0,
        IOC_LOG_LEVEL="WARNING",
    )
    seed(api_settings(database_url=database, procedure_partitions=4))
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    process = Process("api", ["api"], env, tmp / "logs")
    try:
        # no worker runs here: ready but for the workers' heartbeats
        wait_until("the API to reach its servers", lambda: api_ready_but_workers(base), 60)
        yield base
    finally:
        code = process.stop()
    assert "Traceback" not in process.output(), process.output()[-3000:]
    assert code == 0


def api_ready_but_workers(base: str) -> bool:
    problems = httpx.get(f"{base}/readyz", timeout=2).json().get("problems", [])
    return all(p.startswith("worker") for p in problems)


# The schema the app serves, built without servers (as /openapi.json builds it).
schema = schemathesis.openapi.from_dict(create_app(api_settings()).openapi(), config=CONFIG)


def tokens(case: Case) -> tuple[str | None, str]:
    """The token this operation needs (None: public), and one it refuses."""
    path = case.operation.path
    if path in ("/api/v1/procedure-events", "/api/v1/sensor-readings"):
        return INGEST, READ
    if path.startswith("/api/v1/alerts/") and case.operation.method.upper() == "POST":
        return OPERATOR, INGEST  # the read token is refused with 403: checked below
    if path.startswith("/api/v1/"):
        return READ, INGEST
    return None, READ


# (method, path) -> statuses answered with the right token, for the check below
SEEN: defaultdict[tuple[str, str], set[int]] = defaultdict(set)


@schema.parametrize()
def test_the_api_keeps_its_own_contract(api: str, case: Case) -> None:
    right, wrong = tokens(case)
    # /readyz answers its declared 503 here (no worker runs): that is its job,
    # not a server error; the other checks still hold it to its schema
    excluded = [not_a_server_error] if case.operation.path == "/readyz" else []
    answer = case.call_and_validate(
        base_url=api, headers={} if right is None else bearer(right), excluded_checks=excluded
    )
    SEEN[case.operation.method.upper(), case.operation.path].add(answer.status_code)
    assert answer.status_code != 401, answer.text
    if case.path_parameters and case.path_parameters.get("dossier_id") != DOSSIER:
        # the same instant on a dossier that exists: random ids find none
        case.path_parameters["dossier_id"] = DOSSIER
        case.call_and_validate(base_url=api, headers=bearer(READ))
    # the coverage phase also tries other methods: 405, before any token check
    if right is not None and case.method.upper() == case.operation.method.upper():
        for headers in ({}, bearer(wrong), bearer(OPERATOR if right == INGEST else INGEST)):
            refused = case.call_and_validate(base_url=api, headers=headers)
            assert refused.status_code == 401, refused.text
        if right == OPERATOR:
            refused = case.call_and_validate(base_url=api, headers=bearer(READ))
            assert refused.status_code == 403, refused.text


def test_the_fuzzing_reached_past_the_checks() -> None:
    """Not only refusals: every read found data, both ingest routes accepted."""
    if not SEEN:
        pytest.skip("the fuzzing test did not run")
    print(dict(SEEN))
    for path in ("/kpis", "/kpis/series", "/scorecard", "/dossiers/{dossier_id}"):
        assert 200 in SEEN["GET", f"/api/v1{path}"], (path, SEEN)
    for path in ("/procedure-events", "/sensor-readings"):
        assert {202, 400, 415, 422} <= SEEN["POST", f"/api/v1{path}"], (path, SEEN)


def test_the_served_schema_is_the_one_fuzzed(api: str) -> None:
    assert httpx.get(f"{api}/openapi.json").json() == schema.raw_schema


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
