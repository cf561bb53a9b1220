"""Events posted over HTTP and published over MQTT come out as rows in
PostgreSQL and as messages on a websocket, through the real worker, bridge
and API processes on the real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from websockets.asyncio.client import connect

from ioc.testing import procedure_event
from tests.processes import Process, ioc_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def receipt(dossier: str, ts: str) -> dict[str, Any]:
    return procedure_event("received", dossier, ts, f"{dossier}/0")


def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.time()}")
    client.connect(host, int(port))
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def forget_session(url: str, client_id: str) -> None:
    """Drop the bridge's persistent MQTT session so the broker keeps nothing for it."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(host, int(port))
    client.disconnect()


async def collect(ws_url: str, until: Any, within: float) -> list[dict[str, Any]]:
    """Websocket messages until ``until(messages)`` holds."""
    got: list[dict[str, Any]] = []
    async with connect(ws_url) as ws:
        await ws.send(
            json.dumps({"op": "subscribe", "channels": ["kpi/province", "sensor/*", "alerts"]})
        )
        deadline = time.monotonic() + within
        while not until(got):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"websocket never delivered what was expected: {got[-5:]}")
            try:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
            except TimeoutError:
                continue
    return got


def province_received(messages: list[dict[str, Any]]) -> int:
    values = [
        m["data"]["windows"]["today"]["received"]
        for m in messages
        if m.get("channel") == "kpi/province"
    ]
    return max(values, default=0)


def test_http_and_mqtt_events_reach_postgres_and_the_websocket(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, mqtt_url: str
) -> None:
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        mqtt_url,
        IOC_CLOCK_START="2026-03-16T08:00:00+07:00",
        IOC_CLOCK_ANCHOR=time.time(),
    )
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    logs = tmp_path / "logs"
    procs = [Process(name, [name], env, logs) for name in ("worker", "bridge", "api")]
    try:
        wait_until(
            "the API to be ready",
            lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200,
            90,
        )
        wait_until(
            "the worker to own its partitions", lambda: "partition 3 ready" in procs[0].output(), 90
        )

        body = "\n".join(
            [json.dumps(receipt(f"PIPE-{i}", f"2026-03-16T08:0{i}:00+07:00")) for i in range(3)]
            + ['{"schema": 1, "type": "received"}']
        )
        r = httpx.post(
            f"{base}/api/v1/procedure-events",
            content=body,
            headers={"content-type": "application/x-ndjson"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 3 and r.json()["errors"][0]["index"] == 3

        reading = {"ts": "2026-03-16T08:05:00+07:00", "values": {"pm25": 42.0, "pm10": 70.0}}
        publish(
            mqtt_url,
            [
                ("ioc/sensors/00166/air_quality/aq-pipe-1", json.dumps(reading).encode()),
                ("ioc/sensors/00166/air_quality/aq-pipe-1", b"not json at all"),
                (
                    "ioc/sensors/00166/water_level/wl-pipe-1",
                    json.dumps({"ts": "2026-03-16T08:05:00+07:00", "value": 3.2}).encode(),
                ),
            ],
        )

        messages = asyncio.run(
            collect(
                base.replace("http", "ws") + "/ws",
                lambda got: (
                    province_received(got) >= 3
                    and any(
                        m.get("channel") == "sensor/aq-pipe-1"
                        and m["data"]["sensor_id"] == "aq-pipe-1"
                        for m in got
                    )
                ),
                within=60,
            )
        )
        assert messages[0]["type"] in ("snapshot", "delta")
        assert province_received(messages) == 3

        with psycopg.connect(database_url) as conn:

            def counts() -> tuple[int, int, int]:
                return conn.execute(
                    "SELECT (SELECT count(*) FROM procedure_events WHERE dossier_id LIKE 'PIPE-%'),"
                    " (SELECT count(*) FROM sensor_readings WHERE sensor_id LIKE '%-pipe-1'),"
                    " (SELECT count(*) FROM dead_letters WHERE source = 'bridge'"
                    "  AND raw = 'not json at all'::bytea)"
                ).fetchone()

            wait_until("rows in PostgreSQL", lambda: counts() == (3, 2, 1), 30)
            reason, origin = conn.execute(
                "SELECT reason, origin FROM dead_letters WHERE source = 'bridge'"
                " ORDER BY received_at DESC"
            ).fetchone()
            assert "JSON" in reason
            assert origin.startswith("ioc/sensors/"), origin

        kpis = httpx.get(
            f"{base}/api/v1/kpis", params={"scope": "commune:00166", "window": "today"}
        ).json()
        assert kpis["windows"]["today"]["received"] == 3
        dossier = httpx.get(f"{base}/api/v1/dossiers/PIPE-1").json()
        assert dossier["status"] == "received" and dossier["due"].startswith("2026-03-19T08:01")
        assert httpx.get(f"{base}/api/v1/dossiers/NOPE").status_code == 404
        assert httpx.get(f"{base}/api/v1/kpis", params={"scope": "district:1"}).status_code == 400
        hour = {"from": "2026-03-16T08:00:00+07:00", "to": "2026-03-16T09:00:00+07:00"}
        series = httpx.get(
            f"{base}/api/v1/kpis/series", params={"scope": "commune:00166", "bucket": "15m", **hour}
        ).json()
        assert sum(p["kpis"]["received"] for p in series["points"]) == 3, series
        no_series = httpx.get(f"{base}/api/v1/kpis/series", params={"scope": "centre:x", **hour})
        assert no_series.status_code == 400 and "IOC_MINUTE_SERIES" in no_series.json()["detail"]
    finally:
        codes = {p.name: p.stop() for p in reversed(procs)}
        forget_session(mqtt_url, f"ioc-bridge-{env['IOC_TOPIC_PREFIX']}")
    for p in procs:
        assert "Traceback" not in p.output(), p.output()[-3000:]
    assert codes == {"api": 0, "bridge": 0, "worker": 0}, codes
