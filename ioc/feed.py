"""The live-feed contract between the workers and the screens: channels,
and counters that add up.

Workers publish raw counters per partition and the newest sensor readings
on ``ioc.kpi-updates`` (``ioc.updates`` defines those messages), and SLA
transitions on ``ioc.alerts`` (``alerts.messages``).

Counters, not rates, travel: each reader sums the latest counters of every
partition and derives the KPIs with ``ioc.kpis.derive``, so partial results
of several workers add up exactly.

A screen subscribes to channels: ``kpi/province``, ``kpi/commune/00166``,
``kpi/agency/<id>``, ... (a trailing ``*`` subscribes to every channel with
that prefix), ``alerts`` and ``sensors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ioc.kpis import FLOWS, LEVELS, WINDOWS, derive, window_hours
from ioc.updates import Counters


def channel_of(scope: str) -> str:
    """``commune:00166`` -> ``kpi/commune/00166``; ``province`` -> ``kpi/province``."""
    return "kpi/" + scope.replace(":", "/", 1)


def scope_of(channel: str) -> str | None:
    """The scope key of a KPI channel, or None for other channels."""
    if not channel.startswith("kpi/"):
        return None
    rest = channel[4:]
    kind, _, key = rest.partition("/")
    return kind if not key else f"{kind}:{key}"


def matches(pattern: str, channel: str) -> bool:
    if pattern.endswith("*"):
        return channel.startswith(pattern[:-1])
    return pattern == channel


def sum_counters(parts: Iterable[Counters]) -> dict[str, Any]:
    """Counters of several partitions added up."""
    flows = {w: [0] * len(FLOWS) for w in WINDOWS}
    levels = [0] * len(LEVELS)
    for part in parts:
        for w in WINDOWS:
            vec = part["flows"][w]
            acc = flows[w]
            for i, v in enumerate(vec):
                acc[i] += v
        for i, v in enumerate(part["levels"]):
            levels[i] += v
    return {"flows": flows, "levels": levels}


def kpi_view(scope: str, label: str, counters: Counters, at: float) -> dict[str, Any]:
    """What a screen gets for one scope: KPIs per window at ``at``."""
    return {
        "scope": scope,
        "label": label,
        "at": at,
        "windows": {
            w: derive(counters["flows"][w], counters["levels"], window_hours(w, at))
            for w in WINDOWS
        },
    }
