"""What wakes the notifier's dispatcher between polls.

Inserting into ``alert_deliveries`` notifies channel ``alert_deliveries``
(a statement trigger, see ``alerts.tables``; one notification per
transaction). A notifier listens on its own connection, so a burst is
claimed as soon as it is committed rather than at the next poll. Polling
stays: it finds retries coming due, and covers a lost listening
connection.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

log = logging.getLogger(__name__)
CHANNEL = "alert_deliveries"


async def listen(
    database_url: str, wake: asyncio.Event, listening: asyncio.Event, retry: float
) -> None:
    """Set ``wake`` on every notification until cancelled; ``listening``
    while subscribed. Reconnects ``retry`` s after losing the connection."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                listening.set()
                wake.set()  # rows may have come while not listening
                async for _ in conn.notifies():
                    wake.set()
        except psycopg.Error:
            log.warning("listening for new deliveries failed; polling meanwhile", exc_info=True)
        listening.clear()
        await asyncio.sleep(retry)


async def wait_any(seconds: float, *events: asyncio.Event) -> None:
    """Until one of ``events`` is set, or ``seconds`` have passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
