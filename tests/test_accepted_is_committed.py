"""Property: whatever the HTTP ingest or the MQTT bridge accepts, the worker
commits, and it never blocks the events after it.

Generated batches of procedure events (posted over HTTP) and sensor payloads
(published to Mosquitto) go through the real API, bridge and worker on the
real broker and PostgreSQL. After each batch a sentinel follows; once it is
committed, every item the edge accepted must be accounted for in the
database, and every item it refused must not be there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioc.clock import parse_instant
from ioc.events import (
    CHANNELS,
    PROCEDURE_TYPES,
    SENSOR_MEASURES,
    DecodeError,
    decode_sensor_reading,
)
from ioc.testing import receipt
from streams.sources.mqtt_payload import reading_from_mqtt
from tests.conftest import new_database
from tests.processes import Process, ioc_env, wait_until
from tests.streams.sinks.test_storable_property import identifiers, iso_texts

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


CLOCK_START = "2026-03-16T10:00:00+07:00"


class Stack:
    def __init__(self, base: str, database: str, mqtt_url: str) -> None:
        self.base, self.database, self.mqtt_url = base, database, mqtt_url

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, mqtt_url: str
) -> Iterator[Stack]:
    with new_database() as database:
        yield from run_stack(
            tmp_path_factory.mktemp("accepted"), kafka_bootstrap, database, mqtt_url
        )


def run_stack(tmp: Path, kafka_bootstrap: str, database: str, mqtt_url: str) -> Iterator[Stack]:
    env = ioc_env(
        tmp,
        kafka_bootstrap,
        database,
        mqtt_url,
        IOC_CLOCK_START=CLOCK_START,
        IOC_CLOCK_SPEED="0",
    )
    procs = [Process(n, [n], env, tmp / "logs") for n in ("worker", "bridge", "api")]
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    try:
        wait_until("the worker", lambda: "partition 3 ready" in procs[0].output(), 90)
        wait_until("the API", lambda: httpx.get(f"{base}/readyz").status_code == 200, 60)
        wait_until("the bridge", lambda: "MQTT connected" in procs[1].output(), 30)
        yield Stack(base, database, mqtt_url)
    finally:
        for p in reversed(procs):
            p.stop()
    for p in procs:
        assert "Traceback" not in p.output(), p.output()[-3000:]


@st.composite
def procedure_items(draw: st.DrawFn) -> dict[str, Any]:
    """Events as a careless producer writes them: mostly well formed,
    with odd times, ids and values among them."""
    item: dict[str, Any] = {
        "schema": draw(st.sampled_from([1, 1, 1, 2, "1"])),
        "event_id": draw(identifiers),
        "type": draw(st.sampled_from(PROCEDURE_TYPES)),
        "dossier_id": draw(st.sampled_from(["D-1", "D-2"]) | identifiers),
        "ts": draw(iso_texts()),
        "province": "01",
        "centre": draw(identifiers),
        "agency": draw(st.sampled_from(["ubnd-00166", "so-tu-phap-01"]) | identifiers),
        "commune": draw(st.sampled_from(["00166", "99999", "1"])),
        "procedure_code": "1.000005",
        "field": "ho-tich",
        "channel": draw(st.sampled_from(CHANNELS)),
        "allotted_working_days": draw(st.floats(0.5, 30) | st.floats()),
        "fee_required": draw(st.booleans()),
        "online": draw(st.booleans()),
        "score": draw(st.integers(0, 6)),
        "new_due": draw(iso_texts()),
    }
    extra = draw(st.dictionaries(st.text(max_size=5), st.recursive(st.none(), st.lists)))
    return {**extra, **item}


def sentinel(tag: str) -> dict[str, Any]:
    return receipt(f"sentinel-{tag}", event_id=f"sentinel-{tag}")


@PROPERTY
@given(items=st.lists(procedure_items(), min_size=1, max_size=30))
def test_what_http_ingest_accepts_is_committed(stack: Stack, items: list[dict[str, Any]]) -> None:
    tag = uuid.uuid4().hex[:10]
    for item in items:  # ids of this batch only, so batches do not meet
        item["event_id"] = f"{tag}-{item['event_id']}"
        item["dossier_id"] = f"{tag}-{item['dossier_id']}"
    body = json.dumps(items)  # NaN as NaN, lone surrogates escaped: what careless clients send
    r = httpx.post(
        f"{stack.base}/api/v1/procedure-events",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    # 400: the body as a whole is not JSON the worker can read (NaN, a lone surrogate)
    assert r.status_code in (202, 400, 422), r.text
    accepted: list[str] = []
    if r.status_code != 400:
        refused = {e["index"] for e in r.json()["errors"]}
        accepted = [it["event_id"] for i, it in enumerate(items) if i not in refused]
        assert r.json()["accepted"] == len(accepted)
    assert (
        httpx.post(f"{stack.base}/api/v1/procedure-events", json=sentinel(tag)).status_code == 202
    )
    wait_until(
        "the sentinel to be committed",
        lambda: stack.query(
            "SELECT 1 FROM procedure_events WHERE event_id = %s", (f"sentinel-{tag}",)
        ),
        60,
        every=0.1,
    )
    # every accepted event was taken: its id claimed, by it or by an earlier
    # event with the same id (which makes it a dead letter with that reason)
    claimed = {row[0] for row in stack.query(
        "SELECT event_id FROM event_ids WHERE event_id LIKE %s", (f"{tag}-%",)
    )}  # fmt: skip
    assert set(accepted) <= claimed
    wrong = [
        e for (e,) in stack.query(
            "SELECT event_id FROM procedure_events WHERE event_id LIKE %s", (f"{tag}-%",)
        ) if e not in accepted
    ]  # fmt: skip
    assert wrong == []


@st.composite
def mqtt_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from([*SENSOR_MEASURES, "vibration"]))
    # a topic level MQTT brokers take: UTF-8, no control characters, no wildcards
    sensor = draw(
        st.text(
            st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/+#"),
            min_size=1,
            max_size=20,
        )
    )
    values = draw(
        st.dictionaries(
            st.sampled_from([*SENSOR_MEASURES.get(kind, ("x",)), "pm25", "bogus"]),
            st.floats() | st.integers(-(2**70), 2**70) | st.text(max_size=3),
            max_size=3,
        )
    )
    payload: dict[str, Any] = {"values": values}
    if draw(st.booleans()):
        payload["ts"] = draw(iso_texts())
    if draw(st.booleans()):
        payload = {"value": draw(st.floats() | st.integers()), "ts": payload.get("ts")}
    raw = json.dumps(payload).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=40))
    return f"{kind}/{sensor}", raw


def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"prop-{uuid.uuid4().hex}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


@settings(PROPERTY, max_examples=12)
@given(messages=st.lists(mqtt_messages(), min_size=1, max_size=20))
def test_what_the_mqtt_bridge_accepts_is_committed(
    stack: Stack, messages: list[tuple[str, bytes]]
) -> None:
    area = f"prop-{uuid.uuid4().hex[:10]}"
    # sensor ids are the example's own: one reading per sensor and instant is stored
    sent = [
        (f"ioc/sensors/{area}/{kind}/{area}-{sensor}", payload)
        for (kind, sensor), payload in ((where.split("/", 1), p) for where, p in messages)
    ]
    # the bridge's time for a payload without ts: the stack's clock, which stands still
    now = parse_instant(CLOCK_START)
    results = [reading_from_mqtt(topic, payload, now) for topic, payload in sent]
    # of readings of one sensor at one instant, the first is stored
    expected: set[str] = set()
    instants: set[tuple[str, float]] = set()
    for r in results:
        if not isinstance(r, tuple):
            continue
        decoded = decode_sensor_reading(r[0], r[1])
        assert not isinstance(decoded, DecodeError), decoded  # the bridge checked it
        if (decoded.sensor_id, decoded.ts) not in instants:
            instants.add((decoded.sensor_id, decoded.ts))
            expected.add(decoded.event_id)
    refused = sum(1 for r in results if not isinstance(r, tuple))
    last = f"ioc/sensors/{area}/rainfall/sentinel-{area}"
    publish(
        stack.mqtt_url, [*sent, (last, b'{"value": 1, "event_id": "s-' + area.encode() + b'"}')]
    )
    wait_until(
        "the sentinel reading",
        lambda: stack.query("SELECT 1 FROM sensor_readings WHERE event_id = %s", (f"s-{area}",)),
        60,
        every=0.1,
    )
    stored = {
        r[0] for r in stack.query("SELECT event_id FROM sensor_readings WHERE area = %s", (area,))
    }
    assert expected <= stored
    letters = wait_until(
        "the dead letters",
        lambda: (n := stack.query(
            "SELECT count(*) FROM dead_letters WHERE origin LIKE %s", (f"ioc/sensors/{area}/%",)
        )[0][0]) >= refused and [n],
        30,
    )  # fmt: skip
    assert letters == [refused] or refused == 0
