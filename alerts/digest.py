"""The daily digest for leaders: at a configured local hour on working days,
each leader marked ``digest = true`` in the routing file gets how many
overdue dossiers their unit has open, the worst units and the dossiers
latest in working days, and the other open alerts of their unit. A pure
function of the open alerts and the instant; a leader whose unit has no
open alert gets none that day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from alerts.escalation import delivery_key, working_days_late
from alerts.model import Alert, Delivery
from alerts.routing import Leader, Routing
from alerts.rules import DigestConfig
from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ

_WORST_UNIT_KINDS = ("agency", "commune", "centre")


def next_digest(cal: WorkingCalendar, config: DigestConfig, after: float) -> float:
    """The first digest instant strictly after ``after``: ``config.at``
    local time on a working day."""
    day = datetime.fromtimestamp(after, VN_TZ).date()
    for _ in range(400):  # a year has far fewer days off in a row
        midnight = datetime(day.year, day.month, day.day, tzinfo=VN_TZ)
        t = (midnight + timedelta(seconds=config.at)).timestamp()
        if t > after and cal.is_working_day(day):
            return t
        day += timedelta(days=1)
    return float("inf")


def leader_digest(
    leader: Leader,
    alerts: Iterable[Alert],
    config: DigestConfig,
    cal: WorkingCalendar,
    routing: Routing,
    at: float,
) -> dict[str, Any] | None:
    """One leader's digest at ``at``, or None when their unit has no open alert."""
    mine = [a for a in alerts if routing.in_unit(leader, a.units)]
    if not mine:
        return None
    overdue = [a for a in mine if a.rule in config.overdue_rules and a.due is not None]
    late = {a.id: working_days_late(a.due or at, at, cal) for a in overdue}
    units: Counter[str] = Counter(
        unit
        for a in overdue
        for kind, unit in a.units.items()
        if kind in _WORST_UNIT_KINDS and unit != leader.unit
    )
    worst_units = sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))[: config.top]
    worst = sorted(overdue, key=lambda a: (-late[a.id], a.subject))[: config.top]
    others = Counter(a.rule for a in mine if a.rule not in config.overdue_rules)
    return {
        "leader": leader.id,
        "unit": leader.unit,
        "date": datetime.fromtimestamp(at, VN_TZ).date().isoformat(),
        "overdue": len(overdue),
        "acknowledged": sum(1 for a in overdue if a.state == "acknowledged"),
        "worst_units": [{"unit": u, "overdue": n} for u, n in worst_units],
        "worst_dossiers": [
            {
                "subject": a.subject,
                "alert_id": a.id,
                "working_days_late": round(late[a.id], 2),
                "state": a.state,
            }
            for a in worst
        ],
        "other_alerts": dict(sorted(others.items())),
    }


def daily_digests(
    alerts: Iterable[Alert],
    routing: Routing,
    config: DigestConfig,
    cal: WorkingCalendar,
    at: float,
) -> list[tuple[dict[str, Any], list[Delivery]]]:
    """Every leader's digest at ``at`` with its deliveries (idempotency key
    ``digest:<date>/0/<leader>/<channel>``)."""
    pool = list(alerts)
    out: list[tuple[dict[str, Any], list[Delivery]]] = []
    for leader in sorted(routing.leaders.values(), key=lambda x: x.id):
        if not leader.digest:
            continue
        digest = leader_digest(leader, pool, config, cal, routing, at)
        if digest is None:
            continue
        source = f"digest:{digest['date']}"
        deliveries = [
            Delivery(
                key=delivery_key(source, 0, leader.id, channel),
                alert_id=source,
                step=0,
                recipient=leader.id,
                channel=channel,
                address=address,
                at=at,
                severity="info",
                subject=leader.unit,
                rule="digest",
            )
            for channel in config.channels
            if (address := leader.address(channel)) is not None
        ]
        out.append((digest, deliveries))
    return out
