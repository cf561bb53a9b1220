"""Event-id claims on the real database: the first event to use an id keeps
it, the same event sent again goes on, other content is refused, whoever
claims concurrently."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from ioc.events import ProcedureEvent
from streams.sinks.event_ids import EventIds
from streams.sinks.schema import migrate
from tests.streams.helpers import event

pytestmark = pytest.mark.integration


async def claimer(url: str) -> EventIds:
    ids = EventIds(url)
    await ids.connect()
    return ids


def test_same_event_again_goes_on_other_content_is_refused(database_url: str) -> None:
    migrate(database_url)
    first = event("received", "D1", "2026-03-16 09:00", n=1)
    again = event("received", "D1", "2026-03-16 09:00", n=1)
    other = event("received", "D2", "2026-03-16 09:00", n=9)
    other.event_id = first.event_id  # another dossier under the same id

    async def run() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        ids = await claimer(database_url)
        try:
            return await ids.claim([first]), await ids.claim([again, other])
        finally:
            await ids.close()

    before, after = asyncio.run(run())
    assert before == []
    [(index, reason)] = after
    assert index == 1
    assert reason == (
        "event_id 'D1/received/1' already names another event (type 'received' of dossier "
        "'D1' at '2026-03-16T09:00:00+07:00'); the first event to use an id keeps it"
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT event_id, dossier_id FROM event_ids").fetchall() == [
            ("D1/received/1", "D1")
        ]


def test_in_one_batch_the_first_wins(database_url: str) -> None:
    migrate(database_url)
    a = event("accepted", "D1", "2026-03-16 10:00", n=1)
    b = event("processed", "D1", "2026-03-16 11:00", n=1)
    b.event_id = a.event_id

    async def run() -> list[tuple[int, str]]:
        ids = await claimer(database_url)
        try:
            return await ids.claim([a, b, a])
        finally:
            await ids.close()

    assert [i for i, _ in asyncio.run(run())] == [1]


def test_concurrent_claimers_leave_exactly_one_owner(database_url: str) -> None:
    # two workers (two connections) race for the same ids with other content
    migrate(database_url)
    left = [event("received", f"L{i}", "2026-03-16 09:00", n=i) for i in range(300)]
    right = [event("received", f"R{i}", "2026-03-16 09:00", n=i) for i in range(300)]
    for a, b in zip(left, right, strict=True):
        b.event_id = a.event_id

    async def claim_all(batch: list[ProcedureEvent]) -> list[tuple[int, str]]:
        ids = await claimer(database_url)
        lost: list[tuple[int, str]] = []
        try:
            for i in range(0, len(batch), 50):
                lost += await ids.claim(batch[i : i + 50])
                await asyncio.sleep(0)
        finally:
            await ids.close()
        return lost

    async def run() -> list[list[tuple[int, str]]]:
        return await asyncio.gather(claim_all(left), claim_all(right))

    lost_left, lost_right = asyncio.run(run())
    assert len(lost_left) + len(lost_right) == 300
    with psycopg.connect(database_url) as conn:
        owners = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM event_ids").fetchone()
    assert owners == (300, 300)
