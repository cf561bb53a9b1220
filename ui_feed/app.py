"""The API: ingest, REST reads, the websocket hub and the wall page.

Built by ``create_app(settings)`` (no globals, no connection at import);
``run_api`` serves it with uvicorn. Several instances can run side by side:
each reads the update topics itself and serves its own screens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool

from ioc.calendar import WorkingCalendar, load_calendar
from ioc.clock import build_clock, parse_instant, to_iso
from ioc.events import DecodeError, decode_procedure_event
from ioc.feed import kpi_view
from ioc.kpis import WINDOWS, derive
from ioc.registry import SCOPE_KINDS, Registry, load_registry
from ioc.scorecard import load_scorecard
from ioc.settings import Settings
from ioc.topics import Topics
from streams.dossiers import Deltas, DossierStore
from streams.health import pipeline_problems
from streams.kafka import Producer, ensure_topics, topic_layout
from streams.scopes import ScopeIndex
from streams.sinks.heartbeats import read_heartbeats
from streams.sources.http_ingest import IngestStats, ingest_router
from ui_feed.feed import Feed
from ui_feed.hub import Hub
from ui_feed.queries import BUCKETS, MAX_BUCKETS, Reads

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
TIME_FIELDS = ("at", "received", "clock_start", "due", "finished", "new_due")


def parse_scope(scope: str) -> str:
    kind, _, key = scope.partition(":")
    if kind not in SCOPE_KINDS or (kind == "province") != (key == ""):
        raise HTTPException(
            400,
            "scope must be province, or one of commune:<code>, agency:<id>, centre:<id>, "
            "procedure:<code>, field:<id>, group:<id>",
        )
    return scope


def parse_window(window: str | None) -> list[str]:
    if window is None:
        return list(WINDOWS)
    if window not in WINDOWS:
        raise HTTPException(400, f"window must be one of {', '.join(WINDOWS)}")
    return [window]


def parse_time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name} must be ISO 8601 with an offset: {exc}") from None


def iso_fields(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key in TIME_FIELDS:
        if isinstance(out.get(key), int | float):
            out[key] = to_iso(out[key])
    if "paused" in out:
        out["paused"] = [[to_iso(a), None if b is None else to_iso(b)] for a, b in out["paused"]]
    return out


def describe_dossier(
    events: list[bytes], registry: Registry, calendar: WorkingCalendar, share: float, at: float
) -> dict[str, Any] | None:
    """Fold a dossier's stored events with the worker's own code."""
    store = DossierStore(calendar, registry, ScopeIndex(registry), share)
    decoded = [decode_procedure_event(json.loads(raw), raw) for raw in events]
    for ev in decoded:
        if not isinstance(ev, DecodeError):
            store.apply(ev, at, Deltas())
    if not len(store):
        return None
    row = next(iter(store.rows.values()))
    return store.describe(row, at)


def create_app(settings: Settings) -> FastAPI:
    registry = load_registry(settings.province_file)
    calendar = load_calendar(settings.calendar_file)
    scorecard = load_scorecard(settings.scorecard_file)
    topics = Topics(settings.topic_prefix)
    clock = build_clock("wall", settings.clock_start, settings.clock_speed, settings.clock_anchor)
    # seqs above the start time in ms: a resume from before a restart is
    # never mistaken for "up to date"
    hub = Hub(clock=clock, seq_base=int(time.time() * 1000))
    stats = IngestStats()
    state: dict[str, Any] = {"producer": None}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False)
        await pool.open()
        reads = Reads(pool)
        state["reads"] = reads
        feed = Feed(hub, reads, registry, topics)
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
                await producer.start()
                state["producer"] = producer
                return
            except Exception as exc:
                log.info("waiting for Kafka at %s (%s)", settings.kafka_bootstrap, exc)
                await asyncio.sleep(2)

    app = FastAPI(
        title="IOC backend",
        version="0.1.0",
        description="Ingest, KPIs and live feed of a provincial Intelligent Operations Centre.",
        lifespan=lifespan,
    )
    app.include_router(ingest_router(settings, lambda: state["producer"], stats))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def reads() -> Reads:
        return state["reads"]  # type: ignore[no-any-return]

    def read_token_ok(request: Request | WebSocket) -> bool:
        if not settings.read_token:
            return True
        header = request.headers.get("authorization", "")
        bearer = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        return settings.read_token in (request.query_params.get("token"), bearer)

    def check_read_token(request: Request) -> None:
        if not read_token_ok(request):
            raise HTTPException(401, "missing or wrong read token")

    async def now() -> float:
        """The pipeline's time: the workers' clock, or this process's."""
        worker_clock = await reads().pipeline_clock()
        return worker_clock if worker_clock is not None else clock.now()

    @app.get("/", include_in_schema=False)
    async def wall() -> FileResponse:
        return FileResponse(STATIC / "wall.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready when the database and the broker answer and the workers
        are moving (``streams.health.pipeline_problems``)."""
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

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        feed = state.get("feed")
        lines = []
        for kind, n in stats.accepted.items():
            lines.append(f'ioc_ingest_accepted_total{{kind="{kind}"}} {n}')
        for kind, n in stats.rejected.items():
            lines.append(f'ioc_ingest_rejected_total{{kind="{kind}"}} {n}')
        lines.append(f"ioc_ingest_unavailable_total {stats.unavailable}")
        for key, value in hub.stats().items():
            if isinstance(value, int | float):
                lines.append(f"ioc_ws_{key} {value}")
        if feed is not None:
            lines.append(f"ioc_feed_messages_total {feed.messages}")
            lines.append(f"ioc_feed_connected {int(feed.connected)}")
        return "\n".join(lines) + "\n"

    @app.get("/api/v1/kpis")
    async def kpis(
        request: Request, scope: str = "province", window: str | None = None
    ) -> dict[str, Any]:
        check_read_token(request)
        windows = parse_window(window)
        key = parse_scope(scope)
        found = (await reads().latest(key)).get(key)
        if found is None:
            raise HTTPException(404, f"no KPIs for {key} yet")
        at, counters = found
        view = kpi_view(key, registry.label(key), counters, at)
        return {
            "scope": key,
            "label": view["label"],
            "at": to_iso(at),
            "windows": {w: view["windows"][w] for w in windows},
        }

    minute_kinds = set(settings.minute_kinds)

    @app.get("/api/v1/kpis/series")
    async def series(
        request: Request,
        scope: str = "province",
        bucket: str = "1h",
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        check_read_token(request)
        key = parse_scope(scope)
        kind = key.partition(":")[0]
        if kind not in minute_kinds:
            raise HTTPException(
                400,
                f"no time series is kept for {kind} scopes: add {kind!r} to "
                f"IOC_MINUTE_SERIES (now {settings.minute_series!r}) and recompute",
            )
        if bucket not in BUCKETS:
            raise HTTPException(400, f"bucket must be one of {', '.join(BUCKETS)}")
        size = BUCKETS[bucket]
        t_end = parse_time(end, "to") or await now()
        t_start = parse_time(start, "from") or t_end - 24 * 3600
        if t_start >= t_end:
            raise HTTPException(400, "from must be before to")
        if (t_end - t_start) / size > MAX_BUCKETS:
            raise HTTPException(400, f"at most {MAX_BUCKETS} buckets; widen the bucket")
        rows = await reads().series(key, size, t_start, t_end)
        return {
            "scope": key,
            "label": registry.label(key),
            "bucket": bucket,
            "points": [
                {"at": to_iso(t), "kpis": derive(flows, levels, size / 3600)}
                for t, flows, levels in rows
            ],
        }

    @app.get("/api/v1/scorecard")
    async def scorecard_view(
        request: Request, scope: str = "province", window: str = "month"
    ) -> dict[str, Any]:
        """The 766 points that dossier events determine, for one unit and window."""
        check_read_token(request)
        (w,) = parse_window(window)
        key = parse_scope(scope)
        found = (await reads().latest(key)).get(key)
        if found is None:
            raise HTTPException(404, f"no KPIs for {key} yet")
        at, counters = found
        kpis = kpi_view(key, registry.label(key), counters, at)["windows"][w]
        return {
            "scope": key,
            "label": registry.label(key),
            "window": w,
            "at": to_iso(at),
            "index": "Decision 766/QĐ-TTg service index (the part dossier events determine)",
            **scorecard.score(kpis),
        }

    @app.get("/api/v1/dossiers/{dossier_id}")
    async def dossier(request: Request, dossier_id: str, at: str | None = None) -> dict[str, Any]:
        check_read_token(request)
        when = parse_time(at, "at") or await now()
        events = await reads().dossier_events(dossier_id)
        described = describe_dossier(events, registry, calendar, settings.at_risk_share, when)
        if described is None:
            raise HTTPException(404, f"no dossier {dossier_id!r}")
        return iso_fields(described)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        # accepted first, so the screen sees the reason rather than a refused handshake
        if not read_token_ok(websocket):
            await websocket.close(code=1008, reason="missing or wrong read token")
            return
        await hub.serve(websocket)

    return app


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


def redact_tokens(record: logging.LogRecord) -> bool:
    """Keep the read token a wall page sends as ``?token=`` out of the access log."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            _TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
        )
    return True


def run_api(settings: Settings) -> None:
    import signal

    import uvicorn

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal
    # again against the handlers it found: with these, a graceful stop ends
    # the process normally (exit 0) instead of by the signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    logging.getLogger("uvicorn.access").addFilter(redact_tokens)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        ws="websockets-sansio",
        lifespan="on",
    )
