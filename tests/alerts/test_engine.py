"""The alert lifecycle: one alert per (rule, subject), repeats, worsening,
operators' actions, auto-resolution and the flapping bound."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from alerts.engine import AlertEngine, alert_id
from alerts.model import (
    Acknowledge,
    Opened,
    Reopened,
    Resolve,
    Resolved,
    Signal,
    Tick,
    Updated,
    Worsened,
    record,
)
from alerts.routing import Routing
from ioc.calendar import WorkingCalendar
from tests.alerts.conftest import overdue_rule, rule_set
from tests.alerts.helpers import Run, at, finished, kinds, overdue

BACKLOG: dict[str, Any] = {
    "id": "backlog",
    "kind": "overdue_backlog",
    "subject": "commune",
    "severity": "warning",
    "above": 10,
    "escalation": [{"after_working_days": 0, "to": ["commune"], "level": 2}],
}
AQI: dict[str, Any] = {
    "id": "aqi",
    "kind": "aqi",
    "subject": "area",
    "severity": "major",
    "band": "bad",
    "reopen_within_minutes": 30,
    "escalation": [{"after_working_days": 0, "to": ["province"], "level": 1}],
}


def backlog(value: float, when: str, unit: str = "commune:00166") -> Signal:
    return Signal("overdue_backlog", unit, at(when), value=value)


def aqi(value: float, t: float, area: str = "area:tram-long-bien") -> Signal:
    return Signal("aqi", area, t, value=value)


def test_repeats_update_one_alert(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(BACKLOG), routing, cal)
    changes = run.feed(
        backlog(11, "2026-03-16T09:00"),
        backlog(15, "2026-03-16T10:00"),
        backlog(12, "2026-03-16T11:00"),
    )
    assert [type(c).__name__ for c in changes] == ["Opened", "Escalated", "Updated", "Updated"]
    last = changes[-1]
    assert isinstance(last, Updated)
    assert (last.count, last.last_seen, last.value, last.peak) == (
        3,
        at("2026-03-16T11:00"),
        12,
        15,
    )
    assert len(run.engine.open_alerts()) == 1
    assert len(run.outbox.deliveries) == 1  # repeats call nobody again


def test_the_same_signal_twice_changes_nothing(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(BACKLOG), routing, cal)
    run.feed(backlog(11, "2026-03-16T09:00"))
    assert run.feed(backlog(11, "2026-03-16T09:00")) == []


def test_back_under_the_threshold_resolves_by_itself(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(BACKLOG), routing, cal)
    (opened, *_) = run.feed(backlog(11, "2026-03-16T09:00"))
    (resolved,) = run.feed(backlog(10, "2026-03-16T10:00"))
    assert resolved == Resolved(at("2026-03-16T10:00"), opened.alert_id, "auto", None, "")
    assert run.engine.open_alerts() == []
    assert run.feed(backlog(3, "2026-03-16T11:00")) == []  # nothing to resolve


def test_a_finished_dossier_resolves_its_alert_and_stops_the_escalation(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    run.feed(overdue("D1", "2026-03-13T16:00"))
    changes = run.feed(finished("D1", "2026-03-16T10:00"), Tick(at("2026-03-30T10:00")))
    assert kinds(changes) == [("Resolved", "2026-03-16T10:00")]
    assert len(run.outbox.deliveries) == 1


def test_an_operator_acknowledges_then_resolves(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(BACKLOG), routing, cal)
    (opened, *_) = run.feed(backlog(11, "2026-03-16T09:00"))
    ident = opened.alert_id
    out = run.engine.handle(Acknowledge(ident, "op-1", at("2026-03-16T09:05"), "đang xử lý"))
    assert out.refused is None
    again = run.engine.handle(Acknowledge(ident, "op-2", at("2026-03-16T09:06")))
    assert again.refused == f"alert {ident} is already acknowledged by op-1" and not again.changes
    alert = run.engine.get(ident)
    assert alert is not None and (alert.acknowledged_by, alert.state) == ("op-1", "acknowledged")
    done = run.engine.handle(Resolve(ident, "op-2", at("2026-03-16T09:30"), "đã giải quyết"))
    assert done.changes == [
        Resolved(at("2026-03-16T09:30"), ident, "operator", "op-2", "đã giải quyết")
    ]
    gone = run.engine.handle(Resolve(ident, "op-2", at("2026-03-16T09:31")))
    assert gone.refused == f"no open alert {ident}"
    assert record(done.changes[0]) == {
        "type": "resolved",
        "at": at("2026-03-16T09:30"),
        "alert_id": ident,
        "how": "operator",
        "by": "op-2",
        "comment": "đã giải quyết",
    }


def test_an_acknowledged_alert_that_worsens_says_so_without_reopening(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(AQI), routing, cal)
    t = at("2026-03-16T09:00")
    (opened, _) = run.feed(aqi(160, t))
    run.feed(Acknowledge(opened.alert_id, "op-1", t + 60))
    changes = run.feed(aqi(230, t + 120))
    assert [type(c).__name__ for c in changes] == ["Updated", "Worsened"]
    assert changes[1] == Worsened(t + 120, opened.alert_id, 5, 230)
    alert = run.engine.get(opened.alert_id)
    assert alert is not None and alert.state == "acknowledged" and alert.peak == 230
    assert run.feed(aqi(210, t + 180))[-1] == Updated(
        t + 180, opened.alert_id, 3, t + 180, 210, 230
    )  # same band: no worsening said again


def test_alert_ids_follow_rule_subject_and_opening(routing: Routing, cal: WorkingCalendar) -> None:
    ids = []
    for _ in range(2):
        run = Run(rule_set(BACKLOG), routing, cal)
        (opened, *_) = run.feed(backlog(11, "2026-03-16T09:00"))
        ids.append(opened.alert_id)
    assert ids[0] == ids[1] == alert_id("backlog", "commune:00166", at("2026-03-16T09:00"))
    other = alert_id("backlog", "commune:00004", at("2026-03-16T09:00"))
    assert other != ids[0]


def test_one_open_alert_per_rule_and_subject(routing: Routing, cal: WorkingCalendar) -> None:
    run = Run(rule_set(BACKLOG, {**BACKLOG, "id": "backlog-high", "above": 20}), routing, cal)
    run.feed(
        backlog(25, "2026-03-16T09:00"),
        backlog(25, "2026-03-16T09:00", "commune:00004"),
        backlog(30, "2026-03-16T09:10"),
    )
    keys = sorted((a.rule, a.subject, a.count) for a in run.engine.open_alerts())
    assert keys == [
        ("backlog", "commune:00004", 1),
        ("backlog", "commune:00166", 2),
        ("backlog-high", "commune:00004", 1),
        ("backlog-high", "commune:00166", 2),
    ]


# -- flapping -------------------------------------------------------------------


def test_flapping_within_the_cool_down_reopens_the_same_alert(
    routing: Routing, cal: WorkingCalendar
) -> None:
    """AQI around the band's edge, every 5 minutes for 3 hours: one alert,
    one delivery, re-opened each time it comes back within 30 minutes."""
    run = Run(rule_set(AQI), routing, cal)
    t0 = at("2026-03-16T09:00")
    for i in range(36):
        run.feed(aqi(160 if i % 2 == 0 else 90, t0 + 300 * i))
    opened = [c for c in run.outbox.history if isinstance(c, Opened)]
    reopened = [c for c in run.outbox.history if isinstance(c, Reopened)]
    assert len(opened) == 1 and len(reopened) == 17
    assert {c.alert_id for c in reopened} == {opened[0].alert_id}
    assert reopened[-1].count == 18
    assert len(run.outbox.deliveries) == 1


def test_a_new_alert_opens_at_most_once_per_cool_down(
    routing: Routing, cal: WorkingCalendar
) -> None:
    """Resolved for longer than the cool-down: the next firing opens a new
    alert. In any span of H minutes at most 1 + H / 30 alerts open."""
    run = Run(rule_set(AQI), routing, cal)
    t0 = at("2026-03-16T09:00")
    t = t0
    for quiet_minutes in (29, 30, 31, 45, 10, 60, 29.9):
        run.feed(aqi(160, t), aqi(90, t + 60))
        t += 60 + quiet_minutes * 60
    run.feed(aqi(160, t))
    opened = [c.at for c in run.outbox.history if isinstance(c, Opened)]
    # quiet for 29 min re-opens, 30 or more opens anew
    assert [round((x - t0) / 60) for x in opened] == [0, 61, 93, 139, 211]
    assert all(b - a >= 30 * 60 for a, b in pairwise(opened))
    assert len({d.alert_id for d in run.outbox.deliveries}) == len(opened)


def test_reopening_resumes_the_escalation_where_it_stood(
    routing: Routing, cal: WorkingCalendar
) -> None:
    run = Run(rule_set(overdue_rule()), routing, cal)
    run.feed(overdue("D1", "2026-03-13T16:00"), Tick(at("2026-03-16T16:30")))
    assert len(run.outbox.deliveries) == 2  # due, 1 day
    # paused for a supplement at 16:40, overdue again 10 minutes later
    changes = run.feed(
        finished("D1", "2026-03-16T16:40"),
        overdue("D1", "2026-03-16T16:50"),
        Tick(at("2026-03-18T17:00")),
    )
    assert [type(c).__name__ for c in changes] == ["Resolved", "Reopened", "Escalated"]
    assert changes[-1].at == at("2026-03-18T16:50")  # 2 working days after the new due
    assert len(run.outbox.deliveries) == 3  # the 2-day step only: earlier ones are not repeated


def test_signals_of_other_kinds_or_subjects_are_ignored(
    routing: Routing, cal: WorkingCalendar
) -> None:
    engine = AlertEngine(rule_set(AQI), routing, cal, at("2026-03-16T00:00"))
    assert (
        engine.signal(Signal("aqi", "sensor:s1", at("2026-03-16T09:00"), value=400)).changes == []
    )
    assert engine.signal(Signal("noise", "area:x", at("2026-03-16T09:00"), value=400)).changes == []


def test_unclocked_signals_fire_their_own_steps_and_leave_the_dossiers_time(
    routing: Routing, cal: WorkingCalendar
) -> None:
    """On event time a unit's KPI level carries its worker's clock, ahead of
    the partition's transitions: judged at its instant, it fires the unit
    alert's steps, never a dossier's (whose cleared may still be on its way)."""
    import dataclasses

    run = Run(rule_set(overdue_rule(), BACKLOG), routing, cal)

    def unclocked(s: Signal) -> Signal:
        return dataclasses.replace(s, clocked=False)

    opened = run.feed(overdue("D1", "2026-03-16T09:00"))
    assert kinds(opened) == [("Opened", "2026-03-16T09:00"), ("Escalated", "2026-03-16T09:00")]
    # a week later by a worker's clock: the backlog alert opens and escalates
    # at its instant; the dossier's 1-working-day step (Tue 09:00) waits
    later = run.feed(unclocked(backlog(12, "2026-03-23T09:00")))
    assert kinds(later) == [("Opened", "2026-03-23T09:00"), ("Escalated", "2026-03-23T09:00")]
    assert run.engine.now == at("2026-03-16T09:00")
    # the dossier finished on Monday afternoon: no step of it ever fired
    assert kinds(run.feed(finished("D1", "2026-03-16T15:00"))) == [("Resolved", "2026-03-16T15:00")]
    # the partition's own time moving on fires nothing more for the unit
    assert run.feed(Tick(at("2026-03-24T09:00"))) == []
