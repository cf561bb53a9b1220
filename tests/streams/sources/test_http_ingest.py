"""The ingest router's answers: body forms, per-item reasons, token, size
limit, an unavailable bus. The bus here records what it is given; the
integration test (tests/test_pipeline.py) posts through a real broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ioc.settings import Settings
from streams.sources.http_ingest import IngestStats, ingest_router
from tests.ioc.test_events import event

URL = "/api/v1/procedure-events"


class RecordingBus:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []
        self.fail = fail

    async def send_keyed(self, topic: str, items: list[tuple[str, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, list(items)))


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
    app.include_router(ingest_router(Settings(**settings), lambda: bus, stats))
    return Client(app), stats


def received(n: int) -> dict[str, Any]:
    return event("received", event_id=f"e-{n}", dossier_id=f"D-{n}")


def test_one_object_an_array_and_ndjson_are_accepted() -> None:
    bus = RecordingBus()
    http, stats = client(bus)
    assert http.post(URL, json=received(1)).status_code == 202
    assert http.post(URL, json=[received(2), received(3)]).json()["accepted"] == 2
    lines = "\n".join(json.dumps(received(n)) for n in (4, 5, 6))
    r = http.post(URL, content=lines, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json() == {"accepted": 3, "rejected": 0, "errors": []}
    keys = [key for topic, items in bus.sent for key, _ in items]
    assert keys == [f"D-{n}" for n in range(1, 7)]
    assert {topic for topic, _ in bus.sent} == {"ioc.procedure-events"}
    assert stats.accepted["procedure"] == 6


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
    assert stats.rejected["procedure"] == 2 and len(bus.sent) == 1


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


def test_nothing_is_accepted_when_the_bus_is_down() -> None:
    for bus in (None, RecordingBus(fail=True)):
        http, stats = client(bus)
        r = http.post(URL, json=received(1))
        assert r.status_code == 503 and "nothing was accepted" in r.json()["detail"]
        assert stats.accepted["procedure"] == 0 and stats.unavailable == 1
