"""The engine's state survives a JSON round trip: an engine restored from
``state()`` at any point of a run gives the same outputs from there on as
the one that kept running (the alert stage restores one per partition)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.engine import AlertEngine
from alerts.model import Acknowledge, Input, Outcome, Resolve, Signal, Tick, record
from alerts.routing import Routing
from ioc.calendar import WorkingCalendar
from tests.alerts.test_determinism import RULES, SPAN, START, Step, scenarios


def inputs(engine: AlertEngine, step: Step) -> Input | None:
    if isinstance(step, Signal):
        return step
    open_now = engine.open_alerts()
    if not open_now:
        return None
    target = open_now[step.n % len(open_now)].id
    return (Resolve if step.resolve else Acknowledge)(target, "op", step.at, "c")


def outputs(out: Outcome) -> list[dict[str, Any]]:
    return [record(c) for c in out.changes] + [record(d) for d in out.deliveries]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenarios(), cut=st.integers(0, 40))
def test_a_restored_engine_gives_the_same_future(
    steps: list[Step], cut: int, routing: Routing, cal: WorkingCalendar
) -> None:
    kept = AlertEngine(RULES, routing, cal, START)
    restored: AlertEngine | None = None
    after_kept, after_restored = Outcome(), Outcome()
    for i, step in enumerate([*steps, Tick(START + SPAN + 7 * 86400)]):
        if i == min(cut, len(steps)):
            restored = AlertEngine(RULES, routing, cal, 0.0)
            restored.restore(json.loads(json.dumps(kept.state())))
        item = step if isinstance(step, Tick) else inputs(kept, step)
        if item is None:
            continue
        out = kept.handle(item)
        if restored is not None:
            after_kept.extend(out)
            after_restored.extend(restored.handle(item))
    assert restored is not None
    assert outputs(after_restored) == outputs(after_kept)
    assert restored.state() == kept.state()


def test_a_transition_sent_again_after_the_dossier_finished_reopens_nothing(
    routing: Routing, cal: WorkingCalendar
) -> None:
    from tests.alerts.helpers import finished, overdue

    engine = AlertEngine(RULES, routing, cal, START)
    engine.handle(overdue("D1", "2026-03-10T09:00"))
    engine.handle(finished("D1", "2026-03-10T10:00"))
    again = engine.handle(overdue("D1", "2026-03-10T09:00"))  # a worker's re-send
    assert again.changes == [] and again.deliveries == []
    assert engine.open_alerts() == []
