"""SLA transitions as they travel on the alerts topic.

The procedure stream detects, per dossier, the transitions ``at_risk``,
``overdue`` and ``cleared`` (the dossier left both states: finished,
paused, or its due time moved). This module is the one definition of their
wire form, used by the worker that publishes them and by the feed that
forwards them to wall screens and consoles. The alert lifecycle (open,
acknowledged, escalated, resolved) and delivery to leaders build on these
messages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

TRANSITIONS = ("at_risk", "overdue", "cleared")
# One message per 1000 transitions: a replay can raise tens of thousands at
# once, and one Kafka message each would cost more than detecting them.
ITEMS_PER_MESSAGE = 1000


def sla_messages(transitions: Sequence[dict[str, Any]]) -> Iterator[bytes]:
    """The messages that carry ``transitions``, in order."""
    for i in range(0, len(transitions), ITEMS_PER_MESSAGE):
        yield orjson.dumps({"type": "sla", "items": transitions[i : i + ITEMS_PER_MESSAGE]})


# The columns of ``sla_transitions`` a transition is read back from, in the
# order ``sla_item`` takes them (instants as epoch seconds).
SLA_SELECT = (
    "extract(epoch FROM at), dossier_id, transition, extract(epoch FROM due), consumed_hours, "
    "allotted_hours, commune, agency, centre, procedure, field"
)
_SLA_KEYS = (
    "at",
    "dossier_id",
    "transition",
    "due",
    "consumed_hours",
    "allotted_hours",
    "commune",
    "agency",
    "centre",
    "procedure",
    "field",
)


def sla_item(row: Sequence[Any]) -> dict[str, Any]:
    """A stored transition (a row of ``SLA_SELECT``) as it travels."""
    item: dict[str, Any] = {"kind": "sla", **dict(zip(_SLA_KEYS, row, strict=True))}
    item["at"] = float(item["at"])
    item["due"] = None if item["due"] is None else float(item["due"])
    return item


def sla_key(item: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one transition from another: a transition sent again after
    a worker's restart has the same key."""
    return (item.get("dossier_id"), item.get("transition"), item.get("at"))


def sla_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The transitions of one decoded ``{"type": "sla"}`` message; items
    with an unknown transition or no dossier are left out."""
    items = message.get("items")
    if not isinstance(items, list):
        return []
    return [
        item
        for item in items
        if isinstance(item, dict)
        and item.get("transition") in TRANSITIONS
        and isinstance(item.get("dossier_id"), str)
    ]
