"""Backoff, the circuit breaker (on an injected clock), and the webhook
signature receivers check."""

from __future__ import annotations

import random

from alerts.notify_channels import Row, endpoint_of, message_id, render_email, sign
from alerts.notify_channels import verify_signature as verify
from alerts.notify_policy import CircuitBreaker, InflightLimit, backoff_delay
from ioc.clock import ManualClock


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    rand = random.Random(1)
    for attempt, full in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0), (9, 100.0), (30, 100.0)]:
        for _ in range(50):
            d = backoff_delay(attempt, 2.0, 100.0, rand)
            assert full / 2 <= d <= full


def test_backoff_jitter_spreads_retries() -> None:
    rand = random.Random(2)
    assert len({round(backoff_delay(4, 1.0, 60.0, rand), 6) for _ in range(20)}) > 10


def test_breaker_opens_after_consecutive_failures_then_half_opens_for_one_trial() -> None:
    clock = ManualClock(1000.0)
    b = CircuitBreaker(failures=3, cooldown=60.0, clock=clock)
    b.failure()
    b.failure()
    b.success()  # a success in between resets the count
    b.failure()
    b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open"
    assert not b.allow() and not b.allow_queueing()
    assert b.retry_in() == 60.0
    clock.advance(59.0)
    assert not b.allow() and b.retry_in() == 1.0
    clock.advance(1.0)
    assert b.allow_queueing()
    assert b.allow()  # the one trial
    assert b.state == "half_open"
    assert not b.allow()  # nobody else while it is out
    b.failure()  # the trial failed: open for another cool-down
    assert b.state == "open" and not b.allow()
    clock.advance(60.0)
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_a_trial_not_sent_lets_another_go() -> None:
    clock = ManualClock()
    b = CircuitBreaker(failures=1, cooldown=5.0, clock=clock)
    b.failure()
    clock.advance(5.0)
    assert b.allow() and not b.allow()
    b.release_trial()
    assert b.allow()


def test_signature_verifies_and_refuses_tampering_and_old_timestamps() -> None:
    body = '{"alert_id":"a1","text":"Hồ sơ quá hạn"}'.encode()
    header = sign("s3cret", 1_800_000_000, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify("s3cret", "1800000000", body, header, now=1_800_000_100)
    assert not verify("other", "1800000000", body, header, now=1_800_000_100)
    assert not verify("s3cret", "1800000000", body + b" ", header, now=1_800_000_100)
    assert not verify("s3cret", "1800000001", body, header, now=1_800_000_100)
    assert not verify("s3cret", "1800000000", body, header, now=1_800_001_000)
    assert verify("s3cret", "1800000000", body, header, tolerance=None)
    assert not verify("s3cret", "not-a-number", body, header)


def test_endpoints_are_origins_and_the_smtp_server() -> None:
    smtp = "smtp://mail:587"
    assert endpoint_of("webhook", "https://Hooks.example:8443/a/b?x=1", smtp) == (
        "https://hooks.example:8443"
    )
    assert endpoint_of("webhook", "https://hooks.example/other", smtp) == "https://hooks.example"
    assert endpoint_of("email", "a@b.vn", smtp) == smtp


def test_email_is_bilingual_and_its_message_id_follows_the_key() -> None:
    row = Row(
        "alert-1|1|ct-ubnd|email",
        "email",
        "ct@example.invalid",
        {
            "alert_id": "alert-1",
            "severity": "major",
            "rule": "dossier-overdue",
            "step": 1,
            "subject": "dossier:123",
        },
        0.0,
        0,
        None,
    )
    msg = render_email(row, "ioc@hanoi.example")
    assert msg["Message-ID"] == message_id(row.key, "ioc@hanoi.example")
    assert msg["Message-ID"] == render_email(row, "ioc@hanoi.example")["Message-ID"]
    assert msg["Message-ID"].endswith("@hanoi.example>")
    assert msg["Subject"] == "[IOC MAJOR] dossier-overdue: dossier:123"
    text = msg.get_content()
    assert "Cảnh báo" in text and "Alert dossier-overdue" in text


def test_the_inflight_limit_grows_on_quick_answers_while_rows_wait_and_halves_when_slow() -> None:
    limit = InflightLimit(low=4, high=10, quick=0.25)
    limit.answered(0.01, healthy=True, rows_waiting=False)
    assert limit.value == 4  # nothing waits: no need for more
    for _ in range(20):
        limit.answered(0.01, healthy=True, rows_waiting=True)
    assert limit.value == 10  # bounded
    limit.answered(0.4, healthy=True, rows_waiting=True)
    assert limit.value == 5
    limit.answered(0.01, healthy=False, rows_waiting=True)
    assert limit.value == 4  # never below the configured concurrency
    assert InflightLimit(low=8, high=2, quick=0.25).high == 8
