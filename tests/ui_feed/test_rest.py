"""REST reads: every time parameter bounded like event times (400 with the
reason, at once, the working calendar untouched), and a dossier read that
survives what the database holds. Checks of parameters run without servers;
reads of stored rows run against PostgreSQL and the Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from ioc.calendar import FIRST_YEAR, LAST_YEAR
from ioc.settings import Settings
from ioc.testing import procedure_event
from streams.sinks.schema import migrate
from ui_feed.app import create_app
from ui_feed.rest import parse_time

TOKEN = "read-token-0123456"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def call(app: FastAPI, path: str, **params: str) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
            return await c.get(path, params=params, headers=AUTH)

    return asyncio.run(send())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9999-12-31T00:00:00+07:00", "is outside the years 2000–2100"),
        ("7000-06-01T00:00:00+07:00", "is outside the years 2000–2100"),
        ("1970-01-01T00:00:00+00:00", "is outside the years 2000–2100"),
        ("1999-12-31T23:59:59+07:00", "is outside the years 2000–2100"),
        ("2026-03-16T09:00:00+23:00", "UTC offset outside -12:00..+14:00"),
        ("2026-03-16T09:00:00-13:00", "UTC offset outside -12:00..+14:00"),
        ("2026-03-16T09:00:00", "has no UTC offset"),
        ("2026-03-16", "has no UTC offset"),
        ("yesterday", "is not ISO 8601"),
        ("", "is not ISO 8601"),
    ],
)
def test_time_parameters_are_bounded_like_event_times(value: str, reason: str) -> None:
    app = create_app(Settings(read_token=TOKEN))
    years = app.state.calendar.years
    for path, name in [
        ("/api/v1/dossiers/D-1", "at"),
        ("/api/v1/kpis/series", "from"),
        ("/api/v1/kpis/series", "to"),
    ]:
        r = call(app, path, **{name: value})
        assert r.status_code == 400, r.text
        assert r.json()["detail"].startswith(f"{name} ") and reason in r.json()["detail"]
    assert app.state.calendar.years == years  # nothing grew


@pytest.mark.parametrize(
    "value", ["2000-01-01T00:00:00+07:00", "2100-12-31T16:59:59Z", "2026-03-16T09:00Z"]
)
def test_every_event_year_and_offset_is_a_valid_parameter(value: str) -> None:
    assert parse_time(value, "at") is not None


def test_scope_ids_are_checked_before_the_database() -> None:
    app = create_app(Settings(read_token=TOKEN))
    for scope in ("commune:\x00", "commune:" + "9" * 129):
        r = call(app, "/api/v1/kpis", scope=scope)
        assert r.status_code == 400 and "scope's id" in r.json()["detail"]


@pytest.mark.parametrize(
    ("scope", "reason"),
    [
        ("province:", "scope province takes no id"),
        ("province:01", "scope province takes no id"),
        ("commune:", "scope commune needs an id: commune:<id>"),
        ("agency:", "scope agency needs an id"),
        ("district:1", "scope must be province, or one of"),
    ],
)
def test_a_scope_with_an_id_too_many_or_missing_is_400_with_the_reason(
    scope: str, reason: str
) -> None:
    app = create_app(Settings(read_token=TOKEN))
    for path in ("/api/v1/kpis", "/api/v1/kpis/series", "/api/v1/scorecard"):
        r = call(app, path, scope=scope)
        assert r.status_code == 400, (path, r.text)
        assert reason in r.json()["detail"]


# -- against PostgreSQL -----------------------------------------------------------

RECEIPT = procedure_event("received", "D-1", "2026-03-16T09:00:00+07:00", "e-1")


def store(url: str, *rows: tuple[str, str, str]) -> None:
    """Raw procedure_events rows (event id, dossier id, body as stored)."""
    migrate(url)
    with psycopg.connect(url) as conn:
        for seq, (event_id, dossier, body) in enumerate(rows):
            conn.execute(
                "INSERT INTO procedure_events VALUES "
                "('2026-03-16T09:00:00+07:00', %s, %s, 'received', 0, %s, %s)",
                (event_id, dossier, seq, body),
            )


def with_servers(
    database_url: str, kafka_url: str, test: Callable[[FastAPI], Awaitable[None]]
) -> None:
    """Run ``test`` against the app with its lifespan (database pool, Kafka
    producer, live feed), once the app is ready if it can be."""
    settings = Settings(
        database_url=database_url,
        kafka_url=kafka_url,
        topic_prefix=f"rest-{uuid.uuid4().hex[:6]}.",
        read_token=TOKEN,
    )
    app = create_app(settings)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            if kafka_url.endswith(UNREACHABLE):
                await test(app)
                return
            # ready first: a shutdown in the middle of aiokafka's bootstrap
            # leaves a connection behind (a ResourceWarning, an error here)
            for _ in range(300):
                if (await get(app, "/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            await test(app)

    asyncio.run(main())


UNREACHABLE = ":1"  # no broker listens on port 1


async def get(app: FastAPI, path: str, **params: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
        return await c.get(path, params=params, headers=AUTH)


@pytest.mark.integration
def test_a_dossier_read_skips_a_stored_body_it_cannot_read(
    database_url: str, kafka_bootstrap: str
) -> None:
    deep = '{"schema": 1, "a": ' + "[" * 1000 + "]" * 1000 + "}"
    store(
        database_url,
        ("e-1", "D-1", json.dumps(RECEIPT)),
        ("e-2", "D-1", deep),  # as stored before the decoder bounded nesting
        ("e-3", "D-2", deep),
    )

    async def test(app: FastAPI) -> None:
        r = await get(app, "/api/v1/dossiers/D-1", at="2026-03-16T10:00:00+07:00")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "received"
        assert r.json()["at"] == "2026-03-16T10:00:00+07:00"
        assert r.json()["due"] == "2026-03-19T09:00:00+07:00"
        r = await get(app, "/api/v1/dossiers/D-2")
        assert r.status_code == 404

    with_servers(database_url, f"kafka://{kafka_bootstrap}", test)


@pytest.mark.integration
def test_reads_at_the_edges_of_the_years_answer(database_url: str, kafka_bootstrap: str) -> None:
    slashed = json.dumps({**RECEIPT, "dossier_id": "D/2"})
    store(database_url, ("e-1", "D-1", json.dumps(RECEIPT)), ("e-2", "D/2", slashed))

    async def test(app: FastAPI) -> None:
        for path in ("/api/v1/dossiers/D/2", "/api/v1/dossiers/D%2F2"):
            r = await get(app, path)  # an id with "/" is read back, as given or encoded
            assert r.status_code == 200 and r.json()["dossier_id"] == "D/2", r.text
        # built whole before serving: no read extends it on the event loop
        assert app.state.calendar.years == (FIRST_YEAR, LAST_YEAR)
        r = await get(app, "/api/v1/dossiers/D-1", at="2100-12-31T23:59:59+07:00")
        assert r.status_code == 200 and r.json()["sla_state"] == "overdue"
        r = await get(
            app,
            "/api/v1/kpis/series",
            **{"from": "2100-12-30T00:00:00+07:00", "to": "2100-12-31T00:00:00+07:00"},
        )
        assert r.status_code == 200 and r.json()["points"] == []
        r = await get(app, "/api/v1/dossiers/" + "D" * 200)
        assert r.status_code == 404
        r = await get(app, "/api/v1/dossiers/D%00-1")
        assert r.status_code == 404

    with_servers(database_url, f"kafka://{kafka_bootstrap}", test)


def test_unknown_query_parameters_change_nothing() -> None:
    app = create_app(Settings(read_token=TOKEN))
    r = call(app, "/api/v1/kpis", scope="nowhere", extra="1")
    assert r.status_code == 400


@pytest.mark.integration
def test_a_database_without_the_schema_answers_503(database_url: str) -> None:
    async def test(app: FastAPI) -> None:
        for path in ("/api/v1/kpis", "/api/v1/dossiers/D-1", "/api/v1/kpis/series"):
            r = await get(app, path)
            assert r.status_code == 503, r.text
            assert "ioc db migrate" in r.json()["detail"]

    with_servers(database_url, "kafka://127.0.0.1" + UNREACHABLE, test)
