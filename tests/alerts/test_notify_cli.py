"""``ioc notify`` as a process: it sends, serves its metrics, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from alerts.testing import WebhookReceiver
from ioc.cli import main
from tests.alerts.notify_db import insert, states
from tests.conftest import free_port, wait_for_port


def test_ioc_notify_sends_serves_metrics_and_stops_on_sigterm(database_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "IOC_DATABASE_URL": database_url,
        "IOC_WEBHOOK_SECRET": "cli-secret-0123456789",
        "IOC_NOTIFY_METRICS_PORT": str(port),
        "IOC_NOTIFY_POLL_INTERVAL": "0.1",
    }
    with WebhookReceiver() as hook:
        insert(database_url, [("k1", "webhook", hook.url), ("k2", "webhook", hook.url)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "notify"], env=env, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while len(hook.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sorted(hook.keys()) == ["k1", "k2"]
            wait_for_port("127.0.0.1", port)
            while time.monotonic() < deadline:
                if {s[0] for s in states(database_url).values()} == {"sent"}:
                    break
                time.sleep(0.05)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
                text = resp.read().decode()
            assert 'ioc_notify_deliveries_total{channel="webhook",outcome="sent"} 2.0' in text
            assert "ioc_notify_open_circuits 0.0" in text
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()


def test_production_needs_a_webhook_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOC_ENV", "production")
    monkeypatch.setenv("IOC_INGEST_TOKEN", "i" * 16)
    monkeypatch.setenv("IOC_READ_TOKEN", "r" * 16)
    monkeypatch.setenv("IOC_WEBHOOK_SECRET", "short")
    assert main(["notify"]) == 2
    assert "IOC_WEBHOOK_SECRET" in capsys.readouterr().err
