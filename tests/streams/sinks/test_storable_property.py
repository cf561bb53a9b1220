"""Whatever the edge accepts, the sink can store: generated timestamps, ids
and values go through the edge's parser and the decoder, and every one
accepted is written by the real sink to the real database, which keeps the
instant the decoder produced."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ioc.clock import EventTimeClock
from ioc.events import (
    SENSOR_MEASURES,
    ProcedureEvent,
    SensorReading,
    decode_procedure_event,
    decode_sensor_reading,
    parse_json,
)
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from streams.sinks.schema import migrate
from streams.sinks.sensor_sink import SensorSink
from tests.streams.helpers import RECEIPT, world

pytestmark = pytest.mark.integration
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SPECS = ("hours", "minutes", "seconds", "milliseconds", "microseconds")


@st.composite
def iso_texts(draw: st.DrawFn) -> str:
    """ISO 8601 in the shapes producers write, with offsets PostgreSQL
    refuses among them, and now and then any text at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40))
    naive = draw(
        st.datetimes(datetime(2000, 1, 2), datetime(2100, 12, 30))
        | st.datetimes(datetime(1990, 1, 1), datetime(2110, 12, 31))
    )
    # offsets of real zones mostly; all those Python reads now and then
    offset = timedelta(
        seconds=draw(st.integers(-12 * 3600, 14 * 3600) | st.integers(-86_340, 86_340))
    )
    if draw(st.booleans()):
        offset = timedelta(minutes=offset // timedelta(minutes=1))
    aware = naive.replace(tzinfo=timezone(offset))
    text = aware.isoformat(sep=draw(st.sampled_from("T ")), timespec=draw(st.sampled_from(SPECS)))
    if offset == timedelta(0) and draw(st.booleans()):
        text = text.rsplit("+", 1)[0] + "Z"
    if draw(st.integers(0, 4)) == 0:
        text = aware.strftime("%Y%m%dT%H%M%S%z")
    return text


# any text now and then; mostly text without control characters, which ids may hold
identifiers = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=128
) | st.text(min_size=1, max_size=130)


def accepted(obj: dict[str, Any], decode: Any) -> Any:
    """The event as the edge and the worker see it, or None if refused."""
    raw = json.dumps(obj).encode()  # escapes what UTF-8 cannot carry, as clients do
    parsed, error = parse_json(raw)
    if error is not None:
        return None
    result = decode(parsed, raw)
    return result if isinstance(result, ProcedureEvent | SensorReading) else None


def stored_instants(url: str, table: str, column: str) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT event_id, extract(epoch FROM {column}) FROM {table}"
        ).fetchall()
    return {r[0]: float(r[1]) for r in rows}


@PROPERTY
@given(
    ts=iso_texts(),
    new_due=iso_texts(),
    event_id=identifiers,
    dossier_id=identifiers,
    agency=identifiers,
    days=st.floats(min_value=0.1, max_value=365) | st.floats(-1, 400) | st.just(float("nan")),
)
def test_accepted_procedure_events_are_stored(
    database_url: str,
    ts: str,
    new_due: str,
    event_id: str,
    dossier_id: str,
    agency: str,
    days: float,
) -> None:
    n = next(COUNTER)
    base = {"schema": 1, "event_id": f"{n}-{event_id}", "dossier_id": dossier_id, "ts": ts}
    events = [
        accepted({**RECEIPT, **base, "type": "received", "agency": agency,
                  "allotted_working_days": days}, decode_procedure_event),
        accepted({**base, "event_id": f"{n}-a-{event_id}", "type": "apology_issued",
                  "new_due": new_due}, decode_procedure_event),
    ]  # fmt: skip
    events = [e for e in events if e is not None]
    event(f"{len(events)} of 2 accepted")
    if not events:
        return
    registry, calendar = world()
    proc = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), 0.0)
    proc.apply(events, 0.0, EventTimeClock())
    drained = proc.drain()
    write(database_url, lambda sink: sink.write(drained))
    instants = stored_instants(database_url, "procedure_events", "ts")
    for seq, ev in drained.raw:
        assert instants[ev.event_id] == pytest.approx(ev.ts, abs=1e-6), (seq, ev)


@PROPERTY
@given(
    ts=iso_texts(),
    sensor_id=identifiers,
    area=identifiers,
    values=st.dictionaries(
        st.sampled_from(SENSOR_MEASURES["air_quality"]),
        st.floats(-1e7, 1e7) | st.floats() | st.integers(-(2**70), 2**70),
        min_size=1,
    ),
)
def test_accepted_sensor_readings_are_stored(
    database_url: str, ts: str, sensor_id: str, area: str, values: dict[str, float]
) -> None:
    n = next(COUNTER)
    obj = {
        "schema": 1,
        "event_id": f"{n}",
        # one reading per sensor and instant is stored: a sensor of its own
        "sensor_id": f"{n}-{sensor_id}"[:128],
        "area": area,
        "kind": "air_quality",
        "ts": ts,
        "values": values,
    }
    reading = accepted(obj, decode_sensor_reading)
    event("accepted" if reading else "refused")
    if reading is None:
        return
    write(database_url, lambda sink: sink.write_readings([reading]))
    assert stored_instants(database_url, "sensor_readings", "ts")[reading.event_id] == (
        pytest.approx(reading.ts, abs=1e-6)
    )


COUNTER = itertools.count()
_MIGRATED: set[str] = set()


def keep_every_reading(url: str) -> None:
    """On TimescaleDB, no retention job: it drops readings older than two
    years whenever it runs, and the examples go back to year 1."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            conn.execute("SELECT remove_retention_policy('sensor_readings', if_exists => TRUE)")


def write(url: str, action: Any) -> None:
    if url not in _MIGRATED:
        migrate(url)
        keep_every_reading(url)
        _MIGRATED.add(url)

    async def run() -> None:
        sink = SensorSink(url)
        await sink.connect()
        try:
            await action(sink)
            assert sink.diverted == 0, "the database refused what the decoder accepted"
        finally:
            await sink.close()

    asyncio.run(run())
