"""Running ``ioc`` commands as real processes in tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import free_port


def ioc_env(tmp: Path, kafka: str, database: str, mqtt: str, **extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "IOC_KAFKA_URL": f"kafka://{kafka}",
            "IOC_DATABASE_URL": database,
            "IOC_MQTT_URL": mqtt,
            "IOC_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:6]}.",
            "IOC_DATA_DIR": str(tmp / "data"),
            "IOC_API_PORT": str(free_port()),
            "IOC_WORKER_METRICS_PORT": str(free_port()),
            "IOC_BRIDGE_METRICS_PORT": str(free_port()),
            "IOC_LOG_LEVEL": "INFO",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        logs.mkdir(parents=True, exist_ok=True)
        self.log = logs / f"{name}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ioc.cli", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not stop on signal {sig}") from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.3) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@contextlib.contextmanager
def created_database() -> Iterator[str]:
    """A fresh database on the test server (``IOC_TEST_DATABASE_URL``, default
    127.0.0.1:5432), dropped afterwards. The ``database_url`` fixture gives a
    test one; a test that compares two runs makes the second with this."""
    import psycopg

    base = os.environ.get("IOC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ioc_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
