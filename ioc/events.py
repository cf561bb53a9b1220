"""Event contracts: procedure events and sensor readings.

Decoding never raises: it returns an event or a ``DecodeError`` carrying the
reason and the raw bytes, which the caller sends to the dead-letter topic (or,
at the HTTP edge, reports back per item). Field names are the public contract;
``procedure_event_schema()`` and ``sensor_reading_schema()`` publish them as
JSON Schema.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from ioc.clock import VN_TZ, to_iso

SCHEMA_VERSION = 1

PROCEDURE_TYPES: tuple[str, ...] = (
    "received",
    "accepted",
    "rejected_at_intake",
    "in_progress",
    "supplement_requested",
    "supplement_received",
    "financial_obligation_requested",
    "paid",
    "withdrawn",
    "stopped",
    "processed",
    "result_returned",
    "result_digitized",
    "dossier_digitized",
    "apology_issued",
    "rated",
)
_TYPES = frozenset(PROCEDURE_TYPES)
CHANNELS: tuple[str, ...] = ("online", "vneid", "postal", "in_person")
ONLINE_CHANNELS = frozenset(("online", "vneid"))

SENSOR_MEASURES: dict[str, tuple[str, ...]] = {
    # µg/m³ for every pollutant, CO included (VN_AQI tables use µg/m³)
    "air_quality": ("pm25", "pm10", "o3", "no2", "so2", "co"),
    # metres above the station's gauge datum
    "water_level": ("level",),
    # vehicles counted in the reading's interval; mean speed km/h
    "traffic": ("vehicles", "speed"),
    # A-weighted equivalent level, dB(A)
    "noise": ("laeq",),
    # millimetres in the reading's interval
    "rainfall": ("rain_mm",),
}
SENSOR_KINDS: tuple[str, ...] = tuple(SENSOR_MEASURES)

MAX_ID = 128
UTF8_BOM = b"\xef\xbb\xbf"
# Event times outside these years are typing or clock errors; the working
# calendar is built only for years the holidays package can describe.
MIN_YEAR, MAX_YEAR = 2000, 2100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIRST_INSTANT = datetime(MIN_YEAR, 1, 1, tzinfo=VN_TZ).timestamp()
EVENT_YEARS_END = datetime(MAX_YEAR + 1, 1, 1, tzinfo=VN_TZ).timestamp()
# UTC offsets in use anywhere on Earth (Baker Island to Line Islands).
MIN_OFFSET, MAX_OFFSET = timedelta(hours=-12), timedelta(hours=14)
# An event is a flat object (sensor values one level deeper); anything much
# deeper is not an event, and unbounded depth costs recursion downstream.
MAX_NESTING = 8
# No sensor reading of any supported kind comes near this (CO in µg/m³ tops
# out around 1.5e5); a larger number is a unit or encoding error.
MAX_MEASURE = 1e7
MAX_ALLOTTED_DAYS = 365
MAX_ALLOTTED_HOURS = 2920
# One working minute: less is a unit error, and a time so small it rounds to
# nothing would make a dossier due at no instant at all.
MIN_ALLOTTED_HOURS = 1 / 60
MIN_ALLOTTED_DAYS = MIN_ALLOTTED_HOURS / 8


@dataclass(frozen=True, slots=True)
class DecodeError:
    reason: str
    raw: bytes
    index: int | None = None


@dataclass(slots=True)
class Receipt:
    """What a ``received`` event says about the dossier."""

    province: str
    centre: str
    agency: str
    commune: str | None
    procedure_code: str
    field: str
    channel: str
    allotted_days: float | None
    allotted_hours: float | None
    fee_required: bool
    paper_result: bool


@dataclass(slots=True)
class ProcedureEvent:
    event_id: str
    type: str
    dossier_id: str
    ts: float
    raw: bytes  # the producer's line, for dead letters
    receipt: Receipt | None = None  # ``received``
    online: bool = False  # ``paid``
    score: int | None = None  # ``rated``
    complaint: bool = False  # ``rated``
    new_due: float | None = None  # ``apology_issued``
    body: bytes | None = None  # the canonical form, made once (``stored_body``)


@dataclass(slots=True)
class SensorReading:
    event_id: str
    sensor_id: str
    area: str
    kind: str
    ts: float
    values: dict[str, float]
    raw: bytes


class _Invalid(Exception):
    pass


def _text(obj: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = obj.get(name)
    if type(value) is str and 0 < len(value) <= MAX_ID and not value.isspace():
        if _CONTROL.search(value):
            # PostgreSQL text cannot hold NUL; no identifier needs a control character
            raise _Invalid(f"field '{name}' contains a control character")
        return value
    if value is None:
        if required:
            raise _Invalid(f"missing field '{name}'")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"field '{name}' must be a non-empty string")
    raise _Invalid(f"field '{name}' is longer than {MAX_ID} characters")


def in_event_years(t: float) -> bool:
    """Whether epoch second ``t`` falls in the event years, in the IOC's zone
    (where instants are stored and read back)."""
    return _FIRST_INSTANT <= t < EVENT_YEARS_END


def event_instant(value: str, label: str) -> float:
    """Epoch seconds of an ISO 8601 time with a UTC offset, within the event
    years and the offsets zones use; otherwise ``ValueError`` with the reason,
    starting with ``label`` (``field 'ts'``). Events and REST time parameters
    share it."""
    shown = repr(value[:40])
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{label} is not ISO 8601: {shown}") from None
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError(f"{label} has no UTC offset (e.g. +07:00): {shown}")
    if not MIN_OFFSET <= offset <= MAX_OFFSET:
        raise ValueError(f"{label} has a UTC offset outside -12:00..+14:00: {shown}")
    t = dt.timestamp()
    if not in_event_years(t):
        raise ValueError(f"{label} is outside the years {MIN_YEAR}–{MAX_YEAR} (UTC+07:00): {shown}")
    return t


def _instant(obj: dict[str, Any], name: str) -> float:
    value = obj.get(name)
    if value is None:
        raise _Invalid(f"missing field '{name}'")
    if not isinstance(value, str):
        raise _Invalid(f"field '{name}' must be an ISO 8601 string with an offset")
    try:
        return event_instant(value, f"field '{name}'")
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _flag(obj: dict[str, Any], name: str, default: bool | None = None) -> bool:
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise _Invalid(f"field '{name}' must be true or false")
    return value


def _number(obj: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise _Invalid(f"field '{name}' must be a number")
    if not low <= value <= high:
        raise _Invalid(f"field '{name}' must be in [{low:.6g}, {high}]")
    return float(value)


def _code(text: str, digits: int) -> bool:
    """An administrative code: exactly ``digits`` ASCII digits."""
    return len(text) == digits and text.isascii() and text.isdigit()


def _finite(value: float) -> bool:
    # math.isfinite raises OverflowError on integers beyond float range
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def nesting(obj: Any, limit: int = MAX_NESTING) -> int:
    """How deep ``obj`` nests arrays and objects, counting up to ``limit + 1``
    at most (so a hostile value costs no more than a legitimate one)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _head(obj: Any) -> dict[str, Any]:
    if type(obj) is not dict:
        raise _Invalid("event must be a JSON object")
    if nesting(obj) > MAX_NESTING:
        raise _Invalid(f"event nests arrays or objects deeper than {MAX_NESTING} levels")
    schema = obj.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise _Invalid(f"unsupported or missing 'schema' (expected {SCHEMA_VERSION})")
    return obj


def decode_procedure_event(obj: Any, raw: bytes) -> ProcedureEvent | DecodeError:
    """Validate one parsed JSON value as a procedure event."""
    try:
        obj = _head(obj)
        kind = obj.get("type")
        if kind is None:
            raise _Invalid("missing 'type'")
        if type(kind) is not str or kind not in _TYPES:
            raise _Invalid(f"unknown 'type' {str(kind)[:40]!r}")
        event = ProcedureEvent(
            _text(obj, "event_id"),  # type: ignore[arg-type]
            kind,
            _text(obj, "dossier_id"),  # type: ignore[arg-type]
            _instant(obj, "ts"),
            raw,
        )
        if kind == "received":
            event.receipt = _receipt(obj)
        elif kind == "paid":
            event.online = _flag(obj, "online")
        elif kind == "rated":
            _rating_fields(obj, event)
        elif kind == "apology_issued":
            event.new_due = _instant(obj, "new_due")
        return event
    except _Invalid as exc:
        return DecodeError(str(exc), raw)


def _receipt(obj: dict[str, Any]) -> Receipt:
    province = _text(obj, "province")
    if province is None or not _code(province, 2):
        raise _Invalid("field 'province' must be a 2-digit code (Decision 19/2025/QĐ-TTg)")
    commune = _text(obj, "commune", required=False)
    if commune is not None and not _code(commune, 5):
        raise _Invalid("field 'commune' must be a 5-digit code (Decision 19/2025/QĐ-TTg)")
    channel = obj.get("channel")
    if type(channel) is not str or channel not in CHANNELS:
        raise _Invalid(f"field 'channel' must be one of {', '.join(CHANNELS)}")
    days = _number(obj, "allotted_working_days", MIN_ALLOTTED_DAYS, MAX_ALLOTTED_DAYS)
    hours = _number(obj, "allotted_working_hours", MIN_ALLOTTED_HOURS, MAX_ALLOTTED_HOURS)
    if (days is None) == (hours is None):
        raise _Invalid("give exactly one of 'allotted_working_days' and 'allotted_working_hours'")
    return Receipt(
        province,
        _text(obj, "centre"),  # type: ignore[arg-type]
        _text(obj, "agency"),  # type: ignore[arg-type]
        commune,
        _text(obj, "procedure_code"),  # type: ignore[arg-type]
        _text(obj, "field"),  # type: ignore[arg-type]
        channel,
        days,
        hours,
        _flag(obj, "fee_required"),
        _flag(obj, "paper_result", False),
    )


def _rating_fields(obj: dict[str, Any], event: ProcedureEvent) -> None:
    score = obj.get("score")
    complaint = obj.get("complaint", False)
    if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
        raise _Invalid("field 'score' must be an integer from 1 to 5")
    if not isinstance(complaint, bool):
        raise _Invalid("field 'complaint' must be true or false")
    if score is None and not complaint:
        raise _Invalid("a 'rated' event needs a 'score' or 'complaint': true")
    event.score = score
    event.complaint = complaint


def decode_sensor_reading(obj: Any, raw: bytes) -> SensorReading | DecodeError:
    """Validate one parsed JSON value as a sensor reading."""
    try:
        obj = _head(obj)
        kind = obj.get("kind")
        if type(kind) is not str or kind not in SENSOR_MEASURES:
            raise _Invalid(f"field 'kind' must be one of {', '.join(SENSOR_KINDS)}")
        values = obj.get("values")
        if not isinstance(values, dict) or not values:
            raise _Invalid("field 'values' must be a non-empty object of numbers")
        known = SENSOR_MEASURES[kind]
        clean: dict[str, float] = {}
        for name, value in values.items():
            if name not in known:
                raise _Invalid(f"unknown measure {name!r} for {kind} (known: {', '.join(known)})")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _Invalid(f"measure {name!r} must be a number")
            if not _finite(value):
                raise _Invalid(f"measure {name!r} must be finite")
            if abs(value) > MAX_MEASURE:
                raise _Invalid(f"measure {name!r} is beyond ±{MAX_MEASURE:g}: not a reading")
            clean[name] = float(value)
        return SensorReading(
            event_id=_text(obj, "event_id"),  # type: ignore[arg-type]
            sensor_id=_text(obj, "sensor_id"),  # type: ignore[arg-type]
            area=_text(obj, "area"),  # type: ignore[arg-type]
            kind=kind,
            ts=_instant(obj, "ts"),
            values=clean,
            raw=raw,
        )
    except _Invalid as exc:
        return DecodeError(str(exc), raw)


def canonical_body(ev: ProcedureEvent) -> bytes:
    """The event as stored: the contract's fields with the values the decoder
    produced (the instant in the IOC's zone, numbers as numbers), never the
    producer's text. Whatever the decoder accepts, this is storable JSON."""
    body: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "event_id": ev.event_id,
        "type": ev.type,
        "dossier_id": ev.dossier_id,
        "ts": to_iso(ev.ts),
    }
    r = ev.receipt
    if r is not None:
        body.update(
            province=r.province,
            centre=r.centre,
            agency=r.agency,
            procedure_code=r.procedure_code,
            field=r.field,
            channel=r.channel,
            fee_required=r.fee_required,
            paper_result=r.paper_result,
        )
        if r.commune is not None:
            body["commune"] = r.commune
        if r.allotted_days is not None:
            body["allotted_working_days"] = r.allotted_days
        else:
            body["allotted_working_hours"] = r.allotted_hours
    elif ev.type == "paid":
        body["online"] = ev.online
    elif ev.type == "rated":
        if ev.score is not None:
            body["score"] = ev.score
        body["complaint"] = ev.complaint
    elif ev.type == "apology_issued" and ev.new_due is not None:
        body["new_due"] = to_iso(ev.new_due)
    return orjson.dumps(body)


def stored_body(ev: ProcedureEvent) -> bytes:
    """``canonical_body(ev)``, computed once per event."""
    if ev.body is None:
        ev.body = canonical_body(ev)
    return ev.body


def digest(canonical: bytes) -> int:
    """A signed 64-bit hash of an event's canonical body: two events with one
    event id are the same event when their digests are equal."""
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big", signed=True)


def parse_json(raw: bytes) -> tuple[Any, str | None]:
    """Parse bytes as JSON, with the worker's parser (no NaN, no lone
    surrogates, UTF-8 only); the error text when it is not."""
    try:
        return orjson.loads(raw.removeprefix(UTF8_BOM)), None
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None, "not UTF-8"
        return None, f"not JSON: {exc}"


_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID,
    "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
}
_TS = {"type": "string", "format": "date-time", "description": "ISO 8601 with a UTC offset"}


def procedure_event_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a procedure event."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ioc-backend.example/schemas/procedure-event.schema.json",
        "title": "Procedure event",
        "description": "One step in the life of an administrative-procedure dossier. "
        "Keyed by dossier_id; idempotent on event_id.",
        "type": "object",
        "required": ["schema", "event_id", "type", "dossier_id", "ts"],
        "properties": {
            "schema": {"const": SCHEMA_VERSION},
            "event_id": _ID,
            "type": {"enum": list(PROCEDURE_TYPES)},
            "dossier_id": _ID,
            "ts": _TS,
            "province": {"type": "string", "pattern": "^[0-9]{2}$"},
            "centre": _ID,
            "agency": _ID,
            "commune": {"type": "string", "pattern": "^[0-9]{5}$"},
            "procedure_code": _ID,
            "field": _ID,
            "channel": {"enum": list(CHANNELS)},
            "allotted_working_days": {
                "type": "number",
                "minimum": MIN_ALLOTTED_DAYS,
                "maximum": MAX_ALLOTTED_DAYS,
            },
            "allotted_working_hours": {
                "type": "number",
                "minimum": MIN_ALLOTTED_HOURS,
                "maximum": MAX_ALLOTTED_HOURS,
            },
            "fee_required": {"type": "boolean"},
            "paper_result": {"type": "boolean"},
            "online": {"type": "boolean", "description": "paid: paid online"},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "complaint": {"type": "boolean"},
            "new_due": {**_TS, "description": "apology_issued: the new appointment time"},
        },
        "allOf": [
            {
                "if": {"properties": {"type": {"const": "received"}}},
                "then": {
                    "required": [
                        "province",
                        "centre",
                        "agency",
                        "procedure_code",
                        "field",
                        "channel",
                        "fee_required",
                    ],
                    "oneOf": [
                        {"required": ["allotted_working_days"]},
                        {"required": ["allotted_working_hours"]},
                    ],
                },
            },
            {
                "if": {"properties": {"type": {"const": "paid"}}},
                "then": {"required": ["online"]},
            },
            {
                "if": {"properties": {"type": {"const": "rated"}}},
                "then": {
                    "anyOf": [
                        {"required": ["score"]},
                        {"required": ["complaint"], "properties": {"complaint": {"const": True}}},
                    ]
                },
            },
            {
                "if": {"properties": {"type": {"const": "apology_issued"}}},
                "then": {"required": ["new_due"]},
            },
        ],
    }


def sensor_reading_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a sensor reading as carried on Kafka."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ioc-backend.example/schemas/sensor-reading.schema.json",
        "title": "Sensor reading",
        "type": "object",
        "required": ["schema", "event_id", "sensor_id", "area", "kind", "ts", "values"],
        "properties": {
            "schema": {"const": SCHEMA_VERSION},
            "event_id": _ID,
            "sensor_id": _ID,
            "area": {**_ID, "description": "a commune code or a configured area id"},
            "kind": {"enum": list(SENSOR_KINDS)},
            "ts": _TS,
            "values": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "number"},
                "description": "; ".join(
                    f"{k}: {', '.join(v)}" for k, v in SENSOR_MEASURES.items()
                ),
            },
        },
    }


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
# names a reason may quote that are part of the contract, not of the input
_CONTRACT_NAMES = frozenset(
    [*procedure_event_schema()["properties"], *sensor_reading_schema()["properties"], "value"]
    + [m for measures in SENSOR_MEASURES.values() for m in measures]
)


def reason_class(reason: str) -> str:
    """A refusal reason as a bounded label for metrics: what follows a colon
    is dropped and quoted values are replaced by ``…``, except the contract's
    own field and measure names (``field 'ts' is not ISO 8601: '…'`` ->
    ``field 'ts' is not ISO 8601``)."""

    def keep_names(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        return m.group(0) if name in _CONTRACT_NAMES else "…"

    return _QUOTED.sub(keep_names, reason.split(": ", 1)[0])[:80]
