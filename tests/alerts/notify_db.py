"""The outbox in a test database: decided rows in, states and attempts out,
and a notifier running in the background while a test looks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.notify import Notifier
from alerts.tables import ensure_alert_tables


def insert(url: str, rows: list[tuple[str, str, str]], at: float | None = None) -> None:
    """Decided deliveries: (key, channel, address) each, decided at ``at``."""
    decided = time.time() if at is None else at
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_alert_tables(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO alert_deliveries (key, alert_id, step, recipient, channel, address,"
                " payload, decided_at) VALUES (%s, %s, 1, %s, %s, %s, %s, to_timestamp(%s))",
                [
                    (key, f"alert-{key}", "ct-ubnd-00166", ch, addr, Jsonb(payload(key)), decided)
                    for key, ch, addr in rows
                ],
            )


def payload(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "alert_id": f"alert-{key}",
        "step": 1,
        "recipient": "ct-ubnd-00166",
        "severity": "major",
        "rule": "dossier-overdue",
        "subject": "dossier:000.00.16.H26-260316-0001",
        "title": "Hồ sơ quá hạn",
    }


def states(url: str) -> dict[str, tuple[str, int, str | None]]:
    """key -> (state, attempts, last_error)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT key, state, attempts, last_error FROM alert_deliveries")
        return {k: (s, a, e) for k, s, a, e in rows.fetchall()}


def attempts(url: str, key: str) -> list[tuple[int, bool, int | None, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT attempt, ok, status, error FROM alert_delivery_attempts"
            " WHERE key = %s ORDER BY attempt",
            (key,),
        )
        return list(rows.fetchall())


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    stop = asyncio.Event()
    async with notifier:
        task = asyncio.create_task(notifier.run(stop))
        try:
            yield notifier
        finally:
            stop.set()
            await task


async def until(check: Callable[[], bool], within: float = 60.0, what: str = "") -> None:
    """Wait for ``check``; ``within`` only turns a hang into a failure."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        await asyncio.sleep(0.02)
