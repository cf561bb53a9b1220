"""The field checks every message decoder uses: each refusal names the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from ioc import wire


def test_a_message_must_be_an_object_of_an_expected_type() -> None:
    assert wire.message(b'{"type": "kpi", "x": 1}', "kpi", "sensor") == {"type": "kpi", "x": 1}
    with pytest.raises(ValueError, match="not a JSON message"):
        wire.message(b"{", "kpi")
    with pytest.raises(ValueError, match="must be a JSON object"):
        wire.message(b"[]", "kpi")
    with pytest.raises(ValueError, match="field 'type' must be 'kpi' or 'sensor', not 'sla'"):
        wire.message(b'{"type": "sla"}', "kpi", "sensor")


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        (wire.number, True, "field 'a.x' must be a number"),
        (wire.number, "1", "field 'a.x' must be a number"),
        (wire.number, None, "field 'a.x' must be a number"),
        (wire.integer, 1.0, "field 'a.x' must be an integer"),
        (wire.integer, False, "field 'a.x' must be an integer"),
        (wire.text, 1, "field 'a.x' must be a string"),
        (wire.mapping, [], "field 'a.x' must be an object"),
        (wire.array, {}, "field 'a.x' must be an array"),
    ],
)
def test_a_wrong_type_is_refused_naming_the_field(
    check: Callable[..., Any], value: object, reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check({"x": value}, "x", "a.")
    with pytest.raises(ValueError, match=re.escape("missing field 'a.x'")):
        check({}, "x", "a.")


def test_null_where_allowed() -> None:
    assert wire.number_or_none({"x": None}, "x") is None
    assert wire.number_or_none({"x": 2}, "x") == 2.0
    assert wire.text_or_none({"x": None}, "x") is None
