"""What PostgreSQL can store, and which refusals a retry cannot cure,
checked against the real server's own errors."""

from __future__ import annotations

import psycopg
import pytest

from streams.sinks.storable import header_text, is_data_error, storable_text


def test_storable_text_escapes_nul_and_lone_surrogates() -> None:
    assert storable_text("ioc/sensors/a\x00b") == "ioc/sensors/a\\x00b"
    assert storable_text("x\ud800y") == "x\\ud800y"
    assert storable_text("Phường Hoàn Kiếm") == "Phường Hoàn Kiếm"


def test_header_text_takes_any_bytes() -> None:
    assert header_text(None, "unknown") == "unknown"
    assert header_text(b"caf\xe9\x00") == "caf\\xe9\\x00"
    assert header_text("mưa".encode()) == "mưa"


def test_not_psycopg_errors_are_retried() -> None:
    assert not is_data_error(ConnectionError("reset"))
    assert not is_data_error(TimeoutError())
    assert is_data_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate"))


@pytest.mark.integration
def test_the_servers_refusals_are_told_apart(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (ts timestamptz, s text UNIQUE, n smallint)")

        def error_of(sql: str, params: tuple[object, ...] = ()) -> psycopg.Error:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(sql, params)
            return caught.value

        # the data itself: the same write can never succeed
        assert is_data_error(error_of("INSERT INTO t (ts) VALUES ('2026-11-27T10:00:00+20:00')"))
        assert is_data_error(error_of("INSERT INTO t (s) VALUES (%s)", ("a\x00b",)))
        assert is_data_error(error_of("INSERT INTO t (n) VALUES (100000)"))
        conn.execute("INSERT INTO t (s) VALUES ('once')")
        assert is_data_error(error_of("INSERT INTO t (s) VALUES ('once')"))
        # not the data: our own SQL, or the server's condition
        assert not is_data_error(error_of("INSERT INTO missing_table VALUES (1)"))
        assert not is_data_error(error_of("SELECT pg_terminate_backend(pg_backend_pid())"))
