"""Escalation in working time, on the sample Hà Nội calendar."""

from __future__ import annotations

import pytest

from alerts.model import Acknowledge, Escalated, Tick, Worsened
from alerts.routing import Routing
from ioc.calendar import WorkingCalendar
from ioc.clock import to_iso
from tests.alerts.conftest import overdue_rule, rule_set
from tests.alerts.helpers import DEPARTMENT_UNITS, Run, at, kinds, overdue


def escalations(run: Run) -> list[tuple[int, str]]:
    return [(c.step, to_iso(c.at)[:16]) for c in run.outbox.history if isinstance(c, Escalated)]


def test_due_friday_1600_reaches_the_one_day_step_on_monday_1600(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    run.feed(overdue("D1", "2026-03-13T16:00"))
    assert escalations(run) == [(0, "2026-03-13T16:00")]
    run.ticks("2026-03-13T16:01", "2026-03-16T15:59", every=60)
    assert escalations(run) == [(0, "2026-03-13T16:00")]  # nothing on Saturday or Sunday
    run.feed(Tick(at("2026-03-16T16:00")))
    assert escalations(run)[-1] == (1, "2026-03-16T16:00")


def test_a_late_tick_fires_the_step_at_its_own_instant(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    run.feed(overdue("D1", "2026-03-13T16:00"), Tick(at("2026-03-25T09:00")))
    assert escalations(run) == [
        (0, "2026-03-13T16:00"),
        (1, "2026-03-16T16:00"),
        (2, "2026-03-17T16:00"),
        (3, "2026-03-20T16:00"),
    ]


@pytest.mark.parametrize(
    ("due", "one_day", "why"),
    [
        ("2026-02-13T16:00", "2026-02-23T16:00", "Tết: 16-20 February off"),
        ("2026-08-28T16:00", "2026-09-03T16:00", "National Day: 31 August to 2 September off"),
        ("2026-08-21T16:00", "2026-08-22T16:00", "Saturday 22 August is worked"),
        ("2026-04-24T16:00", "2026-04-28T16:00", "Hùng Kings, observed on Monday 27 April"),
    ],
)
def test_days_off_push_the_step_on_and_make_up_days_bring_it_forward(
    routing: Routing, cal: WorkingCalendar, due: str, one_day: str, why: str
) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal, start="2026-01-05T00:00")
    run.feed(overdue("D1", due), Tick(at(one_day) - 1))
    assert [s for s, _ in escalations(run)] == [0], why
    run.feed(Tick(at(one_day)))
    assert escalations(run)[-1] == (1, one_day), why


def test_each_step_calls_its_level(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    run.feed(overdue("D1", "2026-03-13T16:00"), Tick(at("2026-03-25T09:00")))
    by_step = {}
    for d in run.outbox.deliveries:
        by_step.setdefault(d.step, []).append(d.recipient)
    # due: the commune People's Committee's office; 1 day: nobody at level 2 in the
    # agency, so the city's duty office; 2 days: the commune chair; 5: the city
    assert by_step == {
        0: ["vp-ubnd-00166"],
        1: ["vp-ubnd-01"],
        2: ["ct-ubnd-00166"],
        3: ["pct-ubnd-01"],
    }
    fell_back = [c.fallback for c in run.outbox.history if isinstance(c, Escalated)]
    assert fell_back == [False, True, False, False]
    d = run.outbox.deliveries[0]
    assert d.key == f"{d.alert_id}/0/vp-ubnd-00166/email"
    assert (d.channel, d.address) == ("email", "vp-ubnd-00166@example.invalid")


def test_a_department_dossier_goes_to_the_director(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    run.feed(overdue("D2", "2026-03-13T16:00", DEPARTMENT_UNITS), Tick(at("2026-03-17T16:00")))
    assert [d.recipient for d in run.outbox.deliveries] == [
        "pgd-so-tu-phap-01",
        "gd-so-tu-phap-01",
        "gd-so-tu-phap-01",
    ]


def test_acknowledging_stops_the_escalation_and_worsening_is_said(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    (opened, _) = run.feed(overdue("D1", "2026-03-13T16:00"))
    ack = Acknowledge(opened.alert_id, "operator-1", at("2026-03-16T09:00"), "đã gọi phường")
    run.feed(ack)
    sent = len(run.outbox.deliveries)
    later = run.ticks("2026-03-16T09:01", "2026-03-23T09:00", every=600)
    assert len(run.outbox.deliveries) == sent
    assert kinds(later) == [
        ("Worsened", "2026-03-16T16:00"),
        ("Worsened", "2026-03-17T16:00"),
        ("Worsened", "2026-03-20T16:00"),
    ]
    assert [c.level for c in later if isinstance(c, Worsened)] == [2, 3, 4]
    alert = run.engine.get(opened.alert_id)
    assert alert is not None and alert.state == "acknowledged" and alert.level == 4


def test_a_muted_step_waits_for_the_office(routing: Routing, cal: WorkingCalendar) -> None:
    backlog = {
        "id": "backlog",
        "kind": "overdue_backlog",
        "subject": "commune",
        "severity": "warning",
        "above": 10,
        "mute": [{"when": "outside_working_time"}],
        "escalation": [{"after_working_days": 0, "to": ["commune"], "level": 2}],
    }
    from alerts.model import Signal

    run = Run(rule_set(backlog), routing, cal)
    saturday = Signal("overdue_backlog", "commune:00166", at("2026-03-14T10:00"), value=12)
    assert kinds(run.feed(saturday)) == [("Opened", "2026-03-14T10:00")]
    assert kinds(run.feed(Tick(at("2026-03-16T09:00")))) == [("Escalated", "2026-03-16T08:00")]
    assert [(d.recipient, d.channel) for d in run.outbox.deliveries] == [
        ("ct-ubnd-00166", "websocket")
    ]
    # resolved before the office opens: nobody is called
    run2 = Run(rule_set(backlog), routing, cal)
    run2.feed(saturday, Signal("overdue_backlog", "commune:00166", at("2026-03-15T10:00"), value=9))
    run2.feed(Tick(at("2026-03-16T09:00")))
    assert run2.outbox.deliveries == []


def test_the_sample_chain_due_agency_then_chair_then_city(
    routing: Routing, cal: WorkingCalendar
) -> None:
    from alerts.rules import load_rules

    run = Run(load_rules(), routing, cal)
    run.feed(overdue("D1", "2026-03-13T16:00"), Tick(at("2026-03-25T09:00")))
    steps = [
        (d.step, to_iso(d.at)[:16], d.recipient, d.channel)
        for d in run.outbox.deliveries
        if d.rule != "digest"
    ]
    assert steps == [
        (0, "2026-03-13T16:00", "vp-ubnd-00166", "websocket"),
        (0, "2026-03-13T16:00", "vp-ubnd-00166", "email"),
        (1, "2026-03-17T16:00", "ct-ubnd-00166", "websocket"),
        (1, "2026-03-17T16:00", "ct-ubnd-00166", "email"),
        (1, "2026-03-17T16:00", "ct-ubnd-00166", "webhook"),
        (2, "2026-03-20T16:00", "pct-ubnd-01", "websocket"),
        (2, "2026-03-20T16:00", "pct-ubnd-01", "email"),
    ]
    digests = {
        (to_iso(d.at)[:16], d.recipient) for d in run.outbox.deliveries if d.rule == "digest"
    }
    assert ("2026-03-16T07:30", "ct-ubnd-00166") in digests
    assert not any(day.startswith(("2026-03-14", "2026-03-15", "2026-03-21")) for day, _ in digests)
