"""The MQTT payload contract of sensor readings (pure): topics, payload
shapes, event ids, and refusals with the raw bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ioc.events import DecodeError, SensorReading, decode_sensor_reading
from streams.sources.mqtt_payload import default_event_id, parse_topic, reading_from_mqtt

TS = "2026-01-15T08:00:00+07:00"
RECEIVED = 1_768_438_800.0  # 2026-01-15T08:00:00+07:00
AQ = "ioc/sensors/00166/air_quality/aq-00166-1"


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_parse_topic() -> None:
    assert parse_topic(AQ) == ("00166", "air_quality", "aq-00166-1")
    assert parse_topic("ioc/sensors/tram-long-bien/water_level/wl-long-bien") == (
        "tram-long-bien",
        "water_level",
        "wl-long-bien",
    )
    for bad in (
        "ioc/sensors/00166/air_quality",
        "ioc/sensors/00166/air_quality/aq/extra",
        "ioc/other/00166/air_quality/aq",
        "ioc/sensors//air_quality/aq",
        "",
    ):
        assert parse_topic(bad) is None, bad


def test_reading_with_values() -> None:
    payload = body(ts=TS, values={"pm25": 61.5, "pm10": 90}, unit="µg/m³")
    result = reading_from_mqtt(AQ, payload, RECEIVED)
    assert not isinstance(result, DecodeError), result
    reading, line = result
    assert reading == {
        "schema": 1,
        "event_id": default_event_id(AQ, payload),
        "sensor_id": "aq-00166-1",
        "area": "00166",
        "kind": "air_quality",
        "ts": TS,
        "values": {"pm25": 61.5, "pm10": 90},
    }
    assert json.loads(line) == reading and b"\n" not in line
    decoded = decode_sensor_reading(json.loads(line), line)
    assert isinstance(decoded, SensorReading) and decoded.values == {"pm25": 61.5, "pm10": 90.0}


def test_event_id_given_or_deterministic() -> None:
    given = reading_from_mqtt(AQ, body(ts=TS, values={"pm25": 1}, event_id="dev-42"), RECEIVED)
    assert not isinstance(given, DecodeError) and given[0]["event_id"] == "dev-42"
    payload = body(ts=TS, values={"pm25": 1})
    first, again = (reading_from_mqtt(AQ, payload, t) for t in (RECEIVED, RECEIVED + 60))
    other = reading_from_mqtt(AQ.replace("aq-00166-1", "aq-00166-2"), payload, RECEIVED)
    assert not isinstance(first, DecodeError) and not isinstance(again, DecodeError)
    assert not isinstance(other, DecodeError)
    assert first[0]["event_id"] == again[0]["event_id"] != other[0]["event_id"]


def test_value_shorthand_for_one_measure_kinds() -> None:
    for kind, measure in (("water_level", "level"), ("noise", "laeq"), ("rainfall", "rain_mm")):
        result = reading_from_mqtt(f"ioc/sensors/00145/{kind}/s1", body(ts=TS, value=3.2), 0)
        assert not isinstance(result, DecodeError), result
        assert result[0]["values"] == {measure: 3.2}
    refused = reading_from_mqtt(AQ, body(ts=TS, value=3.2), 0)
    assert isinstance(refused, DecodeError) and "'value'" in refused.reason
    both = reading_from_mqtt("ioc/sensors/00145/noise/n1", body(ts=TS, value=1, values={}), 0)
    assert isinstance(both, DecodeError) and "not both" in both.reason


def test_missing_ts_uses_receive_time() -> None:
    result = reading_from_mqtt(AQ, body(values={"pm25": 12}), RECEIVED)
    assert not isinstance(result, DecodeError), result
    assert result[0]["ts"] == TS and result[0]["ts_from"] == "bridge"
    assert json.loads(result[1])["ts_from"] == "bridge"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (AQ, b"{not json", "not JSON"),
        (AQ, b'{"ts": "\xc3\x28"}', "not UTF-8"),
        (AQ, b"[1, 2]", "JSON object"),
        (AQ, body(ts=TS, values={"pm1": 3}), "unknown measure 'pm1'"),
        (AQ, body(ts=TS, values={"pm25": "high"}), "must be a number"),
        (AQ, body(ts=TS, values={}), "non-empty object"),
        (AQ, body(ts="2026-01-15T08:00:00", values={"pm25": 1}), "no UTC offset"),
        (AQ, body(ts=TS, values={"pm25": 1}, event_id=7), "event_id"),
        (AQ, b'{"ts": "' + TS.encode() + b'", "values": {"pm25": 1e999}}', "infinity"),
        (AQ, b'{"values": {"pm25": 1' + b"0" * 400 + b"}}", "infinity"),
        ("ioc/sensors/00166/radiation/r1", body(ts=TS, value=1), "unknown kind 'radiation'"),
        ("ioc/sensors/00166/air_quality", body(ts=TS, values={"pm25": 1}), "topic"),
        ("ioc/sensors/a/air_quality/b/c", body(ts=TS, values={"pm25": 1}), "topic"),
        (AQ, b"{" + b" " * 70_000 + b"}", "over"),
    ],
)
def test_bad_input_is_refused_with_its_raw_bytes(topic: str, payload: bytes, reason: str) -> None:
    result = reading_from_mqtt(topic, payload, RECEIVED)
    assert isinstance(result, DecodeError)
    assert reason in result.reason
    assert result.raw == payload
