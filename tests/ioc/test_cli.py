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
