"""The messages on the updates topic: KPI updates built from pre-encoded
scope counters and sensor updates decode to what was encoded; a bad message
is refused with the field named."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioc.kpis import FLOWS, LEVELS, WINDOWS
from ioc.updates import (
    KpiUpdate,
    LatestReading,
    Trace,
    decode_kpi_update,
    decode_sensor_update,
    decode_update,
    encode_kpi_update,
    encode_sensor_update,
)

T = 1_773_626_400.0
TRACE = Trace(applied=T + 0.012, committed=T + 0.031, published=T + 0.032)


def zero() -> dict[str, Any]:
    return {"flows": {w: [0] * len(FLOWS) for w in WINDOWS}, "levels": [0] * len(LEVELS)}


def encode(update: KpiUpdate) -> bytes:
    """As the worker does: each scope's counters encoded once, then spliced."""
    assert update.trace is not None
    scopes = {k: orjson.dumps(v).decode() for k, v in update.scopes.items()}
    return encode_kpi_update(update.part, update.at, scopes, update.trace, update.edge)


counts = st.integers(min_value=-(2**53), max_value=2**53)
counters = st.fixed_dictionaries(
    {
        "flows": st.fixed_dictionaries(
            {w: st.lists(counts, min_size=len(FLOWS), max_size=len(FLOWS)) for w in WINDOWS}
        ),
        "levels": st.lists(counts, min_size=len(LEVELS), max_size=len(LEVELS)),
    }
)
instants = st.floats(min_value=0, max_value=4_102_444_800)
scope_keys = st.text(min_size=1, max_size=30)
kpi_updates = st.builds(
    KpiUpdate,
    part=st.integers(min_value=0, max_value=1000),
    at=instants,
    scopes=st.dictionaries(scope_keys, counters, max_size=5),
    trace=st.builds(Trace, applied=st.none() | instants, committed=instants, published=instants),
    edge=st.dictionaries(scope_keys, instants, max_size=5),
)
readings = st.builds(
    LatestReading,
    sensor_id=st.text(min_size=1, max_size=30),
    area=st.text(min_size=1, max_size=30),
    kind=st.sampled_from(["air_quality", "water_level", "traffic", "noise", "rainfall"]),
    ts=instants,
    values=st.dictionaries(
        st.text(min_size=1, max_size=8), st.floats(allow_nan=False, allow_infinity=False)
    ),
)


@given(kpi_updates)
def test_a_kpi_update_decodes_to_what_was_encoded(update: KpiUpdate) -> None:
    assert decode_kpi_update(encode(update)) == update
    assert decode_update(encode(update)) == update


@given(st.lists(readings, max_size=10))
def test_a_sensor_update_decodes_to_what_was_encoded(items: list[LatestReading]) -> None:
    assert decode_sensor_update(encode_sensor_update(items)) == items
    assert decode_update(encode_sensor_update(items)) == items


def test_the_kpi_update_is_the_documented_form() -> None:
    update = KpiUpdate(2, T, {"province": zero()}, TRACE, {"province": T + 0.004})
    assert orjson.loads(encode(update)) == {
        "type": "kpi",
        "part": 2,
        "at": T,
        "scopes": {"province": zero()},
        "trace": {"applied": T + 0.012, "committed": T + 0.031, "published": T + 0.032},
        "edge": {"province": T + 0.004},
    }


def test_a_kpi_update_without_trace_or_edge_is_read() -> None:
    raw = orjson.dumps({"type": "kpi", "part": 0, "at": 1, "scopes": {"province": zero()}})
    assert decode_kpi_update(raw) == KpiUpdate(0, 1.0, {"province": zero()})


def kpi(**changes: Any) -> bytes:
    """A KPI update with ``changes`` (``...``: left out)."""
    trace = {"applied": None, "committed": T, "published": T}
    body = {"type": "kpi", "part": 0, "at": T, "scopes": {"province": zero()}, "trace": trace}
    body.update(changes)
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def short_levels() -> dict[str, Any]:
    return {**zero(), "levels": [0]}


def no_window() -> dict[str, Any]:
    counters = zero()
    del counters["flows"]["ytd"]
    return counters


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff", "not a JSON message"),
        (b'"kpi"', "a message must be a JSON object"),
        (b'{"type": "alert"}', "field 'type' must be 'kpi' or 'sensor'"),
        (kpi(part=...), "missing field 'part'"),
        (kpi(part="x"), "field 'part' must be an integer"),
        (kpi(part=True), "field 'part' must be an integer"),
        (kpi(at=...), "missing field 'at'"),
        (kpi(at="now"), "field 'at' must be a number"),
        (kpi(scopes=...), "missing field 'scopes'"),
        (kpi(scopes=[]), "field 'scopes' must be an object"),
        (kpi(scopes={"province": 3}), "field 'scopes.province' must be an object"),
        (kpi(scopes={"province": {"levels": []}}), "missing field 'scopes.province.flows'"),
        (kpi(scopes={"province": no_window()}), "missing field 'scopes.province.flows.ytd'"),
        (kpi(scopes={"province": short_levels()}), "field 'scopes.province.levels' must be"),
        (kpi(trace=[]), "field 'trace' must be an object"),
        (kpi(trace={"committed": T, "published": T}), "missing field 'trace.applied'"),
        (kpi(trace={"applied": 1, "committed": T}), "missing field 'trace.published'"),
        (kpi(edge={"province": "x"}), "field 'edge.province' must be a number"),
    ],
)
def test_a_bad_kpi_update_is_refused_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        decode_update(raw)


@pytest.mark.parametrize(
    ("readings", "field"),
    [
        (..., "missing field 'readings'"),
        (7, "field 'readings' must be an array"),
        ([7], "field 'readings[0]' must be an object"),
        ([{"area": "a", "kind": "noise", "ts": 1, "values": {}}], "'readings[0].sensor_id'"),
        (
            [{"sensor_id": "s", "area": "a", "kind": "noise", "ts": "1", "values": {}}],
            "field 'readings[0].ts' must be a number",
        ),
        (
            [{"sensor_id": "s", "area": "a", "kind": "noise", "ts": 1, "values": {"laeq": "x"}}],
            "field 'readings[0].values.laeq' must be a number",
        ),
    ],
)
def test_a_bad_sensor_update_is_refused_naming_the_field(readings: Any, field: str) -> None:
    body = {"type": "sensor"} if readings is ... else {"type": "sensor", "readings": readings}
    with pytest.raises(ValueError, match=re.escape(field)):
        decode_sensor_update(orjson.dumps(body))
