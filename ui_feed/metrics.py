"""The API's Prometheus metrics, in a registry of its own per app (tests build
many apps; the process-wide default registry would mix them up).

Ingest counters are kept by ``streams.sources.http_ingest.IngestStats``; the
hub's and the live feed's figures are read when scraped, from the objects
that keep them, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ui_feed.feed import Feed
from ui_feed.hub import Hub

# hub.stats() key -> (metric, help); counters get ``_total`` when exposed
HUB_GAUGES = {
    "clients": ("ioc_ws_clients", "Websocket clients connected"),
    "channels": ("ioc_ws_channels", "Channels the hub holds"),
    "subscriptions": ("ioc_ws_subscriptions", "Channel subscriptions of all clients"),
    "pending": ("ioc_ws_pending", "Messages queued for clients, not yet sent"),
}
HUB_COUNTERS = {
    "published": ("ioc_ws_published", "Messages published to the hub's channels"),
    "messages_sent": ("ioc_ws_messages_sent", "Messages sent to websocket clients"),
    "dropped_slow": ("ioc_ws_dropped_slow", "Clients dropped for not keeping up (closed 1013)"),
}


class LiveCollector(Collector):
    """The hub's and the feed's figures at scrape time."""

    def __init__(self, hub: Hub, feed: Callable[[], Feed | None]) -> None:
        self.hub = hub
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        stats = self.hub.stats()
        for key, (name, text) in HUB_GAUGES.items():
            yield GaugeMetricFamily(name, text, value=stats[key])
        for key, (name, text) in HUB_COUNTERS.items():
            yield CounterMetricFamily(name, text, value=stats[key])
        feed = self.feed()
        yield CounterMetricFamily(
            "ioc_feed_messages",
            "Update messages the live feed applied",
            value=feed.messages if feed is not None else 0,
        )
        yield GaugeMetricFamily(
            "ioc_feed_connected",
            "1 while the live feed reads the update topics",
            value=int(feed is not None and feed.connected),
        )


# seconds; fine below a quarter second, where the wall's target is
HOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)


class Latency:
    """Where the time goes on the API's side of an update's way to a screen."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.hop = Histogram(
            "ioc_api_hop_seconds",
            "Time an update spends between two stages: published_to_fed (the worker's "
            "send to this API's feed), fed_to_sent (the feed to a screen's socket)",
            ["hop"],
            buckets=HOP_BUCKETS,
            registry=registry,
        )
        self.edge_to_screen = Histogram(
            "ioc_event_to_screen_seconds",
            "From an event reaching the edge (HTTP ingest, MQTT bridge) to a screen's "
            "socket taking the KPI update that carries it",
            buckets=HOP_BUCKETS,
            registry=registry,
        )

    def observe(self, hop: str, seconds: float) -> None:
        self.hop.labels(hop).observe(seconds)

    def sent(self, message: dict[str, Any], at: float) -> None:
        """A screen took ``message`` at ``at`` (the hub's on_sent)."""
        data = message.get("data")
        trace = data.get("trace") if isinstance(data, dict) else None
        if not isinstance(trace, dict):
            return
        fed, edge = trace.get("fed"), trace.get("edge")
        if isinstance(fed, float):
            self.hop.labels("fed_to_sent").observe(at - fed)
        if isinstance(edge, float):
            self.edge_to_screen.observe(at - edge)


def api_registry(hub: Hub, feed: Callable[[], Feed | None]) -> CollectorRegistry:
    """A registry with the hub, the feed and this process (memory, CPU, files)."""
    registry = CollectorRegistry()
    registry.register(LiveCollector(hub, feed))
    ProcessCollector(registry=registry)
    return registry
