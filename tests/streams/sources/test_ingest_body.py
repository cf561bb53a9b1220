"""Splitting and validating ingest bodies, without HTTP: whatever the bytes,
an answer and never an exception; every item accounted for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.events import decode_procedure_event, decode_sensor_reading
from streams.sources.ingest_body import (
    MAX_REPORTED,
    TOO_DEEP,
    Outcome,
    Unsupported,
    body_format,
    sort_body,
)
from tests.ioc.test_events import event


def sort(body: bytes, ndjson: bool = False) -> Outcome | str:
    return sort_body(body, ndjson, decode_procedure_event, lambda e: e.dossier_id)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_get_an_answer(body: bytes, ndjson: bool) -> None:
    out = sort(body, ndjson)
    if isinstance(out, Outcome):
        answer = out.answer
        assert answer["accepted"] + answer["rejected"] >= 1
        assert len(answer["errors"]) == min(answer["rejected"], MAX_REPORTED)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=8))
def test_every_array_item_is_accepted_or_named(items: list[Any]) -> None:
    body = json.dumps([event("accepted"), *items]).encode()
    out = sort(body)
    assert isinstance(out, Outcome)
    assert len(out.good) + out.rejected == len(items) + 1
    assert len(out.good) >= 1  # the valid event beside them still goes
    assert sum(out.why.values()) == out.rejected


def test_an_item_too_deep_to_re_encode_is_named() -> None:
    body = b'[{"schema": 1, "a": ' + b"[" * 300 + b"]" * 300 + b"}]"
    out = sort(body)
    assert isinstance(out, Outcome)
    assert out.errors == [{"index": 0, "reason": TOO_DEEP}] and out.why == {"too_deep": 1}


def test_a_body_beyond_the_parser_s_depth_is_refused_whole() -> None:
    assert sort(b"[" * 1100 + b"]" * 1100) == (
        "body is not JSON: depth limit exceeded: line 1 column 1026 (char 1025)"
    )


def test_sensor_readings_are_sorted_the_same_way() -> None:
    out = sort_body(b"[1, {}]", False, decode_sensor_reading, lambda r: r.sensor_id)
    assert isinstance(out, Outcome) and out.rejected == 2 and out.why == {"invalid": 2}


@pytest.mark.parametrize(
    ("content_type", "encoding", "ndjson"),
    [
        (None, None, False),
        ("application/json", None, False),
        ("application/json;charset=utf-8", "identity", False),
        ('application/x-ndjson; charset="UTF-8"', None, True),
        ("application/ndjson", None, True),
        ("application/jsonl", None, True),
    ],
)
def test_body_formats(content_type: str | None, encoding: str | None, ndjson: bool) -> None:
    assert body_format(content_type, encoding) is ndjson


@pytest.mark.parametrize(
    ("content_type", "encoding", "reason"),
    [
        ("text/plain", None, "Content-Type must be application/json"),
        ("", None, "Content-Type must be application/json"),
        ("application/json; charset=utf-16", None, "UTF-8 only"),
        ("application/json", "br", "Content-Encoding 'br' is not supported"),
    ],
)
def test_other_formats_are_unsupported(
    content_type: str, encoding: str | None, reason: str
) -> None:
    with pytest.raises(Unsupported, match=reason):
        body_format(content_type, encoding)
