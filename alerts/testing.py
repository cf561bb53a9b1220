"""Test doubles for the alert engine, for this project's tests and a
deployment's own rules: ``ListOutbox``, an outbox that keeps what the
engine decided in lists, as the real one keeps table rows."""

from __future__ import annotations

from alerts.model import Change, Delivery, Outcome


class ListOutbox:
    """Keeps the history and the deliveries of every ``Outcome`` written.

    Like the outbox table, it keeps one delivery per idempotency key: a
    decision written again (a replay, a retried transaction) is counted in
    ``duplicates`` and not kept twice.
    """

    def __init__(self) -> None:
        self.history: list[Change] = []
        self.deliveries: list[Delivery] = []
        self.duplicates = 0
        self._keys: set[str] = set()

    def write(self, outcome: Outcome) -> None:
        self.history.extend(outcome.changes)
        for d in outcome.deliveries:
            if d.key in self._keys:
                self.duplicates += 1
                continue
            self._keys.add(d.key)
            self.deliveries.append(d)

    def to(self, recipient: str) -> list[Delivery]:
        """The deliveries decided for one leader, in order."""
        return [d for d in self.deliveries if d.recipient == recipient]

    def of(self, alert_id: str) -> list[Change]:
        """The history of one alert, in order."""
        return [c for c in self.history if getattr(c, "alert_id", None) == alert_id]
