"""HTTP ingest: ``POST /api/v1/procedure-events`` and ``/sensor-readings``.

A body is one JSON event, a JSON array of events, or NDJSON. Every item is
validated on its own; the valid ones go to Kafka grouped by partition (one
NDJSON envelope per partition, so a batch costs a handful of messages), and
the answer lists each rejected item's index and reason:

    202 {"accepted": 998, "rejected": 2, "errors": [{"index": 17, "reason": "..."}]}

Nothing is accepted unless Kafka acknowledged it: if the broker is down the
answer is 503 and the client retries the whole batch (event ids make that
safe). A body where no item is valid is 422; an oversized body 413; a wrong
or missing token 401.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from ioc.events import UTF8_BOM, DecodeError, decode_procedure_event, decode_sensor_reading
from ioc.settings import Settings
from ioc.topics import Topics
from streams.kafka import Producer

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    accepted: dict[str, int] = field(default_factory=lambda: {"procedure": 0, "sensor": 0})
    rejected: dict[str, int] = field(default_factory=lambda: {"procedure": 0, "sensor": 0})
    unavailable: int = 0


def split_body(body: bytes, content_type: str) -> list[tuple[Any, bytes]] | str:
    """(parsed item, its bytes) for each item of a body, or an error text."""
    body = body.removeprefix(UTF8_BOM)  # some Windows clients write one
    if not body.strip():
        return "empty body"
    ndjson = "ndjson" in content_type or "jsonl" in content_type
    if not ndjson:
        try:
            # orjson, as in the worker: what the edge accepts, the worker can read
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if b"\n" not in body.strip():
                return f"body is not JSON: {exc}"
            ndjson = True  # several lines: try them as NDJSON
        else:
            if isinstance(value, list):
                return [(item, _dump(item)) for item in value]
            # re-encoded on one line: the worker splits envelopes on newlines
            return [(value, _dump(value))]
    items: list[tuple[Any, bytes]] = []
    for line in body.split(b"\n"):
        line = line.strip()
        if not line:
            continue
        try:
            items.append((orjson.loads(line), line))
        except orjson.JSONDecodeError as exc:
            items.append((_NotJson(str(exc)), line))
    return items


class _NotJson:
    def __init__(self, reason: str) -> None:
        self.reason = f"not JSON: {reason}"


def _dump(item: Any) -> bytes:
    return orjson.dumps(item)


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
    settings: Settings, producer: Callable[[], Producer | None], stats: IngestStats
) -> APIRouter:
    topics = Topics(settings.topic_prefix)
    router = APIRouter(prefix="/api/v1", tags=["ingest"])

    def check_token(request: Request) -> None:
        if not settings.ingest_token:
            return
        header = request.headers.get("authorization", "")
        if header != f"Bearer {settings.ingest_token}":
            raise HTTPException(
                401, "missing or wrong ingest token (Authorization: Bearer <token>)"
            )

    async def ingest(
        request: Request,
        kind: str,
        decode: Callable[[Any, bytes], Any],
        key_of: Callable[[Any], str],
        topic: str,
    ) -> JSONResponse:
        check_token(request)
        body = await read_limited(request, settings.ingest_max_bytes)
        items = split_body(body, request.headers.get("content-type", ""))
        if isinstance(items, str):
            raise HTTPException(400, items)
        if not items:
            raise HTTPException(422, "no events in the body")
        good: list[tuple[str, bytes]] = []
        errors: list[dict[str, Any]] = []
        for index, (obj, raw) in enumerate(items):
            result = DecodeError(obj.reason, raw) if isinstance(obj, _NotJson) else decode(obj, raw)
            if isinstance(result, DecodeError):
                errors.append({"index": index, "reason": result.reason})
            else:
                good.append((key_of(result), raw))
        answer = {"accepted": len(good), "rejected": len(errors), "errors": errors}
        stats.rejected[kind] += len(errors)
        if not good:
            return JSONResponse(answer, status_code=422)
        bus = producer()
        if bus is None:
            stats.unavailable += 1
            raise HTTPException(503, "event bus not connected yet; nothing was accepted")
        try:
            await bus.send_keyed(topic, good)
        except Exception as exc:
            stats.unavailable += 1
            log.warning("ingest could not reach Kafka: %s", exc)
            raise HTTPException(503, "event bus unavailable; nothing was accepted") from exc
        stats.accepted[kind] += len(good)
        return JSONResponse(answer, status_code=202)

    @router.post("/procedure-events", status_code=202)
    async def procedure_events(request: Request) -> JSONResponse:
        return await ingest(
            request,
            "procedure",
            decode_procedure_event,
            lambda e: e.dossier_id,
            topics.procedure_events,
        )

    @router.post("/sensor-readings", status_code=202)
    async def sensor_readings(request: Request) -> JSONResponse:
        return await ingest(
            request,
            "sensor",
            decode_sensor_reading,
            lambda r: r.sensor_id,
            topics.sensor_readings,
        )

    return router
