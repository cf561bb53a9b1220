"""Signals for the engine from what the pipeline already publishes.

- ``sla_signals``: an SLA transition of a dossier (the wire form of
  ``alerts.messages``: ``at_risk``, ``overdue``, ``cleared``) as signals for
  the ``dossier_at_risk`` and ``dossier_overdue`` rules. Overdue ends
  at-risk; cleared (finished, withdrawn, paused, due moved) ends both.
- ``unit_signals``: a unit's KPIs (``ioc.feed.kpi_view``, i.e. what
  ``ioc.kpis.derive`` gives per window) as signals for the unit rules: the
  overdue backlog (a level, the same in every window), and per window the
  on-time rate (over the dossiers to settle) and the missing apology letters.
- ``flood_signals``: a station's flood alarm level crossing
  (``ioc.flood.LevelCrossed``) as ``flood_level`` signals, value 0-3, for
  the station (``sensor:<id>``) and for its area (``area:<id>``, the
  highest level of the area's stations: the sample rules judge areas).
- ``health_signals``: a sensor's health change
  (``ioc.sensor_health.HealthChanged``) as a ``sensor_health`` signal,
  value 1 while any problem is open and 0 once all have cleared.

- ``rising_signals``: a station's rising-rate warning
  (``ioc.flood.RapidRise``) as a ``flood_rising`` signal, 1 while it lasts.

The sensor stage (``streams.sensor_stage``) makes them, and the AQI
signals itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.model import Signal
from ioc.flood import LevelCrossed, RapidRise
from ioc.sensor_health import HealthChanged

_UNIT_FIELDS = ("commune", "agency", "centre")
UNIT_SCOPES = ("province", "commune", "agency", "centre")


def sla_signals(item: Mapping[str, Any]) -> list[Signal]:
    """The signals of one SLA transition (an item of an ``sla`` message)."""
    transition = item.get("transition")
    dossier = item.get("dossier_id")
    at = item.get("at")
    if not isinstance(dossier, str) or not isinstance(at, int | float):
        return []
    units = tuple(
        (name, f"{name}:{item[name]}") for name in _UNIT_FIELDS if isinstance(item.get(name), str)
    )
    due = item.get("due")
    due = float(due) if isinstance(due, int | float) else None

    def signal(kind: str, ended: bool) -> Signal:
        return Signal(kind, f"dossier:{dossier}", float(at), ended=ended, units=units, due=due)

    if transition == "at_risk":
        return [signal("dossier_at_risk", False)]
    if transition == "overdue":
        return [signal("dossier_at_risk", True), signal("dossier_overdue", False)]
    if transition == "cleared":
        return [signal("dossier_at_risk", True), signal("dossier_overdue", True)]
    return []


def unit_signals(view: Mapping[str, Any]) -> list[Signal]:
    """The signals of one scope's KPI view (``{"scope", "at", "windows"}``);
    none for scopes that are not units (procedure, field, group)."""
    scope = str(view.get("scope", ""))
    if scope.partition(":")[0] not in UNIT_SCOPES:
        return []
    at = float(view["at"])
    windows: Mapping[str, Mapping[str, Any]] = view.get("windows", {})
    out: list[Signal] = []
    for window, kpis in sorted(windows.items()):
        if not out:  # a level: any window has it
            out.append(Signal("overdue_backlog", scope, at, value=_number(kpis.get("overdue"))))
        out.append(
            Signal(
                "on_time_rate",
                scope,
                at,
                value=_number(kpis.get("on_time_rate")),
                window=window,
                sample=int(kpis.get("to_settle") or 0),
            )
        )
        out.append(
            Signal(
                "missing_apology",
                scope,
                at,
                value=_number(kpis.get("missing_apology")),
                window=window,
            )
        )
    return out


def flood_signals(event: LevelCrossed) -> list[Signal]:
    """The station's level, routed to its area, and the area's level."""
    area = f"area:{event.area}"
    return [
        Signal(
            "flood_level",
            f"sensor:{event.sensor_id}",
            event.at,
            value=float(event.to_level),
            units=(("area", area),),
        ),
        Signal("flood_level", area, event.at, value=float(event.area_level)),
    ]


def rising_signals(event: RapidRise) -> list[Signal]:
    """1 while the station rises faster than its threshold, 0 once it does not."""
    return [
        Signal(
            "flood_rising",
            f"sensor:{event.sensor_id}",
            event.at,
            value=1.0 if event.rising else 0.0,
            units=(("area", f"area:{event.area}"),),
        )
    ]


def health_signals(event: HealthChanged) -> list[Signal]:
    """1 while the sensor has any problem, 0 once it has none."""
    return [
        Signal(
            "sensor_health",
            f"sensor:{event.sensor_id}",
            event.at,
            value=1.0 if event.faulty else 0.0,
            units=(("area", f"area:{event.area}"),),
        )
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
