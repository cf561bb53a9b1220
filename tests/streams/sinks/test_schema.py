import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streams.sinks.schema import TopicMismatch, bind_topic, migrate, timescale_statements
from tests.conftest import free_port

pytestmark = pytest.mark.integration
TABLES = {
    "procedure_events",
    "kpi_hourly",
    "kpi_points",
    "kpi_latest",
    "kpi_daily",
    "sensor_readings",
    "sensor_readings_hourly",
    "dead_letters",
    "scopes",
}


def tables_of(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_migrate_twice_on_plain_postgresql_says_so(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert migrate(database_url) == "postgresql"
        assert migrate(database_url) == "postgresql"
    assert any("TimescaleDB is not available" in r.message for r in caplog.records)
    with psycopg.connect(database_url) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {
        "procedure_events",
        "kpi_hourly",
        "kpi_points",
        "kpi_latest",
        "kpi_daily",
        "sensor_readings",
        "sensor_readings_hourly",
        "dead_letters",
        "scopes",
    } <= names


def test_the_timescaledb_path_uses_the_current_api() -> None:
    sql = "\n".join(timescale_statements())
    assert "by_range('ts', INTERVAL '7 days')" in sql
    assert "timescaledb.enable_columnstore = true" in sql
    assert "CALL add_columnstore_policy('procedure_events'" in sql
    assert "WITH (timescaledb.continuous)" in sql
    assert "add_retention_policy('kpi_points', drop_after => INTERVAL '400 days'" in sql
    # the unique (event_id, ts) indexes of the sinks' ON CONFLICT are in the ordering
    assert sql.count("timescaledb.orderby = 'ts DESC, event_id'") == 2


def test_a_database_is_bound_to_one_procedure_topic(database_url: str) -> None:
    migrate(database_url)
    bind_topic(database_url, "a.procedure-events", 4)
    bind_topic(database_url, "a.procedure-events", 4)  # the same worker again
    for topic, partitions in (("b.procedure-events", 4), ("a.procedure-events", 8)):
        with pytest.raises(TopicMismatch, match=r"'a\.procedure-events' with 4 partitions"):
            bind_topic(database_url, topic, partitions)


def test_timescaledb_releases_are_compared_as_numbers() -> None:
    from streams.sinks.schema import MIN_TIMESCALEDB, timescale_release

    assert timescale_release("2.28.0") > MIN_TIMESCALEDB
    assert timescale_release("2.18.0-dev") >= MIN_TIMESCALEDB
    assert timescale_release("2.9.3") < MIN_TIMESCALEDB
    assert timescale_release("2.17.2") < MIN_TIMESCALEDB


# The PostgreSQL copy that ../shared/timescaledb/ensure builds with TimescaleDB.
TSDB_BIN = Path(os.environ.get("IOC_TSDB_CACHE", "/var/cache/ioc-timescaledb"), "pg") / (
    "usr/lib/postgresql/15/bin"
)


@pytest.fixture
def unpreloaded_timescaledb() -> Iterator[str]:
    """A throwaway cluster where TimescaleDB is installed but not preloaded."""
    if not (TSDB_BIN / "postgres").exists():
        why = f"no TimescaleDB build at {TSDB_BIN} (../shared/timescaledb/ensure makes it)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    # PostgreSQL refuses to run as root
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    work = Path(tempfile.mkdtemp(prefix="ioc-unpreloaded-"))
    if as_owner:
        shutil.chown(work, "postgres", "postgres")
    data, port = work / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_owner, *args], cwd=work, check=True, capture_output=True)

    try:
        run(str(TSDB_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
        options = (
            f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c shared_preload_libraries=''"
        )
        run(str(TSDB_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", "log", "-w", "start")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(TSDB_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(work)


def test_timescaledb_installed_but_not_preloaded_falls_back_to_plain_postgresql(
    unpreloaded_timescaledb: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = unpreloaded_timescaledb
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    with caplog.at_level(logging.WARNING):
        # CREATE EXTENSION closes the connection with a FATAL error here
        assert migrate(url) == "postgresql"
        assert migrate(url) == "postgresql"
    said = warnings_in(caplog)
    assert len(said) == 2
    assert all("must be preloaded" in w and "Using plain PostgreSQL" in w for w in said)
    assert tables_of(url) >= TABLES
    with psycopg.connect(url) as conn:
        assert not conn.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
