"""The database retry: what a retry can cure is retried, with a reconnect
between tries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.sinks import retry
from streams.sinks.retry import write_until_done


class FlakySink:
    """Fails the first ``failures`` writes, as a database that is restarting."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    async def ensure(self) -> None:
        self.calls.append("ensure")

    async def close(self) -> None:
        self.calls.append("close")

    async def connect(self) -> None:
        self.calls.append("connect")

    async def write(self) -> None:
        self.calls.append("write")
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server closed the connection")


def test_a_failed_write_is_retried_after_a_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def no_wait(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(retry.asyncio, "sleep", no_wait)
    sink: Any = FlakySink(failures=2)
    asyncio.run(write_until_done(sink, sink.write))
    assert sink.calls == ["ensure", "write", "close", "connect"] * 2 + ["ensure", "write"]
    assert slept == [0.5, 1.0]
