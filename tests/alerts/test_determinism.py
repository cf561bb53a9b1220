"""Replay = live: the same signals and operator actions give the same
history, with the same instants and ids, whether the clock ticks every
minute, every hour, once a day, or only with the inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.engine import AlertEngine
from alerts.model import (
    Acknowledge,
    Input,
    Opened,
    Outcome,
    Reopened,
    Resolve,
    Resolved,
    Signal,
    Tick,
    record,
)
from alerts.routing import Routing
from ioc.calendar import WorkingCalendar
from tests.alerts.conftest import overdue_rule, rule_set
from tests.alerts.helpers import COMMUNE_UNITS, DEPARTMENT_UNITS, at

START = at("2026-03-09T00:00")  # a Monday
SPAN = 12 * 86400  # to the Saturday of the next week
RULES = rule_set(
    overdue_rule(),
    {
        "id": "backlog",
        "kind": "overdue_backlog",
        "subject": "commune",
        "severity": "warning",
        "above": 3,
        "mute": [{"when": "outside_working_time"}],
        "escalation": [
            {"after_working_days": 0, "to": ["commune"], "level": 2},
            {"after_working_days": 1.5, "to": ["province"], "level": 1},
        ],
    },
    {
        "id": "aqi",
        "kind": "aqi",
        "subject": "area",
        "severity": "major",
        "band": "poor",
        "reopen_within_minutes": 45,
        "mute": [{"from": "22:00", "to": "06:00"}],
        "escalation": [{"after_working_days": 0, "to": ["province"], "level": 1}],
    },
    digest={"at": "07:30"},
)


@dataclass(frozen=True)
class OperatorAction:
    """Acknowledge (or resolve) the n-th open alert, found in the engine's
    own state, at ``at``."""

    at: float
    n: int
    resolve: bool


Step = Signal | OperatorAction


def dossier_signals(i: int, due: float, end: float | None) -> list[Step]:
    units = COMMUNE_UNITS if i % 2 else DEPARTMENT_UNITS
    subject = f"dossier:D{i}"
    out: list[Step] = [Signal("dossier_overdue", subject, due, units=units, due=due)]
    if end is not None:
        out.append(Signal("dossier_overdue", subject, end, ended=True))
    return out


instants = st.integers(0, SPAN // 60).map(lambda m: START + 60.0 * m)


@st.composite
def scenarios(draw: Any) -> list[Step]:
    steps: list[Step] = []
    for i in range(draw(st.integers(0, 4))):
        due = draw(instants)
        end = draw(
            st.none() | st.integers(1, 6 * 86400 // 60).map(lambda m, due=due: due + 60.0 * m)
        )
        steps += dossier_signals(i, due, end)
    for t, v in draw(st.lists(st.tuples(instants, st.integers(0, 8)), max_size=12)):
        steps.append(Signal("overdue_backlog", "commune:00166", t, value=float(v)))
    for t, v in draw(st.lists(st.tuples(instants, st.integers(40, 180)), max_size=12)):
        steps.append(Signal("aqi", "area:tram-long-bien", t, value=float(v)))
    for t, n, resolve in draw(
        st.lists(st.tuples(instants, st.integers(0, 3), st.booleans()), max_size=4)
    ):
        steps.append(OperatorAction(t, n, resolve))
    return sorted(steps, key=lambda s: (s.at, repr(s)))


def run(steps: list[Step], every: float | None, routing: Routing, cal: WorkingCalendar) -> Outcome:
    engine = AlertEngine(RULES, routing, cal, START)
    out = Outcome()

    def handle(item: Input) -> None:
        out.extend(engine.handle(item))

    clock = START
    for step in steps:
        while every is not None and clock + every <= step.at:
            clock += every
            handle(Tick(clock))
        if isinstance(step, Signal):
            handle(step)
            continue
        open_now = engine.open_alerts()
        if open_now:
            target = open_now[step.n % len(open_now)].id
            action = Resolve if step.resolve else Acknowledge
            handle(action(target, "op", step.at, "c"))
    handle(Tick(START + SPAN + 7 * 86400))
    return out


def history(out: Outcome) -> list[dict[str, Any]]:
    return [record(c) for c in out.changes] + [record(d) for d in out.deliveries]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenarios(), every=st.sampled_from([60.0, 420.0, 3600.0, 86400.0]))
def test_any_tick_granularity_gives_the_same_history(
    steps: list[Step], every: float, routing: Routing, cal: WorkingCalendar
) -> None:
    assert history(run(steps, every, routing, cal)) == history(run(steps, None, routing, cal))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenarios())
def test_never_two_unresolved_alerts_for_one_rule_and_subject(
    steps: list[Step], routing: Routing, cal: WorkingCalendar
) -> None:
    out = run(steps, 3600.0, routing, cal)
    live: set[tuple[str, str]] = set()
    key_of: dict[str, tuple[str, str]] = {}
    for c in out.changes:
        if isinstance(c, Opened | Reopened):
            if isinstance(c, Opened):
                key_of[c.alert_id] = (c.rule, c.subject)
            assert key_of[c.alert_id] not in live
            live.add(key_of[c.alert_id])
        elif isinstance(c, Resolved):
            live.remove(key_of[c.alert_id])
