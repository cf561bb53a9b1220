"""The ingest router's answers: body forms, content types, per-item reasons
(capped), token, size limit, an unavailable bus, counters. The bus here
records what it is given; the integration tests (tests/test_pipeline.py,
tests/ui_feed/test_fuzz.py) post through a real broker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ioc.events import decode_procedure_event
from ioc.settings import Settings
from ioc.topics import EDGE_HEADER
from streams.sources import http_ingest
from streams.sources.http_ingest import INLINE_BYTES, IngestStats, ingest_router
from streams.sources.ingest_body import MAX_CONTAINERS, MAX_REPORTED
from tests.ioc.test_events import event
from ui_feed.auth import Auth, Role

URL = "/api/v1/procedure-events"


class RecordingBus:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []
        self.headers: list[Any] = []
        self.fail = fail

    async def send_keyed(
        self, topic: str, items: list[tuple[str, bytes]], headers: Any = None
    ) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, list(items)))
        self.headers.append(headers)


class Client:
    """Requests straight into the ASGI app, no server socket."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
                return await c.post(url, **kwargs)

        return asyncio.run(send())


def client(bus: RecordingBus | None, **settings: Any) -> tuple[Client, IngestStats]:
    stats = IngestStats()
    app = FastAPI()
    s = Settings(**settings)
    app.include_router(ingest_router(s, lambda: bus, stats, Auth(s).require(Role.INGEST)))
    return Client(app), stats


def counted(stats: IngestStats, name: str, **labels: str) -> float:
    return stats.value(f"ioc_ingest_{name}_total", **labels)


NDJSON = {"content-type": "application/x-ndjson"}


def received(n: int) -> dict[str, Any]:
    return event("received", event_id=f"e-{n}", dossier_id=f"D-{n}")


def test_one_object_an_array_and_ndjson_are_accepted() -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    assert http.post(URL, json=received(1)).status_code == 202
    assert http.post(URL, json=[received(2), received(3)]).json()["accepted"] == 2
    lines = "\n".join(json.dumps(received(n)) for n in (4, 5, 6))
    r = http.post(URL, content=lines, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202
    assert r.json() == {"accepted": 3, "rejected": 0, "errors": [], "errors_truncated": False}
    keys = [key for topic, items in bus.sent for key, _ in items]
    assert keys == [f"D-{n}" for n in range(1, 7)]
    assert {topic for topic, _ in bus.sent} == {"ioc.procedure-events"}
    assert counted(stats, "accepted", kind="procedure") == 6


def test_every_message_says_when_its_events_reached_the_edge() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    before = time.time()
    http.post(URL, json=received(1))
    [(name, value)] = bus.headers[0]
    assert name == EDGE_HEADER and before <= float(value) <= time.time()


def test_bad_items_are_named_and_the_good_ones_still_go() -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    body = f"{json.dumps(received(1))}\nnot json\n{json.dumps(event('rated', score=9))}\n"
    r = http.post(URL, content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202
    answer = r.json()
    assert answer["accepted"] == 1 and answer["rejected"] == 2
    assert [e["index"] for e in answer["errors"]] == [1, 2]
    assert answer["errors"][0]["reason"].startswith("not JSON")
    assert "score" in answer["errors"][1]["reason"]
    assert counted(stats, "rejected", kind="procedure", reason="not_json") == 1
    assert counted(stats, "rejected", kind="procedure", reason="invalid") == 1
    assert len(bus.sent) == 1


def test_a_pretty_printed_event_goes_on_as_one_line() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    body = json.dumps(received(1), indent=2)
    r = http.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 202 and r.json()["accepted"] == 1
    [(_, [(_, raw)])] = bus.sent
    assert b"\n" not in raw and json.loads(raw) == received(1)


def test_a_byte_order_mark_is_ignored() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    body = b"\xef\xbb\xbf" + json.dumps([received(1), received(2)]).encode()
    r = http.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 202 and r.json()["accepted"] == 2


def test_what_the_worker_could_not_read_is_refused_at_the_edge() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    surrogate = json.dumps(received(1)).replace('"D-1"', '"D-\\ud800"')
    r = http.post(URL, content=f"[{surrogate}, {json.dumps(received(2))}]")
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    nan = json.dumps(received(3)).replace('_days": 3', '_days": NaN')
    body = f"{nan}\n{json.dumps(received(4))}"
    r = http.post(URL, content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json()["errors"][0]["index"] == 0
    assert [key for _, items in bus.sent for key, _ in items] == ["D-4"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "empty body"),
        (b"{nope", 400, "not JSON"),
        (b"[]", 422, "no events in the body"),
    ],
)
def test_bodies_without_events(body: bytes, status: int, reason: str) -> None:
    http, _ = client(RecordingBus())
    r = http.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and reason in r.json()["detail"]


def test_no_valid_item_is_422_with_the_reasons() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    r = http.post(URL, json=[{"type": "received"}])
    assert r.status_code == 422 and r.json()["rejected"] == 1 and bus.sent == []


def test_the_token_is_required_when_configured() -> None:
    http, _ = client(RecordingBus(), ingest_token="s3cret-s3cret-s3cret")
    assert http.post(URL, json=received(1)).status_code == 401
    wrong = {"authorization": "Bearer nope"}
    assert http.post(URL, json=received(1), headers=wrong).status_code == 401
    right = {"authorization": "Bearer s3cret-s3cret-s3cret"}
    assert http.post(URL, json=received(1), headers=right).status_code == 202


def test_a_body_over_the_limit_is_413() -> None:
    http, _ = client(RecordingBus(), ingest_max_bytes=2_000)
    r = http.post(URL, json=[received(n) for n in range(20)])
    assert r.status_code == 413 and "split the batch" in r.json()["detail"]


@pytest.mark.parametrize("ndjson", [False, True])
def test_an_event_larger_than_a_message_can_carry_is_one_rejected_item(ndjson: bool) -> None:
    # under the body limit, over what one Kafka message takes: refused alone,
    # where it used to cost the batch a 503 that no retry could cure
    bus = RecordingBus()
    http, stats = client(bus)
    big = {**received(2), "type": "accepted", "junk": "x" * 2_000_000}
    items = [received(1), big, received(3)]
    if ndjson:
        body = "\n".join(json.dumps(item) for item in items)
        r = http.post(URL, content=body, headers=NDJSON)
    else:
        r = http.post(URL, json=items)
    assert r.status_code == 202
    assert r.json()["accepted"] == 2
    [error] = r.json()["errors"]
    assert error["index"] == 1 and "bytes of one event" in error["reason"]
    assert all(len(line) < 65_536 for _, items in bus.sent for _, line in items)
    assert counted(stats, "rejected", kind="procedure", reason="too_large") == 1


@pytest.mark.parametrize("empty", [b"[]", b"{}"])
@pytest.mark.parametrize("ndjson", [False, True])
def test_a_body_of_too_many_arrays_and_objects_is_413_before_parsing(
    empty: bytes, ndjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Millions of tiny containers within the byte limit would hold the GIL
    while orjson parses them: refused whole, unparsed, and counted."""
    parsed: list[bytes] = []
    real = http_ingest.sort_body

    def sort_body(body: bytes, *args: Any) -> Any:
        parsed.append(body)
        return real(body, *args)

    monkeypatch.setattr(http_ingest, "sort_body", sort_body)
    bus = RecordingBus()
    http, stats = client(bus)
    n = MAX_CONTAINERS + 1
    body = b"\n".join([empty] * n) if ndjson else b"[" + b",".join([empty] * (n - 1)) + b"]"
    headers = NDJSON if ndjson else {"content-type": "application/json"}
    r = http.post(URL, content=body, headers=headers)
    assert r.status_code == 413, r.text[:200]
    assert f"over {MAX_CONTAINERS} JSON arrays and objects" in r.json()["detail"]
    assert "split the batch" in r.json()["detail"]
    assert parsed == [] and bus.sent == []
    assert counted(stats, "refused_bodies", kind="procedure", status="413") == 1
    # at the budget, the body is read as usual: each item refused on its own
    at = b"[" + b",".join([b"{}"] * (MAX_CONTAINERS - 1)) + b"]"
    r = http.post(URL, content=at, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["rejected"] == MAX_CONTAINERS - 1


def test_nothing_is_accepted_when_the_bus_is_down() -> None:
    for bus in (None, RecordingBus(fail=True)):
        http, stats = client(bus)
        r = http.post(URL, json=received(1))
        assert r.status_code == 503
        assert ("nothing was accepted" if bus is None else "retry the whole batch") in (
            r.json()["detail"]
        )
        assert counted(stats, "accepted", kind="procedure") == 0
        assert counted(stats, "unavailable", kind="procedure") == 1


def deep(depth: int) -> str:
    """An object holding arrays nested ``depth`` levels (JSON text: the
    standard library's encoder would recurse)."""
    return '{"schema": 1, "payload": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [9, 256, 300, 1000])
def test_an_array_item_nested_too_deep_is_one_rejected_item(depth: int) -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    body = f"[{json.dumps(received(1))}, {deep(depth)}, {json.dumps(received(2))}]"
    r = http.post(URL, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2
    assert r.json()["errors"] == [
        {"index": 1, "reason": "event nests arrays or objects deeper than 8 levels"}
    ]
    assert [key for _, items in bus.sent for key, _ in items] == ["D-1", "D-2"]
    assert counted(stats, "rejected", kind="procedure", reason="too_deep") == 1


def test_a_deep_ndjson_line_is_rejected_with_its_reason() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    r = http.post(URL, content=f"{json.dumps(received(1))}\n{deep(1000)}", headers=NDJSON)
    assert r.status_code == 202
    assert r.json()["errors"] == [
        {"index": 1, "reason": "event nests arrays or objects deeper than 8 levels"}
    ]


def test_a_junk_body_names_the_first_errors_and_counts_them_all() -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    body = b"x\n" * 400_000  # 800 kB
    r = http.post(URL, content=body, headers=NDJSON)
    assert r.status_code == 422
    answer = r.json()
    assert (answer["accepted"], answer["rejected"]) == (0, 400_000)
    assert [e["index"] for e in answer["errors"]] == list(range(MAX_REPORTED))
    assert answer["errors_truncated"] is True
    assert len(r.content) < 20_000
    assert counted(stats, "rejected", kind="procedure", reason="not_json") == 400_000


def test_good_items_after_many_bad_ones_still_go() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    body = "\n".join(["{}"] * 500 + [json.dumps(received(1))])
    r = http.post(URL, content=body, headers=NDJSON)
    assert r.status_code == 202
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 500)
    assert len(r.json()["errors"]) == MAX_REPORTED and r.json()["errors_truncated"]


def test_a_large_body_is_validated_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[int] = set()

    def spy(obj: Any, raw: bytes) -> Any:
        threads.add(threading.get_ident())
        return decode_procedure_event(obj, raw)

    monkeypatch.setattr(http_ingest, "decode_procedure_event", spy)
    bus = RecordingBus()
    http, _ = client(bus)
    small = json.dumps([received(1)])
    assert http.post(URL, content=small).status_code == 202
    assert threads == {threading.get_ident()}  # the loop runs in this thread here
    big = "\n".join(json.dumps(received(n)) for n in range(2000))
    assert len(big) > INLINE_BYTES
    r = http.post(URL, content=big, headers=NDJSON)
    assert r.status_code == 202 and r.json()["accepted"] == 2000
    assert len(threads) == 2


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=iso-8859-1",
    ],
)
def test_other_content_types_are_415_with_the_reason(content_type: str) -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    r = http.post(URL, content=json.dumps(received(1)), headers={"content-type": content_type})
    assert r.status_code == 415
    assert "UTF-8" in r.json()["detail"] or "application/x-ndjson" in r.json()["detail"]
    assert bus.sent == []
    assert counted(stats, "refused_bodies", kind="procedure", status="415") == 1


def test_a_multipart_upload_is_refused_whole() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    r = http.post(URL, files={"events": ("events.json", json.dumps(received(1)))})
    assert r.status_code == 415 and bus.sent == []


def test_a_compressed_body_is_415() -> None:
    http, _ = client(RecordingBus())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    r = http.post(URL, content=b"\x1f\x8b\x08\x00", headers=headers)
    assert r.status_code == 415 and "gzip" in r.json()["detail"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
    ],
)
def test_json_and_ndjson_types_are_read(content_type: str) -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    r = http.post(URL, content=json.dumps(received(1)), headers={"content-type": content_type})
    assert r.status_code == 202 and r.json()["accepted"] == 1


def test_invalid_utf8_is_reported_as_such() -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    bad = b'{"schema": 1, "event_id": "e-\xff"}'
    r = http.post(URL, content=bad, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"] == "body is not UTF-8: invalid byte at offset 29"
    body = json.dumps(received(1)).encode() + b"\n" + bad
    r = http.post(URL, content=body, headers=NDJSON)
    assert r.status_code == 202
    assert r.json()["errors"] == [{"index": 1, "reason": "not UTF-8: invalid byte at offset 29"}]
    assert counted(stats, "rejected", kind="procedure", reason="not_utf8") == 1


def test_the_sensor_route_follows_the_same_rules() -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    url = "/api/v1/sensor-readings"
    reading = {
        "schema": 1,
        "event_id": "r-1",
        "sensor_id": "aq-1",
        "area": "00166",
        "kind": "air_quality",
        "ts": "2026-03-16T09:00:00+07:00",
        "values": {"pm25": 35.2},
    }
    r = http.post(url, content=f"[{json.dumps(reading)}, {deep(300)}]")
    assert r.status_code == 202 and r.json()["errors"][0]["index"] == 1
    r = http.post(url, content=b"x\n" * 1000, headers=NDJSON)
    assert r.status_code == 422 and len(r.json()["errors"]) == MAX_REPORTED
    assert r.json()["rejected"] == 1000 and r.json()["errors_truncated"]
    r = http.post(url, content=json.dumps(reading), headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert [t for t, _ in bus.sent] == ["ioc.sensor-readings"]
    assert counted(stats, "rejected", kind="sensor", reason="too_deep") == 1


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("ui_feed.auth.hmac.compare_digest", spy)
    http, _ = client(RecordingBus(), ingest_token="s3cret-s3cret-s3cret")
    wrong = {"authorization": "Bearer s3cret-s3cret-s3creX"}
    assert http.post(URL, json=received(1), headers=wrong).status_code == 401
    assert calls == [(b"s3cret-s3cret-s3creX", b"s3cret-s3cret-s3cret")]


def test_the_ingest_token_is_not_taken_from_the_query_string() -> None:
    http, _ = client(RecordingBus(), ingest_token="s3cret-s3cret-s3cret")
    r = http.post(URL + "?token=s3cret-s3cret-s3cret", json=received(1))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_the_openapi_examples_are_accepted() -> None:
    bus = RecordingBus()
    http, _ = client(bus)
    for route, example in [
        (URL, http_ingest.PROCEDURE_EXAMPLE),
        ("/api/v1/sensor-readings", http_ingest.SENSOR_EXAMPLE),
    ]:
        r = http.post(route, json=[example])
        assert r.status_code == 202 and r.json()["rejected"] == 0, r.text
