"""Alert changes as they travel on the alerts topic, beside the SLA
transitions (``alerts.messages``): the one definition of their wire form,
used by the alert stage that publishes them and the API feed that forwards
them to consoles (hub channel ``alerts/state``).

``{"type": "alert", "part": 2, "alerts": [{"alert": {...row...},
"changes": ["opened", "escalated"]}, ...]}``: per alert a batch touched,
its row after the batch (instants in ISO 8601, ``alerts.records.public_alert``)
and the kinds of its changes, in order. Published after the batch is
committed, so at most once: a reader that needs every change reads
``GET /api/v1/alerts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

TYPE = "alert"


def alert_message(part: int, alerts: Sequence[dict[str, Any]]) -> bytes:
    """The message of one batch: ``alerts`` are ``{"alert", "changes"}`` items."""
    return orjson.dumps({"type": TYPE, "part": part, "alerts": list(alerts)})


def alert_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of a decoded ``{"type": "alert"}`` message; malformed ones
    (no alert id) are left out."""
    items = message.get("alerts")
    if message.get("type") != TYPE or not isinstance(items, list):
        return []
    return [
        item
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("alert"), dict)
        and isinstance(item["alert"].get("id"), str)
        and isinstance(item.get("changes"), list)
    ]
