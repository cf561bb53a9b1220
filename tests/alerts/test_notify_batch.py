"""The notifier's batched paths against real PostgreSQL and real local
HTTP servers: attempts started many per statement under the lease, outcomes
recorded many per statement, and what a lost database or a lost lease does
in between."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import psycopg

from alerts.notify import Notifier
from alerts.notify_batch import Outcome
from alerts.notify_channels import Attempt, Row
from alerts.notify_sql import CLAIM
from alerts.testing import WebhookReceiver
from tests.alerts.notify_db import attempts, insert, running, states, until
from tests.alerts.test_notify import config, sample


class UnreachableDatabase:
    """Stands for the database going away after a send, before its outcome
    is recorded: every connection fails, as after a crash of this side."""

    def connection(self) -> NoReturn:
        raise psycopg.OperationalError("the database went away")


async def claim(notifier: Notifier, lease: float = 60.0) -> list[Row]:
    async with notifier.pool.connection() as conn:
        cur = await conn.execute(
            CLAIM, {"lease": lease, "channels": ["webhook"], "blocked": [], "limit": 50}
        )
        return [
            Row(k, ch, addr, payload, float(dec), n, lease_at)
            for k, ch, addr, payload, dec, n, lease_at in await cur.fetchall()
        ]


async def execute(notifier: Notifier, sql: str, *params: Any) -> None:
    async with notifier.pool.connection() as conn:
        await conn.execute(sql, params)


def test_sends_whose_outcomes_were_not_recorded_go_again_with_the_same_keys(
    database_url: str,
) -> None:
    """The at-least-once window with batches: the receiver took the
    requests, their outcomes never reached the table; once the send lease
    runs out another notifier sends them again, with the same keys."""
    keys = [f"k{i}" for i in range(6)]
    with WebhookReceiver() as hook:
        insert(database_url, [(k, "webhook", hook.url) for k in keys])
        c = config(timeout=1.0, lease_margin=0.5)

        async def scenario() -> None:
            first = Notifier(database_url, c)
            async with running(first):
                first.recorder.pool = UnreachableDatabase()
                await until(lambda: len(hook.received) == len(keys), what="all sent once")
                await until(lambda: not first.inflight, what="the recorder let go of them")
            assert set(states(database_url).values()) == {("pending", 1, None)}
            async with running(Notifier(database_url, c)):
                await until(
                    lambda: {s[0] for s in states(database_url).values()} == {"sent"},
                    what="sent again",
                )

        asyncio.run(scenario())
        assert sorted(hook.keys()) == sorted(keys * 2)
        assert set(states(database_url).values()) == {("sent", 2, None)}
        for k in keys:
            assert [(a, ok) for a, ok, _, _ in attempts(database_url, k)] == [(2, True)]


def test_a_batch_of_starts_leaves_out_the_rows_whose_lease_was_lost(database_url: str) -> None:
    keys = [f"k{i}" for i in range(6)]
    lost = keys[::2]
    with WebhookReceiver() as hook:
        insert(database_url, [(k, "webhook", hook.url) for k in keys])

        async def scenario() -> list[bool]:
            async with Notifier(database_url, config()) as notifier:
                rows = await claim(notifier)
                # their claim ran out and another notifier claimed them
                await execute(
                    notifier,
                    "UPDATE alert_deliveries SET next_attempt_at = now() + interval '1 min'"
                    " WHERE key = ANY(%s)",
                    lost,
                )
                ep = notifier._endpoint(rows[0])
                # all six ask to start together: one statement decides
                return await asyncio.gather(*(notifier._deliver(ep, r) for r in rows))

        handed = asyncio.run(scenario())
        assert sorted(handed) == [False] * 3 + [True] * 3
        assert sorted(hook.keys()) == sorted(set(keys) - set(lost))
        got = states(database_url)
        for k in keys:
            assert got[k] == (("pending", 0, None) if k in lost else ("sent", 1, None))
            assert len(attempts(database_url, k)) == (0 if k in lost else 1)


def test_one_flush_records_success_retry_refusal_and_the_last_attempt(
    database_url: str,
) -> None:
    insert(
        database_url,
        [(k, "webhook", "http://127.0.0.1:9/hook") for k in ("ok", "busy", "gone", "last", "late")],
    )
    results = {
        "ok": Attempt(True, 200),
        "busy": Attempt(False, 503, "HTTP 503 Service Unavailable"),
        "gone": Attempt(False, 404, "HTTP 404 Not Found", retry=False),
        "last": Attempt(False, None, "ClientConnectorError: refused"),
        "late": Attempt(True, 200),
    }
    c = config(max_attempts=3, backoff_base=60.0, backoff_max=60.0)

    async def scenario() -> Notifier:
        notifier = Notifier(database_url, c)
        async with notifier:
            # "last" has had two attempts: this one is its third and final
            await execute(notifier, "UPDATE alert_deliveries SET attempts = 2 WHERE key = 'last'")
            rows = await claim(notifier)
            started = await asyncio.gather(*(notifier.starter.start(r) for r in rows))
            # meanwhile another notifier started a later attempt of "late"
            await execute(
                notifier, "UPDATE alert_deliveries SET attempts = attempts + 1 WHERE key = 'late'"
            )
            for row, attempt in zip(rows, started, strict=True):
                assert attempt is not None
                notifier.recorder.add(Outcome.of(row, attempt, results[row.key], c))
            # closing stores what the recorder holds
        return notifier

    notifier = asyncio.run(scenario())
    got = states(database_url)
    assert got["ok"] == ("sent", 1, None)
    assert got["busy"] == ("failed", 1, "HTTP 503 Service Unavailable")
    assert got["gone"] == ("gave_up", 1, "HTTP 404 Not Found")
    assert got["last"] == ("gave_up", 3, "ClientConnectorError: refused")
    # a later attempt started: this outcome must not overwrite its row
    assert got["late"] == ("pending", 2, None)
    assert attempts(database_url, "busy") == [(1, False, 503, "HTTP 503 Service Unavailable")]
    assert attempts(database_url, "last") == [(3, False, None, "ClientConnectorError: refused")]
    assert attempts(database_url, "late") == [(1, True, 200, None)]
    with psycopg.connect(database_url) as conn:
        wait = conn.execute(
            "SELECT extract(epoch FROM next_attempt_at - now()) FROM alert_deliveries"
            " WHERE key = 'busy'"
        ).fetchone()
    assert wait is not None and 25 < float(wait[0]) <= 60  # backoff 60 s, upper half jittered
    outcome = "ioc_notify_deliveries_total"
    assert sample(notifier, outcome, outcome="gave_up", channel="webhook") == 2
    assert sample(notifier, outcome, outcome="failed", channel="webhook") == 1


def test_a_quick_endpoint_gets_more_requests_in_flight_and_a_slow_one_does_not(
    database_url: str,
) -> None:
    with WebhookReceiver(delay=0.01) as quick, WebhookReceiver(delay=0.8) as slow:
        rows = [(f"q{i}", "webhook", quick.url) for i in range(300)]
        rows += [(f"s{i}", "webhook", slow.url) for i in range(6)]
        insert(database_url, rows)
        c = config(concurrency=2, max_concurrency=16, quick_answer=0.5)

        async def scenario() -> None:
            async with running(Notifier(database_url, c)):
                await until(
                    lambda: {s[0] for s in states(database_url).values()} == {"sent"},
                    what="all sent",
                )

        asyncio.run(scenario())
        assert 2 < quick.most_waiting <= 16
        assert slow.most_waiting <= 2
