"""Event contracts: decoding procedure events and sensor readings, every
validation message, and the published JSON Schema agreeing with the decoder."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from ioc.events import (
    CHANNELS,
    MAX_ALLOTTED_DAYS,
    MAX_ALLOTTED_HOURS,
    MAX_ID,
    MAX_NESTING,
    MIN_ALLOTTED_DAYS,
    MIN_ALLOTTED_HOURS,
    PROCEDURE_TYPES,
    SCHEMA_VERSION,
    SENSOR_KINDS,
    SENSOR_MEASURES,
    DecodeError,
    ProcedureEvent,
    SensorReading,
    canonical_body,
    decode_procedure_event,
    decode_sensor_reading,
    digest,
    nesting,
    parse_json,
    procedure_event_schema,
    sensor_reading_schema,
)

TS = "2026-03-16T09:00:00+07:00"
T = 1_773_626_400.0  # TS in epoch seconds
RAW = b"<raw bytes>"


def event(type_: str = "accepted", **fields: Any) -> dict[str, Any]:
    """A valid event of ``type_`` (with what that type needs), then ``fields``."""
    base: dict[str, Any] = {
        "schema": 1,
        "event_id": "7f0c-0001",
        "type": type_,
        "dossier_id": "000.00.24.H22-260316-0001",
        "ts": TS,
    }
    base.update(NEEDS.get(type_, {}))
    base.update(fields)
    return base


RECEIPT = {
    "province": "01",
    "centre": "hcc-01-cn3",
    "agency": "so-tu-phap-01",
    "commune": "00004",
    "procedure_code": "1.000001",
    "field": "ho-tich",
    "channel": "online",
    "allotted_working_days": 3,
    "fee_required": True,
    "paper_result": False,
}
NEEDS: dict[str, dict[str, Any]] = {
    "received": RECEIPT,
    "paid": {"online": True},
    "rated": {"score": 4},
    "apology_issued": {"new_due": "2026-03-20T17:00:00+07:00"},
}


def decode(obj: Any) -> ProcedureEvent:
    ev = decode_procedure_event(obj, RAW)
    assert isinstance(ev, ProcedureEvent), ev
    return ev


def reason(obj: Any) -> str:
    err = decode_procedure_event(obj, RAW)
    assert isinstance(err, DecodeError), err
    assert err.raw == RAW
    return err.reason


def without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


# -- decoding every type ------------------------------------------------------------


@pytest.mark.parametrize("type_", PROCEDURE_TYPES)
def test_every_event_type_decodes(type_: str) -> None:
    ev = decode(event(type_))
    assert ev.type == type_
    assert ev.event_id == "7f0c-0001"
    assert ev.dossier_id == "000.00.24.H22-260316-0001"
    assert ev.ts == T
    assert ev.raw == RAW
    assert (ev.receipt is not None) is (type_ == "received")


def test_received_carries_the_receipt() -> None:
    ev = decode(event("received"))
    r = ev.receipt
    assert r is not None
    assert (r.province, r.centre, r.agency, r.commune) == (
        "01",
        "hcc-01-cn3",
        "so-tu-phap-01",
        "00004",
    )
    assert (r.procedure_code, r.field, r.channel) == ("1.000001", "ho-tich", "online")
    assert (r.allotted_days, r.allotted_hours) == (3.0, None)
    assert (r.fee_required, r.paper_result) == (True, False)


def test_received_in_hours_without_commune_and_paper_result() -> None:
    obj = without(
        without(without(event("received"), "commune"), "paper_result"), "allotted_working_days"
    )
    r = decode({**obj, "allotted_working_hours": 8}).receipt
    assert r is not None
    assert r.commune is None
    assert (r.allotted_days, r.allotted_hours) == (None, 8.0)
    assert r.paper_result is False


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_decodes(channel: str) -> None:
    r = decode(event("received", channel=channel)).receipt
    assert r is not None and r.channel == channel


def test_later_events_carry_what_they_add() -> None:
    assert decode(event("paid", online=False)).online is False
    assert decode(event("paid", online=True)).online is True
    rated = decode(event("rated", score=2))
    assert (rated.score, rated.complaint) == (2, False)
    complaint = decode(without(event("rated", complaint=True), "score"))
    assert (complaint.score, complaint.complaint) == (None, True)
    apology = decode(event("apology_issued"))
    assert apology.new_due == T + 4 * 86400 + 8 * 3600


def test_other_offsets_give_the_same_instant() -> None:
    assert decode(event(ts="2026-03-16T02:00:00+00:00")).ts == T
    assert decode(event(ts="2026-03-16T02:00:00Z")).ts == T


def test_unknown_fields_are_ignored() -> None:
    assert decode(event(extra="whatever")).type == "accepted"


# -- validation messages ------------------------------------------------------------


@pytest.mark.parametrize("obj", [[], "received", 1, None])
def test_event_must_be_an_object(obj: Any) -> None:
    assert reason(obj) == "event must be a JSON object"


@pytest.mark.parametrize("schema", [2, 0, "1", None])
def test_wrong_or_missing_schema_version(schema: Any) -> None:
    obj = event(schema=schema) if schema is not None else without(event(), "schema")
    assert reason(obj) == "unsupported or missing 'schema' (expected 1)"


def test_unknown_type() -> None:
    assert reason(event(type="approved")) == "unknown 'type' 'approved'"
    assert reason(without(event(), "type")) == "missing 'type'"


@pytest.mark.parametrize("name", ["event_id", "dossier_id", "ts"])
def test_missing_common_field(name: str) -> None:
    assert reason(without(event(), name)) == f"missing field '{name}'"


@pytest.mark.parametrize("value", ["", "   ", 42, ["x"]])
def test_ids_must_be_non_empty_strings(value: Any) -> None:
    assert reason(event(event_id=value)) == "field 'event_id' must be a non-empty string"


def test_ids_too_long() -> None:
    assert decode(event(dossier_id="d" * MAX_ID)).dossier_id == "d" * MAX_ID
    assert reason(event(dossier_id="d" * (MAX_ID + 1))) == (
        f"field 'dossier_id' is longer than {MAX_ID} characters"
    )
    assert (
        reason(event("received", centre="c" * 129))
        == "field 'centre' is longer than 128 characters"
    )


@pytest.mark.parametrize("value", ["D\x00-1", "D-1\n", "D\x7f"])
def test_ids_with_control_characters_are_refused(value: str) -> None:
    # PostgreSQL text cannot store NUL: such an id would stop every commit
    assert reason(event(dossier_id=value)) == "field 'dossier_id' contains a control character"
    assert reason(event("received", agency=value)) == "field 'agency' contains a control character"
    assert decode(event(dossier_id="Hồ sơ 000.00.12.H01-260316-0001")).dossier_id


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59+07:00"])
def test_timestamps_outside_the_calendar_years_are_refused(ts: str) -> None:
    assert reason(event(ts=ts)) == (
        f"field 'ts' is outside the years 2000–2100 (UTC+07:00): {ts!r}"
    )


@pytest.mark.parametrize(
    "ts", ["2000-01-01T00:00:00+14:00", "2100-12-31T23:00:00+00:00", "2100-12-31T23:59:59-12:00"]
)
def test_the_years_are_those_of_the_iocs_zone_where_the_instant_is_stored(ts: str) -> None:
    # 1999-12-31 17:00 and 2101-01-01 06:00 or later in UTC+07:00: stored so,
    # they could not be read back
    assert "is outside the years 2000–2100 (UTC+07:00)" in reason(event(ts=ts))
    assert decode(event(ts="2000-01-01T00:00:00+07:00")).ts
    assert decode(event(ts="2100-12-31T16:59:59+00:00")).ts


@pytest.mark.parametrize("ts", ["2026-11-27T10:00:00+20:00", "2026-11-27T10:00:00-13:30"])
def test_offsets_no_zone_uses_are_refused(ts: str) -> None:
    # Python reads offsets up to ±23:59, PostgreSQL stores up to ±15:59, no
    # zone on Earth is outside -12:00..+14:00: such a time is a typing error
    assert reason(event(ts=ts)) == f"field 'ts' has a UTC offset outside -12:00..+14:00: {ts!r}"


def test_offsets_at_the_ends_of_the_range_decode() -> None:
    assert decode(event(ts="2026-03-16T16:00:00+14:00")).ts == T
    assert decode(event(ts="2026-03-15T14:00:00-12:00")).ts == T


def test_naive_timestamps_are_refused() -> None:
    assert reason(event(ts="2026-03-16T09:00:00")) == (
        "field 'ts' has no UTC offset (e.g. +07:00): '2026-03-16T09:00:00'"
    )
    assert reason(event("apology_issued", new_due="2026-03-20T17:00:00")) == (
        "field 'new_due' has no UTC offset (e.g. +07:00): '2026-03-20T17:00:00'"
    )


def test_timestamps_must_be_iso_strings() -> None:
    assert reason(event(ts=1773626400)) == "field 'ts' must be an ISO 8601 string with an offset"
    assert reason(event(ts="yesterday")) == "field 'ts' is not ISO 8601: 'yesterday'"
    assert reason(event("apology_issued", new_due=None)) == "missing field 'new_due'"


@pytest.mark.parametrize("name", ["province", "centre", "agency", "procedure_code", "field"])
def test_missing_receipt_field(name: str) -> None:
    assert reason(without(event("received"), name)) == f"missing field '{name}'"


@pytest.mark.parametrize("province", ["1", "001", "ab", "0x"])
def test_province_must_be_two_digits(province: str) -> None:
    assert reason(event("received", province=province)) == (
        "field 'province' must be a 2-digit code (Decision 19/2025/QĐ-TTg)"
    )


@pytest.mark.parametrize("commune", ["0166", "001666", "abcde", "00 16"])
def test_commune_must_be_five_digits(commune: str) -> None:
    assert reason(event("received", commune=commune)) == (
        "field 'commune' must be a 5-digit code (Decision 19/2025/QĐ-TTg)"
    )


@pytest.mark.parametrize("channel", ["fax", None, "Online"])
def test_channel_must_be_known(channel: Any) -> None:
    obj = event("received", channel=channel) if channel else without(event("received"), "channel")
    assert reason(obj) == "field 'channel' must be one of online, vneid, postal, in_person"


def test_both_or_neither_allotted_fields() -> None:
    msg = "give exactly one of 'allotted_working_days' and 'allotted_working_hours'"
    assert reason(event("received", allotted_working_hours=8)) == msg
    assert reason(without(event("received"), "allotted_working_days")) == msg


@pytest.mark.parametrize("value", ["3", True, float("nan"), float("inf"), [3]])
def test_allotted_time_must_be_a_number(value: Any) -> None:
    assert reason(event("received", allotted_working_days=value)) == (
        "field 'allotted_working_days' must be a number"
    )


@pytest.mark.parametrize(
    ("name", "value", "high"),
    [
        ("allotted_working_days", 0, MAX_ALLOTTED_DAYS),
        ("allotted_working_days", -1, MAX_ALLOTTED_DAYS),
        ("allotted_working_days", MAX_ALLOTTED_DAYS + 0.5, MAX_ALLOTTED_DAYS),
        ("allotted_working_hours", MAX_ALLOTTED_HOURS + 1, MAX_ALLOTTED_HOURS),
        # rounds to nothing in a float32: the dossier would be due at no instant
        ("allotted_working_hours", 1e-300, MAX_ALLOTTED_HOURS),
        ("allotted_working_days", 5e-324, MAX_ALLOTTED_DAYS),
        ("allotted_working_hours", 0.5 / 60, MAX_ALLOTTED_HOURS),
    ],
)
def test_allotted_time_range(name: str, value: float, high: int) -> None:
    obj = {**without(event("received"), "allotted_working_days"), name: value}
    low = MIN_ALLOTTED_DAYS if name == "allotted_working_days" else MIN_ALLOTTED_HOURS
    assert reason(obj) == f"field '{name}' must be in [{low:.6g}, {high}]"


def test_allotted_time_at_its_bounds() -> None:
    r = decode(event("received", allotted_working_days=MAX_ALLOTTED_DAYS)).receipt
    assert r is not None and r.allotted_days == MAX_ALLOTTED_DAYS
    r = decode(event("received", allotted_working_days=0.5)).receipt
    assert r is not None and r.allotted_days == 0.5


@pytest.mark.parametrize(
    ("type_", "name", "value"),
    [
        ("received", "fee_required", "true"),
        ("received", "fee_required", 1),
        ("received", "paper_result", "false"),
        ("paid", "online", "true"),
        ("paid", "online", 0),
        ("rated", "complaint", "true"),
    ],
)
def test_booleans_given_otherwise_are_refused(type_: str, name: str, value: Any) -> None:
    assert reason(event(type_, **{name: value})) == f"field '{name}' must be true or false"


def test_missing_booleans() -> None:
    assert reason(without(event("received"), "fee_required")) == (
        "field 'fee_required' must be true or false"
    )
    assert reason(without(event("paid"), "online")) == "field 'online' must be true or false"


def test_rating_needs_a_score_or_a_complaint() -> None:
    msg = "a 'rated' event needs a 'score' or 'complaint': true"
    assert reason(without(event("rated"), "score")) == msg
    assert reason(without(event("rated", complaint=False), "score")) == msg
    assert reason(event("rated", score=None)) == msg


@pytest.mark.parametrize("score", [0, 6, -1, 2.5, True, "4"])
def test_score_out_of_range(score: Any) -> None:
    assert reason(event("rated", score=score)) == "field 'score' must be an integer from 1 to 5"


@pytest.mark.parametrize("kind", [["received"], {"x": 1}])
def test_unhashable_type_is_a_decode_error_not_an_exception(kind: Any) -> None:
    assert reason(event(type=kind)).startswith("unknown 'type'")


def test_boolean_schema_version_is_refused() -> None:
    assert reason(event(schema=True)) == "unsupported or missing 'schema' (expected 1)"


def test_codes_must_be_ascii_digits() -> None:
    assert "province" in reason(event("received", province="０１"))
    assert "commune" in reason(event("received", commune="００００４"))


# -- sensor readings ----------------------------------------------------------------


def reading(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": 1,
        "event_id": "r-1",
        "sensor_id": "aq-00166-01",
        "area": "00166",
        "kind": "air_quality",
        "ts": TS,
        "values": {"pm25": 35.5, "pm10": 61},
    }
    base.update(fields)
    return base


def sensor_reason(obj: Any) -> str:
    err = decode_sensor_reading(obj, RAW)
    assert isinstance(err, DecodeError), err
    assert err.raw == RAW
    return err.reason


def test_sensor_reading_decodes() -> None:
    r = decode_sensor_reading(reading(), RAW)
    assert isinstance(r, SensorReading)
    assert (r.event_id, r.sensor_id, r.area, r.kind, r.ts) == (
        "r-1",
        "aq-00166-01",
        "00166",
        "air_quality",
        T,
    )
    assert r.values == {"pm25": 35.5, "pm10": 61.0}
    assert all(type(v) is float for v in r.values.values())
    assert r.raw == RAW


@pytest.mark.parametrize("kind", SENSOR_KINDS)
def test_every_sensor_kind_decodes_all_its_measures(kind: str) -> None:
    values = {m: 1.5 for m in SENSOR_MEASURES[kind]}
    r = decode_sensor_reading(reading(kind=kind, values=values), RAW)
    assert isinstance(r, SensorReading)
    assert r.values == values


def test_unknown_sensor_kind() -> None:
    assert sensor_reason(reading(kind="seismic")) == (
        "field 'kind' must be one of air_quality, water_level, traffic, noise, rainfall"
    )


def test_unknown_measure() -> None:
    assert sensor_reason(reading(kind="noise", values={"pm25": 3})) == (
        "unknown measure 'pm25' for noise (known: laeq)"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -math.inf])
def test_non_finite_measure(value: float) -> None:
    assert sensor_reason(reading(values={"pm25": value})) == "measure 'pm25' must be finite"


@pytest.mark.parametrize("value", [1.2e29, -1e8, 10**12])
def test_absurd_magnitudes_are_refused(value: float) -> None:
    assert sensor_reason(reading(values={"pm25": value})) == (
        "measure 'pm25' is beyond ±1e+07: not a reading"
    )


@pytest.mark.parametrize("value", [True, "35", None])
def test_measure_must_be_a_number(value: Any) -> None:
    assert sensor_reason(reading(values={"pm10": value})) == "measure 'pm10' must be a number"


@pytest.mark.parametrize("values", [{}, [], None, 35])
def test_values_must_be_a_non_empty_object(values: Any) -> None:
    assert (
        sensor_reason(reading(values=values))
        == "field 'values' must be a non-empty object of numbers"
    )


def test_sensor_reading_header_checks() -> None:
    assert sensor_reason([reading()]) == "event must be a JSON object"
    assert sensor_reason(reading(schema=2)) == "unsupported or missing 'schema' (expected 1)"
    assert sensor_reason(without(reading(), "sensor_id")) == "missing field 'sensor_id'"
    assert sensor_reason(without(reading(), "area")) == "missing field 'area'"
    assert sensor_reason(reading(ts="2026-03-16 09:00")) == (
        "field 'ts' has no UTC offset (e.g. +07:00): '2026-03-16 09:00'"
    )


def test_unhashable_sensor_kind_is_a_decode_error_not_an_exception() -> None:
    assert sensor_reason(reading(kind=["air_quality"])).startswith("field 'kind' must be one of")


def test_non_finite_values_in_json_text_are_not_json() -> None:
    obj, err = parse_json(b'{"schema": 1, "kind": "rainfall", "values": {"rain_mm": NaN}}')
    assert obj is None and err is not None and err.startswith("not JSON: ")


# -- parse_json ------------------------------------------------------------------------


def test_parse_json_ok() -> None:
    assert parse_json(json.dumps(event()).encode()) == (event(), None)
    assert parse_json(b"\xef\xbb\xbf" + json.dumps(event()).encode()) == (event(), None)
    assert parse_json('{"tên": "Hà Nội"}'.encode()) == ({"tên": "Hà Nội"}, None)


@pytest.mark.parametrize("raw", [b"\xc3\x28", b"\x80abc", b'{"a": "\xff"}'])
def test_parse_json_not_utf8(raw: bytes) -> None:
    assert parse_json(raw) == (None, "not UTF-8")


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"{'a': 1}", b"[1,]", b"received", b'{"a": NaN}', b'{"a": "\\ud800"}']
)
def test_parse_json_not_json(raw: bytes) -> None:
    obj, err = parse_json(raw)
    assert obj is None
    assert err is not None and err.startswith("not JSON: ")


# -- the published schema agrees with the decoder ----------------------------------


SCHEMA = procedure_event_schema()


def test_schema_required_fields_are_what_the_decoder_requires() -> None:
    assert SCHEMA["required"] == ["schema", "event_id", "type", "dossier_id", "ts"]
    for name in SCHEMA["required"]:
        assert isinstance(decode_procedure_event(without(event(), name), RAW), DecodeError), name
    # nothing else is required of an event that adds nothing
    assert set(event()) == set(SCHEMA["required"])
    decode(event())


def test_schema_type_enum_is_the_procedure_types() -> None:
    assert SCHEMA["properties"]["type"]["enum"] == list(PROCEDURE_TYPES)
    assert len(set(PROCEDURE_TYPES)) == len(PROCEDURE_TYPES) == 16


def test_schema_channel_enum_is_the_channels() -> None:
    assert SCHEMA["properties"]["channel"]["enum"] == list(CHANNELS)
    assert CHANNELS == ("online", "vneid", "postal", "in_person")


def test_schema_version_and_limits_match_the_decoder() -> None:
    props = SCHEMA["properties"]
    assert props["schema"] == {"const": SCHEMA_VERSION}
    assert props["event_id"]["maxLength"] == props["dossier_id"]["maxLength"] == MAX_ID
    assert props["allotted_working_days"]["maximum"] == MAX_ALLOTTED_DAYS
    assert props["allotted_working_hours"]["maximum"] == MAX_ALLOTTED_HOURS
    assert (props["score"]["minimum"], props["score"]["maximum"]) == (1, 5)
    assert props["province"]["pattern"] == "^[0-9]{2}$"
    assert props["commune"]["pattern"] == "^[0-9]{5}$"


def conditional(type_: str) -> dict[str, Any]:
    for rule in SCHEMA["allOf"]:
        if rule["if"]["properties"]["type"]["const"] == type_:
            return dict(rule["then"])
    raise AssertionError(f"no rule for {type_}")


def test_schema_received_requirements_match_the_decoder() -> None:
    then = conditional("received")
    required = set(then["required"])
    assert required == {
        "province",
        "centre",
        "agency",
        "procedure_code",
        "field",
        "channel",
        "fee_required",
    }
    for name in required:
        assert isinstance(
            decode_procedure_event(without(event("received"), name), RAW), DecodeError
        ), name
    for name in ("commune", "paper_result"):
        assert name not in required
        decode(without(event("received"), name))
    assert then["oneOf"] == [
        {"required": ["allotted_working_days"]},
        {"required": ["allotted_working_hours"]},
    ]


def test_schema_requirements_of_later_events() -> None:
    assert conditional("paid") == {"required": ["online"]}
    assert conditional("apology_issued") == {"required": ["new_due"]}
    assert isinstance(decode_procedure_event(without(event("paid"), "online"), RAW), DecodeError)
    assert isinstance(
        decode_procedure_event(without(event("apology_issued"), "new_due"), RAW), DecodeError
    )
    assert len(conditional("rated")["anyOf"]) == 2


def test_schema_is_json_serialisable() -> None:
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_sensor_schema_matches_the_decoder() -> None:
    schema = sensor_reading_schema()
    assert schema["properties"]["kind"]["enum"] == list(SENSOR_KINDS)
    assert set(schema["required"]) == {
        "schema",
        "event_id",
        "sensor_id",
        "area",
        "kind",
        "ts",
        "values",
    }
    for name in schema["required"]:
        assert isinstance(decode_sensor_reading(without(reading(), name), RAW), DecodeError), name


# -- nesting and the stored form ------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_counts_levels_and_stops_early() -> None:
    assert nesting(1) == 0
    assert nesting({"a": 1}) == 1
    assert nesting({"a": {"b": [1]}}) == 3
    # a hostile depth costs no more than a little beyond the limit
    assert nesting(nested(100_000)) == MAX_NESTING + 1


def test_deeply_nested_events_are_refused() -> None:
    expected = f"event nests arrays or objects deeper than {MAX_NESTING} levels"
    assert reason(event(extra=nested(MAX_NESTING))) == expected
    assert sensor_reason(reading(extra=nested(1000))) == expected
    assert decode(event(extra=nested(MAX_NESTING - 1)))


@pytest.mark.parametrize("type_", PROCEDURE_TYPES)
def test_canonical_body_decodes_to_the_same_event(type_: str) -> None:
    original = decode(event(type_, ts="2026-03-16T02:00:00Z", note={"free": "text"}))
    body = canonical_body(original)
    again = decode_procedure_event(json.loads(body), body)
    assert isinstance(again, ProcedureEvent)
    for name in ("event_id", "type", "dossier_id", "ts", "receipt", "online", "score"):
        assert getattr(again, name) == getattr(original, name)
    assert again.complaint == original.complaint and again.new_due == original.new_due
    assert b"note" not in body  # fields outside the contract are not stored
    assert json.loads(body)["ts"] == "2026-03-16T09:00:00+07:00"


def test_digest_tells_content_apart_not_spelling() -> None:
    a = decode(event("received", ts="2026-03-16T09:00:00+07:00"))
    b = decode(event("received", ts="2026-03-16T02:00:00+00:00", unit="ignored"))
    c = decode(event("received", agency="so-y-te-01"))
    assert digest(canonical_body(a)) == digest(canonical_body(b))
    assert digest(canonical_body(a)) != digest(canonical_body(c))
    assert -(2**63) <= digest(canonical_body(a)) < 2**63
