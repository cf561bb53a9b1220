"""What /readyz concludes from worker heartbeats (pure rules)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.health import WorkerBeat, WriterHealth, pipeline_problems


def beat(**fields: Any) -> WorkerBeat:
    base: dict[str, Any] = {
        "worker": "w1",
        "age": 1.0,
        "uptime": 600.0,
        "partitions": (0, 1),
        "commit_age": 0.3,
    }
    return WorkerBeat(**{**base, **fields})


def problems(*beats: WorkerBeat, partitions: int = 2) -> list[str]:
    return pipeline_problems(beats, partitions, interval=5.0, stall=30.0)


def test_a_moving_pipeline_is_ready() -> None:
    assert problems(beat()) == []
    # idle: nothing to commit, nothing waiting
    assert problems(beat(commit_age=None, lag={"t/0": 0})) == []
    # two workers sharing the partitions
    assert problems(beat(partitions=(0,)), beat(worker="w2", partitions=(1,))) == []


def test_no_worker_or_only_gone_ones() -> None:
    expected = ["worker: none has reported in the last 15 s"]
    assert problems() == expected
    assert problems(beat(age=16.0)) == expected


def test_partitions_without_a_live_owner() -> None:
    gone = beat(worker="w2", partitions=(1,), age=60.0)
    assert problems(beat(partitions=(0,)), gone) == [
        "worker: procedure partitions 1 have no live worker (starting, or rebalancing)"
    ]


def test_failing_writes_stall_the_pipeline() -> None:
    assert problems(beat(failing_for=10.0, last_error="OperationalError: gone")) == []
    assert problems(beat(failing_for=31.0, last_error="OperationalError: gone")) == [
        "worker w1: database writes failing for 31 s (OperationalError: gone)"
    ]


def test_events_waiting_too_long_for_a_commit() -> None:
    assert problems(beat(pending_events=12, pending_age=45.0)) == [
        "worker w1: 12 events waiting 45 s for a commit"
    ]


@pytest.mark.parametrize("commit_age", [40.0, None])
def test_messages_waiting_on_the_broker_while_nothing_commits(commit_age: float | None) -> None:
    stuck = beat(commit_age=commit_age, uptime=40.0, lag={"t/0": 5, "t/1": 2}, lag_age=35.0)
    assert problems(stuck) == [
        "worker w1: 7 messages wait on the broker and nothing was committed for 40 s"
    ]
    # a worker just started is still loading its partitions
    assert problems(beat(commit_age=None, uptime=10.0, lag={"t/0": 5}, lag_age=10.0)) == []
    # an idle worker that just got a message is not stuck, nor a busy one that commits
    assert problems(beat(commit_age=600.0, lag={"t/0": 1}, lag_age=1.0)) == []
    assert problems(beat(commit_age=0.2, lag={"t/0": 9000}, lag_age=300.0)) == []


def test_writer_health_remembers_since_when() -> None:
    health = WriterHealth()
    assert health.failing_for() is None
    health.failed(ConnectionError("reset"))
    first = health.failing_since
    health.failed(ConnectionError("again"))
    assert health.failing_since == first and health.failures == 2
    assert health.last_error == "ConnectionError: again"
    health.ok()
    assert health.failing_for() is None
