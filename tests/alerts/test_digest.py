"""The daily digest: at the configured local hour, on working days only."""

from __future__ import annotations

from alerts.model import DigestReady, Tick
from alerts.routing import Routing
from ioc.calendar import WorkingCalendar
from ioc.clock import to_iso
from tests.alerts.conftest import overdue_rule, rule_set
from tests.alerts.helpers import DEPARTMENT_UNITS, Run, at, overdue

DIGEST = {"at": "07:30", "top": 2, "channels": ["email"]}


def digests(run: Run) -> list[DigestReady]:
    return [c for c in run.outbox.history if isinstance(c, DigestReady)]


def test_digests_come_at_the_hour_on_working_days_only(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule(), digest=DIGEST), routing, cal, start="2026-02-12T12:00")
    run.feed(overdue("D1", "2026-02-12T12:00"))
    run.ticks("2026-02-12T12:00", "2026-02-24T12:00", every=900)
    days = sorted({to_iso(d.at)[:16] for d in digests(run)})
    # Tết: 14-22 February are not working days
    assert days == ["2026-02-13T07:30", "2026-02-23T07:30", "2026-02-24T07:30"]


def test_each_leader_gets_the_overdue_dossiers_of_their_unit(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule(), digest=DIGEST), routing, cal, start="2026-03-09T00:00")
    run.feed(
        overdue("D1", "2026-03-10T09:00"),
        overdue("D2", "2026-03-11T09:00"),
        overdue("D3", "2026-03-11T10:00", DEPARTMENT_UNITS),
        Tick(at("2026-03-13T08:00")),
    )
    friday = {d.leader: d.digest for d in digests(run) if d.at == at("2026-03-13T07:30")}
    assert sorted(friday) == ["ct-ubnd-00166", "gd-so-tu-phap-01", "pct-ubnd-01", "vp-ubnd-01"]
    city = friday["vp-ubnd-01"]
    assert city["overdue"] == 3 and city["date"] == "2026-03-13"
    assert city["worst_units"] == [
        {"unit": "agency:ubnd-00166", "overdue": 2},
        {"unit": "commune:00166", "overdue": 2},
    ]
    assert [(x["subject"], x["working_days_late"]) for x in city["worst_dossiers"]] == [
        ("dossier:D1", 2.88),  # Tue 09:00 to Fri 07:30: 7 + 8 + 8 working hours
        ("dossier:D2", 1.88),
    ]
    assert friday["gd-so-tu-phap-01"]["overdue"] == 1
    assert friday["ct-ubnd-00166"]["overdue"] == 2
    keys = sorted(d.key for d in run.outbox.deliveries if d.rule == "digest")
    assert "digest:2026-03-13/0/vp-ubnd-01/email" in keys


def test_no_digest_without_open_alerts(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(overdue_rule(), digest=DIGEST), routing, cal, start="2026-03-09T00:00")
    run.ticks("2026-03-09T00:00", "2026-03-11T00:00", every=3600)
    assert digests(run) == []
