import logging

import psycopg
import pytest

from streams.sinks.schema import TopicMismatch, bind_topic, migrate, timescale_statements

pytestmark = pytest.mark.integration


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
