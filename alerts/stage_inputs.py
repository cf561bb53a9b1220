"""The alert stage's inputs from a batch of alerts-topic messages: signals
of the SLA transitions (``alerts.messages``), of the units' KPI shares
(``alerts.unit_messages``, added up by the partition's ``UnitKpis``) and
the sensor stage's signals (``alerts.signal_messages``).
The stage's own alert messages and anything unreadable are skipped."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from alerts.alert_messages import TYPE as ALERT_TYPE
from alerts.messages import sla_of
from alerts.model import Input
from alerts.signal_messages import TYPE as SIGNAL_TYPE
from alerts.signal_messages import signals_of
from alerts.signals import sla_signals
from alerts.unit_kpis import UnitKpis
from alerts.unit_messages import TYPE as UNIT_TYPE
from alerts.unit_messages import unit_counters_of
from ioc import wire

log = logging.getLogger(__name__)


def decode_inputs(
    values: Iterable[bytes | None], units: UnitKpis, event_time: bool = False
) -> list[Input]:
    """The engine's inputs in a batch, in order; ``units`` takes the KPI
    shares. On ``event_time`` only the transitions move the engine's time:
    a unit's signals are stamped with a worker's clock (``Signal.clocked``)."""
    out: list[Input] = []
    for value in values:
        try:
            message = wire.message(value or b"", "sla", UNIT_TYPE, ALERT_TYPE, SIGNAL_TYPE)
            if message["type"] == "sla":
                out.extend(s for t in sla_of(message) for s in sla_signals(t.item()))
            elif message["type"] == UNIT_TYPE:
                signals = units.apply(unit_counters_of(message))
                if event_time:
                    signals = [dataclasses.replace(s, clocked=False) for s in signals]
                out.extend(signals)
            elif message["type"] == SIGNAL_TYPE:
                # stamped with the readings' times: on event time, judged
                # without moving the dossiers' time, as a unit's signals are
                sensed = signals_of(message)
                if event_time:
                    sensed = [dataclasses.replace(s, clocked=False) for s in sensed]
                out.extend(sensed)
        except ValueError as exc:
            log.warning("skipping an unreadable message on the alerts topic: %s", exc)
    return out
