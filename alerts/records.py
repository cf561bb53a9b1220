"""What the alert stage stores of an engine ``Outcome``: the alert rows, the
history rows and the outbox rows, as plain dicts (instants in epoch
seconds). Pure, so the SQL around them (``alerts.store``) stays thin and
this is tested without a database.

An alert's row is folded from the batch's changes, then overlaid with the
engine's own copy when it still holds the alert: an alert opened and
resolved in one batch, and forgotten after its cool-down, still gets its
full row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from alerts.model import (
    RESOLVED,
    Acknowledged,
    Alert,
    Change,
    Delivery,
    Escalated,
    Opened,
    Reopened,
    Resolved,
    Updated,
    Worsened,
    record,
)
from alerts.rules import RuleSet
from ioc.clock import to_iso

# The columns a full alert row has; a partial row (an alert resolved and
# forgotten in the batch, opened in an earlier one) has fewer.
ALERT_COLUMNS = (
    "id",
    "rule",
    "subject",
    "part",
    "state",
    "severity",
    "opened_at",
    "last_seen",
    "count",
    "peak",
    "step",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_by",
    "resolved_at",
    "resolved_how",
    "comment",
    "units",
)
TIME_COLUMNS = ("opened_at", "last_seen", "acknowledged_at", "resolved_at")


def alert_row(alert: Alert, part: int) -> dict[str, Any]:
    """The columns the engine's ``Alert`` determines."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "subject": alert.subject,
        "part": part,
        "state": alert.state,
        "severity": alert.severity,
        "opened_at": alert.opened_at,
        "last_seen": alert.last_seen,
        "count": alert.count,
        "peak": alert.peak,
        "step": alert.steps_done,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": alert.acknowledged_at,
        "resolved_at": alert.resolved_at,
        "units": alert.units,
    }


def _fold(row: dict[str, Any], c: Change) -> None:
    """One change applied to the columns it sets."""
    if isinstance(c, Opened):
        row.update(
            rule=c.rule,
            subject=c.subject,
            state="open",
            severity=c.severity,
            opened_at=c.at,
            last_seen=c.at,
            count=1,
            peak=c.value,
            step=0,
            units=c.units,
        )
    elif isinstance(c, Updated):
        row.update(count=c.count, last_seen=c.last_seen, peak=c.peak)
    elif isinstance(c, Reopened):
        row.update(state="open", count=c.count, acknowledged_by=None, acknowledged_at=None)
        row.update(resolved_by=None, resolved_at=None, resolved_how=None)
    elif isinstance(c, Escalated):
        row["step"] = max(row.get("step") or 0, c.step + 1)
    elif isinstance(c, Acknowledged):
        row.update(state="acknowledged", acknowledged_by=c.by, acknowledged_at=c.at)
        row["comment"] = c.comment or row.get("comment")
    elif isinstance(c, Resolved):
        row.update(state=RESOLVED, resolved_at=c.at, resolved_by=c.by, resolved_how=c.how)
        row["comment"] = c.comment or row.get("comment")


def alert_rows(
    changes: Iterable[Change], find: Callable[[str], Alert | None], part: int
) -> list[dict[str, Any]]:
    """The rows of the alerts ``changes`` touch, resolved ones first (so a
    (rule, subject) resolved and opened again in one batch never holds two
    unresolved rows, even for a moment)."""
    rows: dict[str, dict[str, Any]] = {}
    for c in changes:
        ident = getattr(c, "alert_id", None)
        if ident is None or isinstance(c, Worsened):
            continue
        _fold(rows.setdefault(ident, {"id": ident, "part": part}), c)
    for ident, row in rows.items():
        alert = find(ident)
        if alert is not None:
            row.update(alert_row(alert, part))
    return sorted(rows.values(), key=lambda r: (r.get("state") != RESOLVED, r["id"]))


def is_full(row: dict[str, Any]) -> bool:
    return "rule" in row


def history_rows(
    changes: Iterable[Change], seqs: dict[str, int]
) -> list[tuple[str, int, float, str, dict[str, Any]]]:
    """(alert id, seq, at, change, detail) per change of an alert; ``seqs``
    (the last seq per alert, kept in the partition's state) is advanced, so
    a batch done again from the same state numbers its changes the same."""
    out = []
    for c in changes:
        ident = getattr(c, "alert_id", None)
        if ident is None:
            continue  # a digest: not an alert's change
        seqs[ident] = seqs.get(ident, 0) + 1
        detail = record(c)
        kind = detail.pop("type")
        detail.pop("alert_id", None)
        out.append((ident, seqs[ident], c.at, kind, detail))
    return out


def delivery_rows(
    deliveries: Iterable[Delivery], rows: dict[str, dict[str, Any]], rules: RuleSet
) -> list[tuple[str, str, int, str, str, str, dict[str, Any], float]]:
    """(key, alert id, step, recipient, channel, address, payload, decided at)."""
    out = []
    for d in deliveries:
        alert = rows.get(d.alert_id, {})
        rule = rules.rules.get(d.rule)
        payload = delivery_payload(d, alert, rule.title if rule else "")
        out.append((d.key, d.alert_id, d.step, d.recipient, d.channel, d.address, payload, d.at))
    return out


def delivery_payload(d: Delivery, alert: dict[str, Any], title: str) -> dict[str, Any]:
    """The JSON a receiver gets (webhook body, email's data)."""
    state = alert.get("state", "open")
    kind, _, ident = d.subject.partition(":")
    what_vi = {"dossier": "Hồ sơ", "commune": "Xã/phường", "agency": "Cơ quan"}.get(kind, kind)
    what_en = {"dossier": "Dossier", "commune": "Commune", "agency": "Agency"}.get(kind, kind)
    when = to_iso(d.at)[:16].replace("T", " ")
    return {
        "alert_id": d.alert_id,
        "rule": d.rule,
        "title": title,
        "subject": d.subject,
        "severity": d.severity,
        "step": d.step,
        "recipient": d.recipient,
        "channel": d.channel,
        "state": state,
        "fallback": d.fallback,
        "at": to_iso(d.at),
        "opened_at": _iso(alert.get("opened_at")),
        "units": alert.get("units", {}),
        "summary": {
            "vi": f"{title or d.rule}: {what_vi} {ident} — cảnh báo bước {d.step + 1} "
            f"(mức {d.severity}), lúc {when}.",
            "en": f"{d.rule}: {what_en} {ident} — escalation step {d.step + 1} "
            f"(severity {d.severity}), at {when}.",
        },
    }


def public_alert(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row as the API and the alert message show it (ISO instants)."""
    return {k: _iso(v) if k in TIME_COLUMNS else v for k, v in row.items()}


def _iso(t: Any) -> str | None:
    return None if t is None else to_iso(float(t))
