"""The schema on the server at hand: TimescaleDB where it offers the extension
(available and preloaded), plain PostgreSQL otherwise. `make test` runs these
against both."""

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ioc.events import SensorReading
from streams.sinks.schema import (
    MIN_TIMESCALEDB,
    _sensor_hourly_select,
    migrate,
    timescale_release,
    timescale_statements,
)
from streams.sinks.sensor_sink import SensorSink
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
PLAIN_HOURLY = _sensor_hourly_select(
    "date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
)


def offered_timescaledb(url: str) -> str | None:
    """The TimescaleDB version the server can enable: available and preloaded."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT default_version, current_setting('shared_preload_libraries') "
            "FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    if row is None or "timescaledb" not in [s.strip() for s in row[1].split(",")]:
        return None
    return str(row[0])


def names(conn: psycopg.Connection[Any], query: str) -> set[str]:
    return {r[0] for r in conn.execute(query)}


def tables_of(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return names(
            conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_migrate_twice_builds_what_the_server_offers(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    version = offered_timescaledb(database_url)
    with caplog.at_level(logging.WARNING):
        modes = [migrate(database_url), migrate(database_url)]
    assert tables_of(database_url) >= TABLES
    with psycopg.connect(database_url) as conn:
        if version is None:
            assert modes == ["postgresql"] * 2
            # said once per migrate, never silently
            assert [w.split(":")[0] for w in warnings_in(caplog)] == [
                "TimescaleDB is not available"
            ] * 2
            views = dict(
                conn.execute(
                    "SELECT table_name, view_definition FROM information_schema.views "
                    "WHERE table_schema = 'public'"
                ).fetchall()
            )
            assert all("date_bin" in views[v] for v in ("kpi_daily", "sensor_readings_hourly"))
            return
        assert modes == [f"timescaledb {version}"] * 2
        assert warnings_in(caplog) == []  # neither ours nor the server's
        assert names(conn, "SELECT hypertable_name FROM timescaledb_information.hypertables") >= {
            "procedure_events",
            "kpi_hourly",
            "kpi_points",
            "sla_transitions",
            "sensor_readings",
            "sensor_aqi",
            "dead_letters",
        }
        assert conn.execute(
            "SELECT view_name, materialized_only "
            "FROM timescaledb_information.continuous_aggregates ORDER BY view_name"
        ).fetchall() == [("kpi_daily", False), ("sensor_readings_hourly", False)]
        jobs = conn.execute(
            "SELECT proc_name, hypertable_name, config->>'start_offset' "
            "FROM timescaledb_information.jobs WHERE job_id >= 1000"
        ).fetchall()
        refresh = {(t, start) for p, t, start in jobs if p == "policy_refresh_continuous_aggregate"}
        assert refresh == {("kpi_daily", None), ("sensor_readings_hourly", None)}
        assert {t for p, t, _ in jobs if p == "policy_retention"} == {
            "kpi_points",
            "sensor_readings",
            "dead_letters",
        }
        assert len([p for p, _, _ in jobs if p == "policy_compression"]) == 7


def test_the_timescaledb_path_uses_the_current_api() -> None:
    sql = "\n".join(timescale_statements())
    assert "by_range('ts', INTERVAL '7 days')" in sql
    assert "timescaledb.enable_columnstore = true" in sql
    assert "CALL add_columnstore_policy('procedure_events'" in sql
    assert "WITH (timescaledb.continuous)" in sql
    assert "timescaledb.materialized_only = false" in sql
    assert "add_retention_policy('kpi_points', drop_after => INTERVAL '400 days'" in sql
    # the unique (event_id, ts) indexes of the sinks' ON CONFLICT are in the ordering
    assert sql.count("timescaledb.orderby = 'ts DESC, event_id'") == 2


def readings(now: float, tag: str, ages_hours: range, sensors: int) -> list[SensorReading]:
    return [
        SensorReading(
            event_id=f"{tag}-{s}-{age}",
            sensor_id=f"s{s}",
            area="00004",
            kind="air",
            ts=now - age * 3600 + 60 * s,
            values={"pm25": float((age + s) % 40), "level": float(s)},
            raw=b"",
        )
        for age in ages_hours
        for s in range(sensors)
    ]


def hourly_rows(conn: psycopg.Connection[Any], source: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(f"SELECT * FROM ({source}) q ORDER BY 1, 2").fetchall()
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows]


def test_sensor_readings_hourly_holds_the_whole_history_and_late_readings(
    database_url: str,
) -> None:
    if offered_timescaledb(database_url) is None:
        pytest.skip("plain PostgreSQL: sensor_readings_hourly is the date_bin view itself")
    migrate(database_url)

    async def write(batch: list[SensorReading]) -> None:
        sink = SensorSink(database_url)
        await sink.connect()
        await sink.write_readings(batch)
        await sink.close()

    with psycopg.connect(database_url, autocommit=True) as conn:
        now = float(conn.execute("SELECT extract(epoch FROM now())").fetchone()[0])
        # readings stored before the aggregate exists: 12 days, every 2 hours
        conn.execute("DROP MATERIALIZED VIEW sensor_readings_hourly")
        early = readings(now, "early", range(2, 12 * 24, 2), 3)
        asyncio.run(write(early))
        migrate(database_url)
        plain = hourly_rows(conn, PLAIN_HOURLY)
        assert len(plain) == len({(r.sensor_id, r.ts // 3600) for r in early})
        assert hourly_rows(conn, "SELECT * FROM sensor_readings_hourly") == plain
        (materialized,) = conn.execute(
            "SELECT format('%I.%I', materialization_hypertable_schema, "
            "materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = 'sensor_readings_hourly'"
        ).fetchone()
        oldest = conn.execute(f"SELECT min(hour) FROM {materialized}").fetchone()[0]
        assert oldest == plain[0][0]  # materialized from the first hour, not computed live

        # late readings, far older than any recent window, and new ones
        late = readings(now, "late", range(0, 12 * 24, 3), 4)
        asyncio.run(write(late))
        (job,) = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs "
            "WHERE hypertable_name = 'sensor_readings_hourly'"
        ).fetchone()
        conn.execute(f"CALL run_job({job})")
        plain = hourly_rows(conn, PLAIN_HOURLY)
        assert len(plain) == len({(r.sensor_id, r.ts // 3600) for r in early + late})
        assert hourly_rows(conn, "SELECT * FROM sensor_readings_hourly") == plain


def test_timescaledb_releases_are_compared_as_numbers() -> None:
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
