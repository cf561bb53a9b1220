"""The simulated dossier lifecycles: every dossier's events come in an order
the real system can produce, and the settling agencies and centres follow
the province file."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from ioc.clock import parse_instant
from simulators.procedures import DossierPlanner, generate
from tests.streams.helpers import vn, world


@pytest.fixture(scope="module")
def dossiers() -> dict[str, list[dict[str, Any]]]:
    registry, calendar = world()
    planner = DossierPlanner(registry, calendar, seed=11)
    by_dossier: dict[str, list[dict[str, Any]]] = defaultdict(list)
    start = vn("2026-03-02 00:00")
    for ev in generate(planner, start, start + 28 * 86400, 30):
        by_dossier[ev["dossier_id"]].append(ev)
    assert len(by_dossier) > 3000
    return by_dossier


def first(events: list[dict[str, Any]], kind: str) -> float | None:
    times = [parse_instant(e["ts"]) for e in events if e["type"] == kind]
    return min(times) if times else None


def last(events: list[dict[str, Any]], kind: str) -> float | None:
    times = [parse_instant(e["ts"]) for e in events if e["type"] == kind]
    return max(times) if times else None


def test_each_dossier_starts_with_its_receipt(dossiers) -> None:
    for events in dossiers.values():
        assert events[0]["type"] == "received"
        assert [e["type"] for e in events].count("received") == 1


def test_processing_waits_for_the_supplements_and_the_payment(dossiers) -> None:
    checked = 0
    for events in dossiers.values():
        processed = first(events, "processed")
        if processed is None:
            continue
        for kind in ("supplement_requested", "supplement_received", "paid"):
            before = last(events, kind)
            assert before is None or before <= processed, (kind, events)
        asked = first(events, "financial_obligation_requested")
        paid = first(events, "paid")
        assert (asked is None) == (paid is None) and (asked is None or asked <= paid)
        returned = first(events, "result_returned")
        assert returned is not None and returned >= processed
        checked += 1
    assert checked > 2000


def test_each_supplement_comes_back_after_it_was_asked_for(dossiers) -> None:
    for events in dossiers.values():
        asks = [e for e in events if e["type"].startswith("supplement_")]
        assert [e["type"] for e in asks] == ["supplement_requested", "supplement_received"] * (
            len(asks) // 2
        )


def test_receipts_outside_office_hours_are_online(dossiers) -> None:
    _, calendar = world()
    late = [
        e[0] for e in dossiers.values() if not calendar.is_working_time(parse_instant(e[0]["ts"]))
    ]
    assert late and {e["channel"] for e in late} <= {"online", "vneid"}


def test_provincial_procedures_are_settled_by_their_agency(dossiers) -> None:
    registry, _ = world()
    receipts = [e[0] for e in dossiers.values()]
    for r in receipts:
        agency = registry.procedures[r["procedure_code"]].agency
        if agency is not None:
            assert r["agency"] == agency
    provincial = [r for r in receipts if "commune" not in r]
    at_commune_centres = [r for r in provincial if registry.centres[r["centre"]].commune]
    assert provincial and 0 < len(at_commune_centres) < len(provincial) / 2
