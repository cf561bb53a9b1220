"""``/metrics``: Prometheus text from a registry per app."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ioc.settings import Settings
from ui_feed.app import create_app

INGEST = "ingest-token-0123"


def scrape(
    app: object, *posts: tuple[str, bytes, str]
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://ioc") as c:
            for path, body, content_type in posts:
                headers = {"content-type": content_type, "authorization": f"Bearer {INGEST}"}
                await c.post(path, content=body, headers=headers)
            return await c.get("/metrics")

    r = asyncio.run(run())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_ingest_by_kind_and_reason_and_describe_the_live_side() -> None:
    app = create_app(Settings(ingest_token=INGEST))
    url = "/api/v1/procedure-events"
    samples = scrape(
        app,
        (url, b'x\n{"schema": 1}\n' + b"[" * 20 + b"]" * 20, "application/x-ndjson"),
        (url, b"{}", "text/plain"),
        ("/api/v1/sensor-readings", b"", "application/json"),
    )
    rejected = "ioc_ingest_rejected_total"
    procedure = ("kind", "procedure")
    assert samples[(rejected, (procedure, ("reason", "not_json")))] == 1
    assert samples[(rejected, (procedure, ("reason", "invalid")))] == 1
    assert samples[(rejected, (procedure, ("reason", "too_deep")))] == 1
    assert samples[(rejected, (procedure, ("reason", "not_utf8")))] == 0
    refused = "ioc_ingest_refused_bodies_total"
    assert samples[(refused, (procedure, ("status", "415")))] == 1
    assert samples[(refused, (("kind", "sensor"), ("status", "400")))] == 1
    assert samples[("ioc_ingest_accepted_total", (procedure,))] == 0
    assert samples[("ioc_ingest_unavailable_total", (("kind", "sensor"),))] == 0
    for name in (
        "ioc_ws_clients",
        "ioc_ws_channels",
        "ioc_ws_subscriptions",
        "ioc_ws_pending",
        "ioc_ws_published_total",
        "ioc_ws_messages_sent_total",
        "ioc_ws_dropped_slow_total",
        "ioc_feed_messages_total",
        "ioc_feed_connected",
    ):
        assert samples[(name, ())] == 0, name
    assert samples[("process_resident_memory_bytes", ())] > 0


def test_each_app_counts_for_itself() -> None:
    first, second = create_app(Settings(ingest_token=INGEST)), create_app(Settings())
    url = "/api/v1/procedure-events"
    scrape(first, (url, b"x", "application/json"))
    samples = scrape(second)
    assert (
        samples[("ioc_ingest_refused_bodies_total", (("kind", "procedure"), ("status", "400")))]
        == 0
    )


def test_published_messages_are_counted_when_scraped() -> None:
    app = create_app(Settings())
    app.state.hub.publish("alerts", {"n": 1}, conflate=False)
    app.state.hub.publish("kpi/province", {"n": 1}, conflate=True)
    samples = scrape(app)
    assert samples[("ioc_ws_published_total", ())] == 2
    assert samples[("ioc_ws_channels", ())] == 2
