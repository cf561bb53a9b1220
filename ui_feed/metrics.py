"""The API's Prometheus metrics, in a registry of its own per app (tests build
many apps; the process-wide default registry would mix them up).

Ingest counters are kept by ``streams.sources.http_ingest.IngestStats``; the
hub's and the live feed's figures are read when scraped, from the objects
that keep them, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
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


def api_registry(hub: Hub, feed: Callable[[], Feed | None]) -> CollectorRegistry:
    """A registry with the hub, the feed and this process (memory, CPU, files)."""
    registry = CollectorRegistry()
    registry.register(LiveCollector(hub, feed))
    ProcessCollector(registry=registry)
    return registry
