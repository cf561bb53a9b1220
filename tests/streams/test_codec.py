import orjson
import pytest

from ioc.events import DecodeError, ProcedureEvent, decode_procedure_event
from streams.codec import decode_envelope, split_lines, watermark

GOOD = (
    b'{"schema":1,"event_id":"e1","type":"accepted","dossier_id":"D1",'
    b'"ts":"2026-03-16T09:00:00+07:00"}'
)


def test_one_event_per_message_is_an_envelope_of_one() -> None:
    events, errors = decode_envelope(GOOD, decode_procedure_event)
    assert [e.event_id for e in events] == ["e1"] and errors == []


def test_a_bad_line_costs_only_itself() -> None:
    value = b"\n".join([GOOD, b"{not json", GOOD.replace(b"e1", b"e2"), b'{"schema":2}'])
    events, errors = decode_envelope(value, decode_procedure_event)
    assert [e.event_id for e in events] == ["e1", "e2"]
    assert [(e.index, e.raw) for e in errors] == [(1, b"{not json"), (3, b'{"schema":2}')]
    assert errors[0].reason.startswith("not JSON")
    assert "schema" in errors[1].reason


def test_invalid_utf8_is_a_dead_letter_with_its_bytes() -> None:
    events, errors = decode_envelope(GOOD + b"\n\xff\xfe", decode_procedure_event)
    assert len(events) == 1
    assert errors[0].raw == b"\xff\xfe"


def test_a_message_without_a_value_holds_no_events() -> None:
    assert decode_envelope(None, decode_procedure_event) == ([], [])


def test_blank_lines_are_ignored() -> None:
    assert split_lines(b"\n" + GOOD + b"\n\n  \n") == [GOOD]


def test_the_raw_bytes_of_each_event_are_kept() -> None:
    events, _ = decode_envelope(GOOD + b"\n" + GOOD, decode_procedure_event)
    assert all(isinstance(e, ProcedureEvent) and e.raw == GOOD for e in events)
    assert not isinstance(decode_procedure_event({}, b"{}"), ProcedureEvent)
    assert isinstance(decode_procedure_event({}, b"{}"), DecodeError)


def test_on_partition_refuses_only_unheld_dossiers_of_other_partitions() -> None:
    import json

    from ioc.testing import procedure_event
    from streams.codec import on_partition
    from streams.kafka import partition_for

    homes = {d: partition_for(d, 4) for d in ("A", "B", "D")}
    assert homes == {"A": 2, "B": 0, "D": 1}
    lines = [json.dumps(procedure_event("received", d)).encode() for d in ("A", "B", "D")]
    good, bad = decode_envelope(
        b"\n".join(lines), on_partition(decode_procedure_event, 0, 4, held={"A"})
    )
    assert [e.dossier_id for e in good if isinstance(e, ProcedureEvent)] == ["A", "B"]
    [err] = bad
    assert err.index == 2 and err.raw == lines[2]
    assert "dossier 'D' is on the wrong partition: it belongs to partition 1 of 4" in err.reason
    # a line that is not an event keeps its own reason
    _, [broken] = decode_envelope(b'{"schema": 1}', on_partition(decode_procedure_event, 0, 4, ()))
    assert "partition" not in broken.reason


def test_lines_that_are_not_json_alone_never_make_an_event_together() -> None:
    """Joined with commas, ``{event},[0`` and ``0]`` are a valid array of two
    values, one per line: the event must not be taken from a line that is
    not JSON."""
    from ioc.testing import procedure_event

    event = orjson.dumps(procedure_event("received", "D1"))
    lines = [event + b",[0", b"0]", orjson.dumps(procedure_event("received", "D2"))]
    good, bad = decode_envelope(b"\n".join(lines), decode_procedure_event)
    assert [e.dossier_id for e in good] == ["D2"]
    assert [(e.index, e.raw) for e in bad] == [(0, lines[0]), (1, lines[1])]
    assert all(e.reason.startswith("not JSON") for e in bad)


def test_a_line_not_utf8_or_with_a_bom_is_one_dead_letter_with_the_reason() -> None:
    from ioc.events import UTF8_BOM
    from ioc.testing import procedure_event

    ok = [orjson.dumps(procedure_event("received", f"D{i}")) for i in range(3)]
    latin1 = b'{"schema": 1, "dossier_id": "Ph\xfa"}'
    bom = UTF8_BOM + ok[1]
    good, bad = decode_envelope(b"\n".join([ok[0], latin1, bom, ok[2]]), decode_procedure_event)
    assert [e.dossier_id for e in good] == ["D0", "D2"]
    assert [(e.index, e.raw) for e in bad] == [(1, latin1), (2, bom)]
    assert bad[0].reason == "not UTF-8: invalid byte at offset 31"
    assert bad[1].reason == "line starts with a UTF-8 byte-order mark; send JSON without one"


@pytest.mark.parametrize("value", [b"1e20", b"inf", b"-inf", b"nan", b"1e400", b"x", b"0"])
def test_a_watermark_outside_the_event_years_is_ignored(value: bytes) -> None:
    from ioc.topics import WATERMARK_HEADER

    assert watermark(b"", {WATERMARK_HEADER: value}) is None
    assert watermark(b"", {WATERMARK_HEADER: b"1773939600.0"}) == 1773939600.0
    assert watermark(b"{}", {WATERMARK_HEADER: b"1773939600.0"}) is None  # events, no mark
