"""The alert engine: a pure state machine, signals and clock in, changes out.

Like the SLA clock it does no I/O and reads no clock of its own: adapters
feed it ``Signal``, ``Tick``, ``Acknowledge`` and ``Resolve`` inputs and
store what each returns, its changes (the alert history) and its
deliveries (the outbox), in one transaction.

Guarantees (``docs/alerts.md`` says them for users):

- **One alert per (rule, subject)** that is not resolved: a signal that
  breaches a rule for a subject with an open or acknowledged alert updates
  it (count, last seen, last value, peak) and opens nothing; a signal
  identical to the last one (same instant, same value) changes nothing.
- **Flapping is bounded by a cool-down.** A subject that fires again less
  than the rule's ``reopen_within`` (default 30 min) after its alert was
  resolved re-opens that alert (same id, count and escalation progress
  kept; a ``Reopened`` change, no new delivery for steps already taken).
  So a new alert, and its first deliveries, for a (rule, subject) comes at
  most once per ``reopen_within`` of quiet.
- **Lifecycle** open -> acknowledged -> resolved, with who, when and a
  comment; auto-resolved when a signal says the cause ended (``ended``, or
  a value back on the right side of the threshold). Acknowledging stops
  the escalation: a dossier alert that reaches its next step while
  acknowledged is ``Worsened``, and nobody new is called.
- **Time is the inputs' own.** Every input first moves the engine to its
  instant, firing the escalation steps and digests due by then, each at its
  own instant; so the same inputs give the same changes, with the same
  instants, whether the clock ticked every minute or once at the end.
  (An input older than the engine's time is applied at its own instant;
  steps it schedules in the past fire at their instants at once. A
  breaching signal older than its alert's resolution, within the
  cool-down, is a re-sent transition and changes nothing.)
- **Deterministic ids**: an alert's id is a hash of its rule, subject and
  opening instant, so a replay gives the same ids.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Literal

from alerts.digest import daily_digests, next_digest
from alerts.escalation import step_deliveries, step_instant
from alerts.model import (
    ACKNOWLEDGED,
    OPEN,
    RESOLVED,
    Acknowledge,
    Acknowledged,
    Alert,
    DigestReady,
    Escalated,
    Input,
    Opened,
    Outcome,
    Reopened,
    Resolve,
    Resolved,
    Signal,
    Tick,
    Updated,
    Worsened,
)
from alerts.routing import Routing
from alerts.rules import Rule, RuleSet
from ioc.calendar import WorkingCalendar

Key = tuple[str, str]  # (rule id, subject)
_STEP, _DIGEST = 0, 1


def alert_id(rule: str, subject: str, opened_at: float) -> str:
    """The id of the alert a rule opens for a subject at an instant."""
    text = f"{rule}\n{subject}\n{opened_at!r}".encode()
    return "al-" + hashlib.blake2b(text, digest_size=8).hexdigest()


class AlertEngine:
    def __init__(
        self, rules: RuleSet, routing: Routing, calendar: WorkingCalendar, start: float
    ) -> None:
        """``start``: the engine's time before its first input (digests
        are due only after it)."""
        self.rules = rules
        self.routing = routing
        self.cal = calendar
        self.now = start
        self.alerts: dict[Key, Alert] = {}  # open or acknowledged
        self._key_of: dict[str, Key] = {}
        self._resolved: dict[Key, Alert] = {}  # recently resolved, for the cool-down
        self._steps: list[tuple[float, int, str, int]] = []  # (instant, kind, alert id, step)
        self._digest_at = (
            next_digest(calendar, rules.digest, start) if rules.digest else float("inf")
        )

    # -- inputs ---------------------------------------------------------------

    def handle(self, item: Input) -> Outcome:
        out = Outcome()
        unclocked = isinstance(item, Signal) and not item.clocked
        if unclocked:
            self._advance_unclocked(item.at, out)
        elif item.at > self.now:
            self._advance(item.at, out)
            self.now = item.at
        if isinstance(item, Signal):
            for rule in self.rules.for_signal(item):
                self._judge(rule, item, out)
        if unclocked:
            self._advance_unclocked(item.at, out)
        elif isinstance(item, Acknowledge):
            self._acknowledge(item, out)
        elif isinstance(item, Resolve):
            self._resolve_by_operator(item, out)
        self._advance(self.now, out)
        self._forget_resolved()
        return out

    def feed(self, items: Iterable[Input]) -> Outcome:
        out = Outcome()
        for item in items:
            one = self.handle(item)
            out.extend(one)
            out.refused = one.refused or out.refused
        return out

    def signal(self, s: Signal) -> Outcome:
        return self.handle(s)

    def tick(self, at: float) -> Outcome:
        return self.handle(Tick(at))

    def acknowledge(self, alert_id: str, by: str, at: float, comment: str = "") -> Outcome:
        return self.handle(Acknowledge(alert_id, by, at, comment))

    def resolve(self, alert_id: str, by: str, at: float, comment: str = "") -> Outcome:
        return self.handle(Resolve(alert_id, by, at, comment))

    # -- reading --------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        key = self._key_of.get(alert_id)
        return None if key is None else self.alerts.get(key)

    def find(self, alert_id: str) -> Alert | None:
        """An open, acknowledged, or recently resolved alert (one still in
        its cool-down); None once a resolved alert is forgotten."""
        alert = self.get(alert_id)
        if alert is None:
            alert = next((a for a in self._resolved.values() if a.id == alert_id), None)
        return alert

    def open_alerts(self) -> list[Alert]:
        """Open and acknowledged alerts, oldest first."""
        return sorted(self.alerts.values(), key=lambda a: (a.opened_at, a.id))

    # -- state -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the engine holds, as JSON-able data: its time, the open
        and recently resolved alerts, the pending steps and the next digest.
        ``restore`` of it gives an engine whose future outputs are the same."""
        return {
            "now": self.now,
            "alerts": [asdict(a) for a in self.alerts.values()],
            "resolved": [asdict(a) for a in self._resolved.values()],
            "steps": [list(s) for s in self._steps if self._pending(s)],
            "digest_at": None if self._digest_at == float("inf") else self._digest_at,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take the state ``state()`` gave (on the same rules)."""
        self.now = float(state["now"])
        self.alerts = {}
        self._resolved = {}
        for item in state["alerts"]:
            a = Alert(**item)
            self.alerts[(a.rule, a.subject)] = a
        for item in state["resolved"]:
            a = Alert(**item)
            self._resolved[(a.rule, a.subject)] = a
        self._key_of = {a.id: key for key, a in self.alerts.items()}
        self._steps = [(float(at), int(k), str(i), int(n)) for at, k, i, n in state["steps"]]
        heapq.heapify(self._steps)
        digest = state.get("digest_at")
        self._digest_at = float("inf") if digest is None else float(digest)

    # -- signals --------------------------------------------------------------

    def _judge(self, rule: Rule, s: Signal, out: Outcome) -> None:
        verdict = rule.breached(s)
        if verdict is None:
            return
        key = (rule.id, s.subject)
        alert = self.alerts.get(key)
        if not verdict:
            if alert is not None:
                self._close(alert, s.at, "auto", None, "", out)
            return
        if alert is not None:
            self._repeat(rule, alert, s, out)
            return
        old = self._resolved.get(key)
        if old is not None and s.at < (old.resolved_at or 0.0):
            return  # older than the resolution: a transition sent again, not a new cause
        if old is not None and 0 <= s.at - (old.resolved_at or 0.0) < rule.reopen_within:
            self._reopen(rule, old, s, out)
            return
        alert = Alert(
            id=alert_id(rule.id, s.subject, s.at),
            rule=rule.id,
            subject=s.subject,
            severity=rule.severity.value,
            opened_at=s.at,
            units=s.unit_map(),
            due=s.due,
            last_seen=s.at,
            value=s.value,
            peak=s.value,
            level=rule.level_of(s.value),
        )
        self._resolved.pop(key, None)
        self.alerts[key] = alert
        self._key_of[alert.id] = key
        out.changes.append(
            Opened(s.at, alert.id, rule.id, s.subject, alert.severity, s.value, alert.units, s.due)
        )
        self._schedule(rule, alert, s.at)

    def _repeat(self, rule: Rule, alert: Alert, s: Signal, out: Outcome) -> None:
        if s.at == alert.last_seen and s.value == alert.value:
            return  # the same signal again (a redelivery)
        alert.count += 1
        alert.last_seen = max(alert.last_seen, s.at)
        alert.value = s.value
        alert.peak = _peak(alert.peak, s.value, rule)
        out.changes.append(
            Updated(s.at, alert.id, alert.count, alert.last_seen, alert.value, alert.peak)
        )
        level = rule.level_of(s.value)
        if level > alert.level:
            alert.level = level
            out.changes.append(Worsened(s.at, alert.id, level, s.value))

    def _reopen(self, rule: Rule, alert: Alert, s: Signal, out: Outcome) -> None:
        key = (rule.id, alert.subject)
        del self._resolved[key]
        alert.state = OPEN
        alert.count += 1
        alert.last_seen = max(alert.last_seen, s.at)
        alert.value = s.value
        alert.peak = _peak(alert.peak, s.value, rule)
        alert.level = max(alert.level, rule.level_of(s.value))
        alert.due = s.due if s.due is not None else alert.due  # a pause moved it
        alert.acknowledged_by = alert.acknowledged_at = alert.resolved_at = None
        self.alerts[key] = alert
        self._key_of[alert.id] = key
        out.changes.append(Reopened(s.at, alert.id, alert.count, s.value))
        self._schedule(rule, alert, s.at)

    # -- operators ------------------------------------------------------------

    def _acknowledge(self, a: Acknowledge, out: Outcome) -> None:
        alert = self.get(a.alert_id)
        if alert is None or alert.state != OPEN:
            out.refused = _why_not(a.alert_id, alert)
            return
        alert.state = ACKNOWLEDGED
        alert.acknowledged_by, alert.acknowledged_at = a.by, a.at
        out.changes.append(Acknowledged(a.at, alert.id, a.by, a.comment))

    def _resolve_by_operator(self, r: Resolve, out: Outcome) -> None:
        alert = self.get(r.alert_id)
        if alert is None:
            out.refused = _why_not(r.alert_id, None)
            return
        self._close(alert, r.at, "operator", r.by, r.comment, out)

    def _close(
        self,
        alert: Alert,
        at: float,
        how: Literal["auto", "operator"],
        by: str | None,
        comment: str,
        out: Outcome,
    ) -> None:
        key = (alert.rule, alert.subject)
        alert.state = RESOLVED
        alert.resolved_at = at
        del self.alerts[key]
        del self._key_of[alert.id]
        self._resolved[key] = alert
        out.changes.append(Resolved(at, alert.id, how, by, comment))

    # -- time -----------------------------------------------------------------

    def _schedule(self, rule: Rule, alert: Alert, not_before: float | None = None) -> None:
        """Queue the alert's next step; one reached before ``not_before``
        (while the alert was resolved, or before it opened) fires then."""
        i = alert.steps_done
        if i < len(rule.escalation):
            at = step_instant(rule, i, alert, self.cal)
            if not_before is not None:
                at = max(at, not_before)
            heapq.heappush(self._steps, (at, _STEP, alert.id, i))

    def _advance(self, until: float, out: Outcome) -> None:
        """Fire the steps and digests due by ``until``, in instant order."""
        while True:
            while self._steps and not self._pending(self._steps[0]):
                heapq.heappop(self._steps)
            step_at = self._steps[0][0] if self._steps else float("inf")
            if min(step_at, self._digest_at) > until:
                return
            if step_at <= self._digest_at:
                _, _, ident, index = heapq.heappop(self._steps)
                self._fire(ident, index, step_at, out)
            else:
                self._digests(self._digest_at, out)

    def _advance_unclocked(self, until: float, out: Outcome) -> None:
        """Fire the steps due by ``until`` of the alerts whose time comes
        with unclocked signals (all but dossiers'), in instant order; the
        engine's own time stays. Few: a partition's unit alerts."""
        while True:
            due = [
                e
                for e in self._steps
                if e[0] <= until and self._pending(e) and not self._is_dossier(e[2])
            ]
            if not due:
                return
            entry = min(due)
            self._steps.remove(entry)
            heapq.heapify(self._steps)
            self._fire(entry[2], entry[3], entry[0], out)

    def _is_dossier(self, ident: str) -> bool:
        alert = self.get(ident)
        return alert is not None and alert.subject.startswith("dossier:")

    def _pending(self, entry: tuple[float, int, str, int]) -> bool:
        alert = self.get(entry[2])
        return alert is not None and alert.steps_done == entry[3]

    def _fire(self, ident: str, index: int, at: float, out: Outcome) -> None:
        alert = self.get(ident)
        assert alert is not None
        rule = self.rules.rules[alert.rule]
        alert.steps_done = index + 1
        if alert.state == OPEN:
            deliveries, leaders, fallback = step_deliveries(rule, index, alert, self.routing, at)
            if rule.kind == "dossier_overdue":
                alert.level = max(alert.level, index + 1)
            out.changes.append(
                Escalated(
                    at,
                    alert.id,
                    index,
                    rule.escalation[index].level,
                    tuple(x.id for x in leaders),
                    fallback,
                )
            )
            out.deliveries.extend(deliveries)
        elif rule.kind == "dossier_overdue":
            # acknowledged: one more step late is said, nobody new is called
            alert.level = max(alert.level, index + 1)
            out.changes.append(Worsened(at, alert.id, alert.level, alert.value))
        else:
            return  # acknowledged: the escalation stops (a re-opening resumes it)
        self._schedule(rule, alert, at)

    def _digests(self, at: float, out: Outcome) -> None:
        config = self.rules.digest
        assert config is not None
        for digest, deliveries in daily_digests(
            self.open_alerts(), self.routing, config, self.cal, at
        ):
            out.changes.append(DigestReady(at, str(digest["leader"]), digest))
            out.deliveries.extend(deliveries)
        self._digest_at = next_digest(self.cal, config, at)

    def _forget_resolved(self) -> None:
        """Drop resolved alerts whose cool-down has passed."""
        stale = [
            key
            for key, alert in self._resolved.items()
            if self.now - (alert.resolved_at or 0.0) >= self.rules.rules[key[0]].reopen_within
        ]
        for key in stale:
            del self._resolved[key]


def _peak(peak: float | None, value: float | None, rule: Rule) -> float | None:
    """The worst value so far: the lowest for a rule that fires below."""
    if value is None:
        return peak
    if peak is None:
        return value
    return min(peak, value) if rule.below is not None else max(peak, value)


def _why_not(ident: str, alert: Alert | None) -> str:
    if alert is None:
        return f"no open alert {ident}"
    return f"alert {ident} is already acknowledged by {alert.acknowledged_by}"
