"""The command line's own handling of bad input and closed pipes (each
command runs end to end in the integration tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ioc.cli import main


def test_an_instant_without_an_offset_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--start", "2026-03-16T08:00:00", "--days", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --start: time without offset" in err and "Traceback" not in err


def test_a_reader_that_goes_away_stops_the_output_quietly() -> None:
    generate = subprocess.Popen(
        [sys.executable, "-m", "ioc.cli", "generate", "--start", "2026-03-16T08:00:00+07:00"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert generate.stdout is not None
    generate.stdout.readline()
    generate.stdout.close()  # as `| head -1` does
    _, err = generate.communicate(timeout=60)
    assert generate.returncode == 1 and b"Traceback" not in err, err.decode()


def test_bad_settings_are_one_line_each_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_API_PORT", "eighty")
    monkeypatch.setenv("IOC_PROCEDURE_PARTITIONS", "0")
    monkeypatch.setenv("IOC_DATABASE_URL", "postgresql://u:hunter2-secret@db/x")
    assert main(["schema", "procedure-event"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines == [
        "ioc: IOC_API_PORT: Input should be a valid integer, unable to parse string as an integer",
        "ioc: IOC_PROCEDURE_PARTITIONS: Input should be greater than or equal to 1",
    ]
    assert captured.out == ""


def test_a_setting_refused_as_a_whole_names_itself(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_ENV", "production")
    monkeypatch.setenv("IOC_INGEST_TOKEN", "short-secret")
    assert main(["schema", "procedure-event"]) == 2
    err = capsys.readouterr().err
    assert err == "ioc: IOC_INGEST_TOKEN must be at least 16 characters in production\n"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("IOC_KAFKA_URL", "http://x", "IOC_KAFKA_URL: not a list of Kafka servers"),
        ("IOC_KAFKA_URL", "kafka://127.0.0.1:abc", "IOC_KAFKA_URL: not a list of Kafka servers"),
        ("IOC_CLOCK_START", "yesterday", "IOC_CLOCK_START: not an instant with an offset"),
        (
            "IOC_CLOCK_START",
            "2026-03-16T08:00:00",
            "IOC_CLOCK_START: not an instant with an offset",
        ),
        ("IOC_DATABASE_URL", "%%%", "IOC_DATABASE_URL: not a connection string"),
    ],
)
def test_settings_checked_at_start_give_one_line_and_exit_2(
    variable: str,
    value: str,
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["schema", "procedure-event"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ioc: {says}") and len(err.splitlines()) == 1, err


def test_a_missing_configured_file_gives_its_problem_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOC_ENV", "development")
    monkeypatch.setenv("IOC_PROVINCE_FILE", "/nonexistent/province.toml")
    assert main(["alerts"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ioc: /nonexistent/province.toml") and "file not found" in err
    assert "Traceback" not in err
