"""SLA transitions: the one definition of their record, of the messages
that carry them on the alerts topic, and of their row in ``sla_transitions``.

The procedure stream detects, per dossier, the transitions ``at_risk``,
``overdue`` and ``cleared`` (the dossier left both states: finished,
paused, or its due time moved). The worker stores each in the commit that
decides it (its outbox), publishes it, and the API's feed forwards it to
wall screens and consoles, or reads the latest back from the table. The
alert lifecycle (open, acknowledged, escalated, resolved) and delivery to
leaders build on these messages.

On ``ioc.alerts``, at most ``ITEMS_PER_MESSAGE`` items a message::

    {"type": "sla", "items": [{"kind": "sla", "transition": "overdue",
      "dossier_id": ..., "at": <epoch s>, "due": <epoch s or null>,
      "consumed_hours": 9.0, "allotted_hours": 8.0, "commune": <code or null>,
      "agency": ..., "centre": ..., "procedure": ..., "field": ...}]}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson

from ioc import wire

TRANSITIONS = ("at_risk", "overdue", "cleared")
# One message per 1000 transitions: a replay can raise tens of thousands at
# once, and one Kafka message each would cost more than detecting them.
ITEMS_PER_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class SlaTransition:
    """One transition of one dossier. The fields are in the order of the
    table's columns (``SLA_COLUMNS``)."""

    at: float  # epoch seconds
    dossier_id: str
    transition: str  # one of TRANSITIONS
    due: float | None  # epoch seconds; None while the dossier is paused
    consumed_hours: float  # working hours, at ``at``
    allotted_hours: float
    commune: str | None
    agency: str
    centre: str
    procedure: str
    field: str

    def key(self) -> tuple[str, str, int]:
        """What tells one transition from another: a transition sent again
        after a worker's restart has the same key. The instant counts in whole
        microseconds, as PostgreSQL stores it: one resent from the outbox
        matches the one first sent live."""
        return (self.dossier_id, self.transition, round(self.at * 1_000_000))

    def item(self) -> dict[str, Any]:
        """The transition as it travels (and as screens get it)."""
        return {
            "kind": "sla",
            "transition": self.transition,
            "dossier_id": self.dossier_id,
            "at": self.at,
            "due": self.due,
            "consumed_hours": self.consumed_hours,
            "allotted_hours": self.allotted_hours,
            "commune": self.commune,
            "agency": self.agency,
            "centre": self.centre,
            "procedure": self.procedure,
            "field": self.field,
        }

    @classmethod
    def from_item(cls, item: Any, where: str = "") -> SlaTransition:
        """The transition an ``item()`` describes; ValueError naming the
        field (prefixed by ``where``) that is missing or wrong."""
        if not isinstance(item, dict):
            raise ValueError(f"field '{where.rstrip('.')}' must be an object")
        if wire.text(item, "kind", where) != "sla":
            raise ValueError(f"field '{where}kind' must be 'sla'")
        transition = wire.text(item, "transition", where)
        if transition not in TRANSITIONS:
            raise ValueError(f"field '{where}transition' must be one of {', '.join(TRANSITIONS)}")
        return cls(
            at=wire.number(item, "at", where),
            dossier_id=wire.text(item, "dossier_id", where),
            transition=transition,
            due=wire.number_or_none(item, "due", where),
            consumed_hours=wire.number(item, "consumed_hours", where),
            allotted_hours=wire.number(item, "allotted_hours", where),
            commune=wire.text_or_none(item, "commune", where),
            agency=wire.text(item, "agency", where),
            centre=wire.text(item, "centre", where),
            procedure=wire.text(item, "procedure", where),
            field=wire.text(item, "field", where),
        )

    def row(self) -> tuple[Any, ...]:
        """The values of ``SLA_COLUMNS``, instants as epoch seconds."""
        return tuple(getattr(self, name) for name in SLA_COLUMNS)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SlaTransition:
        """A stored transition: a row of ``SLA_SELECT``."""
        at, dossier_id, transition, due, consumed, allotted, *attributes = row
        return cls(
            float(at),
            dossier_id,
            transition,
            None if due is None else float(due),
            float(consumed),
            float(allotted),
            *attributes,
        )


# -- the alerts topic ----------------------------------------------------------------------


def encode_sla(transitions: Sequence[SlaTransition]) -> bytes:
    """One message; ``sla_messages`` keeps each under ITEMS_PER_MESSAGE."""
    return orjson.dumps({"type": "sla", "items": [t.item() for t in transitions]})


def decode_sla(raw: bytes) -> list[SlaTransition]:
    """The transitions of one message, in order; ValueError naming the
    field when any is missing or wrong."""
    return sla_of(wire.message(raw, "sla"))


def sla_of(message: dict[str, Any]) -> list[SlaTransition]:
    """The transitions of an ``sla`` message already parsed (``wire.message``),
    for readers of the alerts topic, which carries alert messages too."""
    items = wire.array(message, "items")
    return [SlaTransition.from_item(item, f"items[{i}].") for i, item in enumerate(items)]


def sla_messages(transitions: Sequence[SlaTransition]) -> Iterator[bytes]:
    """The messages that carry ``transitions``, in order."""
    for i in range(0, len(transitions), ITEMS_PER_MESSAGE):
        yield encode_sla(transitions[i : i + ITEMS_PER_MESSAGE])


# -- the table -------------------------------------------------------------------------------

# The columns of ``sla_transitions`` that hold a transition, in the order of
# ``SlaTransition``'s fields: the worker's COPY and every read use them.
SLA_COLUMNS = tuple(f.name for f in fields(SlaTransition))
SLA_INSTANTS = frozenset({"at", "due"})  # timestamptz columns; epoch seconds in the record
SLA_SELECT = ", ".join(f"extract(epoch FROM {c})" if c in SLA_INSTANTS else c for c in SLA_COLUMNS)
