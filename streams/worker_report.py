"""What a procedure worker tells operators: its heartbeat for ``/readyz``,
its once-a-minute log line, and the figures behind both."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.worker import ProcedureWorker

log = logging.getLogger("streams.worker")


def heartbeat(worker: ProcedureWorker) -> dict[str, Any]:
    """What this worker reports to ``/readyz`` (ages in seconds)."""
    now = time.monotonic()
    slots = worker.partitions.values()
    waiting = [t for s in slots for t in (s.pending_since, s.committing_since) if t]
    open_dossiers = sum(s.processor.stats()["open"] for s in slots)
    worker.metrics.open_dossiers.set(open_dossiers)
    worker.metrics.partitions.set(len(worker.partitions))
    return {
        "uptime": now - worker.started,
        "partitions": sorted(worker.partitions),
        "commit_age": None if worker.last_commit is None else now - worker.last_commit,
        "pending_events": sum(s.pending_events + s.committing for s in slots),
        "pending_age": now - min(waiting) if waiting else None,
        "failing_for": worker.health.failing_for(),
        "last_error": worker.health.last_error if worker.health.failing_since else "",
    }


def log_stats(worker: ProcedureWorker) -> None:
    """One line for operators: what the worker holds and what it refused
    or could not place (unknown codes are counted under their own code)."""
    figures = stats(worker)
    parts = figures["per_partition"].values()
    anomalies: Counter[str] = Counter()
    for part in worker.partitions.values():
        anomalies.update(part.processor.store.anomaly_counts)
    log.info(
        "partitions %s: %d events committed, %d open dossiers, %d duplicates, "
        "%d for evicted dossiers, %d dead letters, unknown codes %s, anomalies %s",
        figures["partitions"],
        figures["committed_events"],
        sum(p["open"] for p in parts),
        sum(p["duplicates"] for p in parts),
        sum(p["after_eviction"] for p in parts),
        figures["dead_letters"],
        figures["unknown_codes"] or "none",
        dict(anomalies) or "none",
    )


def stats(worker: ProcedureWorker) -> dict[str, Any]:
    per_part = {p: s.processor.stats() for p, s in worker.partitions.items()}
    return {
        "partitions": sorted(worker.partitions),
        "dead_letters": worker.dead_letters,
        "committed_events": worker.committed_events,
        "unknown_codes": dict(worker.scopes.unknown),
        "per_partition": per_part,
    }
