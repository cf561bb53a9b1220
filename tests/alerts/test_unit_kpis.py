"""Units' KPIs added up from every procedure partition's share, as signals
for the unit rules."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from alerts.engine import AlertEngine
from alerts.routing import Routing
from alerts.rules import load_rules
from alerts.unit_kpis import UnitKpis, expand, kept
from alerts.unit_messages import UnitCounters
from ioc.calendar import WorkingCalendar
from ioc.kpis import FLOWS, LEVELS, WINDOWS
from tests.alerts.helpers import at

L = {name: i for i, name in enumerate(LEVELS)}
F = {name: i for i, name in enumerate(FLOWS)}


def counters(overdue: int, finished: int = 0, on_time: int = 0) -> dict[str, Any]:
    """A partition's counters of one unit: ``overdue`` open overdue dossiers
    (without apology letters), ``finished`` this month, ``on_time`` of them."""
    flows = {w: [0] * len(FLOWS) for w in WINDOWS}
    for w in ("month", "ytd"):
        flows[w][F["finished"]] = finished
        flows[w][F["on_time"]] = on_time
    levels = [0] * len(LEVELS)
    levels[L["open"]] = levels[L["overdue"]] = overdue
    return {"flows": flows, "levels": levels}


def share(part: int, at: float, **scopes: dict[str, Any]) -> UnitCounters:
    return UnitCounters(part, at, {k.replace("_", ":"): v for k, v in scopes.items()})


def backlog(signals: list[Any]) -> list[float | None]:
    return [s.value for s in signals if s.kind == "overdue_backlog"]


def test_the_shares_of_every_partition_add_up() -> None:
    units = UnitKpis(load_rules())
    assert backlog(units.apply(share(0, 10.0, commune_00166=counters(6)))) == [6.0]
    assert backlog(units.apply(share(1, 11.0, commune_00166=counters(5)))) == [11.0]
    # partition 0's share changes: the others' stay counted
    assert backlog(units.apply(share(0, 12.0, commune_00166=counters(2)))) == [7.0]


def test_a_value_that_did_not_change_is_not_signalled_again() -> None:
    units = UnitKpis(load_rules())
    assert units.apply(share(0, 10.0, commune_00166=counters(12)))
    assert units.apply(share(0, 20.0, commune_00166=counters(12))) == []


def test_an_older_share_sent_again_is_dropped() -> None:
    units = UnitKpis(load_rules())
    units.apply(share(0, 20.0, commune_00166=counters(12)))
    assert units.apply(share(0, 10.0, commune_00166=counters(3))) == []
    assert units.shares["commune:00166"]["0"][0] == 20.0


def test_only_the_units_and_windows_the_rules_judge_are_kept_and_signalled() -> None:
    units = UnitKpis(load_rules())  # the sample: communes, agencies, centres; no province rule
    got = units.apply(
        share(0, 10.0, province=counters(50), commune_00166=counters(1, finished=40, on_time=30))
    )
    assert set(units.shares) == {"commune:00166"}
    assert sorted((s.kind, s.window) for s in got) == [
        ("missing_apology", "month"),
        ("on_time_rate", "month"),
        ("overdue_backlog", None),
    ]
    rate = next(s for s in got if s.kind == "on_time_rate")
    assert rate.sample == 41 and rate.value == 30 / 41


def test_the_state_survives_json_and_gives_the_same_signals() -> None:
    units = UnitKpis(load_rules())
    units.apply(share(0, 10.0, commune_00166=counters(6), agency_x=counters(25)))
    again = UnitKpis(load_rules())
    again.restore(json.loads(json.dumps(units.state())))
    later = share(1, 11.0, commune_00166=counters(5))
    assert again.apply(later) == units.apply(later)


def test_a_kept_share_expands_to_the_same_kpis() -> None:
    from ioc.kpis import derive

    full = counters(4, finished=9, on_time=7)
    small = expand(kept(full, 1.0))
    for key in ("overdue", "on_time_rate", "to_settle", "missing_apology"):
        assert (
            derive(small["flows"]["month"], small["levels"], 1)[key]
            == derive(full["flows"]["month"], full["levels"], 1)[key]
        )


def test_a_backlog_alert_opens_at_night_calls_at_the_office_opening_and_resolves(
    routing: Routing, cal: WorkingCalendar
) -> None:
    """The sample's commune backlog rule (above 10, muted outside working
    time) on the shares of two partitions."""
    rules = dataclasses.replace(load_rules(), digest=None)
    units, engine = UnitKpis(rules), AlertEngine(rules, routing, cal, at("2026-03-21T00:00"))
    saturday, monday = at("2026-03-21T22:00"), at("2026-03-23T08:00")
    out = engine.feed(units.apply(share(0, saturday, commune_00166=counters(6))))
    out.extend(engine.feed(units.apply(share(1, saturday + 60, commune_00166=counters(7)))))
    assert [type(c).__name__ for c in out.changes] == ["Opened"] and out.deliveries == []
    out = engine.tick(monday + 3600)
    assert {d.at for d in out.deliveries} == {monday}
    out = engine.feed(units.apply(share(1, monday + 7200, commune_00166=counters(2))))
    assert [(type(c).__name__, getattr(c, "how", None)) for c in out.changes] == [
        ("Resolved", "auto")
    ]
