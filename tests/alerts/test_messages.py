"""The one definition of an SLA transition: its messages on the alerts topic
(round trip, splitting, refusals naming the field) and its table row."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.messages import (
    ITEMS_PER_MESSAGE,
    SLA_COLUMNS,
    SLA_SELECT,
    TRANSITIONS,
    SlaTransition,
    decode_sla,
    encode_sla,
    sla_messages,
)

OVERDUE = SlaTransition(
    at=1_773_716_400.0,
    dossier_id="000.00.24.H22-260316-0001",
    transition="overdue",
    due=1_773_712_800.0,
    consumed_hours=9.0,
    allotted_hours=8.0,
    commune="00166",
    agency="ubnd-00166",
    centre="hcc-00166",
    procedure="1.000001",
    field="ho-tich",
)


def transition(i: int, kind: str = "overdue") -> SlaTransition:
    return replace(OVERDUE, dossier_id=f"D-{i}", transition=kind, at=1.0 * i)


names = st.text(min_size=1, max_size=40)
instants = st.floats(min_value=946_684_800, max_value=4_102_444_800)
hours = st.floats(min_value=0, max_value=1e5, allow_nan=False)
transitions = st.builds(
    SlaTransition,
    at=instants,
    dossier_id=names,
    transition=st.sampled_from(TRANSITIONS),
    due=st.none() | instants,
    consumed_hours=hours,
    allotted_hours=hours,
    commune=st.none() | names,
    agency=names,
    centre=names,
    procedure=names,
    field=names,
)


@given(st.lists(transitions, max_size=20))
def test_a_message_decodes_to_the_transitions_encoded(items: list[SlaTransition]) -> None:
    assert decode_sla(encode_sla(items)) == items


@given(transitions)
def test_the_row_reads_back_as_the_same_transition(t: SlaTransition) -> None:
    assert SlaTransition.from_row(t.row()) == t


def test_the_wire_form_is_the_documented_one() -> None:
    assert orjson.loads(encode_sla([OVERDUE])) == {
        "type": "sla",
        "items": [
            {
                "kind": "sla",
                "transition": "overdue",
                "dossier_id": "000.00.24.H22-260316-0001",
                "at": 1773716400.0,
                "due": 1773712800.0,
                "consumed_hours": 9.0,
                "allotted_hours": 8.0,
                "commune": "00166",
                "agency": "ubnd-00166",
                "centre": "hcc-00166",
                "procedure": "1.000001",
                "field": "ho-tich",
            }
        ],
    }


def test_a_stored_row_has_instants_as_epoch_seconds() -> None:
    assert SLA_COLUMNS[:4] == ("at", "dossier_id", "transition", "due")
    assert SLA_SELECT.startswith("extract(epoch FROM at), dossier_id, transition, ")
    row = (1773716400, *OVERDUE.row()[1:3], None, 9, 8, None, "a", "c", "p", "f")
    t = SlaTransition.from_row(row)
    assert (t.at, t.due, t.consumed_hours, t.commune) == (1773716400.0, None, 9.0, None)
    assert isinstance(t.at, float) and isinstance(t.consumed_hours, float)


def test_transitions_are_split_into_messages_in_order() -> None:
    items = [transition(i) for i in range(ITEMS_PER_MESSAGE * 2 + 5)]
    messages = [decode_sla(m) for m in sla_messages(items)]
    assert [len(m) for m in messages] == [ITEMS_PER_MESSAGE, ITEMS_PER_MESSAGE, 5]
    assert [t for m in messages for t in m] == items


def test_no_transitions_no_message() -> None:
    assert list(sla_messages([])) == []


def test_the_key_tells_a_repeat() -> None:
    assert transition(1).key() == replace(transition(1), consumed_hours=3.0).key()
    assert transition(1).key() != transition(1, "at_risk").key()


def item(**changes: Any) -> bytes:
    """A message of one item: OVERDUE's with ``changes`` (``...``: left out)."""
    body = {**OVERDUE.item(), **changes}
    return orjson.dumps({"type": "sla", "items": [{k: v for k, v in body.items() if v is not ...}]})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "not a JSON message"),
        (b"[1, 2]", "a message must be a JSON object"),
        (b'{"type": "kpi", "items": []}', "'type'"),
        (b'{"type": "sla"}', "missing field 'items'"),
        (b'{"type": "sla", "items": {}}', "field 'items' must be an array"),
        (b'{"type": "sla", "items": [7]}', "field 'items[0]' must be an object"),
        (item(dossier_id=...), "missing field 'items[0].dossier_id'"),
        (item(at=...), "missing field 'items[0].at'"),
        (item(kind="rule"), "field 'items[0].kind'"),
        (item(transition="exploded"), "field 'items[0].transition' must be one of"),
        (item(at="2026-03-16T09:00:00+07:00"), "field 'items[0].at' must be a number"),
        (item(due=True), "field 'items[0].due' must be a number"),
        (item(consumed_hours=None), "field 'items[0].consumed_hours' must be a number"),
        (item(commune=166), "field 'items[0].commune' must be a string"),
        (item(agency=None), "field 'items[0].agency' must be a string"),
    ],
)
def test_a_bad_message_is_refused_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        decode_sla(raw)


def test_unknown_fields_are_ignored_and_null_where_allowed() -> None:
    [t] = decode_sla(item(due=None, commune=None, escalated=True))
    assert (t.due, t.commune) == (None, None)


def test_a_transition_read_back_from_the_table_has_the_key_it_was_sent_with() -> None:
    # live instants are floats; the table keeps whole microseconds
    sent = replace(transition(1), at=1773626400.1234567)
    stored = replace(sent, at=1773626400.123457)
    assert sent.key() == stored.key()
