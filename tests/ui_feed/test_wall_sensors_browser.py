"""The wall's sensor panel in headless Chromium, fed through the real path:
rows in sensor_status and sensor_readings (read by the API's REST list and
by its feed at start), then a ``sensor`` message on the kpi-updates topic of
the test's broker (the live feed, the hub, the page's ``sensor/*``)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from ioc.aqi_tables import BANDS
from ioc.settings import Settings
from ioc.topics import Topics
from ioc.updates import LatestReading, encode_sensor_update
from streams.sinks.schema import migrate
from tests.ui_feed.serving import serving
from tests.ui_feed.test_wall_browser import CHROMIUM, chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN = "s3cret-read-token"
MODERATE = next(b for b in BANDS if b.name == "moderate")


def aq_status(ts: float) -> dict[str, Any]:
    return {
        "known": True,
        "ts": ts,
        "values": {"pm25": 41.0, "pm10": 66.0},
        "windows": {},
        "aqi": {
            "vn": {
                "hour": ts,
                "index": 87,
                "band": "moderate",
                "label_vi": "Trung bình",
                "label_en": "Moderate",
                "colour": "#ffff00",
                "dominant": "pm25",
                "sub": {},
            },
            "us-epa-2024": None,
        },
        "flood": None,
        "health": {"ok": True, "problems": {}},
    }


def store(url: str, now: float) -> None:
    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sensor_status (sensor_id, area, kind, part, ts, status) "
            "VALUES ('aq-00166-1', '00166', 'air_quality', 0, to_timestamp(%s), %s)",
            (now - 60, json.dumps({"sensor_id": "aq-00166-1", **aq_status(now - 60)})),
        )
        conn.execute(
            "INSERT INTO sensor_status (sensor_id, area, kind, part, ts, status) "
            "VALUES ('aq-00070-1', '00070', 'air_quality', 0, to_timestamp(%s), %s)",
            (now - 60, json.dumps({**aq_status(now - 60), "aqi": {"vn": None}})),
        )
        for i in range(36):  # 3 h of PM2.5 for the history line
            conn.execute(
                "INSERT INTO sensor_readings VALUES (to_timestamp(%s), %s, 'aq-00166-1', "
                "'00166', 'air_quality', %s)",
                (now - 3 * 3600 + i * 300, f"r-{i}", json.dumps({"pm25": 30.0 + i % 7})),
            )


async def publish(bootstrap: str, topic: str, message: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, message)
    finally:
        await producer.stop()


def test_the_wall_shows_aqi_bands_and_river_levels_against_their_lines(
    database_url: str, kafka_bootstrap: str
) -> None:
    assert Path(CHROMIUM).exists(), "Chromium is needed: scripts/test-servers installs it"
    now = time.time()
    store(database_url, now)
    topics = Topics(f"wall-{uuid.uuid4().hex[:6]}.")
    settings = Settings(
        database_url=database_url,
        kafka_url=f"kafka://{kafka_bootstrap}",
        topic_prefix=topics.prefix,
        read_token=TOKEN,
    )
    air = '[data-sensor="aq-00166-1"]'
    with (
        serving(settings, lifespan="on") as (base, app),
        chromium_page(f"{base}/?token={TOKEN}") as page,
    ):
        # from the REST list and the feed's start-up load
        page.wait_for_selector(f'{air} [data-testid="aqi"][data-value="87"]', timeout=60_000)
        badge = page.locator(f'{air} [data-testid="aqi"]')
        assert badge.inner_text() == "87 · Trung bình / Moderate"
        rgb = "rgb({}, {}, {})".format(*MODERATE.rgb)
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == rgb
        # no index is "no data", never 0; a station never heard of too
        for sid in ("aq-00070-1", "aq-00004-1"):
            none = page.locator(f'[data-sensor="{sid}"] [data-testid="aqi"]')
            assert none.inner_text() == "Không có dữ liệu / No data"
            assert none.get_attribute("data-band") == "none"
        # the history line, from the readings route
        page.wait_for_selector(f'{air} [data-testid="sparkline"]', timeout=20_000)
        assert (
            int(page.locator(f'{air} [data-testid="sparkline"]').get_attribute("data-points")) >= 30
        )

        # live: the stage's message on the kpi-updates topic
        for _ in range(300):
            if "sensor/aq-00166-1" in app.state.hub.channels():
                break
            time.sleep(0.1)
        river = LatestReading(
            "wl-long-bien",
            "tram-long-bien",
            "water_level",
            now,
            {"level": 10.7},
            {
                "known": True,
                "windows": {},
                "aqi": None,
                "flood": {
                    "level": 2,
                    "lines": [9.5, 10.5, 11.5],
                    "level_m": 10.7,
                    "rising": False,
                    "rate_m_per_h": None,
                },
                "health": {"ok": False, "problems": {"stuck": "36 identical readings"}},
            },
        )
        message = encode_sensor_update([river])
        # in a thread of its own: Playwright's sync API runs a loop in this one
        sender = threading.Thread(
            target=asyncio.run, args=(publish(kafka_bootstrap, topics.kpi_updates, message),)
        )
        sender.start()
        sender.join(30)
        water = '[data-sensor="wl-long-bien"]'
        page.wait_for_selector(f'{water} [data-testid="water-level"][data-value="10.7"]')
        assert page.locator(f'{water} [data-testid="flood-level"]').inner_text() == "Báo động II"
        xs = page.evaluate(
            """sel => {
                const g = document.querySelector(sel + ' [data-testid="flood-gauge"]');
                const x = (q) => Number(g.querySelector(q).getAttribute("x1"));
                return [x('[data-line="1"]'), x('[data-line="2"]'), x('[data-line="3"]'),
                        x('[data-testid="level-mark"]')];
            }""",
            water,
        )
        assert xs[0] < xs[1] < xs[3] < xs[2], xs
        health = page.locator(f'{water} [data-testid="sensor-health"]')
        assert health.is_visible() and "Giá trị không đổi" in health.inner_text()
        assert page.locator(water).get_attribute("data-health") == "faulty"


# -- the panel at 1920×1080, every station of the sample file -----------------

VALUES = {
    "aq-00004-1": {"pm25": 18.0, "pm10": 30.0, "o3": 40.0, "no2": 22.0, "so2": 5.0, "co": 900.0},
    "aq-00166-1": {"pm25": 41.0, "pm10": 66.0},
    "wl-long-bien": {"level": 10.7},
    "wl-son-tay": {"level": 6.2},
    "tc-00008-1": {"vehicles": 57.0, "speed": 31.5},
    "rg-00082-1": {"rain_mm": 2.4},
}
# never heard from: the stage stores it with ts NULL, no values, its health
NEVER_HEARD = {"aq-00070-1", "nz-00025-1"}
UNKNOWN = 15  # sensors the stations file lacks: more than the panel shows


def store_every_station(url: str, now: float) -> None:
    from ioc.stations import SAMPLE_STATIONS, load_stations

    migrate(url)
    with psycopg.connect(url) as conn:
        for station in load_stations(SAMPLE_STATIONS):
            sid = station.sensor_id
            heard = sid not in NEVER_HEARD
            ts = now - 120 if heard else None
            body: dict[str, Any] = {
                "sensor_id": sid,
                "area": station.area,
                "kind": station.kind,
                **aq_status(now - 120),
                "ts": ts,
                "values": VALUES.get(sid, {}),
                "aqi": None,
                "health": {"ok": True, "problems": {}},
            }
            if station.kind == "air_quality":
                # the index of the hour that ended before the reading; Cầu
                # Giấy's is of an hour 3 hours before it
                hour = (now - 120) // 3600 * 3600 - (3 * 3600 if sid == "aq-00166-1" else 0)
                body["aqi"] = {"vn": {**aq_status(now)["aqi"]["vn"], "hour": hour}}
            if station.alarm_levels:
                level = VALUES[sid]["level"]
                lines = list(station.alarm_levels)
                body["flood"] = {
                    "level": sum(level >= x for x in lines),
                    "lines": lines,
                    "level_m": level,
                    "rising": False,
                    "rate_m_per_h": None,
                }
            if not heard:
                body["aqi"] = {"vn": None} if station.kind == "air_quality" else None
                body["health"] = {
                    "ok": False,
                    "problems": {"silent": "never heard from for 900 s (allowed 900 s)"},
                }
            conn.execute(
                "INSERT INTO sensor_status (sensor_id, area, kind, part, ts, status) "
                "VALUES (%s, %s, %s, 0, to_timestamp(%s::float8), %s)",
                (sid, station.area, station.kind, ts, json.dumps(body)),
            )
        for i in range(36):  # 3 h of PM2.5 for a history line
            conn.execute(
                "INSERT INTO sensor_readings VALUES (to_timestamp(%s), %s, 'aq-00166-1', "
                "'00166', 'air_quality', %s)",
                (now - 3 * 3600 + i * 300, f"r-{i}", json.dumps({"pm25": 30.0 + i % 7})),
            )
        for i in range(UNKNOWN):
            sid = f"nz-extra-{i:02d}"
            body = {
                "sensor_id": sid,
                "area": "00166",
                "kind": "noise",
                "known": False,
                "ts": now - 60 - i,
                "values": {"laeq": 50.0 + i},
                "windows": {},
                "aqi": None,
                "flood": None,
                "health": {"ok": True, "problems": {}},
            }
            conn.execute(
                "INSERT INTO sensor_status (sensor_id, area, kind, part, ts, status) "
                "VALUES (%s, '00166', 'noise', 0, to_timestamp(%s), %s)",
                (sid, now - 60 - i, json.dumps(body)),
            )


def test_every_station_fits_the_panel_of_a_1080p_wall(
    database_url: str, kafka_bootstrap: str
) -> None:
    from ioc.stations import SAMPLE_STATIONS, load_stations

    now = time.time()
    store_every_station(database_url, now)
    ids = [s.sensor_id for s in load_stations(SAMPLE_STATIONS)]
    settings = Settings(
        database_url=database_url,
        kafka_url=f"kafka://{kafka_bootstrap}",
        topic_prefix=f"wall-{uuid.uuid4().hex[:6]}.",
        read_token=TOKEN,
    )
    with (
        serving(settings, lifespan="on") as (base, _app),
        chromium_page(f"{base}/?token={TOKEN}") as page,
    ):
        page.wait_for_selector('[data-sensor="nz-extra-00"]', timeout=60_000)
        page.wait_for_selector('[data-sensor="aq-00166-1"] [data-testid="sparkline"]')
        page.screenshot(path="/tmp/wall-sensors.png")
        # each station's box inside the panel's, the panel inside the screen
        boxes = page.evaluate(
            """ids => {
                const r = (e) => { const b = e.getBoundingClientRect();
                    return {top: b.top, bottom: b.bottom, left: b.left, right: b.right}; };
                const panel = document.querySelector('[data-testid="sensors-panel"]');
                const part = panel.querySelector('.sensors-known') || panel;
                return {panel: r(panel), part: r(part),
                        rows: Object.fromEntries(ids.map(id => [id,
                            r(document.querySelector(`[data-sensor="${id}"]`))]))};
            }""",
            ids,
        )
        panel, part = boxes["panel"], boxes["part"]
        assert panel["top"] >= 0 and panel["bottom"] <= 1080 and panel["right"] <= 1920
        for sid, row in boxes["rows"].items():
            for outer in (panel, part):
                assert (
                    outer["top"] - 0.5 <= row["top"] and row["bottom"] <= outer["bottom"] + 0.5
                ), (
                    sid,
                    row,
                    outer,
                )
                assert outer["left"] - 0.5 <= row["left"] and row["right"] <= outer["right"] + 0.5
        # a station never heard from: its problem, no value
        for sid in NEVER_HEARD:
            row = f'[data-sensor="{sid}"]'
            health = page.locator(f'{row} [data-testid="sensor-health"]')
            assert health.is_visible() and "Mất tín hiệu" in health.inner_text()
            assert page.locator(f"{row} .s-ts").inner_text() == ""
            assert page.locator(f"{row} .m-v").count() == 0
        # an index says the hour it is of, and that it is older than the reading
        at = page.locator('[data-sensor="aq-00004-1"] [data-testid="aqi-at"]')
        assert at.inner_text().endswith(":00") and at.get_attribute("data-stale") == "false"
        at = page.locator('[data-sensor="aq-00166-1"] [data-testid="aqi-at"]')
        assert at.inner_text().startswith("lúc ") and at.get_attribute("data-stale") == "true"
        # the sensors the file lacks below them, in a part that turns its
        # pages by itself: the last note comes into view
        extra = page.locator(".sensors-extra")
        assert extra.evaluate("e => e.clientHeight") >= 40
        assert extra.get_attribute("data-overflow") in (None, "true")
        page.wait_for_function(
            """() => {
                const part = document.querySelector('.sensors-extra').getBoundingClientRect();
                const note = document.querySelector('[data-testid="sensors-unknown"]');
                const b = note.getBoundingClientRect();
                return b.top >= part.top - 0.5 && b.bottom <= part.bottom + 0.5;
            }""",
            timeout=60_000,
        )
        assert page.locator('[data-testid="sensors-unknown"]').inner_text().startswith("+7 ")
        page.screenshot(path="/tmp/wall-sensors-turned.png")
