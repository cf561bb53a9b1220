"""Prometheus metrics of the worker and the MQTT bridge.

Each process owns a ``CollectorRegistry`` (tests run several in one
interpreter) and serves it on its own port from settings
(``IOC_WORKER_METRICS_PORT``, ``IOC_BRIDGE_METRICS_PORT``; 0: not served).
Labels stay bounded: refusal reasons are reduced by
``ioc.events.reason_class``, partitions are the topic's.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ioc.events import reason_class

log = logging.getLogger(__name__)
# seconds; fine below a quarter second, where the wall's target is
HOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events_in = Counter(
            "ioc_worker_events", "Events decoded from Kafka messages", ["stream"], registry=r
        )
        self.committed = Counter(
            "ioc_worker_committed_events",
            "Procedure events covered by a database commit",
            registry=r,
        )
        self.sensor_readings = Counter(
            "ioc_worker_sensor_readings",
            "Sensor readings covered by a database commit (repeats included)",
            registry=r,
        )
        self.sensor_signals = Counter(
            "ioc_worker_sensor_signals",
            "Flood, AQI and health signals sent to the alert stage, by kind",
            ["kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            "ioc_worker_dead_letters",
            "Records refused by the worker, by reason",
            ["stream", "reason"],
            registry=r,
        )
        self.diverted = Counter(
            "ioc_worker_unstorable",
            "Records the database refused, stored as dead letters instead",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "ioc_worker_commit_seconds",
            "Duration of one database commit of the procedure stream",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.write_failures = Counter(
            "ioc_worker_db_write_failures",
            "Database writes that failed and were retried after a reconnect",
            registry=r,
        )
        self.lag = Gauge(
            "ioc_worker_consumer_lag",
            "Messages on the broker not yet committed, per partition",
            ["topic", "partition"],
            registry=r,
        )
        self.open_dossiers = Gauge(
            "ioc_worker_open_dossiers", "Open dossiers held by this worker", registry=r
        )
        self.partitions = Gauge(
            "ioc_worker_partitions", "Procedure partitions owned by this worker", registry=r
        )
        self.hop = Histogram(
            "ioc_worker_hop_seconds",
            "Time events spend between two stages: edge_to_applied (from the HTTP "
            "ingest or MQTT bridge to the worker's store), applied_to_committed, "
            "committed_to_published",
            ["hop"],
            buckets=HOP_BUCKETS,
            registry=r,
        )
        self.last_commit = Gauge(
            "ioc_worker_last_commit_timestamp_seconds",
            "Wall-clock time of the last successful commit",
            registry=r,
        )

    def refused(self, stream: str, reason: str, n: int = 1) -> None:
        self.dead_letters.labels(stream, reason_class(reason)).inc(n)


class BridgeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter(
            "ioc_bridge_received", "MQTT messages received", ["qos"], registry=r
        )
        self.forwarded = Counter(
            "ioc_bridge_forwarded", "Readings acknowledged by Kafka", registry=r
        )
        self.dead_letters = Counter(
            "ioc_bridge_dead_letters", "MQTT messages refused, by reason", ["reason"], registry=r
        )
        self.kafka_errors = Counter(
            "ioc_bridge_kafka_errors", "Failed sends to Kafka (retried)", registry=r
        )
        self.dropped_qos0 = Counter(
            "ioc_bridge_dropped_qos0",
            "QoS 0 messages dropped while the backlog was full",
            registry=r,
        )
        self.reconnects = Counter(
            "ioc_bridge_mqtt_reconnects", "MQTT connections made after the first", registry=r
        )
        self.connected = Gauge(
            "ioc_bridge_mqtt_connected", "1 while connected to the MQTT broker", registry=r
        )
        self.pending = Gauge(
            "ioc_bridge_pending", "Messages received and not yet forwarded", registry=r
        )

    def refused(self, reason: str) -> None:
        self.dead_letters.labels(reason_class(reason)).inc()


def serve(registry: CollectorRegistry, host: str, port: int, what: str) -> None:
    """Serve ``registry`` on ``host:port`` (the API's host setting; port 0:
    not served). A port in use is logged, not fatal: metrics must not stop
    the pipeline."""
    if not port:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("%s metrics not served on port %d: %s", what, port, exc)
        return
    log.info("%s metrics on :%d/metrics", what, port)
