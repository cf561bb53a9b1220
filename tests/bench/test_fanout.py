"""The fan-out benchmark at toy size: what it prints and counts, never how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fanout import percentile, split
from tests.conftest import ROOT


def test_clients_are_split_evenly_over_processes() -> None:
    assert split(10, 4) == [3, 3, 2, 2]
    assert split(3, 4) == [1, 1, 1, 0]


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    ordered = list(range(1000, 101_000, 1000))  # 1 .. 100 ms
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 99) == 99.0
    assert percentile(ordered, 100) == 100.0


@pytest.mark.e2e
@pytest.mark.slow
def test_four_cases_deliver_and_count_only_the_readers(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    sizes = ["--clients", "20", "--seconds", "2", "--stalled-share", "0.2", "--warmup", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.fanout", *sizes, "--procs", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| hub", "| naive"))]
    assert [r.split("|")[1].strip() for r in rows] == ["hub", "naive", "hub", "naive"]
    cases = json.loads(out.read_text())["rows"]
    assert [(c["server"], c["stalled"]) for c in cases] == [
        ("hub", 0),
        ("naive", 0),
        ("hub", 4),
        ("naive", 4),
    ]
    for case in cases:
        assert case["connected"] == 20 + case["stalled"]
        assert case["delivered"] > 0
        # every reader took updates in the window; the stalled screens none
        # that were counted, and the latency figures come from readers only
        assert case["readers_receiving"] == 20
        assert case["stalled_recorded"] == 0
        assert f"| {case['readers']}+{case['stalled']} |" in rows[cases.index(case)]
