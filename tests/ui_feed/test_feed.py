"""The live feed's handling of worker messages, into a real hub and an
in-memory screen (the Kafka side runs in tests/test_pipeline.py)."""

from __future__ import annotations

import json
import logging

import orjson
import pytest

from alerts.messages import ITEMS_PER_MESSAGE, SlaTransition, encode_sla, sla_messages
from ioc.kpis import FLOWS, LEVELS, WINDOWS
from ioc.stations import SAMPLE_STATIONS, Stations, load_stations
from ioc.topics import Topics
from ioc.updates import LatestReading, Trace, encode_kpi_update
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


def stations() -> Stations:
    return load_stations(SAMPLE_STATIONS)


def sensor_feed(hub: Hub) -> Feed:
    registry, _ = world()
    return Feed(hub, None, registry, TOPICS, stations=stations())  # type: ignore[arg-type]


def reading(sensor_id: str, ts: float, kind: str = "air_quality", **status: object) -> dict:
    measure = "level" if kind == "water_level" else "pm25"
    return {
        "sensor_id": sensor_id,
        "area": "00166",
        "kind": kind,
        "ts": ts,
        "values": {measure: ts},
        **status,
    }


def send(live: Feed, *readings: dict) -> None:
    live.handle(TOPICS.kpi_updates, orjson.dumps({"type": "sensor", "readings": list(readings)}))


def test_sensor_readings_carry_their_area_name() -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = sensor_feed(hub)
    send(
        live,
        {**reading("wl-1", 1.0, "water_level"), "area": "tram-long-bien"},
        reading("aq-1", 1.0),
        {**reading("aq-2", 1.0), "area": "99999"},
    )
    labels = {k: hub.snapshot(f"sensor/{k}")["area_label"] for k in ("wl-1", "aq-1", "aq-2")}  # type: ignore[index]
    assert labels == {
        "aq-1": "Phường Cầu Giấy",
        "aq-2": "99999",  # an area the province file lacks keeps its code
        "wl-1": "Trạm thủy văn Long Biên (sông Hồng)",
    }


def test_each_sensor_has_its_channel_with_its_status_fields() -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = sensor_feed(hub)
    aqi = {"vn": {"index": 87, "band": "moderate"}, "us-epa-2024": None}
    health = {"ok": False, "problems": {"stuck": "12 identical readings"}}
    send(live, reading("aq-00166-1", 10.0, known=True, aqi=aqi, health=health))
    item = hub.snapshot("sensor/aq-00166-1")
    assert item["aqi"] == aqi and item["health"] == health and item["known"] is True  # type: ignore[index]
    assert item["values"] == {"pm25": 10.0} and item["ts"] == 10.0  # type: ignore[index]
    # no channel lists every sensor any more
    assert hub.snapshot("sensors") is None


def test_a_kind_channel_carries_the_changed_sensors_of_each_message() -> None:
    async def main() -> None:
        hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
        live = sensor_feed(hub)
        send(live, reading("aq-00166-1", 1.0), reading("wl-long-bien", 1.0, "water_level"))
        screen, task = connect(hub)
        got = await settle(screen, sub("sensors/air_quality"))
        assert [m["type"] for m in got] == ["snapshot"]
        send(live, reading("aq-00004-1", 2.0), reading("aq-00070-1", 2.0))
        send(live, reading("wl-long-bien", 2.0, "water_level"))  # another kind: not here
        [delta] = await settle(screen)
        assert delta["type"] == "delta" and delta["channel"] == "sensors/air_quality"
        assert [r["sensor_id"] for r in delta["data"]["readings"]] == ["aq-00004-1", "aq-00070-1"]
        water = hub.snapshot("sensors/water_level")
        assert [[r["ts"] for r in m["readings"]] for m in water] == [[1.0], [2.0]]  # type: ignore[union-attr]
        await leave(screen, task)

    run(main)


def test_an_older_reading_never_replaces_a_newer_one() -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = sensor_feed(hub)
    send(live, reading("aq-00166-1", 20.0))
    send(live, reading("aq-00166-1", 10.0))  # late
    assert hub.snapshot("sensor/aq-00166-1")["ts"] == 20.0  # type: ignore[index]
    assert hub.snapshot("sensors/air_quality") == [
        {"readings": [hub.snapshot("sensor/aq-00166-1")]}
    ]
    # as new: the stage sends a sensor again when only its status changed
    send(live, reading("aq-00166-1", 20.0, health={"ok": False, "problems": {"silent": "x"}}))
    assert hub.snapshot("sensor/aq-00166-1")["health"]["ok"] is False  # type: ignore[index]


def test_a_station_never_heard_from_has_its_channel_until_its_first_reading() -> None:

    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = sensor_feed(hub)
    health = {"ok": False, "problems": {"silent": "never heard from for 900 s"}}
    # as the start-up load reads it from sensor_status: no reading, its health
    never = LatestReading("aq-00070-1", "00070", "air_quality", None, {}, {"health": health})
    live.apply_sensors([never])
    item = hub.snapshot("sensor/aq-00070-1")
    assert item["ts"] is None and item["values"] == {} and item["health"] == health  # type: ignore[index]
    send(live, {**reading("aq-00070-1", 5.0), "area": "00070"})
    assert hub.snapshot("sensor/aq-00070-1")["ts"] == 5.0  # type: ignore[index]
    live.apply_sensors([never])  # a reading is newer than no reading
    assert hub.snapshot("sensor/aq-00070-1")["ts"] == 5.0  # type: ignore[index]


def test_unknown_sensor_ids_get_channels_up_to_a_cap_and_stations_always() -> None:
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = sensor_feed(hub)
    n = SENSORS_SHOWN + 300
    for start in range(0, n, 100):  # as a flood of invented ids would come
        send(
            live, *[reading(f"flood-{i:05d}", float(i)) for i in range(start, min(n, start + 100))]
        )
    send(live, reading("aq-00166-1", 1.0), reading("flood-00001", 5000.0))
    channels = [c for c in hub.channels() if c.startswith("sensor/")]
    assert len(channels) == SENSORS_SHOWN + 1
    assert "sensor/aq-00166-1" in channels  # a configured station, past the cap
    assert "sensor/flood-00799" not in channels and live.unknown_dropped == 300
    assert hub.snapshot("sensor/flood-00001")["ts"] == 5000.0  # type: ignore[index]
    assert hub.snapshot("sensor/flood-00001")["known"] is False  # type: ignore[index]


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


T0 = 1_773_626_400.0


def kpi_update(part: int, received: int, edge: float) -> bytes:
    flows = {w: [0] * len(FLOWS) for w in WINDOWS}
    flows["today"][FLOWS.index("received")] = received
    counters = orjson.dumps({"flows": flows, "levels": [0] * len(LEVELS)}).decode()
    trace = Trace(applied=edge + 0.01, committed=edge + 0.02, published=edge + 0.03)
    return encode_kpi_update(part, T0, {"province": counters}, trace, {"province": edge})


def test_updates_read_together_give_one_view_per_scope_with_its_oldest_change() -> None:
    """Every partition of the worker sends the province's counters: read in
    one batch, the screen gets one view of their sum, timed by the oldest."""

    async def main() -> None:
        hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
        live = feed(hub)
        screen, task = connect(hub)
        await settle(screen, sub("kpi/province"))
        edges = {0: T0 - 3, 1: T0 - 5, 2: T0 - 4, 3: T0 - 1}
        live.handle_many(
            (TOPICS.kpi_updates, kpi_update(part, part + 1, edge)) for part, edge in edges.items()
        )
        [view] = [m["data"] for m in await settle(screen)]
        assert view["windows"]["today"]["received"] == 1 + 2 + 3 + 4
        assert view["trace"]["edge"] == T0 - 5 and view["trace"]["published"] == T0 - 5 + 0.03
        live.handle(TOPICS.kpi_updates, kpi_update(1, 7, T0))  # alone: a view of its own
        [view] = [m["data"] for m in await settle(screen)]
        assert view["windows"]["today"]["received"] == 1 + 7 + 3 + 4
        assert view["trace"]["edge"] == T0
        await leave(screen, task)

    run(main)


@pytest.mark.parametrize("at", [1e12, -1.0, 1e300])
def test_an_update_at_an_impossible_instant_costs_only_itself(
    at: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Read in one batch with good ones: it is refused at decoding, their
    views go out, and its scope's next update too."""
    hub = Hub(heartbeat=QUIET, stall_timeout=QUIET)
    live = feed(hub)
    bad = kpi_update(0, 1, T0).replace(b'"at":1773626400.0', f'"at":{at!r}'.encode())
    with caplog.at_level(logging.WARNING, logger="ui_feed.feed"):
        live.handle_many(
            (TOPICS.kpi_updates, v) for v in (kpi_update(1, 2, T0), bad, kpi_update(2, 3, T0))
        )
    assert "field 'at' must be epoch seconds" in caplog.text
    assert hub.snapshot("kpi/province")["windows"]["today"]["received"] == 2 + 3
    live.handle(TOPICS.kpi_updates, kpi_update(0, 4, T0))
    assert hub.snapshot("kpi/province")["windows"]["today"]["received"] == 2 + 3 + 4
