"""The live feed's handling of worker messages, into a real hub and an
in-memory screen (the Kafka side runs in tests/test_pipeline.py)."""

from __future__ import annotations

import json
import logging

import orjson
import pytest

from alerts.messages import ITEMS_PER_MESSAGE, SlaTransition, encode_sla, sla_messages
from ioc.topics import Topics
from tests.streams.helpers import world
from tests.ui_feed.test_hub import QUIET, connect, leave, run, settle, sub
from ui_feed.feed import SENSORS_SHOWN, Feed
from ui_feed.hub import Hub

TOPICS = Topics("")


def feed(hub: Hub) -> Feed:
    registry, _ = world()
    return Feed(hub, None, registry, TOPICS)  # type: ignore[arg-type]


def transition(i: int) -> SlaTransition:
    return SlaTransition(
        1_773_626_400.0 + i, f"D{i}", "overdue", None, 9.0, 8.0, None, "a", "c", "p", "f"
    )


def test_a_full_sla_message_reaches_a_screen_that_keeps_up() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
        live = feed(hub)
        live.handle(TOPICS.alerts, encode_sla([transition(-1)]))
        screen, task = connect(hub)
        assert [m["type"] for m in await settle(screen, sub("alerts"))] == ["snapshot"]
        [message] = list(sla_messages([transition(i) for i in range(ITEMS_PER_MESSAGE)]))
        live.handle(TOPICS.alerts, message)  # published in one go, with no await in between
        got = await settle(screen)
        assert [m["data"]["dossier_id"] for m in got] == [f"D{i}" for i in range(1000)]
        assert screen.closed is None and hub.stats()["dropped_slow"] == 0
        await leave(screen, task)

    run(main)


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b'{"type": "kpi", "part": 0}',
        b'{"type": "kpi", "part": "x", "at": 1, "scopes": {}}',
        b'{"type": "sensor", "readings": 7}',
        b"[1, 2]",
    ],
)
def test_a_malformed_update_is_skipped_and_the_next_one_goes_through(
    value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = feed(hub)
    with caplog.at_level(logging.WARNING, logger="ui_feed.feed"):
        live.handle(TOPICS.kpi_updates, value)
    assert "ignoring a malformed update" in caplog.text
    live.handle(TOPICS.alerts, encode_sla([transition(1)]))
    assert live.messages == 1
    assert json.loads(json.dumps(hub.snapshot("alerts")))[-1]["dossier_id"] == "D1"


def test_sensor_readings_carry_their_area_name() -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = feed(hub)
    live.handle(
        TOPICS.kpi_updates,
        orjson.dumps(
            {
                "type": "sensor",
                "readings": [
                    {
                        "sensor_id": "wl-1",
                        "area": "tram-long-bien",
                        "kind": "water_level",
                        "ts": 1.0,
                        "values": {"level": 3.5},
                    },
                    {
                        "sensor_id": "aq-1",
                        "area": "00166",
                        "kind": "air_quality",
                        "ts": 1.0,
                        "values": {"pm25": 40.0},
                    },
                    {
                        "sensor_id": "aq-2",
                        "area": "99999",
                        "kind": "air_quality",
                        "ts": 1.0,
                        "values": {"pm25": 40.0},
                    },
                ],
            }
        ),
    )
    readings = hub.snapshot("sensors")["readings"]  # type: ignore[index]
    assert [r["area_label"] for r in readings] == [
        "Phường Cầu Giấy",
        "99999",  # an area the province file lacks keeps its code
        "Trạm thủy văn Long Biên (sông Hồng)",
    ]


def test_the_sensors_channel_keeps_the_sensors_heard_last() -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = feed(hub)
    n = SENSORS_SHOWN + 300

    def reading(i: int) -> dict[str, object]:
        return {
            "sensor_id": f"flood-{i:05d}",
            "area": "00166",
            "kind": "water_level",
            "ts": float(i),
            "values": {"level": 1.0},
        }

    for start in range(0, n, 100):  # as a flood of invented ids would come
        batch = [reading(i) for i in range(start, min(n, start + 100))]
        live.handle(TOPICS.kpi_updates, orjson.dumps({"type": "sensor", "readings": batch}))
    readings = hub.snapshot("sensors")["readings"]  # type: ignore[index]
    assert len(readings) == SENSORS_SHOWN
    assert {r["sensor_id"] for r in readings} == {f"flood-{i:05d}" for i in range(300, n)}


def test_the_alert_stages_changes_reach_the_consoles_channel() -> None:
    from alerts.alert_messages import alert_message

    hub = Hub()
    registry, _ = world()
    live = Feed(hub, None, registry, TOPICS, titles={"r-1": "Hồ sơ quá hạn"})  # type: ignore[arg-type]
    known = {"alert": {"id": "al-1", "rule": "r-1", "state": "open"}, "changes": ["opened"]}
    other = {"alert": {"id": "al-2", "rule": "r-9", "state": "open"}, "changes": ["opened"]}
    live.handle(TOPICS.alerts, alert_message(2, [known, {"alert": {}}, other]))
    # each with its rule's title, for the screens; an unknown rule's is empty
    assert hub.snapshot("alerts/state") == [
        {**known, "alert": {**known["alert"], "title": "Hồ sơ quá hạn"}},
        {**other, "alert": {**other["alert"], "title": ""}},
    ]
