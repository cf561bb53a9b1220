"""The delivery outbox: decided deliveries and every attempt to send them.

The alert stage's migration creates these tables; ``ensure_delivery_tables``
issues the same DDL with ``IF NOT EXISTS`` so the notifier (and its tests)
work whichever lands first.
"""

from __future__ import annotations

from typing import Any

DELIVERY_DDL = """
CREATE TABLE IF NOT EXISTS alert_deliveries (
  key text PRIMARY KEY, alert_id text NOT NULL, step int NOT NULL, recipient text NOT NULL,
  channel text NOT NULL, address text NOT NULL, payload jsonb NOT NULL, decided_at timestamptz NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','failed','gave_up')),
  attempts int NOT NULL DEFAULT 0, next_attempt_at timestamptz, last_error text, sent_at timestamptz);
CREATE TABLE IF NOT EXISTS alert_delivery_attempts (
  key text NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL, ok boolean NOT NULL,
  status int, error text, PRIMARY KEY (key, attempt));
"""


def ensure_delivery_tables(conn: Any) -> None:
    """Create both tables if missing, on a psycopg (sync) connection; the
    caller commits (or uses autocommit)."""
    conn.execute(DELIVERY_DDL)


async def ensure_delivery_tables_async(conn: Any) -> None:
    """The same on a psycopg ``AsyncConnection``."""
    await conn.execute(DELIVERY_DDL)
