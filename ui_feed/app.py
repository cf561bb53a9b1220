"""The API: ingest, REST reads, the websocket hub and the wall page.

Built by ``create_app(settings)`` (no globals, no connection at import);
``run_api`` serves it with uvicorn. Several instances can run side by side:
each reads the update topics itself and serves its own screens. Every route
with data behind it takes its token through ``ui_feed.auth``; ``/``,
``/healthz``, ``/readyz`` and ``/metrics`` are public. OpenAPI and its pages
(``/openapi.json``, ``/docs``, ``/redoc``) are served in development only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client.exposition import choose_encoder
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel

from alerts.rules import load_rules
from ioc.calendar import load_calendar
from ioc.clock import build_clock
from ioc.registry import load_registry
from ioc.scorecard import load_scorecard
from ioc.settings import Settings
from ioc.topics import Topics
from streams.health import pipeline_problems
from streams.kafka import Producer, ensure_topics, topic_layout
from streams.sinks.heartbeats import read_heartbeats
from streams.sources.http_ingest import IngestStats, ingest_router
from ui_feed.alerts_api import alerts_router
from ui_feed.auth import Auth, Role
from ui_feed.feed import Feed
from ui_feed.hub import Hub
from ui_feed.metrics import Latency, api_registry
from ui_feed.queries import Reads
from ui_feed.rest import cover_event_years, rest_router
from ui_feed.sensors_api import sensors_router, stations_of
from ui_feed.server import DIRECT_SEND, DISCONNECTS, server_config

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    problems: list[str] = []


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A read the database could not answer: 503, retry later (never a 500)."""
    log.warning("database unavailable for %s: %s", request.url.path, exc)
    if isinstance(exc, psycopg.errors.UndefinedTable):
        detail = "the database has no IOC schema yet: run `ioc db migrate`"
    else:
        detail = "database unavailable; retry later"
    return JSONResponse({"detail": detail}, status_code=503)


def create_app(settings: Settings, *, hub: Hub | None = None) -> FastAPI:
    """The API of ``settings``; ``hub`` to serve screens from another hub
    (tests: shorter timeouts)."""
    registry = load_registry(settings.province_file)
    calendar = load_calendar(settings.calendar_file)
    scorecard = load_scorecard(settings.scorecard_file)
    stations = stations_of(settings, registry)
    titles = {rule.id: rule.title for rule in load_rules(settings.alert_rules).rules.values()}
    topics = Topics(settings.topic_prefix)
    clock = build_clock("wall", settings.clock_start, settings.clock_speed, settings.clock_anchor)
    # seqs above the start time in ms: a resume from before a restart is
    # never mistaken for "up to date"
    if hub is None:
        hub = Hub(clock=clock, seq_base=int(time.time() * 1000), disconnects=DISCONNECTS)
    state: dict[str, Any] = {"producer": None}
    metrics = api_registry(hub, lambda: state.get("feed"))
    latency = Latency(metrics)
    hub.on_sent = latency.sent
    stats = IngestStats(metrics)
    auth = Auth(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(cover_event_years, calendar)
        pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False)
        await pool.open()
        reads = Reads(pool)
        state["reads"] = reads
        feed = Feed(
            hub,
            reads,
            registry,
            topics,
            latency.observe,
            settings.fetch_max_wait,
            titles,
            stations,
        )
        state["feed"] = feed
        tasks = [asyncio.create_task(_connect_kafka(), name="kafka")]
        tasks.append(asyncio.create_task(feed.run(settings.kafka_bootstrap), name="feed"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if state["producer"] is not None:
                await state["producer"].stop()
            await pool.close()

    async def _connect_kafka() -> None:
        layout = topic_layout(topics, settings.procedure_partitions, settings.sensor_partitions)
        while True:
            try:
                await ensure_topics(settings.kafka_bootstrap, layout, attempts=1)
                producer = Producer(settings.kafka_bootstrap, client_id="ioc-api")
                try:
                    await producer.start()
                except BaseException:
                    # a shutdown during the start must not leave its sockets open
                    with contextlib.suppress(Exception):
                        await asyncio.shield(producer.stop())
                    raise
                state["producer"] = producer
                return
            except Exception as exc:
                log.info("waiting for Kafka at %s (%s)", settings.kafka_bootstrap, exc)
                await asyncio.sleep(2)

    development = settings.env == "development"
    app = FastAPI(
        title="IOC backend",
        version="0.1.0",
        description="Ingest, KPIs and live feed of a provincial Intelligent Operations Centre. "
        "The live feed is the websocket `GET /ws` (docs/interfaces.md).",
        lifespan=lifespan,
        openapi_url="/openapi.json" if development else None,
        docs_url="/docs" if development else None,
        redoc_url="/redoc" if development else None,
    )
    app.state.hub, app.state.calendar = hub, calendar
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(psycopg.errors.UndefinedTable, database_unavailable)
    app.include_router(
        ingest_router(settings, lambda: state["producer"], stats, auth.require(Role.INGEST))
    )

    def reads() -> Reads:
        return state["reads"]  # type: ignore[no-any-return]

    async def now() -> float:
        """The pipeline's time: the workers' clock, or this process's."""
        worker_clock = await reads().pipeline_clock()
        return worker_clock if worker_clock is not None else clock.now()

    app.include_router(
        rest_router(settings, registry, calendar, scorecard, reads, now, auth.require(Role.READ))
    )
    app.include_router(sensors_router(stations, registry, reads, now, auth.require(Role.READ)))
    app.include_router(
        alerts_router(reads, auth.require(Role.READ), auth.require_operator(), titles)
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def wall() -> FileResponse:
        return FileResponse(STATIC / "wall.html")

    @app.get("/console", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "console.html")

    @app.get("/wall-sw.js", include_in_schema=False)
    async def wall_worker() -> FileResponse:
        # beside the page: a service worker controls only pages at or below it
        return FileResponse(
            STATIC / "wall-sw.js",
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    @app.get("/healthz")
    async def healthz() -> Health:
        """200 while the API process runs."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        """200 when the database and the broker answer and the workers are
        moving; 503 with the reasons otherwise (``streams.health``)."""
        problems = []
        try:
            await reads().ping()
            async with reads().pool.connection() as conn:
                beats = await read_heartbeats(conn)
            problems += pipeline_problems(
                beats,
                settings.procedure_partitions,
                settings.heartbeat_interval,
                settings.stall_seconds,
            )
        except Exception as exc:
            problems.append(f"database: {exc}")
        if state["producer"] is None:
            problems.append("kafka: producer not connected")
        feed = state.get("feed")
        if feed is None or not feed.connected:
            problems.append("kafka: live feed not connected")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    text = {"schema": {"type": "string"}}

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": text, "application/openmetrics-text": text}}},
    )
    async def metrics_text(request: Request) -> Response:
        """Prometheus text (OpenMetrics when asked): ingest, websocket, live
        feed and process figures."""
        encode, media_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(metrics), headers={"content-type": media_type})

    @app.websocket("/ws", dependencies=[Depends(auth.websocket_reader())])
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        direct = (websocket.scope.get("extensions") or {}).get(DIRECT_SEND)
        await hub.serve(websocket, direct)

    def openapi() -> dict[str, Any]:
        # FastAPI declares a 422 for parameters it validates; these routes
        # validate their own and answer 400, so the 422 would be a false promise
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    auto = operation.get("responses", {}).get("422", {})
                    if "HTTPValidationError" in str(auto):
                        del operation["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def run_api(settings: Settings) -> None:
    import signal

    import uvicorn

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal
    # again against the handlers it found: with these, a graceful stop ends
    # the process normally (exit 0) instead of by the signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(server_config(create_app(settings), settings)).run()
