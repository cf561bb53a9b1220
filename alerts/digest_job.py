"""The daily digest's one owner in the alert stage: the stage that owns
alerts partition 0. Each partition's engine runs without a digest (each
would send its own); the owner makes one from every partition's open
alerts in the database, at the digest's local time on working days, on
the stage's clock.

When the digest falls due is stored with partition 0's state, and its
deliveries are written in the same fenced transaction with keys per
(date, leader, channel) (``digest:<date>/0/<leader>/<channel>``), so a
restart or a rebalance neither loses a digest nor sends it twice. A digest
tells the alerts open when it is made: days on which no stage ran are not
made up later, the next run sends one digest, of that day.

Pure: the stage reads the alerts and writes the rows (``alerts.store``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from alerts.digest import daily_digests, next_digest
from alerts.model import Alert
from alerts.routing import Routing
from alerts.rules import DigestConfig
from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ, to_iso

TITLE = "Tổng hợp cảnh báo hằng ngày"
# (key, alert id, step, recipient, channel, address, payload, decided at), as ``store.Batch``
DeliveryRow = tuple[str, str, int, str, str, str, dict[str, Any], float]


def last_digest(cal: WorkingCalendar, config: DigestConfig, now: float) -> float | None:
    """The latest digest instant at or before ``now``."""
    day = datetime.fromtimestamp(now, VN_TZ).date()
    for _ in range(400):  # a year has far fewer days off in a row
        midnight = datetime(day.year, day.month, day.day, tzinfo=VN_TZ)
        t = (midnight + timedelta(seconds=config.at)).timestamp()
        if t <= now and cal.is_working_day(day):
            return t
        day -= timedelta(days=1)
    return None


def digest_due(
    cal: WorkingCalendar, config: DigestConfig, next_at: float | None, now: float
) -> tuple[float | None, float]:
    """(the instant of the digest to make now, or None; when the next one
    falls due). ``next_at`` None: none was planned yet, the first is the
    next after ``now``."""
    if next_at is None:
        return None, next_digest(cal, config, now)
    if now < next_at:
        return None, next_at
    return last_digest(cal, config, now), next_digest(cal, config, now)


def digest_rows(
    alerts: Iterable[Alert],
    routing: Routing,
    config: DigestConfig,
    cal: WorkingCalendar,
    at: float,
) -> list[DeliveryRow]:
    """The outbox rows of every leader's digest at ``at``."""
    out: list[DeliveryRow] = []
    for digest, deliveries in daily_digests(alerts, routing, config, cal, at):
        for d in deliveries:
            payload = digest_payload(digest, d.alert_id, d.recipient, d.channel, d.subject, at)
            out.append((d.key, d.alert_id, d.step, d.recipient, d.channel, d.address, payload, at))
    return out


def digest_payload(
    digest: dict[str, Any], source: str, recipient: str, channel: str, unit: str, at: float
) -> dict[str, Any]:
    """What a receiver gets: the digest, and a summary in Vietnamese and English."""
    others = sum(digest["other_alerts"].values())
    return {
        "alert_id": source,
        "rule": "digest",
        "title": TITLE,
        "subject": unit,
        "severity": "info",
        "step": 0,
        "recipient": recipient,
        "channel": channel,
        "at": to_iso(at),
        "digest": digest,
        "text_vi": f"{TITLE} ngày {digest['date']} ({unit}): {digest['overdue']} hồ sơ quá hạn "
        f"({digest['acknowledged']} đã tiếp nhận xử lý), {others} cảnh báo khác đang mở.",
        "text_en": f"Daily alert digest of {digest['date']} ({unit}): {digest['overdue']} overdue "
        f"dossiers ({digest['acknowledged']} acknowledged), {others} other open alerts.",
    }
