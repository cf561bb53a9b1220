"""Builders for the engine tests."""

from __future__ import annotations

from collections.abc import Iterable

from alerts.engine import AlertEngine
from alerts.model import Change, Input, Signal
from alerts.routing import Routing
from alerts.rules import RuleSet
from alerts.testing import ListOutbox
from ioc.calendar import WorkingCalendar
from ioc.clock import parse_instant, to_iso

COMMUNE_UNITS = (("agency", "agency:ubnd-00166"), ("commune", "commune:00166"))
DEPARTMENT_UNITS = (("agency", "agency:so-tu-phap-01"),)


def at(text: str) -> float:
    """An instant from local time ``YYYY-MM-DDTHH:MM`` in Hà Nội."""
    return parse_instant(f"{text}:00+07:00")


def overdue(dossier: str, due: str, units: tuple[tuple[str, str], ...] = COMMUNE_UNITS) -> Signal:
    """The overdue transition of a dossier, at its due time."""
    return Signal("dossier_overdue", f"dossier:{dossier}", at(due), units=units, due=at(due))


def finished(dossier: str, when: str) -> Signal:
    return Signal("dossier_overdue", f"dossier:{dossier}", at(when), ended=True)


class Run:
    """An engine fed through a list outbox."""

    def __init__(
        self,
        rules: RuleSet,
        routing: Routing,
        cal: WorkingCalendar,
        start: str = "2026-03-02T00:00",
    ) -> None:
        self.engine = AlertEngine(rules, routing, cal, at(start))
        self.outbox = ListOutbox()

    def feed(self, *items: Input) -> list[Change]:
        before = len(self.outbox.history)
        for item in items:
            self.outbox.write(self.engine.handle(item))
        return self.outbox.history[before:]

    def ticks(self, start: str, end: str, every: float = 60.0) -> list[Change]:
        from alerts.model import Tick

        t, stop = at(start), at(end)
        out: list[Change] = []
        while t <= stop:
            out += self.feed(Tick(t))
            t += every
        return out


def kinds(changes: Iterable[Change]) -> list[tuple[str, str]]:
    """(type, local time) of each change, for readable assertions."""
    return [(type(c).__name__, to_iso(c.at)[:16]) for c in changes]
