"""HTTP ingest: ``POST /api/v1/procedure-events`` and ``/sensor-readings``.

A body is one JSON event or a JSON array of events (``Content-Type:
application/json``, or none), or NDJSON, one event per line
(``application/x-ndjson``, ``application/ndjson``, ``application/jsonl``);
in UTF-8. Other content types, other charsets and compressed bodies are 415.
Every item is validated on its own; the valid ones go to Kafka grouped by
partition (one NDJSON envelope per partition, so a batch costs a handful of
messages), and the answer names the first ``MAX_REPORTED`` rejected items by
index and reason:

    202 {"accepted": 998, "rejected": 2, "errors": [{"index": 17, "reason": "..."}],
         "errors_truncated": false}

``rejected`` counts them all; ``errors_truncated`` says the list stops short
(``streams.sources.ingest_body`` splits and validates the body).

Nothing is accepted unless Kafka acknowledged it: if the broker is down the
answer is 503 and the client retries the whole batch (event ids make that
safe). A body where no item is valid is 422; an oversized body 413 (over
``IOC_INGEST_MAX_BYTES``, or over ``MAX_CONTAINERS`` JSON arrays and objects,
whose parse would hold the GIL too long); a wrong
or missing token 401 (``authorize``, the app's ingest dependency). Bodies
over ``INLINE_BYTES`` are split and validated in a worker thread, so a large
batch does not hold up the event loop (screens, health checks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

from ioc.events import (
    decode_procedure_event,
    decode_sensor_reading,
    procedure_event_schema,
    sensor_reading_schema,
)
from ioc.settings import Settings
from ioc.topics import Topics
from streams.kafka import Producer, edge_header
from streams.sources.ingest_body import (
    JSON_TYPE,
    MAX_CONTAINERS,
    NDJSON_TYPES,
    REASONS,
    Unsupported,
    body_format,
    sort_body,
    too_many_containers,
)

log = logging.getLogger(__name__)

INLINE_BYTES = 64 * 1024  # larger bodies are parsed in a worker thread
KINDS = ("procedure", "sensor")


# -- answers (one definition each, also for OpenAPI) ---------------------------


class Problem(BaseModel):
    """An error answer: what was wrong, for a person to read."""

    detail: str


class ItemError(BaseModel):
    index: int
    reason: str


class IngestAnswer(BaseModel):
    accepted: int
    rejected: int
    errors: list[ItemError]
    errors_truncated: bool


_WHEN = {
    400: "Bad request: the reason is in `detail`",
    401: "Missing or wrong token",
    403: "The role is off: its token is not configured",
    404: "Not found",
    413: f"Body larger than IOC_INGEST_MAX_BYTES, or over {MAX_CONTAINERS:,} JSON arrays and "
    "objects: split the batch",
    415: "Content type, charset or encoding other than JSON/NDJSON in UTF-8",
    503: "A server this answer needs (Kafka, PostgreSQL) is unavailable: retry",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error answers with a ``Problem`` body."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": Problem, "description": _WHEN[code]}
        if code == 401:
            out[code]["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
    return out


def _request_body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    event = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON_TYPE: {
                    "schema": {"oneOf": [event, {"type": "array", "items": event}]},
                    "example": [example],
                },
                NDJSON_TYPES[0]: {
                    "schema": {
                        "type": "string",
                        "description": "one event per line (also application/ndjson, "
                        "application/jsonl)",
                    },
                    "example": orjson.dumps(example).decode() + "\n",
                },
            },
        }
    }


PROCEDURE_EXAMPLE = {
    "schema": 1,
    "event_id": "7f0c-0001",
    "type": "received",
    "dossier_id": "000.00.24.H22-260316-0001",
    "ts": "2026-03-16T09:00:00+07:00",
    "province": "01",
    "commune": "00166",
    "centre": "hcc-00166",
    "agency": "ubnd-00166",
    "procedure_code": "1.000001",
    "field": "ho-tich",
    "channel": "online",
    "allotted_working_hours": 8,
    "fee_required": False,
}
SENSOR_EXAMPLE = {
    "schema": 1,
    "event_id": "aq-0007-20260316T0900",
    "sensor_id": "aq-0007",
    "area": "00166",
    "kind": "air_quality",
    "ts": "2026-03-16T09:00:00+07:00",
    "values": {"pm25": 35.2, "pm10": 51},
}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "At least one item valid, and Kafka acknowledged every valid item"},
    **problem_responses(400, 401, 413, 415),
    422: {
        "description": "No valid item (the reasons per item), or no item at all (`detail`)",
        "content": {
            JSON_TYPE: {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/IngestAnswer"},
                        {"$ref": "#/components/schemas/Problem"},
                    ]
                }
            }
        },
    },
    **problem_responses(503),
}


# -- metrics -------------------------------------------------------------------


class IngestStats:
    """The edge's counters, in the registry of the app that serves it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "ioc_ingest_accepted", "Items Kafka acknowledged", ["kind"], registry=r
        )
        self.rejected = Counter(
            "ioc_ingest_rejected", "Items refused, by reason class", ["kind", "reason"], registry=r
        )
        self.refused = Counter(
            "ioc_ingest_refused_bodies",
            "Bodies refused whole (400, 413, 415), by status",
            ["kind", "status"],
            registry=r,
        )
        self.unavailable = Counter(
            "ioc_ingest_unavailable",
            "Batches answered 503: Kafka not connected or not acknowledging",
            ["kind"],
            registry=r,
        )
        for kind in KINDS:  # every series exists from the start, at 0
            self.accepted.labels(kind)
            self.unavailable.labels(kind)
            for status in ("400", "413", "415"):
                self.refused.labels(kind, status)
            for reason in REASONS:
                self.rejected.labels(kind, reason)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


# -- the routes ------------------------------------------------------------------


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes; split the batch")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes; split the batch")
        chunks.append(chunk)
    return b"".join(chunks)


def ingest_router(
    settings: Settings,
    producer: Callable[[], Producer | None],
    stats: IngestStats,
    authorize: Callable[..., Awaitable[None]],
) -> APIRouter:
    """The two ingest routes; ``authorize`` is the ingest-token dependency."""
    topics = Topics(settings.topic_prefix)
    router = APIRouter(prefix="/api/v1", tags=["ingest"], dependencies=[Depends(authorize)])

    async def ingest(
        request: Request,
        kind: str,
        decode: Callable[[Any, bytes], Any],
        key_of: Callable[[Any], str],
        topic: str,
    ) -> JSONResponse:
        arrived = time.time()  # wall clock: the stages after compare their own with it
        try:
            try:
                ndjson = body_format(
                    request.headers.get("content-type"), request.headers.get("content-encoding")
                )
            except Unsupported as exc:
                raise HTTPException(415, str(exc)) from None
            body = await read_limited(request, settings.ingest_max_bytes)
            crowded = too_many_containers(body)
            if crowded is not None:
                raise HTTPException(413, crowded)
            work = partial(sort_body, body, ndjson, decode, key_of)
            outcome = await anyio.to_thread.run_sync(work) if len(body) > INLINE_BYTES else work()
            if isinstance(outcome, str):
                raise HTTPException(400, outcome)
        except HTTPException as exc:
            stats.refused.labels(kind, str(exc.status_code)).inc()
            raise
        for why, n in outcome.why.items():
            stats.rejected.labels(kind, why).inc(n)
        if not outcome.good and not outcome.rejected:
            raise HTTPException(422, "no events in the body")
        if not outcome.good:
            return JSONResponse(outcome.answer, status_code=422)
        bus = producer()
        if bus is None:
            stats.unavailable.labels(kind).inc()
            raise HTTPException(503, "event bus not connected yet; nothing was accepted")
        try:
            await bus.send_keyed(topic, outcome.good, edge_header(arrived))
        except Exception as exc:
            stats.unavailable.labels(kind).inc()
            log.warning("ingest could not reach Kafka: %s", exc)
            raise HTTPException(
                503,
                "event bus unavailable; retry the whole batch (what went out before "
                "the failure is taken once: event ids make the retry safe)",
            ) from exc
        stats.accepted.labels(kind).inc(len(outcome.good))
        return JSONResponse(outcome.answer, status_code=202)

    @router.post(
        "/procedure-events",
        status_code=202,
        response_model=IngestAnswer,
        responses=_RESPONSES,
        openapi_extra=_request_body(procedure_event_schema(), PROCEDURE_EXAMPLE),
    )
    async def procedure_events(request: Request) -> JSONResponse:
        """Procedure events: one, an array, or NDJSON (``ioc.procedure-events``)."""
        return await ingest(
            request,
            "procedure",
            decode_procedure_event,
            lambda e: e.dossier_id,
            topics.procedure_events,
        )

    @router.post(
        "/sensor-readings",
        status_code=202,
        response_model=IngestAnswer,
        responses=_RESPONSES,
        openapi_extra=_request_body(sensor_reading_schema(), SENSOR_EXAMPLE),
    )
    async def sensor_readings(request: Request) -> JSONResponse:
        """Sensor readings: one, an array, or NDJSON (``ioc.sensor-readings``)."""
        return await ingest(
            request,
            "sensor",
            decode_sensor_reading,
            lambda r: r.area,
            topics.sensor_readings,
        )

    return router
