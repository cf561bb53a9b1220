"""The SLA scenario of tests/scenarios/sla-2026.json: loading it and
checking results against its hand-computed expectations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ioc.clock import parse_instant

SCENARIO = Path(__file__).parent / "scenarios" / "sla-2026.json"


def load() -> dict[str, Any]:
    return json.loads(SCENARIO.read_text(encoding="utf-8"))


def events(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for d in scenario["dossiers"] for e in d["events"]]


def ndjson(scenario: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in events(scenario))


def ndjson_in_time_order(scenario: dict[str, Any]) -> bytes:
    """The events as a live system sends them: in the order they happened."""
    ordered = sorted(events(scenario), key=lambda e: parse_instant(e["ts"]))
    return b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in ordered)


def same_instant(got: str | float | None, want: str | None) -> bool:
    if want is None or got is None:
        return got == want
    g = got if isinstance(got, float | int) else parse_instant(got)
    return abs(g - parse_instant(want)) < 1e-3


def check_dossier(d: dict[str, Any], described_at: Any) -> None:
    """``described_at(at)`` gives the dossier as the API describes it."""
    expect = d["expect"]
    final = described_at(None)
    assert same_instant(final["due"], expect["due"]), (d["id"], final["due"], expect["due"])
    assert final["finish_class"] == expect["finish_class"], d["id"]
    if expect["processing_hours"] is not None:
        assert final["consumed_hours"] == pytest.approx(expect["processing_hours"]), d["id"]
    for state in expect["states"]:
        got = described_at(state["at"])
        assert got["sla_state"] == state["sla_state"], (d["id"], state["at"], got["sla_state"])
        if "consumed_hours" in state:
            assert got["consumed_hours"] == pytest.approx(state["consumed_hours"]), (d["id"], state)
        if "due" in state:
            assert same_instant(got["due"], state["due"]), (d["id"], state)


def check_kpis(expect: dict[str, Any], got: dict[str, Any], where: str) -> None:
    for key, value in expect.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value), (where, key, got[key], value)
        else:
            assert got[key] == value, (where, key, got[key], value)


def check_scorecard(expect: dict[str, Any], got: dict[str, Any]) -> None:
    points = {i["id"]: i["points"] for i in got["indicators"]}
    for key, value in expect.items():
        actual = got[key] if key in ("points", "measured_max") else points[key]
        assert actual == pytest.approx(value, abs=0.01), (key, actual, value)
    assert all(
        g["not_measured"] is None or g["not_measured"]["status"] == "not measured here"
        for g in got["groups"]
    )
