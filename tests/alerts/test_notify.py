"""The notifier against real PostgreSQL, real local HTTP servers and a real
SMTP server: the issue's acceptance."""

from __future__ import annotations

import asyncio

from alerts.notify import Notifier, NotifyConfig
from alerts.notify_channels import Row, SmtpConfig, verify_signature
from alerts.notify_sql import CLAIM
from alerts.testing import SmtpSink, WebhookReceiver, refusing_url
from ioc.clock import ManualClock
from tests.alerts.notify_db import attempts, insert, running, states, until

SECRET = "test-secret-0123456789"


def config(**kw: object) -> NotifyConfig:
    base: dict[str, object] = {
        "timeout": 60.0,
        "max_attempts": 3,
        "backoff_base": 0.05,
        "backoff_max": 0.1,
        "breaker_failures": 100,
        "breaker_cooldown": 60.0,
        "concurrency": 2,
        "poll_interval": 0.05,
        "webhook_secret": SECRET,
        "grace": 0.5,
    }
    base.update(kw)
    return NotifyConfig(**base)  # type: ignore[arg-type]


def sample(notifier: Notifier, name: str, **labels: str) -> float:
    return notifier.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_hanging_and_a_refusing_endpoint_never_delay_a_fast_one(database_url: str) -> None:
    with WebhookReceiver() as fast, WebhookReceiver(delay=30) as slow:
        dead = refusing_url()
        rows = [(f"slow-{i}", "webhook", slow.url) for i in range(3)]
        rows += [(f"dead-{i}", "webhook", dead) for i in range(3)]
        insert(database_url, rows)

        async def scenario() -> None:
            async with running(Notifier(database_url, config())):
                await until(lambda: slow.started >= 1, what="the slow endpoint hangs")
                insert(database_url, [(f"fast-{i}", "webhook", fast.url) for i in range(20)])
                await until(lambda: len(fast.received) == 20, what="fast got all 20")
                # every fast notification arrived while the slow endpoint's
                # first request is still waiting for its answer
                assert slow.waiting >= 1 and slow.received == []

                def dead_done() -> bool:
                    return all(states(database_url)[f"dead-{i}"][0] == "gave_up" for i in range(3))

                await until(dead_done, what="refused rows given up")

        asyncio.run(scenario())
        assert sorted(fast.keys()) == sorted(f"fast-{i}" for i in range(20))
        for r in fast.received:
            ts, sig = r.headers["x-ioc-timestamp"], r.headers["x-ioc-signature"]
            assert verify_signature(SECRET, ts, r.body, sig)
            assert r.headers["content-type"] == "application/json"
        got = states(database_url)
        assert all(got[f"fast-{i}"] == ("sent", 1, None) for i in range(20))
        for i in range(3):
            state, n, error = got[f"dead-{i}"]
            assert (state, n) == ("gave_up", 3)
            assert error is not None and "ClientConnectorError" in error
            tried = attempts(database_url, f"dead-{i}")
            assert [a[0] for a in tried] == [1, 2, 3]
            assert all(
                not ok and status is None and "ClientConnectorError" in (err or "")
                for _, ok, status, err in tried
            )
        # none lost: cut sends keep their lease, queued rows were handed back
        assert {got[f"slow-{i}"][0] for i in range(3)} == {"pending"}


def test_two_dispatchers_never_send_a_row_twice(database_url: str) -> None:
    n = 400
    with WebhookReceiver(delay=0.005) as hook:
        insert(database_url, [(f"k{i}", "webhook", hook.url) for i in range(n)])

        async def scenario() -> None:
            c = config(concurrency=4, batch=20)
            async with running(Notifier(database_url, c)), running(Notifier(database_url, c)):
                await until(lambda: len(hook.received) >= n, what="all rows sent")
                await asyncio.sleep(0.5)  # time for a duplicate to show

        asyncio.run(scenario())
        keys = hook.keys()
        assert len(keys) == n and len(set(keys)) == n
        assert {s for s in states(database_url).values()} == {("sent", 1, None)}


def test_a_client_error_gives_up_at_once_and_429_is_retried(database_url: str) -> None:
    with WebhookReceiver(status=404) as gone, WebhookReceiver(status=429) as busy:
        insert(
            database_url,
            [
                ("gone", "webhook", gone.url),
                ("busy", "webhook", busy.url),
                ("bad-url", "webhook", "ftp://files.example.invalid/hook"),
                # not even a URL: it must not hold up the rows claimed with it
                ("no-url", "webhook", "https://[::1/hooks"),
            ],
        )

        async def scenario() -> None:
            async with running(Notifier(database_url, config(max_attempts=2))):
                await until(
                    lambda: {s[0] for s in states(database_url).values()} == {"gave_up"},
                    what="both given up",
                )

        asyncio.run(scenario())
        got = states(database_url)
        assert got["gone"] == ("gave_up", 1, "HTTP 404 Not Found")
        assert attempts(database_url, "gone") == [(1, False, 404, "HTTP 404 Not Found")]
        assert got["busy"][:2] == ("gave_up", 2)
        assert [a[2] for a in attempts(database_url, "busy")] == [429, 429]
        state, n, error = got["bad-url"]
        assert (state, n) == ("gave_up", 1) and "NonHttpUrlClientError" in (error or "")
        state, n, error = got["no-url"]
        assert (state, n) == ("gave_up", 1) and "InvalidUrl" in (error or ""), got["no-url"]


def test_a_server_error_is_retried_until_it_is_sent(database_url: str) -> None:
    with WebhookReceiver(status=503) as hook:
        insert(database_url, [("k", "webhook", hook.url)])

        async def scenario() -> None:
            async with running(Notifier(database_url, config(max_attempts=5))):
                await until(lambda: len(hook.received) >= 1, what="first attempt")
                hook.status = 200
                await until(lambda: states(database_url)["k"][0] == "sent", what="sent")

        asyncio.run(scenario())
        tried = attempts(database_url, "k")
        assert [(ok, status) for _, ok, status, _ in tried][-1] == (True, 200)
        assert tried[0][1:3] == (False, 503)
        assert states(database_url)["k"] == ("sent", len(tried), None)


def test_the_circuit_opens_keeps_rows_and_half_opens_for_one_trial(database_url: str) -> None:
    clock = ManualClock()
    with WebhookReceiver(status=503) as hook:
        insert(database_url, [(f"k{i}", "webhook", hook.url) for i in range(6)])

        async def scenario() -> None:
            c = config(max_attempts=50, breaker_failures=2, breaker_cooldown=0.2, concurrency=1)
            notifier = Notifier(database_url, c, breaker_clock=clock)
            async with running(notifier):
                await until(lambda: len(hook.received) >= 2, what="two failures")
                await until(
                    lambda: (
                        sample(notifier, "ioc_notify_postponed_total", reason="circuit_open") >= 4
                    ),
                    what="rows handed back while open",
                )
                # open: on its clock no time passes, so nothing more is sent
                await asyncio.sleep(0.5)
                assert len(hook.received) == 2
                assert sample(notifier, "ioc_notify_open_circuits") == 1
                clock.advance(0.2)  # cooled down: half-open, one trial
                await until(lambda: len(hook.received) == 3, what="the trial")
                await asyncio.sleep(0.5)
                assert len(hook.received) == 3  # the trial failed: open again
                hook.status = 200
                clock.advance(0.2)
                await until(
                    lambda: {s[0] for s in states(database_url).values()} == {"sent"},
                    what="all sent once closed",
                )
                assert sample(notifier, "ioc_notify_open_circuits") == 0

        asyncio.run(scenario())
        assert len(set(hook.keys()[3:])) == 6  # each row sent once it got through
        assert sum(s[1] for s in states(database_url).values()) == len(hook.received)


def test_email_arrives_with_its_headers(database_url: str) -> None:
    with SmtpSink() as smtp:
        insert(database_url, [("alert-9|1|ct-ubnd-00166|email", "email", "ct@example.invalid")])
        smtp_config = SmtpConfig("127.0.0.1", smtp.port, sender="ioc@hanoi.example", starttls=False)

        async def scenario() -> None:
            async with running(Notifier(database_url, config(smtp=smtp_config))):
                await until(lambda: len(smtp.messages) == 1, what="the email")

        asyncio.run(scenario())
        msg = smtp.messages[0]
        assert msg["To"] == "ct@example.invalid" and msg["From"] == "ioc@hanoi.example"
        assert msg["Subject"] == "[IOC MAJOR] Hồ sơ quá hạn: dossier:000.00.16.H26-260316-0001"
        assert msg["X-IOC-Idempotency-Key"] == "alert-9|1|ct-ubnd-00166|email"
        assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@hanoi.example>")
        body = msg.get_body().get_content()
        assert "Cảnh báo Hồ sơ quá hạn" in body and "Alert Hồ sơ quá hạn (MAJOR)" in body


def test_websocket_rows_are_left_to_the_feed_and_email_waits_for_a_server(
    database_url: str,
) -> None:
    insert(database_url, [("ws", "websocket", "ct-ubnd-00166"), ("em", "email", "a@b.invalid")])

    async def scenario() -> None:
        notifier = Notifier(database_url, config())
        async with notifier:
            assert await notifier.dispatch_once() == (0, False)

    asyncio.run(scenario())
    assert states(database_url) == {"ws": ("pending", 0, None), "em": ("pending", 0, None)}


def test_a_row_re_claimed_by_another_notifier_is_not_sent_by_the_first(
    database_url: str,
) -> None:
    with WebhookReceiver() as hook:
        insert(database_url, [("k", "webhook", hook.url)])

        async def scenario() -> None:
            async with Notifier(database_url, config()) as first:
                async with first.pool.connection() as conn:
                    cur = await conn.execute(
                        CLAIM,
                        {
                            "lease": 0.0,
                            "channels": ["webhook"],
                            "blocked": [],
                            "limit": 10,
                        },
                    )
                    (k, ch, addr, payload, dec, n, lease) = (await cur.fetchall())[0]
                    # its lease ran out and another notifier claimed the row
                    await conn.execute(
                        "UPDATE alert_deliveries SET next_attempt_at = now() + interval '1 min'"
                    )
                row = Row(k, ch, addr, payload, float(dec), n, lease)
                ep = first._endpoint(row)
                await first._deliver(ep, row)

        asyncio.run(scenario())
        assert hook.received == [] and hook.started == 0
        assert states(database_url)["k"] == ("pending", 0, None)
        assert attempts(database_url, "k") == []


def test_a_send_cut_short_is_sent_again_with_the_same_key_once_its_lease_runs_out(
    database_url: str,
) -> None:
    """The at-least-once window: the receiver took the request, the notifier
    died before marking the row sent; another one sends it again later."""
    with WebhookReceiver(delay=0.5) as hook:
        insert(database_url, [("k", "webhook", hook.url)])
        c = config(timeout=2.0, lease_margin=0.5, grace=0.0)

        async def scenario() -> None:
            first = Notifier(database_url, c)
            async with running(first):
                await until(lambda: hook.started == 1, what="first request in flight")
            # stopped with no grace: the send was cut, the row keeps its lease
            assert states(database_url)["k"] == ("pending", 1, None)
            await until(lambda: len(hook.received) == 1, what="the receiver took it")
            async with running(Notifier(database_url, c)):
                await until(lambda: states(database_url)["k"][0] == "sent", what="sent again")

        asyncio.run(scenario())
        assert hook.keys() == ["k", "k"]  # the receiver drops the repeat by its key
        assert states(database_url)["k"] == ("sent", 2, None)
        assert [(a, ok) for a, ok, _, _ in attempts(database_url, "k")] == [(2, True)]


def test_inserted_rows_wake_the_notifier_before_its_next_poll(database_url: str) -> None:
    with WebhookReceiver() as hook:
        insert(database_url, [("first", "webhook", hook.url)])

        async def scenario() -> None:
            notifier = Notifier(database_url, config(poll_interval=60.0))
            async with running(notifier):
                await until(lambda: states(database_url)["first"][0] == "sent", what="first")
                await notifier.listening.wait()
                # the dispatcher now waits a poll of 60 s: only the insert's
                # notification can bring these out within the test's time
                insert(database_url, [(f"k{i}", "webhook", hook.url) for i in range(5)])
                await until(
                    lambda: {s[0] for s in states(database_url).values()} == {"sent"},
                    within=30.0,
                    what="woken by the insert",
                )

        asyncio.run(scenario())
        assert sorted(hook.keys()) == ["first"] + [f"k{i}" for i in range(5)]


def test_stopping_lets_sends_in_flight_finish_and_stores_their_outcomes(database_url: str) -> None:
    with WebhookReceiver(delay=0.3) as hook:
        insert(database_url, [(f"k{i}", "webhook", hook.url) for i in range(12)])

        async def scenario() -> None:
            c = config(concurrency=3, max_concurrency=3, grace=10.0)
            async with running(Notifier(database_url, c)):
                await until(lambda: hook.started >= 3, what="sends in flight")

        asyncio.run(scenario())
        answered = set(hook.keys())
        got = states(database_url)
        assert answered and len(hook.keys()) == len(answered)
        # answered within the grace and recorded; the queued went back untried
        assert all(got[k] == ("sent", 1, None) for k in answered)
        assert all(got[k] == ("pending", 0, None) for k in got.keys() - answered)
