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
