"""The alert stage's rows and SQL, without a database; then, on PostgreSQL,
the partial unique index and the fence."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from alerts import store
from alerts.model import Acknowledged, Alert, Delivery, Escalated, Opened, Resolved, Updated
from alerts.records import alert_rows, delivery_rows, history_rows
from alerts.rules import RuleSet
from streams.sinks.schema import migrate

OPENED = Opened(10.0, "al-1", "r", "dossier:D1", "major", None, {"commune": "commune:00166"}, 10.0)


def test_an_alert_opened_and_resolved_in_one_batch_gets_a_full_row() -> None:
    changes = [
        OPENED,
        Updated(11.0, "al-1", 2, 11.0, None, None),
        Escalated(12.0, "al-1", 0, 1, ("x",)),
        Acknowledged(13.0, "al-1", "op", "on it"),
        Resolved(14.0, "al-1", "auto", None, ""),
    ]
    (row,) = alert_rows(changes, lambda _: None, 3)  # forgotten by the engine
    assert store.alert_statement(row)[0].startswith("INSERT INTO alerts")
    assert row["state"] == "resolved" and row["count"] == 2 and row["step"] == 1
    assert row["acknowledged_by"] == "op" and row["comment"] == "on it"
    assert row["resolved_how"] == "auto" and row["part"] == 3


def test_an_alert_resolved_and_forgotten_is_updated_not_inserted() -> None:
    (row,) = alert_rows([Resolved(14.0, "al-1", "operator", "op", "done")], lambda _: None, 0)
    sql, params = store.alert_statement(row)
    assert sql.startswith("UPDATE alerts SET") and sql.endswith("WHERE id = %s")
    assert "rule" not in sql and params[-1] == "al-1"


def test_the_engines_copy_wins_and_resolved_rows_come_first() -> None:
    alert = Alert("al-2", "r", "dossier:D1", "major", 20.0, {}, None, count=5, steps_done=2)
    rows = alert_rows(
        [Resolved(14.0, "al-1", "auto", None, ""), Updated(21.0, "al-2", 5, 21.0, None, None)],
        {"al-2": alert}.get,
        0,
    )
    assert [r["id"] for r in rows] == ["al-1", "al-2"]
    assert rows[1]["count"] == 5 and rows[1]["step"] == 2


def test_history_seqs_go_on_from_the_partitions_state() -> None:
    seqs = {"al-1": 4}
    rows = history_rows([OPENED, Updated(11.0, "al-1", 2, 11.0, None, None)], seqs)
    assert [(r[0], r[1], r[3]) for r in rows] == [("al-1", 5, "opened"), ("al-1", 6, "updated")]
    assert seqs == {"al-1": 6} and "alert_id" not in rows[0][4]


def test_a_delivery_payload_says_what_happened_in_both_languages() -> None:
    d = Delivery(
        "al-1/0/x/email",
        "al-1",
        0,
        "x",
        "email",
        "x@example.invalid",
        10.0,
        "major",
        "dossier:D1",
        "r",
    )
    ((key, _, step, _, channel, address, payload, at),) = delivery_rows([d], {}, RuleSet())
    assert (key, step, channel, address, at) == (
        "al-1/0/x/email",
        0,
        "email",
        "x@example.invalid",
        10.0,
    )
    assert "Hồ sơ D1" in payload["summary"]["vi"] and "Dossier D1" in payload["summary"]["en"]
    assert payload["alert_id"] == "al-1" and payload["state"] == "open"


def test_the_fence_matches_only_the_version_read() -> None:
    batch = store.Batch(1, 7, 42, {}, 0.0, [], [], [], [])
    sql, params = store.fence_statement(batch)
    assert "version = %s" in sql and params[-2:] == [1, 7]
    sql, _ = store.fence_statement(store.Batch(1, None, 42, {}, 0.0, [], [], [], []))
    assert "ON CONFLICT (part) DO NOTHING" in sql


def insert_open(conn: psycopg.Connection, ident: str, state: str = "open") -> None:
    conn.execute(
        "INSERT INTO alerts (id, rule, subject, part, state, severity, opened_at) "
        "VALUES (%s, 'dossier-overdue', 'dossier:D1', 0, %s, 'major', now())",
        (ident, state),
    )


def test_the_database_refuses_a_second_unresolved_alert_for_a_rule_and_subject(
    database_url: str,
) -> None:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        insert_open(conn, "al-old", "resolved")
        insert_open(conn, "al-1")
        with pytest.raises(psycopg.errors.UniqueViolation):
            insert_open(conn, "al-2", "acknowledged")


def test_a_stage_that_lost_its_partition_writes_nothing(database_url: str) -> None:
    migrate(database_url)

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await scenario(conn)

    async def scenario(conn: psycopg.AsyncConnection) -> None:  # type: ignore[type-arg]
        row = {
            "id": "al-1",
            "rule": "r",
            "subject": "dossier:D1",
            "part": 0,
            "state": "open",
            "severity": "major",
            "opened_at": 1.0,
            "units": {},
            "count": 1,
            "step": 0,
        }
        first = store.Batch(0, None, 5, {"engine": {}}, 1.0, [row], [], [], [])
        assert await store.write(conn, first) == 1
        # a second stage read version 1 and wrote; the first still holds version 1
        await store.write(conn, store.Batch(0, 1, 6, {}, 1.0, [], [], [], []))
        stale = store.Batch(0, 1, 9, {}, 1.0, [{**row, "id": "al-2"}], [], [], [])
        with pytest.raises(store.Fenced):
            await store.write(conn, stale)
        snap = await store.load(conn, 0)
        assert snap is not None and (snap.next_offset, snap.version) == (6, 2)
        ids = await (await conn.execute("SELECT id FROM alerts")).fetchall()
        assert ids == [("al-1",)]

    asyncio.run(run())
