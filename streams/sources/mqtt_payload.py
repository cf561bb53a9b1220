"""The MQTT payload contract of sensor readings: pure functions, no paho.

Topic: ``ioc/sensors/{area}/{kind}/{sensor_id}``; ``area`` is a commune code
or a configured area id, ``kind`` one of ``ioc.events.SENSOR_MEASURES``.

Payload, a UTF-8 JSON object:

- ``ts``: ISO 8601 with a UTC offset. Absent (or null): the bridge stamps its
  receive time and adds ``"ts_from": "bridge"``.
- ``values``: ``{measure: number}`` with measures of the kind; or ``value``:
  one number, only for kinds with one measure (water_level -> level,
  noise -> laeq, rainfall -> rain_mm). Not both.
- ``event_id`` (optional): default ``mqtt-`` + a hash of topic and payload
  bytes, so a re-delivered message keeps its id.
- Other fields (``unit``...) are ignored. Payloads over 64 KiB are refused.

``reading_from_mqtt`` turns a message into the Kafka reading, validated with
``decode_sensor_reading`` like the worker does, or into the reason it is
refused.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ioc.clock import to_iso
from ioc.events import (
    SCHEMA_VERSION,
    SENSOR_KINDS,
    SENSOR_MEASURES,
    DecodeError,
    decode_sensor_reading,
    parse_json,
)

MAX_PAYLOAD_BYTES = 64 * 1024  # a reading is ~200 bytes; far more is not a reading
SHORTHAND = {kind: m[0] for kind, m in SENSOR_MEASURES.items() if len(m) == 1}


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``(area, kind, sensor_id)``; only the shape is checked, not the kind."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "ioc" or parts[1] != "sensors" or not all(parts[2:]):
        return None
    return parts[2], parts[3], parts[4]


def reading_from_mqtt(
    topic: str, payload: bytes, received_at: float
) -> tuple[dict[str, Any], bytes] | DecodeError:
    """The Kafka reading and its NDJSON line, or why the message is refused."""
    try:
        reading = _normalize(topic, payload, received_at)
        checked = decode_sensor_reading(reading, payload)
        line = orjson.dumps(reading)
    except _Refused as exc:
        return DecodeError(str(exc), payload)
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. an integer too big for a float
        return DecodeError(f"invalid reading: {exc}", payload)
    return checked if isinstance(checked, DecodeError) else (reading, line)


class _Refused(Exception):
    pass


def _normalize(topic: str, payload: bytes, received_at: float) -> dict[str, Any]:
    """The payload in the Kafka contract, not yet validated."""
    where = parse_topic(topic)
    if where is None:
        raise _Refused(f"topic {topic[:80]!r} is not ioc/sensors/{{area}}/{{kind}}/{{id}}")
    area, kind, sensor_id = where
    if kind not in SENSOR_MEASURES:
        raise _Refused(f"unknown kind {kind[:40]!r} (known: {', '.join(SENSOR_KINDS)})")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Refused(f"payload is over {MAX_PAYLOAD_BYTES} bytes")
    obj, error = parse_json(payload)
    if error is not None:
        raise _Refused(error)
    if not isinstance(obj, dict):
        raise _Refused("payload must be a JSON object")
    values = obj.get("values")
    if "value" in obj:
        if "values" in obj:
            raise _Refused("give 'value' or 'values', not both")
        if kind not in SHORTHAND:
            raise _Refused(f"'value' is only for one-measure kinds; {kind} needs 'values'")
        values = {SHORTHAND[kind]: obj["value"]}
    reading = {
        "schema": SCHEMA_VERSION,
        "event_id": obj.get("event_id", default_event_id(topic, payload)),
        "sensor_id": sensor_id,
        "area": area,
        "kind": kind,
        "ts": obj.get("ts"),
        "values": values,
    }
    if reading["ts"] is None:
        reading["ts"] = to_iso(received_at)
        reading["ts_from"] = "bridge"
    return reading


def default_event_id(topic: str, payload: bytes) -> str:
    return "mqtt-" + hashlib.sha256(topic.encode() + b"\n" + payload).hexdigest()[:32]
