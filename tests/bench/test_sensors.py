"""The sensor benchmark at toy size: every published reading is stored once
and the figures are printed. Behaviour only; no time is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sensor_benchmark_stores_every_reading_once(tmp_path: Path) -> None:
    out = tmp_path / "sensors.json"
    env = dict(os.environ)
    env.setdefault(
        "IOC_BENCH_DATABASE_URL",
        os.environ.get("IOC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench.sensors", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert [(r["bridge"], r["qos"]) for r in results] == [
        ("bridge", 1),
        ("bridge", 0),
        ("baseline", 1),
    ]
    for r in results:
        assert f"| {r['bridge']} | {r['qos']} | {r['published']} |" in done.stdout, done.stdout
        assert r["stored_rows"] == r["stored_distinct"], r  # no reading stored twice
        if r["qos"] == 1:
            assert r["stored_distinct"] == r["published"] > 0, r  # and none lost
        else:  # QoS 0 may lose readings on the way, never invent any
            assert 0 < r["stored_distinct"] <= r["published"], r
        assert r["readings_per_s"] > 0 and r["publish_per_s"] > 0, r
        assert r["cpu"]["worker"] > 0 and r["busiest"] in r["cpu"], r
