"""The alert stage's tables, created by ``ioc db migrate`` with the rest
(``streams.sinks.schema``). Plain tables on PostgreSQL and TimescaleDB
alike: they are small, and the partial unique index and the outbox's key
need no time column (a hypertable's unique index would).

- ``alerts``: one row per alert, its current state.
- ``alert_history``: every change, keyed (alert, seq).
- ``alert_deliveries``: the outbox; the notifier sends the pending rows.
  Inserting notifies channel ``alert_deliveries`` (one notification per
  transaction), which wakes the notifiers.
- ``alert_delivery_attempts``: every attempt the notifier made, keyed
  (delivery, attempt).
- ``alert_actions``: operators' acknowledge/resolve, applied by the stage
  that owns the alert's partition.
- ``alert_partitions``: per alerts-topic partition, the next offset to
  read, the engine's state at that offset, and a version that fences a
  stage that lost the partition but still writes.
"""

from __future__ import annotations

from typing import Any


def ensure_alert_tables(conn: Any) -> None:
    """Create the tables if missing, on a psycopg (sync) connection, for
    processes and tests that may run before ``ioc db migrate``."""
    for statement in alert_tables():
        conn.execute(statement)


async def ensure_alert_tables_async(conn: Any) -> None:
    """The same on a psycopg ``AsyncConnection``."""
    for statement in alert_tables():
        await conn.execute(statement)


def alert_tables() -> list[str]:
    return [
        """CREATE TABLE IF NOT EXISTS alerts (
    id text PRIMARY KEY,
    rule text NOT NULL,
    subject text NOT NULL,
    part int NOT NULL,
    state text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    severity text NOT NULL,
    opened_at timestamptz NOT NULL,
    last_seen timestamptz,
    count int NOT NULL DEFAULT 1,
    peak double precision,
    step int NOT NULL DEFAULT 0,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by text,
    resolved_at timestamptz,
    resolved_how text,
    comment text,
    units jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
)""",
        # The database's own guarantee of one unresolved alert per (rule, subject).
        "CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_unresolved ON alerts (rule, subject) "
        "WHERE state <> 'resolved'",
        "CREATE INDEX IF NOT EXISTS alerts_opened_at ON alerts (opened_at DESC, id)",
        "CREATE INDEX IF NOT EXISTS alerts_units ON alerts USING gin (units jsonb_path_ops)",
        """CREATE TABLE IF NOT EXISTS alert_history (
    alert_id text NOT NULL,
    seq int NOT NULL,
    at timestamptz NOT NULL,
    change text NOT NULL,
    detail jsonb NOT NULL,
    PRIMARY KEY (alert_id, seq)
)""",
        """CREATE TABLE IF NOT EXISTS alert_deliveries (
    key text PRIMARY KEY,
    alert_id text NOT NULL,
    step int NOT NULL,
    recipient text NOT NULL,
    channel text NOT NULL,
    address text NOT NULL,
    payload jsonb NOT NULL,
    decided_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'gave_up')),
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error text,
    sent_at timestamptz
)""",
        # the notifier's claim: due rows in the order they fell due
        "CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries "
        "(coalesce(next_attempt_at, decided_at)) WHERE state IN ('pending', 'failed')",
        # inserts wake the notifiers (LISTEN alert_deliveries) instead of
        # waiting for their next poll; one notification per transaction
        """DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'alert_deliveries_wake'
                   AND tgrelid = 'alert_deliveries'::regclass) THEN
        CREATE OR REPLACE FUNCTION alert_deliveries_wake() RETURNS trigger
            LANGUAGE plpgsql AS $f$
            BEGIN PERFORM pg_notify('alert_deliveries', ''); RETURN NULL; END $f$;
        CREATE TRIGGER alert_deliveries_wake AFTER INSERT ON alert_deliveries
            FOR EACH STATEMENT EXECUTE FUNCTION alert_deliveries_wake();
    END IF;
END $$""",
        """CREATE TABLE IF NOT EXISTS alert_delivery_attempts (
    key text NOT NULL,
    attempt int NOT NULL,
    at timestamptz NOT NULL,
    ok boolean NOT NULL,
    status int,
    error text,
    PRIMARY KEY (key, attempt)
)""",
        "CREATE INDEX IF NOT EXISTS alert_deliveries_alert ON alert_deliveries (alert_id)",
        """CREATE TABLE IF NOT EXISTS alert_actions (
    id bigserial PRIMARY KEY,
    alert_id text NOT NULL,
    part int NOT NULL,
    action text NOT NULL CHECK (action IN ('ack', 'resolve')),
    who text NOT NULL,
    comment text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT now(),
    applied_at timestamptz,
    outcome text
)""",
        "CREATE INDEX IF NOT EXISTS alert_actions_unapplied ON alert_actions (part, id) "
        "WHERE applied_at IS NULL",
        """CREATE TABLE IF NOT EXISTS alert_partitions (
    part int PRIMARY KEY,
    next_offset bigint NOT NULL,
    state jsonb NOT NULL,
    clock double precision NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
)""",
    ]
