"""``/api/v1/alerts``: the alerts the alert stage stores, and operators'
acknowledge/resolve.

Reads take the read token. An action takes the operator token (a read
token is refused with 403): it is stored in ``alert_actions`` for the
stage that owns the alert's partition, the alerts' one writer, which
applies it within about a second. The answer waits up to
``ACTION_WAIT`` s for that: 200 with the alert as it now is, 409 if the
engine refused it, or 202 with the action's id if it is not applied yet.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from alerts.records import ALERT_COLUMNS, TIME_COLUMNS, public_alert
from alerts.rules import Severity
from ioc.clock import to_iso
from streams.sources.http_ingest import Problem, problem_responses
from ui_feed.queries import Reads
from ui_feed.rest import EXAMPLE_INSTANT, INSTANT, date_time, parse_time

ACTION_WAIT = 3.0
MAX_LIMIT = 500
STATES = ("open", "acknowledged", "resolved")
SEVERITIES = tuple(s.value for s in Severity)
UNIT_KINDS = ("commune", "agency", "centre", "area", "dossier")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COMMENT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TEXT_MAX = 100

_COLUMNS = (
    "id, rule, subject, part, state, severity, extract(epoch FROM opened_at), "
    "extract(epoch FROM last_seen), count, peak, step, acknowledged_by, "
    "extract(epoch FROM acknowledged_at), resolved_by, extract(epoch FROM resolved_at), "
    "resolved_how, comment, units, extract(epoch FROM updated_at)"
)
_NAMES = (*ALERT_COLUMNS, "updated_at")  # the order of _COLUMNS


class ActionBody(BaseModel):
    who: str = Field(
        min_length=1, max_length=200, description="the operator, as shown in history (1..100)"
    )
    comment: str = Field("", max_length=1000)


class ActionPending(BaseModel):
    action_id: int
    status: str = "pending"


def _alert(row: Any, titles: Mapping[str, str]) -> dict[str, Any]:
    raw = dict(zip(_NAMES, row, strict=True))
    for name in (*TIME_COLUMNS, "updated_at"):
        if raw[name] is not None:
            raw[name] = float(raw[name])
    out = public_alert({k: v for k, v in raw.items() if k != "updated_at"})
    out["updated_at"] = _iso(raw["updated_at"])
    out["title"] = titles.get(out["rule"], "")
    return out


def _visible(text: str) -> bool:
    """Whether ``text`` shows anything: not only spaces and format
    characters (zero-width spaces, joiners, direction marks)."""
    return any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text)


def _text(value: str | None, name: str) -> str | None:
    if value is not None and (len(value) > _TEXT_MAX or _CONTROL.search(value)):
        raise HTTPException(400, f"{name} has at most {_TEXT_MAX} characters, none control")
    return value


def _unit(scope: str | None) -> dict[str, str] | None:
    """The ``units`` containment a scope filter means (None: province, all)."""
    if scope is None or scope == "province":
        return None
    kind, _, key = scope.partition(":")
    if kind not in UNIT_KINDS or not key:
        raise HTTPException(400, f"scope must be province or <kind>:<id>, kind one of {UNIT_KINDS}")
    _text(scope, "scope")
    return {kind: scope}


def _bounded(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    # ASCII digits only ("²" and "١٢" are digits to str.isdigit), and short
    ok = value.isascii() and value.isdigit() and len(value) <= len(str(high))
    if not ok or not low <= int(value) <= high:
        raise HTTPException(400, f"{name} must be an integer in {low}..{high}")
    return int(value)


def alerts_router(
    reads: Callable[[], Reads],
    reader: Callable[..., Awaitable[None]],
    operator: Callable[..., Awaitable[None]],
    titles: Mapping[str, str],
) -> APIRouter:
    """``titles``: each rule's title, shown with its alerts."""
    router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
    time_param: dict[str, Any] = {"examples": [EXAMPLE_INSTANT], "json_schema_extra": date_time}

    async def fetch(sql: str, params: Any) -> list[Any]:
        async with reads().pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchall()

    async def one(alert_id: str) -> dict[str, Any] | None:
        if len(alert_id) > _TEXT_MAX or _CONTROL.search(alert_id):
            return None  # no stored id is like that, and text cannot hold NUL
        rows = await fetch(f"SELECT {_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))  # noqa: S608
        return _alert(rows[0], titles) if rows else None

    @router.get("", dependencies=[Depends(reader)], responses=problem_responses(400, 401, 503))
    async def list_alerts(
        state: str | None = Query(
            None,
            description=f"one of {', '.join(STATES)}, or several joined by commas",
            examples=["open,acknowledged"],
        ),
        severity: str | None = Query(None, examples=["major"]),
        rule: str | None = Query(None, examples=["dossier-overdue"]),
        scope: str | None = Query(
            None, description="a unit the alert concerns", examples=["commune:00166"]
        ),
        start: str | None = Query(
            None, alias="from", description=f"opened at or after; {INSTANT}", **time_param
        ),
        end: str | None = Query(
            None, alias="to", description=f"opened before; {INSTANT}", **time_param
        ),
        limit: str | None = Query(None, description=f"1..{MAX_LIMIT}, default 100"),
        offset: str | None = Query(None, description="alerts to skip, default 0"),
    ) -> dict[str, Any]:
        """Alerts, newest opened first, a page at a time."""
        where: list[str] = ["true"]
        params: list[Any] = []
        if state is not None:
            wanted = state.split(",")
            if not set(wanted) <= set(STATES):
                raise HTTPException(400, f"state must be among {', '.join(STATES)}, by commas")
            where.append("state = ANY(%s)")
            params.append(wanted)
        if severity is not None and severity not in SEVERITIES:
            raise HTTPException(400, f"severity must be one of {', '.join(SEVERITIES)}")
        for column, value in (("severity", severity), ("rule", rule)):
            if _text(value, column) is not None:
                where.append(f"{column} = %s")
                params.append(value)
        unit = _unit(scope)
        if unit is not None:
            from psycopg.types.json import Jsonb

            where.append("units @> %s")
            params.append(Jsonb(unit))
        for op, value, name in ((">=", start, "from"), ("<", end, "to")):
            t = parse_time(value, name)
            if t is not None:
                where.append(f"opened_at {op} to_timestamp(%s)")
                params.append(t)
        size = _bounded(limit, "limit", 100, 1, MAX_LIMIT)
        skip = _bounded(offset, "offset", 0, 0, 10_000_000)
        rows = await fetch(
            f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY opened_at DESC, id LIMIT %s OFFSET %s",
            (*params, size + 1, skip),
        )
        more = len(rows) > size
        return {
            "alerts": [_alert(r, titles) for r in rows[:size]],
            "next_offset": skip + size if more else None,
        }

    @router.get(
        "/{alert_id}", dependencies=[Depends(reader)], responses=problem_responses(401, 404, 503)
    )
    async def get_alert(alert_id: str = Path(examples=["al-0123456789abcdef"])) -> dict[str, Any]:
        """One alert, its history and its deliveries (with their attempts)."""
        alert = await one(alert_id)
        if alert is None:
            raise HTTPException(404, "no such alert")
        history = await fetch(
            "SELECT seq, extract(epoch FROM at), change, detail FROM alert_history "
            "WHERE alert_id = %s ORDER BY seq",
            (alert_id,),
        )
        deliveries = await fetch(
            "SELECT key, step, recipient, channel, address, state, attempts, "
            "extract(epoch FROM decided_at), extract(epoch FROM next_attempt_at), last_error, "
            "extract(epoch FROM sent_at) FROM alert_deliveries WHERE alert_id = %s "
            "ORDER BY decided_at, key",
            (alert_id,),
        )
        alert["history"] = [
            {"seq": s, "at": _iso(at), "change": c, "detail": d} for s, at, c, d in history
        ]
        alert["deliveries"] = [
            {
                "key": d[0],
                "step": d[1],
                "recipient": d[2],
                "channel": d[3],
                "address": d[4],
                "state": d[5],
                "attempts": d[6],
                "decided_at": _iso(d[7]),
                "next_attempt_at": _iso(d[8]),
                "last_error": d[9],
                "sent_at": _iso(d[10]),
            }
            for d in deliveries
        ]
        return alert

    action_responses: dict[int | str, dict[str, Any]] = {
        **problem_responses(400, 401, 404, 503),
        202: {"model": ActionPending, "description": "Stored, not applied yet: see the alert"},
        403: {"model": Problem, "description": "Not the operator token, or operator is off"},
        409: {"model": Problem, "description": "The alert is resolved, or the engine refused"},
    }
    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ActionBody.model_json_schema()}},
        }
    }

    async def act(kind: str, alert_id: str, request: Request) -> Any:
        try:
            body = ActionBody.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(400, f"body: {exc.errors()[0]['msg']}") from None
        if _CONTROL.search(body.who):
            raise HTTPException(400, "who has no control characters")
        if _COMMENT_CONTROL.search(body.comment):
            raise HTTPException(400, "comment has no control characters but tab and newline")
        who = body.who.strip()
        if not _visible(who):  # the history must say who acted
            raise HTTPException(400, "who names the operator: it is blank")
        if len(who) > _TEXT_MAX:
            raise HTTPException(400, f"who has at most {_TEXT_MAX} characters")
        alert = await one(alert_id)
        if alert is None:
            raise HTTPException(404, "no such alert")
        if alert["state"] == "resolved":
            raise HTTPException(409, "the alert is already resolved")
        async with reads().pool.connection() as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO alert_actions (alert_id, part, action, who, comment) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (alert_id, alert["part"], kind, who, body.comment),
                )
            ).fetchone()
        assert row is not None
        action_id = int(row[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACTION_WAIT
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            done = await fetch(
                "SELECT outcome FROM alert_actions WHERE id = %s AND applied_at IS NOT NULL",
                (action_id,),
            )
            if done:
                outcome = str(done[0][0] or "")
                if outcome.startswith("refused"):
                    raise HTTPException(409, outcome)
                return await one(alert_id)
        return JSONResponse(ActionPending(action_id=action_id).model_dump(), status_code=202)

    @router.post(
        "/{alert_id}/ack",
        dependencies=[Depends(operator)],
        responses=action_responses,
        openapi_extra=body_schema,
    )
    async def acknowledge(
        request: Request, alert_id: str = Path(examples=["al-0123456789abcdef"])
    ) -> dict[str, Any]:
        """Acknowledge an open alert: its escalation stops."""
        return await act("ack", alert_id, request)  # type: ignore[no-any-return]

    @router.post(
        "/{alert_id}/resolve",
        dependencies=[Depends(operator)],
        responses=action_responses,
        openapi_extra=body_schema,
    )
    async def resolve(
        request: Request, alert_id: str = Path(examples=["al-0123456789abcdef"])
    ) -> dict[str, Any]:
        """Resolve an open or acknowledged alert."""
        return await act("resolve", alert_id, request)  # type: ignore[no-any-return]

    return router


def _iso(t: Any) -> str | None:
    return None if t is None else to_iso(float(t))
