from __future__ import annotations

from alerts.model import Signal
from alerts.signals import sla_signals, unit_signals
from ioc.feed import kpi_view, sum_counters


def transition(kind: str) -> dict[str, object]:
    return {
        "kind": "sla",
        "transition": kind,
        "dossier_id": "D1",
        "at": 100.0,
        "due": 100.0,
        "commune": "00166",
        "agency": "ubnd-00166",
        "centre": "hcc-00166",
        "procedure": "1.000005",
        "field": "ho-tich",
    }


def test_sla_transitions_become_dossier_signals() -> None:
    units = (
        ("commune", "commune:00166"),
        ("agency", "agency:ubnd-00166"),
        ("centre", "centre:hcc-00166"),
    )
    overdue = sla_signals(transition("overdue"))
    assert overdue == [
        Signal("dossier_at_risk", "dossier:D1", 100.0, ended=True, units=units, due=100.0),
        Signal("dossier_overdue", "dossier:D1", 100.0, units=units, due=100.0),
    ]
    assert [(s.kind, s.ended) for s in sla_signals(transition("at_risk"))] == [
        ("dossier_at_risk", False)
    ]
    assert [(s.kind, s.ended) for s in sla_signals(transition("cleared"))] == [
        ("dossier_at_risk", True),
        ("dossier_overdue", True),
    ]
    assert sla_signals({"transition": "overdue"}) == []
    assert overdue[1].unit_map()["dossier"] == "dossier:D1"


def test_a_units_kpis_become_unit_signals() -> None:
    view = kpi_view("commune:00166", "Phường Cầu Giấy", sum_counters([]), 1_773_900_000.0)
    signals = unit_signals(view)
    assert signals[0] == Signal("overdue_backlog", "commune:00166", 1_773_900_000.0, value=0.0)
    rates = [s for s in signals if s.kind == "on_time_rate"]
    assert sorted(s.window or "" for s in rates) == ["24h", "month", "today", "ytd"]
    assert all(s.value is None and s.sample == 0 for s in rates)  # nothing to settle: no judgement
    assert unit_signals({**view, "scope": "procedure:1.000005"}) == []
