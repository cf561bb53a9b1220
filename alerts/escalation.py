"""Escalation in working time: when each step of a rule's chain is reached,
and whom it calls.

A step is reached ``after_working_days`` of the province's working time
after the alert's reference instant: a dossier's due time for
``dossier_overdue`` (so "2 working days late" means what it says), the
opening instant otherwise. A step that falls in one of the rule's mute
windows waits for the window's end. Every instant is a pure function of the
alert and the calendar, so a replay reaches each step at the same instant
as a live run, however often its clock ticks.
"""

from __future__ import annotations

from alerts.model import Alert, Delivery
from alerts.routing import Leader, Routing
from alerts.rules import Rule, unmute
from ioc.calendar import WorkingCalendar


def reference(rule: Rule, alert: Alert) -> float:
    """What a rule's escalation counts from."""
    if rule.kind == "dossier_overdue" and alert.due is not None:
        return alert.due
    return alert.opened_at


def step_instant(rule: Rule, index: int, alert: Alert, cal: WorkingCalendar) -> float:
    """When step ``index`` of the rule's chain is reached for ``alert``."""
    step = rule.escalation[index]
    t = cal.add_days(reference(rule, alert), step.after_working_days)
    return unmute(t, rule.mute, cal)


def step_deliveries(
    rule: Rule, index: int, alert: Alert, routing: Routing, at: float
) -> tuple[list[Delivery], tuple[Leader, ...], bool]:
    """The messages step ``index`` decides, its recipients, and whether
    they came from the routing's fallback (no leader at the step's level in
    any of its units)."""
    step = rule.escalation[index]
    leaders, fallback = routing.resolve(step.to, step.level, alert.units)
    out: list[Delivery] = []
    for leader in leaders:
        for channel in step.channels:
            address = leader.address(channel)
            if address is None:
                continue
            out.append(
                Delivery(
                    key=delivery_key(alert.id, index, leader.id, channel),
                    alert_id=alert.id,
                    step=index,
                    recipient=leader.id,
                    channel=channel,
                    address=address,
                    at=at,
                    severity=alert.severity,
                    subject=alert.subject,
                    rule=alert.rule,
                    fallback=fallback,
                )
            )
    return out, leaders, fallback


def delivery_key(source: str, step: int, recipient: str, channel: str) -> str:
    """The idempotency key of a delivery: an outbox keeps one row per key,
    so a decision written twice (a replay, a retried transaction) is sent
    once. The channel is part of it: a leader's email and webhook fail and
    retry on their own."""
    return f"{source}/{step}/{recipient}/{channel}"


def working_days_late(due: float, at: float, cal: WorkingCalendar) -> float:
    """Working days from ``due`` to ``at`` (0 before it)."""
    return max(0.0, cal.between(due, at) / cal.day_seconds)
