"""Sensor signals on the alerts topic: the one definition of the ``signal``
message, its encoder and decoder.

The sensor stage judges flood levels, AQI bands and sensor health where
the readings are (``streams.sensor_stage``) and sends each signal to the
alerts partition of its subject's key (``partition_for(subject)``), so the
one alert stage that owns a subject's alerts gets all of its signals::

    {"type": "signal", "part": 1,
     "signals": [{"kind": "flood_level", "subject": "sensor:wl-long-bien",
                  "at": <epoch s, the reading's time>, "value": 2,
                  "units": {"area": "area:song-hong-long-bien"}}, ...]}

Signals are levels (the alarm level reached, the AQI, 1 while a sensor is
faulty): one sent twice after a restart changes nothing an alert shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from alerts.model import Signal
from ioc import wire

TYPE = "signal"
# Published messages stay well under the broker's size limit.
SIGNALS_PER_MESSAGE = 500


def signal_item(s: Signal) -> dict[str, Any]:
    return {
        "kind": s.kind,
        "subject": s.subject,
        "at": s.at,
        "value": s.value,
        "units": dict(s.units),
    }


def signal_messages(
    part: int, signals: Sequence[Signal], partition_of: Callable[[str], int]
) -> list[tuple[int, bytes]]:
    """(alerts partition, message) for the signals of one sensor partition,
    each on the partition of its subject, in order, at most
    ``SIGNALS_PER_MESSAGE`` a message."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for s in signals:
        groups.setdefault(partition_of(s.subject), []).append(signal_item(s))
    out: list[tuple[int, bytes]] = []
    for target, items in sorted(groups.items()):
        for i in range(0, len(items), SIGNALS_PER_MESSAGE):
            chunk = items[i : i + SIGNALS_PER_MESSAGE]
            out.append((target, orjson.dumps({"type": TYPE, "part": part, "signals": chunk})))
    return out


def signals_of(message: dict[str, Any]) -> list[Signal]:
    """The signals of a ``signal`` message already parsed (``wire.message``);
    ValueError naming the field when one is missing or wrong."""
    return list(_signals(wire.array(message, "signals")))


def _signals(items: Iterable[Any]) -> Iterable[Signal]:
    for i, item in enumerate(items):
        where = f"signals[{i}]."
        if not isinstance(item, dict):
            raise ValueError(f"field '{where.rstrip('.')}' must be an object")
        units = wire.mapping(item, "units", where)
        yield Signal(
            wire.text(item, "kind", where),
            wire.text(item, "subject", where),
            wire.number(item, "at", where),
            value=wire.number_or_none(item, "value", where),
            units=tuple((k, wire.text(units, k, f"{where}units.")) for k in sorted(units)),
        )
