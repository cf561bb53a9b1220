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
