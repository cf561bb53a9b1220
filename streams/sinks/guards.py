"""Checks a worker makes before it touches a database's state: that the
state belongs to its procedure topic, and that no recomputation left the
derived tables half rebuilt. Both refuse with a message saying what to do."""

from __future__ import annotations

import psycopg


class RecomputeUnfinished(RuntimeError):
    """A recomputation started and did not finish: the derived tables are
    half rebuilt."""


def check_no_unfinished_recompute(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT started_at FROM recompute_running").fetchone()
    if row is not None:
        raise RecomputeUnfinished(
            f"`ioc kpis recompute` started at {row[0]:%Y-%m-%d %H:%M:%S %Z} has not finished "
            "(it is running, or it stopped half-way): the KPI tables are half rebuilt. "
            "Let it finish, or run it again, before starting workers"
        )


class TopicMismatch(RuntimeError):
    """The database holds the partition state of another procedure topic."""


def bind_topic(url: str, topic: str, partitions: int) -> None:
    """Tie the database to one procedure topic and partition count.

    Worker state is stored per partition number, so a worker reading another
    topic (another prefix, or the same topic re-partitioned) would resume
    from offsets and dossiers that are not its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO topic_binding (topic, partitions) VALUES (%s, %s) "
            "ON CONFLICT (single) DO NOTHING",
            (topic, partitions),
        )
        row = conn.execute("SELECT topic, partitions FROM topic_binding").fetchone()
    if row is not None and (row[0], row[1]) != (topic, partitions):
        raise TopicMismatch(
            f"this database holds the state of topic {row[0]!r} with {row[1]} partitions, "
            f"not {topic!r} with {partitions}: point IOC_DATABASE_URL at another database "
            "(to re-partition, `ioc record` the old topic and `ioc replay` it into a new one)"
        )
