"""The event -> screen benchmark runs end to end at a tiny size: a table is
printed and updates are measured. Behaviour only; no time is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_latency_benchmark_measures_updates(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    env = dict(os.environ)
    env.setdefault(
        "IOC_BENCH_DATABASE_URL",
        os.environ.get("IOC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.latency", "--rates", "50", "--seconds", "2"),
            *("--warmup", "1", "--settings", "current", "--json", str(out)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| current | 50/s |" in done.stdout, done.stdout
    (result,) = json.loads(out.read_text())["results"]
    assert result["updates"] > 0
    assert result["events_per_s"] > 0 and result["failed_posts"] == 0
    for key in ("min", "p50", "p90", "p99", "max"):
        assert result[key] >= 0, result
    for key in ("edge->applied", "applied->committed", "committed->published"):
        assert result[key] is not None and result[key] >= 0, result
