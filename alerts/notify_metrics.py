"""Prometheus metrics of ``ioc notify``, served on ``IOC_NOTIFY_METRICS_PORT``.
Labels stay bounded: channels are the three known ones, endpoints are not
labels (one gauge counts open circuits)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NotifyMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.outcomes = Counter(
            "ioc_notify_deliveries",
            "Delivery attempts by outcome (sent, failed: will retry, gave_up) and channel",
            ["outcome", "channel"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "ioc_notify_attempt_seconds",
            "Duration of one delivery attempt",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.open_circuits = Gauge(
            "ioc_notify_open_circuits", "Endpoints whose circuit is open or half-open", registry=r
        )
        self.postponed = Counter(
            "ioc_notify_postponed",
            "Claimed rows handed back unsent: circuit open or endpoint queue full",
            ["reason"],
            registry=r,
        )
        self.queued = Gauge(
            "ioc_notify_queued", "Rows waiting in endpoint queues of this process", registry=r
        )
