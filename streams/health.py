"""Is the pipeline moving? Worker heartbeats and the judgement on them.

Every worker writes a heartbeat row every ``IOC_HEARTBEAT_INTERVAL`` seconds
(``streams.sinks.heartbeats``): the partitions it owns, how long ago it last
committed, how many events wait for a commit and since when, since when its
writes fail, and its consumer lag. Ages are measured by the worker and
turned into instants by the database's clock, so hosts need not agree on the
time. ``pipeline_problems`` turns the rows into the reasons ``/readyz``
gives; no reason means ready.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# a worker that missed this many heartbeats is gone
MISSED_BEATS = 3


@dataclass(slots=True)
class WriterHealth:
    """Whether a process's database writes succeed, for its heartbeat."""

    failing_since: float | None = None  # monotonic
    last_error: str = ""
    failures: int = 0

    def failed(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.failures += 1

    def ok(self) -> None:
        self.failing_since = None

    def failing_for(self) -> float | None:
        return None if self.failing_since is None else time.monotonic() - self.failing_since


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """One worker's latest heartbeat as the API reads it (ages in seconds)."""

    worker: str
    age: float  # since the row was written
    uptime: float
    partitions: tuple[int, ...]
    commit_age: float | None  # None: no commit since the worker started
    pending_events: int = 0
    pending_age: float | None = None  # the oldest event waiting for a commit
    failing_for: float | None = None
    last_error: str = ""
    lag: Mapping[str, int] = field(default_factory=dict)
    lag_age: float | None = None  # since when the lag has been above zero


def pipeline_problems(
    beats: Iterable[WorkerBeat], partitions: int, interval: float, stall: float
) -> list[str]:
    """Why the pipeline is not moving, or an empty list when it is.

    Absent: no worker reported within ``MISSED_BEATS`` intervals, or some
    procedure partition has no live owner. Stalled: a worker's writes have
    failed for ``stall`` seconds, events have waited that long for a commit,
    or messages have waited on the broker that long while nothing was
    committed (the consumer or the agent is stuck).
    """
    live = [b for b in beats if b.age <= MISSED_BEATS * interval]
    if not live:
        return [f"worker: none has reported in the last {MISSED_BEATS * interval:g} s"]
    problems = []
    owned = {p for b in live for p in b.partitions}
    orphans = sorted(set(range(partitions)) - owned)
    if orphans:
        problems.append(
            "worker: procedure partitions "
            + ", ".join(map(str, orphans))
            + " have no live worker (starting, or rebalancing)"
        )
    for b in sorted(live, key=lambda b: b.worker):
        if b.failing_for is not None and b.failing_for >= stall:
            problems.append(
                f"worker {b.worker}: database writes failing for {b.failing_for:.0f} s "
                f"({b.last_error})"
            )
        elif b.pending_age is not None and b.pending_age >= stall:
            problems.append(
                f"worker {b.worker}: {b.pending_events} events waiting {b.pending_age:.0f} s "
                "for a commit"
            )
        waiting = sum(b.lag.values())
        quiet = b.commit_age if b.commit_age is not None else b.uptime
        if waiting and b.lag_age is not None and min(b.lag_age, quiet) >= stall:
            problems.append(
                f"worker {b.worker}: {waiting} messages wait on the broker and nothing was "
                f"committed for {quiet:.0f} s"
            )
    return problems
