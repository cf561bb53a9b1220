"""Readings published to Mosquitto come out of the real bridge and worker
as stored readings, windows, an AQI value, a flood-level crossing and a
health signal, in the database, on the alerts topic and on a websocket;
a bridge restart and a worker kill -9 in the middle lose no QoS 1
reading and count none twice."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from ioc.stations import SAMPLE_STATIONS
from tests.processes import Process, ioc_env, wait_until
from tests.test_pipeline import collect, forget_session, publish

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = "2026-03-16T08:30:00+07:00"  # the deployment's clock starts here, at speed 1
# A station reporting every 2 s, so that silence shows within seconds.
QUICK_STATION = """
[[stations]]
sensor_id = "aq-quick"
kind = "air_quality"
area = "00166"
name = "Quick"
lat = 21.03
lon = 105.8
period_s = 2

[stations.measures.pm25]
unit = "µg/m³"
min = 0
max = 1000
"""


def at(clock: str) -> str:
    return f"2026-03-16T{clock}+07:00"


def reading(clock: str, **values: float) -> bytes:
    return json.dumps({"ts": at(clock), "values": values}).encode()


async def alert_signals(kafka: str, topic: str, until: Any, within: float) -> list[dict[str, Any]]:
    """The sensor signals on the alerts topic until ``until(signals)`` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest")
    await consumer.start()
    got: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + within
        while not until(got):
            if time.monotonic() > deadline:
                raise AssertionError(f"signals never came: {got}")
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    message = json.loads(record.value)
                    if message.get("type") == "signal":  # skip sla, unit, alert
                        got += message["signals"]
    finally:
        await consumer.stop()
    return got


def status(conn: psycopg.Connection[Any], sensor_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT status FROM sensor_status WHERE sensor_id = %s", (sensor_id,)
    ).fetchone()
    return None if row is None else row[0]


def test_readings_become_windows_aqi_flood_levels_and_health_and_survive_restarts(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, mqtt_url: str
) -> None:
    stations = tmp_path / "stations.toml"
    shutil.copy(SAMPLE_STATIONS, stations)
    with stations.open("a") as f:
        f.write(QUICK_STATION)
    env = ioc_env(
        tmp_path,
        kafka_bootstrap,
        database_url,
        mqtt_url,
        IOC_CLOCK_START=START,
        IOC_CLOCK_ANCHOR=time.time(),
        IOC_STATIONS_FILE=stations,
    )
    prefix = env["IOC_TOPIC_PREFIX"]
    logs = tmp_path / "logs"
    worker = Process("worker", ["worker"], env, logs)
    bridge = Process("bridge", ["bridge"], env, logs)
    api = Process("api", ["api"], env, logs)
    base = f"http://127.0.0.1:{env['IOC_API_PORT']}"
    try:
        wait_until(
            "the worker to own its sensor partitions",
            lambda: "sensor partition 1 ready" in worker.output(),
            90,
        )
        wait_until("the bridge to subscribe", lambda: "bridging" in bridge.output(), 60)

        # PM2.5 40 and PM10 60 µg/m³ in every reading from 07:35 to 08:25: the
        # hours ending 08:00 and 09:00 have means, so the NowCast (2 of the last
        # 3 hours) is 40 and 60. VN_AQI PM2.5: 50 + (100-50)/(50-25) x (40-25) = 80;
        # PM10: 50 + (100-50)/(150-50) x (60-50) = 55. Index 80, moderate, PM2.5.
        air = [
            (
                "ioc/sensors/00166/air_quality/aq-00166-1",
                reading(f"{h:02d}:{m:02d}:00", pm25=40.0, pm10=60.0),
            )
            for h, m in [(7, 35), (7, 45), (7, 55), (8, 5), (8, 15), (8, 25)]
        ]
        # Long Biên: 9.0 m, then past line I (9.5) and line II (10.5): level 2.
        river = [
            ("ioc/sensors/tram-long-bien/water_level/wl-long-bien", reading(c, level=v))
            for c, v in [
                ("07:50:00", 9.0),
                ("08:00:00", 9.3),
                ("08:10:00", 9.6),
                ("08:20:00", 10.6),
            ]
        ]
        quick = [("ioc/sensors/00166/air_quality/aq-quick", reading("08:29:00", pm25=10.0))]
        publish(mqtt_url, air + river + quick)

        with psycopg.connect(database_url, autocommit=True) as conn:
            aqi = wait_until(
                "an AQI value",
                lambda: conn.execute(
                    "SELECT aqi, band, dominant, extract(epoch FROM hour) FROM sensor_aqi "
                    "WHERE sensor_id = 'aq-00166-1' AND scale = 'vn' ORDER BY hour DESC"
                ).fetchone(),
                60,
            )
            assert aqi[:3] == (80, "moderate", "pm25")
            # the status is stored after each batch the worker takes: wait for
            # the one with the last reading (08:25) in it
            s = wait_until(
                "the station's status after its last reading",
                lambda: (
                    (st := status(conn, "aq-00166-1"))
                    and st["windows"]["pm25"]["1h"]["count"] == 6
                    and st
                ),
                30,
            )
            assert s["known"] is True and s["aqi"]["vn"]["index"] == 80
            assert s["aqi"]["vn"]["colour"] == "#ffff00"
            assert s["aqi"]["vn"]["sub"]["pm25"]["hours"] == 2
            assert (
                s["windows"]["pm25"]["1h"]["count"] == 6
            )  # 07:35 ... 08:25, all within (07:25, 08:25]
            assert s["windows"]["pm25"]["15m"]["count"] == 2  # (08:10, 08:25]: 08:15, 08:25
            wl = wait_until(
                "the river's level after its last reading (08:20)",
                lambda: (
                    (st := status(conn, "wl-long-bien"))
                    and st["flood"]
                    and st["flood"]["level_m"] == 10.6
                    and st["flood"]
                ),
            )
            assert wl["level"] == 2 and wl["lines"] == [9.5, 10.5, 11.5], wl
            assert wl["level_m"] == 10.6

        def aqi_on_screen(got: list[dict[str, Any]]) -> bool:
            return any(
                m.get("channel") == "sensor/aq-00166-1" and (m["data"].get("aqi") or {}).get("vn")
                for m in got
            )

        wait_until("the API", lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 60)
        screen = asyncio.run(collect(base.replace("http", "ws") + "/ws", aqi_on_screen, 30))
        shown = [m["data"] for m in screen if m.get("channel") == "sensor/aq-00166-1"][-1]
        assert (shown["aqi"]["vn"]["index"], shown["aqi"]["vn"]["band"]) == (80, "moderate")
        listed = httpx.get(f"{base}/api/v1/sensors", params={"kind": "water_level"}).json()
        long_bien = next(s for s in listed["sensors"] if s["sensor_id"] == "wl-long-bien")
        assert long_bien["flood"]["level"] == 2

        signals = asyncio.run(
            alert_signals(
                kafka_bootstrap,
                f"{prefix}alerts",
                lambda got: {"flood_level", "aqi", "sensor_health"} <= {g["kind"] for g in got},
                60,
            )
        )
        floods = [(g["subject"], g["value"]) for g in signals if g["kind"] == "flood_level"]
        assert ("sensor:wl-long-bien", 1.0) in floods and ("sensor:wl-long-bien", 2.0) in floods
        assert ("area:tram-long-bien", 2.0) in floods
        assert ("sensor:aq-00166-1", 80.0) in [
            (g["subject"], g["value"]) for g in signals if g["kind"] == "aqi"
        ]
        # aq-quick reports every 2 s and said nothing after 08:29: silent after 6 s
        health = [g for g in signals if g["kind"] == "sensor_health"]
        assert any(g["subject"] == "sensor:aq-quick" and g["value"] == 1.0 for g in health)

        # -- restarts in the middle: nothing lost, nothing counted twice ----------
        n = 300
        noise = [
            (
                "ioc/sensors/00025/noise/nz-restart",
                reading(
                    f"{7 + (40 + i // 60) // 60:02d}:{(40 + i // 60) % 60:02d}:{i % 60:02d}",
                    laeq=50.0 + i % 7,
                ),
            )
            for i in range(n)
        ]
        publish(mqtt_url, noise[:100])
        assert bridge.stop() == 0  # a clean stop: the broker keeps the session
        publish(mqtt_url, noise[100:200])  # queued by Mosquitto for the bridge
        bridge = Process("bridge", ["bridge"], env, logs)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait()
        publish(mqtt_url, noise[200:])
        worker = Process("worker-2", ["worker"], env, logs)

        with psycopg.connect(database_url, autocommit=True) as conn:

            def stored() -> int:
                return int(
                    conn.execute(
                        "SELECT count(*) FROM sensor_readings WHERE sensor_id = 'nz-restart'"
                    ).fetchone()[0]
                )

            try:
                wait_until("every reading stored", lambda: stored() == n, 120)
            except AssertionError:
                raise AssertionError(
                    f"{stored()} of {n} stored\n{bridge.output()[-3000:]}\n"
                    f"{worker.output()[-3000:]}"
                ) from None
            s = wait_until(
                "the windows of every reading",
                lambda: (
                    (st := status(conn, "nz-restart"))
                    and st["windows"]["laeq"]["24h"]["count"] == n
                    and st
                ),
                60,
            )
            assert s["known"] is False
            # counted once each: 300 readings, 0..6 dB over 50 in turn
            assert s["windows"]["laeq"]["24h"]["mean"] == pytest.approx(
                sum(50.0 + i % 7 for i in range(n)) / n
            )
    finally:
        codes = {p.name: p.stop() for p in (api, bridge, worker)}
        forget_session(mqtt_url, f"ioc-bridge-{prefix}")
    for p in (api, bridge, worker):
        assert "Traceback" not in p.output(), p.output()[-3000:]
    assert codes == {"api": 0, "bridge": 0, "worker-2": 0}, codes
