"""``/api/v1/sensors``: parameters checked before anything is read (400 with
the reason), and reads of rows stored in sensor_readings, sensor_status and
sensor_aqi, on PostgreSQL (and TimescaleDB with ``-m db`` and
IOC_TEST_DATABASE_URL: the same ``date_bin`` SQL)."""

from __future__ import annotations

import asyncio
import json

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from ioc.settings import Settings
from streams.sinks.schema import migrate
from tests.ui_feed.test_rest import TOKEN, UNREACHABLE, call, get, with_servers
from ui_feed.app import create_app
from ui_feed.sensors_api import default_bucket

T0 = "2026-03-16T00:00:00+07:00"
T1 = "2026-03-16T06:00:00+07:00"
BASE = 1_773_594_000.0  # 2026-03-16T00:00:00+07:00


@pytest.mark.parametrize(
    ("path", "params", "reason"),
    [
        ("/api/v1/sensors", {"kind": "weather"}, "kind must be one of air_quality"),
        ("/api/v1/sensors", {"area": "\x01"}, "area has 1–"),
        (
            "/api/v1/sensors/aq-00166-1/readings",
            {"bucket": "2m", "from": T0, "to": T1},
            "bucket must be one of 1m, 5m, 15m, 1h, 1d",
        ),
        (
            "/api/v1/sensors/aq-00166-1/readings",
            {"from": T1, "to": T0},
            "from must be before to",
        ),
        (
            "/api/v1/sensors/aq-00166-1/readings",
            {"bucket": "1m", "from": "2026-03-01T00:00:00+07:00", "to": T1},
            "at most 5000 points",
        ),
        ("/api/v1/sensors/aq-00166-1/readings", {"from": "yesterday", "to": T1}, "from "),
        (
            "/api/v1/sensors/aq-00166-1/aqi",
            {"scale": "epa", "from": T0, "to": T1},
            "scale must be one of vn, us-epa-2024",
        ),
        (
            "/api/v1/sensors/aq-00166-1/aqi",
            {"from": "2000-01-01T00:00:00+07:00", "to": T1},
            "at most 5000 hours",
        ),
        (
            "/api/v1/sensors/aq-00166-1/aqi",
            {"scale": "vn-daily", "from": "2000-01-01T00:00:00+07:00", "to": T1},
            "at most 5000 days",
        ),
        ("/api/v1/sensors/aq-00166-1/aqi", {"from": T0, "to": "2026-03-16"}, "to has no UTC"),
    ],
)
def test_bad_parameters_are_400_with_the_reason_before_any_read(
    path: str, params: dict[str, str], reason: str
) -> None:
    app = create_app(Settings(read_token=TOKEN))  # no database behind it
    r = call(app, path, **params)
    assert r.status_code == 400, r.text
    assert reason in r.json()["detail"]


def test_sensor_reads_take_the_read_token() -> None:
    app = create_app(Settings(read_token=TOKEN))

    async def anonymous(path: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
            return (await c.get(path)).status_code

    for path in ("/api/v1/sensors", "/api/v1/sensors/x/readings", "/api/v1/sensors/x/aqi"):
        assert asyncio.run(anonymous(path)) == 401


def test_the_default_bucket_keeps_to_500_points() -> None:
    assert default_bucket(6 * 3600) == "1m"  # 360 points
    assert default_bucket(24 * 3600) == "5m"  # 288
    assert default_bucket(7 * 86400) == "1h"  # 168
    assert default_bucket(400 * 86400) == "1d"


# -- against the database -------------------------------------------------------

NEVER_HEARD = "never heard from for 900 s (allowed 900 s)"

AQI_VN = {
    "hour": BASE + 3 * 3600,
    "index": 87,
    "band": "moderate",
    "label_vi": "Trung bình",
    "label_en": "Moderate",
    "colour": "#ffff00",
    "dominant": "pm25",
    "sub": {},
}


def status(sensor_id: str, ts: float | None, values: dict[str, float], **fields: object) -> dict:
    return {
        "sensor_id": sensor_id,
        "known": True,
        "ts": ts,
        "values": values,
        "windows": {},
        "aqi": None,
        "flood": None,
        "health": {"ok": True, "problems": {}},
        **fields,
    }


def stored(url: str) -> None:
    migrate(url)
    with psycopg.connect(url) as conn:
        # aq-00166-1: a reading every 10 min from 00:00 for 3 h, pm25 = minute index
        for i in range(18):
            conn.execute(
                "INSERT INTO sensor_readings VALUES (to_timestamp(%s), %s, 'aq-00166-1', "
                "'00166', 'air_quality', %s)",
                (BASE + i * 600, f"e-{i}", json.dumps({"pm25": float(i), "pm10": 2.0 * i})),
            )
        conn.execute(
            "INSERT INTO sensor_readings VALUES (to_timestamp(%s), 'u-1', 'stray-1', "
            "'99999', 'noise', '{\"laeq\": 61.5}')",
            (BASE,),
        )
        rows = [
            (
                "aq-00166-1",
                "00166",
                "air_quality",
                BASE + 17 * 600,
                status(
                    "aq-00166-1",
                    BASE + 17 * 600,
                    {"pm25": 17.0},
                    aqi={"vn": AQI_VN, "us-epa-2024": None},
                ),
            ),
            (
                "wl-long-bien",
                "tram-long-bien",
                "water_level",
                BASE,
                status(
                    "wl-long-bien",
                    BASE,
                    {"level": 10.7},
                    flood={"level": 2, "lines": [9.5, 10.5, 11.5], "level_m": 10.7},
                ),
            ),
            (
                "stray-1",
                "99999",
                "noise",
                BASE,
                {**status("stray-1", BASE, {"laeq": 61.5}), "known": False},
            ),
        ]
        # a station the stage judged silent without ever hearing from it
        silent = {
            **status("aq-00070-1", None, {}),
            "area": "00070",
            "kind": "air_quality",
            "health": {"ok": False, "problems": {"silent": NEVER_HEARD}},
        }
        rows.append(("aq-00070-1", "00070", "air_quality", None, silent))
        for sid, area, kind, ts, body in rows:
            conn.execute(
                "INSERT INTO sensor_status (sensor_id, area, kind, part, ts, status) "
                "VALUES (%s, %s, %s, 0, to_timestamp(%s::float8), %s)",
                (sid, area, kind, ts, json.dumps(body)),
            )
        for h, (index, band) in enumerate([(40, "good"), (87, "moderate"), (120, "poor")]):
            conn.execute(
                "INSERT INTO sensor_aqi VALUES (to_timestamp(%s), 'aq-00166-1', '00166', 'vn', "
                "%s, %s, 'pm25', %s)",
                (BASE + (h + 1) * 3600, index, band, json.dumps({"pm25": {"index": index}})),
            )
        # the daily index of 15 March, labelled by the end of its day (local midnight)
        conn.execute(
            "INSERT INTO sensor_aqi VALUES (to_timestamp(%s), 'aq-00166-1', '00166', "
            "'vn-daily', 62, 'moderate', 'pm25', %s)",
            (BASE, json.dumps({"pm25": {"index": 62}})),
        )
        # a sensor id with a slash, as the ingest takes it
        conn.execute(
            "INSERT INTO sensor_readings VALUES (to_timestamp(%s), 's-1', 'hq/roof-1', "
            "'00166', 'noise', '{\"laeq\": 55.0}')",
            (BASE,),
        )


@pytest.mark.integration
def test_sensors_list_stations_with_their_status_and_unknown_sensors(database_url: str) -> None:
    stored(database_url)

    async def test(app: FastAPI) -> None:
        r = await get(app, "/api/v1/sensors")
        assert r.status_code == 200, r.text
        sensors = {s["sensor_id"]: s for s in r.json()["sensors"]}
        # every station of the sample file, and the stray sensor last
        assert len(sensors) == 9 and r.json()["sensors"][-1]["sensor_id"] == "stray-1"
        aq = sensors["aq-00166-1"]
        assert aq["known"] is True and aq["name"] == "Quan trắc không khí Cầu Giấy"
        assert aq["area_label"] == "Phường Cầu Giấy"
        assert aq["measures"]["pm25"] == {"unit": "µg/m³", "min": -5, "max": 1000}
        assert aq["aqi"]["vn"]["index"] == 87 and aq["ts"] == BASE + 17 * 600
        assert aq["location"] == {"lat": 21.0362, "lon": 105.7906}
        wl = sensors["wl-long-bien"]
        assert wl["alarm_levels"] == [9.5, 10.5, 11.5] and wl["flood"]["level"] == 2
        # a station the stage has not seen yet: null status fields
        quiet = sensors["aq-00004-1"]
        assert quiet["known"] is True
        assert [quiet[k] for k in ("ts", "values", "aqi", "health")] == [None] * 4
        # a station never heard from: its health, no reading
        silent = sensors["aq-00070-1"]
        assert silent["known"] is True and silent["ts"] is None and silent["values"] == {}
        assert silent["health"] == {"ok": False, "problems": {"silent": NEVER_HEARD}}
        stray = sensors["stray-1"]
        assert stray["known"] is False and stray["name"] is None and stray["area_label"] == "99999"
        assert stray["values"] == {"laeq": 61.5}

        r = await get(app, "/api/v1/sensors", kind="water_level")
        assert [s["sensor_id"] for s in r.json()["sensors"]] == ["wl-long-bien", "wl-son-tay"]
        r = await get(app, "/api/v1/sensors", area="99999")
        assert [s["sensor_id"] for s in r.json()["sensors"]] == ["stray-1"]
        r = await get(app, "/api/v1/sensors", area="00070")
        assert [s["health"]["ok"] for s in r.json()["sensors"]] == [False]

    with_servers(database_url, "kafka://127.0.0.1" + UNREACHABLE, test)


@pytest.mark.integration
def test_readings_per_bucket_and_hourly_aqi(database_url: str) -> None:
    stored(database_url)

    async def test(app: FastAPI) -> None:
        r = await get(
            app,
            "/api/v1/sensors/aq-00166-1/readings",
            bucket="1h",
            **{"from": T0, "to": "2026-03-16T02:00:00+07:00"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["bucket"] == "1h" and body["kind"] == "air_quality" and body["known"]
        assert [p["at"] for p in body["points"]] == [
            "2026-03-16T00:00:00+07:00",
            "2026-03-16T01:00:00+07:00",
        ]
        first = body["points"][0]["values"]
        assert first["pm25"] == {"mean": 2.5, "min": 0.0, "max": 5.0, "count": 6}
        assert first["pm10"] == {"mean": 5.0, "min": 0.0, "max": 10.0, "count": 6}
        # days start at 00:00 local time
        r = await get(
            app,
            "/api/v1/sensors/aq-00166-1/readings",
            bucket="1d",
            **{"from": "2026-03-15T00:00:00+07:00", "to": "2026-03-17T00:00:00+07:00"},
        )
        [day] = r.json()["points"]
        assert day["at"] == T0 and day["values"]["pm25"]["count"] == 18
        # a default bucket from the span
        r = await get(app, "/api/v1/sensors/aq-00166-1/readings", **{"from": T0, "to": T1})
        assert r.json()["bucket"] == "1m" and len(r.json()["points"]) == 18
        # an unknown sensor that was seen; a configured one with nothing stored
        r = await get(app, "/api/v1/sensors/stray-1/readings", **{"from": T0, "to": T1})
        assert r.status_code == 200 and r.json()["known"] is False
        assert r.json()["points"][0]["values"]["laeq"]["mean"] == 61.5
        r = await get(app, "/api/v1/sensors/aq-00004-1/readings", **{"from": T0, "to": T1})
        assert r.status_code == 200 and r.json()["points"] == []
        for path in ("/api/v1/sensors/nobody/readings", "/api/v1/sensors/nobody/aqi"):
            r = await get(app, path, **{"from": T0, "to": T1})
            assert r.status_code == 404 and "no sensor 'nobody'" in r.json()["detail"]

        r = await get(app, "/api/v1/sensors/aq-00166-1/aqi", **{"from": T0, "to": T1})
        assert r.status_code == 200, r.text
        hours = r.json()["hours"]
        assert [(h["hour"], h["index"]) for h in hours] == [
            ("2026-03-16T01:00:00+07:00", 40),
            ("2026-03-16T02:00:00+07:00", 87),
            ("2026-03-16T03:00:00+07:00", 120),
        ]
        assert hours[1] == {
            "hour": "2026-03-16T02:00:00+07:00",
            "index": 87,
            "band": "moderate",
            "label_vi": "Trung bình",
            "label_en": "Moderate",
            "colour": "#ffff00",
            "dominant": "pm25",
            "detail": {"pm25": {"index": 87}},
        }
        assert hours[2]["label_en"] == "Unhealthy for Sensitive Groups"
        r = await get(
            app, "/api/v1/sensors/aq-00166-1/aqi", scale="us-epa-2024", **{"from": T0, "to": T1}
        )
        assert r.status_code == 200 and r.json()["hours"] == []

    with_servers(database_url, "kafka://127.0.0.1" + UNREACHABLE, test)


@pytest.mark.integration
def test_the_daily_index(database_url: str) -> None:
    stored(database_url)

    async def test(app: FastAPI) -> None:
        # the daily index, labelled by the end of its day; by default the last 30 days
        r = await get(app, "/api/v1/sensors/aq-00166-1/aqi", scale="vn-daily", to=T1)
        assert r.status_code == 200, r.text
        assert r.json()["from"] == "2026-02-14T06:00:00+07:00"
        assert [(h["hour"], h["index"], h["band"]) for h in r.json()["hours"]] == [
            (T0, 62, "moderate")
        ]

    with_servers(database_url, "kafka://127.0.0.1" + UNREACHABLE, test)


@pytest.mark.integration
def test_a_sensor_id_with_a_slash(database_url: str) -> None:
    stored(database_url)

    async def test(app: FastAPI) -> None:
        # an id with a slash, escaped or not
        for sid in ("hq/roof-1", "hq%2Froof-1"):
            r = await get(app, f"/api/v1/sensors/{sid}/readings", **{"from": T0, "to": T1})
            assert r.status_code == 200, r.text
            assert r.json()["sensor_id"] == "hq/roof-1" and r.json()["kind"] == "noise"
            assert r.json()["points"][0]["values"]["laeq"]["mean"] == 55.0
            r = await get(app, f"/api/v1/sensors/{sid}/aqi", **{"from": T0, "to": T1})
            assert r.status_code == 200 and r.json()["hours"] == [], r.text

    with_servers(database_url, "kafka://127.0.0.1" + UNREACHABLE, test)


@pytest.mark.integration
def test_the_feed_starts_from_the_stages_status(database_url: str) -> None:
    """The feed's start-up load reads sensor_status, with the status fields."""
    from psycopg_pool import AsyncConnectionPool

    from ioc.stations import SAMPLE_STATIONS, load_stations
    from ioc.topics import Topics
    from tests.streams.helpers import world
    from ui_feed.feed import Feed
    from ui_feed.hub import Hub
    from ui_feed.queries import Reads

    stored(database_url)
    registry, _ = world()

    async def main() -> None:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
            reads = Reads(pool)
            readings = {r.sensor_id: r for r in await reads.latest_readings()}
            # the feed's whole start-up load, into a hub
            hub = Hub()
            live = Feed(hub, reads, registry, Topics(""), stations=load_stations(SAMPLE_STATIONS))
            await live.load()
        assert set(readings) == {"aq-00166-1", "aq-00070-1", "wl-long-bien", "stray-1"}
        wl = readings["wl-long-bien"]
        assert wl.values == {"level": 10.7} and wl.status["flood"]["level"] == 2
        assert wl.item()["known"] is True and readings["stray-1"].status["known"] is False
        silent = readings["aq-00070-1"]
        assert silent.ts is None and silent.values == {}
        item = hub.snapshot("sensor/aq-00070-1")
        assert item["ts"] is None and item["health"]["ok"] is False  # type: ignore[index]
        assert item["area_label"] == registry.area_label("00070")  # type: ignore[index]
        assert hub.snapshot("sensor/aq-00166-1")["ts"] == BASE + 17 * 600  # type: ignore[index]

    asyncio.run(main())
