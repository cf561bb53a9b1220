"""What goes into the alert engine and what comes out of it.

In: ``Signal`` (something a rule judges: a dossier overdue, a unit's
backlog, an AQI value, with its instant), ``Tick`` (the injected clock's
time), ``Acknowledge`` and ``Resolve`` (an operator's action). Out: an
``Outcome`` per input, its ``changes`` (the alert history, in order) and
its ``deliveries`` (the messages decided, for an outbox written in the same
transaction as the changes). Instants are epoch seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

AlertState = Literal["open", "acknowledged", "resolved"]
OPEN: Final = "open"
ACKNOWLEDGED: Final = "acknowledged"
RESOLVED: Final = "resolved"


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation for the rules of ``kind``.

    ``subject`` is a key such as ``dossier:<id>``, ``commune:00166``,
    ``agency:<id>``, ``sensor:<id>`` or ``area:<id>``. ``value`` is what
    the rule compares with its threshold (a backlog count, an on-time rate,
    an AQI, a flood alarm level 0-3, 1 for a faulty sensor); dossier rules
    need none. ``ended`` says the cause is over (the dossier finished, was
    withdrawn or paused) whatever the value. ``units`` names the subject's
    units by kind, for routing (``{"agency": "agency:ubnd-00166",
    "commune": "commune:00166"}``); ``due`` is a dossier's due instant;
    ``window`` and ``sample`` qualify a KPI value (its window, and how
    many dossiers it is computed over).
    """

    kind: str
    subject: str
    at: float
    value: float | None = None
    ended: bool = False
    units: tuple[tuple[str, str], ...] = ()
    due: float | None = None
    window: str | None = None
    sample: int | None = None
    # False: judged at its instant without moving the engine's time; it
    # fires only the steps of alerts other than dossiers' due by then. On
    # event time a unit's KPI level carries its worker's clock, which may run
    # ahead of the partition's own transitions: it must not fire their steps.
    clocked: bool = True

    @property
    def subject_kind(self) -> str:
        return self.subject.partition(":")[0]

    def unit_map(self) -> dict[str, str]:
        """The subject's units by kind, the subject itself included."""
        units = dict(self.units)
        units.setdefault(self.subject_kind, self.subject)
        return units


@dataclass(frozen=True, slots=True)
class Tick:
    at: float


@dataclass(frozen=True, slots=True)
class Acknowledge:
    alert_id: str
    by: str
    at: float
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Resolve:
    alert_id: str
    by: str
    at: float
    comment: str = ""


Input = Signal | Tick | Acknowledge | Resolve


@dataclass(slots=True)
class Alert:
    """The one alert of a (rule, subject) while it is not resolved."""

    id: str
    rule: str
    subject: str
    severity: str
    opened_at: float
    units: dict[str, str]
    due: float | None
    state: AlertState = OPEN
    count: int = 1
    last_seen: float = 0.0
    value: float | None = None
    peak: float | None = None
    # The worst level reached: escalation steps reached for a dossier, the
    # AQI band or flood alarm level for sensors.
    level: int = 0
    # Escalation steps already taken (fired as escalated or worsened).
    steps_done: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None


# -- changes: the alert history ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message to one leader on one channel, decided with the change that
    causes it. ``key`` is its idempotency key: (alert or digest, step,
    recipient, channel)."""

    key: str
    alert_id: str
    step: int
    recipient: str
    channel: str
    address: str
    at: float
    severity: str
    subject: str
    rule: str
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Opened:
    at: float
    alert_id: str
    rule: str
    subject: str
    severity: str
    value: float | None
    units: dict[str, str]
    due: float | None


@dataclass(frozen=True, slots=True)
class Reopened:
    """A resolved alert firing again within its rule's ``reopen_within``."""

    at: float
    alert_id: str
    count: int
    value: float | None


@dataclass(frozen=True, slots=True)
class Updated:
    at: float
    alert_id: str
    count: int
    last_seen: float
    value: float | None
    peak: float | None


@dataclass(frozen=True, slots=True)
class Worsened:
    """The cause got worse (one more escalation step late, a higher band)
    while the alert was acknowledged, or a sensor's band rose: said, not
    re-opened, and nobody new is called."""

    at: float
    alert_id: str
    level: int
    value: float | None


@dataclass(frozen=True, slots=True)
class Escalated:
    at: float
    alert_id: str
    step: int
    level: int
    recipients: tuple[str, ...]
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Acknowledged:
    at: float
    alert_id: str
    by: str
    comment: str


@dataclass(frozen=True, slots=True)
class Resolved:
    at: float
    alert_id: str
    how: Literal["auto", "operator"]
    by: str | None
    comment: str


@dataclass(frozen=True, slots=True)
class DigestReady:
    at: float
    leader: str
    digest: dict[str, Any]


Change = Opened | Reopened | Updated | Worsened | Escalated | Acknowledged | Resolved | DigestReady


@dataclass(slots=True)
class Outcome:
    """What one input changed. ``refused`` says why an operator action was
    not applied (no such open alert, already acknowledged)."""

    changes: list[Change] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    refused: str | None = None

    def extend(self, other: Outcome) -> None:
        self.changes.extend(other.changes)
        self.deliveries.extend(other.deliveries)


def record(change: Change | Delivery) -> dict[str, Any]:
    """A change or a delivery as a plain dict, with its type, for storage."""
    return {"type": type(change).__name__.lower(), **asdict(change)}
