"""REST reads: KPIs, their time series, the 766 scorecard and one dossier.

Every parameter is checked before anything is read. Instants must carry a
UTC offset in use on Earth and fall in the years events can carry
(``ioc.events.MIN_YEAR``..``MAX_YEAR``), the same rules as for event times:
anything else is 400 with the reason, at once, and never makes the working
calendar grow. Read with the read token (``ui_feed.auth``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ, to_iso
from ioc.events import (
    MAX_ID,
    MAX_YEAR,
    MIN_YEAR,
    DecodeError,
    decode_procedure_event,
    event_instant,
    parse_json,
)
from ioc.feed import kpi_view
from ioc.kpis import WINDOWS, derive
from ioc.registry import SCOPE_KINDS, Registry
from ioc.scorecard import Scorecard
from ioc.settings import Settings
from streams.dossiers import Deltas, DossierStore
from streams.scopes import ScopeIndex
from streams.sources.http_ingest import problem_responses
from ui_feed.queries import BUCKETS, MAX_BUCKETS, Reads

log = logging.getLogger(__name__)

# Parameters as OpenAPI shows them, with examples (the checks are below).
SCOPE = Query(
    "province",
    description="province, or commune:<code>, agency:<id>, centre:<id>, procedure:<code>, "
    "field:<id>, group:<id>",
    examples=["commune:00166"],
)
WINDOW = f"one of {', '.join(WINDOWS)}"
INSTANT = f"ISO 8601 with a UTC offset (-12:00..+14:00), in the years {MIN_YEAR}–{MAX_YEAR}"
EXAMPLE_INSTANT = "2026-03-16T09:00:00+07:00"


def date_time(schema: dict[str, Any]) -> None:
    """An optional instant in OpenAPI: a date-time string (checked by
    ``parse_time``, not by FastAPI)."""
    schema.pop("anyOf", None)
    schema.update(type="string", format="date-time")


TIME_FIELDS = ("at", "received", "clock_start", "due", "finished", "new_due")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCOPES = (
    "scope must be province, or one of commune:<code>, agency:<id>, centre:<id>, "
    "procedure:<code>, field:<id>, group:<id>"
)


def parse_scope(scope: str) -> str:
    kind, colon, key = scope.partition(":")
    if kind not in SCOPE_KINDS:
        raise HTTPException(400, _SCOPES)
    if kind == "province" and colon:  # "province:" named no scope, and read as one
        raise HTTPException(400, "scope province takes no id: write scope=province")
    if kind != "province" and not key:
        raise HTTPException(400, f"scope {kind} needs an id: {kind}:<id>")
    if len(key) > MAX_ID or _CONTROL.search(key):
        raise HTTPException(400, f"a scope's id has 1–{MAX_ID} characters, none of them control")
    return scope


def parse_window(window: str | None) -> list[str]:
    if window is None:
        return list(WINDOWS)
    if window not in WINDOWS:
        raise HTTPException(400, f"window must be one of {', '.join(WINDOWS)}")
    return [window]


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds of an ISO 8601 parameter, bounded like event times."""
    if value is None:
        return None
    try:
        return event_instant(value, name)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def cover_event_years(calendar: WorkingCalendar) -> None:
    """Build the calendar's table for every year a read may ask about
    (about 0.7 s): done before serving, no read extends it on the event loop."""
    calendar.is_working_time(datetime(MIN_YEAR, 1, 1, tzinfo=VN_TZ).timestamp())
    calendar.is_working_time(datetime(MAX_YEAR + 1, 12, 31, tzinfo=VN_TZ).timestamp())


def iso_fields(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key in TIME_FIELDS:
        if isinstance(out.get(key), int | float):
            out[key] = _iso(out[key])
    if "paused" in out:
        out["paused"] = [[_iso(a), None if b is None else _iso(b)] for a, b in out["paused"]]
    return out


def _iso(t: float) -> str | None:
    """An instant as ISO 8601; None for one that never comes."""
    return to_iso(t) if math.isfinite(t) else None


def describe_dossier(
    events: list[bytes], registry: Registry, calendar: WorkingCalendar, share: float, at: float
) -> dict[str, Any] | None:
    """Fold a dossier's stored events with the worker's own code. A stored
    body this API cannot read (stored before the decoder bounded nesting, or
    edited by hand) is skipped with a warning, never a failed read."""
    store = DossierStore(calendar, registry, ScopeIndex(registry), share)
    for raw in events:
        obj, error = parse_json(raw)
        ev = DecodeError(error, raw) if error else decode_procedure_event(obj, raw)
        if isinstance(ev, DecodeError):
            log.warning("skipping a stored event the API cannot read: %s", ev.reason)
            continue
        store.apply(ev, at, Deltas())
    if not len(store):
        return None
    row = next(iter(store.rows.values()))
    return store.describe(row, at)


def rest_router(
    settings: Settings,
    registry: Registry,
    calendar: WorkingCalendar,
    scorecard: Scorecard,
    reads: Callable[[], Reads],
    now: Callable[[], Awaitable[float]],
    reader: Callable[..., Awaitable[None]],
) -> APIRouter:
    """The ``/api/v1`` reads; ``reader`` is the read-token dependency and
    ``now`` the pipeline's time (the default instant of a read)."""
    router = APIRouter(prefix="/api/v1", tags=["reads"], dependencies=[Depends(reader)])
    errors = problem_responses(400, 401, 503)
    found_errors = problem_responses(400, 401, 404, 503)
    minute_kinds = set(settings.minute_kinds)

    async def latest(key: str) -> tuple[float, dict[str, Any]]:
        found = (await reads().latest(key)).get(key)
        if found is None:
            raise HTTPException(404, f"no KPIs for {key} yet")
        return found

    @router.get("/kpis", responses=found_errors)
    async def kpis(
        scope: str = SCOPE,
        window: str | None = Query(None, description=f"{WINDOW}; all four if omitted"),
    ) -> dict[str, Any]:
        """The KPIs of a scope, for one window or all four."""
        windows = parse_window(window)
        key = parse_scope(scope)
        at, counters = await latest(key)
        view = kpi_view(key, registry.label(key), counters, at)
        return {
            "scope": key,
            "label": view["label"],
            "at": to_iso(at),
            "windows": {w: view["windows"][w] for w in windows},
        }

    @router.get("/kpis/series", responses=errors)
    async def series(
        scope: str = SCOPE,
        bucket: str = Query("1h", description=f"one of {', '.join(BUCKETS)}"),
        start: str | None = Query(
            None,
            alias="from",
            description=f"{INSTANT}; default: 24 h before `to`",
            examples=[EXAMPLE_INSTANT],
            json_schema_extra=date_time,
        ),
        end: str | None = Query(
            None,
            alias="to",
            description=f"{INSTANT}; default: the pipeline's time",
            examples=["2026-03-16T17:00:00+07:00"],
            json_schema_extra=date_time,
        ),
    ) -> dict[str, Any]:
        """The KPIs of a scope per bucket of [from, to)."""
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
        t_end = parse_time(end, "to")
        t_start = parse_time(start, "from")
        if t_end is None:
            t_end = await now()
        if t_start is None:
            t_start = t_end - 24 * 3600
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

    @router.get("/scorecard", responses=found_errors)
    async def scorecard_view(
        scope: str = SCOPE, window: str = Query("month", description=WINDOW)
    ) -> dict[str, Any]:
        """The 766 points that dossier events determine, for one unit and window."""
        (w,) = parse_window(window)
        key = parse_scope(scope)
        at, counters = await latest(key)
        kpis = kpi_view(key, registry.label(key), counters, at)["windows"][w]
        return {
            "scope": key,
            "label": registry.label(key),
            "window": w,
            "at": to_iso(at),
            "index": "Decision 766/QĐ-TTg service index (the part dossier events determine)",
            **scorecard.score(kpis),
        }

    # ``:path``: a dossier id may hold "/" (plain or as %2F), as producers send it
    @router.get("/dossiers/{dossier_id:path}", responses=found_errors)
    async def dossier(
        dossier_id: str = Path(examples=["000.00.24.H22-260316-0001"]),
        at: str | None = Query(
            None,
            description=f"{INSTANT}; default: the pipeline's time",
            examples=[EXAMPLE_INSTANT],
            json_schema_extra=date_time,
        ),
    ) -> dict[str, Any]:
        """One dossier's state at ``at`` (default: the pipeline's time)."""
        when = parse_time(at, "at")
        if when is None:
            when = await now()
        # no stored event has such an id (the decoder refuses it), and
        # PostgreSQL text cannot hold NUL
        unknown = len(dossier_id) > MAX_ID or _CONTROL.search(dossier_id)
        events = [] if unknown else await reads().dossier_events(dossier_id)
        described = describe_dossier(events, registry, calendar, settings.at_risk_share, when)
        if described is None:
            raise HTTPException(404, f"no dossier {dossier_id[:MAX_ID]!r}")
        return iso_fields(described)

    return router
