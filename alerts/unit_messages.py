"""Units' KPI counters on the alerts topic: the one definition of the
``unit`` message, its encoder and decoder.

A unit's KPIs are spread over every procedure partition (dossiers are
partitioned by id), so no worker knows a unit's backlog. Each worker sends
its partition's counters of the units (province, communes, agencies,
centres) it changed to the alerts partition of the unit's key
(``partition_for(scope)``): every partition's share of a unit then reaches
the one alert stage that owns the unit's alerts, which adds them up
(``alerts.unit_kpis``). A worker that takes a partition sends all of its
units once, so a stage starting from nothing learns every share::

    {"type": "unit", "part": 2, "at": <epoch s, the partition's clock>,
     "scopes": {"commune:00166": {"flows": {...}, "levels": [...]}, ...}}

The counters are those of ``ioc.kpi-updates`` (``ioc.updates``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from alerts.signals import UNIT_SCOPES
from ioc import wire
from ioc.updates import Counters, check_counters

TYPE = "unit"
# Published messages stay well under the broker's size limit.
SCOPES_PER_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class UnitCounters:
    """One procedure partition's counters of some units, at its clock."""

    part: int
    at: float
    scopes: dict[str, Counters]


def is_unit(scope: str) -> bool:
    return scope.partition(":")[0] in UNIT_SCOPES


def encode_unit_counters(part: int, at: float, scopes: Mapping[str, str]) -> bytes:
    """A message from each unit's counters **already encoded as JSON** (as
    the worker holds them for ``ioc.kpi-updates``)."""
    body = ",".join(f"{orjson.dumps(k).decode()}:{v}" for k, v in scopes.items())
    return (
        f'{{"type":"{TYPE}","part":{int(part)},"at":{orjson.dumps(at).decode()},'
        f'"scopes":{{{body}}}}}'
    ).encode()


def unit_counters_of(message: dict[str, Any]) -> UnitCounters:
    """The content of a ``unit`` message already parsed (``wire.message``);
    ValueError naming the field when one is missing or wrong."""
    scopes = wire.mapping(message, "scopes")
    for key, value in scopes.items():
        check_counters(value, f"scopes.{key}")
    return UnitCounters(wire.integer(message, "part"), wire.number(message, "at"), scopes)


def unit_messages(
    part: int, at: float, scopes: Mapping[str, str], partition_of: Callable[[str], int]
) -> list[tuple[int, bytes]]:
    """(alerts partition, message) for one procedure partition's counters:
    those of units only, each on the partition of its unit's key, at most
    ``SCOPES_PER_MESSAGE`` units a message."""
    groups: dict[int, list[str]] = {}
    for scope in sorted(scopes):
        if is_unit(scope):
            groups.setdefault(partition_of(scope), []).append(scope)
    out: list[tuple[int, bytes]] = []
    for target, keys in sorted(groups.items()):
        for i in range(0, len(keys), SCOPES_PER_MESSAGE):
            chunk = {k: scopes[k] for k in keys[i : i + SCOPES_PER_MESSAGE]}
            out.append((target, encode_unit_counters(part, at, chunk)))
    return out
