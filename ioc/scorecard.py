"""The 766 scorecard: the part of the service index that dossier events
determine, as points per unit and window.

The maxima and caps live in a data file with their sources
(``ioc/data/scorecard-766.toml``); each indicator reads one KPI of
``ioc.kpis.derive``. Indicators that need other inputs are listed per group
as not measured, with the points they carry, and never counted as zero.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AWARDS = ("linear", "full_at")


class ScorecardError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    max: float
    not_measured: str = ""


@dataclass(frozen=True, slots=True)
class Indicator:
    id: str
    group: str
    name: str
    rate: str
    max: float
    award: str
    at: float = 1.0
    source: str = ""

    def points(self, rate: float | None) -> float | None:
        if rate is None:
            return None
        rate = min(max(rate, 0.0), 1.0)
        if self.award == "full_at":
            return self.max * min(rate / self.at, 1.0)
        return self.max * rate


@dataclass(frozen=True, slots=True)
class Scorecard:
    groups: tuple[Group, ...]
    indicators: tuple[Indicator, ...]

    def score(self, kpis: dict[str, Any]) -> dict[str, Any]:
        """Points of each indicator and group from one window's KPIs."""
        indicators: list[dict[str, Any]] = []
        for ind in self.indicators:
            rate = kpis.get(ind.rate)
            points = ind.points(rate)
            indicators.append(
                {
                    "id": ind.id,
                    "group": ind.group,
                    "name": ind.name,
                    "kpi": ind.rate,
                    "rate": rate,
                    "points": None if points is None else round(points, 3),
                    "max": ind.max,
                    "award": ind.award if ind.award == "linear" else f"full at {ind.at:.0%}",
                    "status": "measured" if points is not None else "no dossiers in the window",
                    "source": ind.source,
                }
            )
        groups = []
        for g in self.groups:
            mine = [i for i in indicators if i["group"] == g.id]
            measured_max = sum(i["max"] for i in mine)
            # an indicator with no dossiers in the window has no points, not 0
            scored = [i for i in mine if i["points"] is not None]
            groups.append(
                {
                    "id": g.id,
                    "name": g.name,
                    "max": g.max,
                    "measured_max": measured_max,
                    "points": round(sum(i["points"] for i in scored), 3) if scored else None,
                    "scored_max": sum(i["max"] for i in scored),
                    "not_measured": {
                        "points": g.max - measured_max,
                        "status": "not measured here",
                        "reason": g.not_measured,
                    }
                    if g.max > measured_max
                    else None,
                }
            )
        scored = [i for i in indicators if i["points"] is not None]
        return {
            "indicators": indicators,
            "groups": groups,
            # nothing measured is "not measured", never a score of 0
            "points": round(sum(i["points"] for i in scored), 3) if scored else None,
            "measured_max": sum(i["max"] for i in scored),
            "max": sum(g.max for g in self.groups),
        }


def load_scorecard(path: Path) -> Scorecard:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScorecardError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScorecardError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_scorecard(data, str(path))


def parse_scorecard(data: dict[str, Any], source: str = "<scorecard>") -> Scorecard:
    from ioc.kpis import FLOWS, LEVELS, derive

    known_rates = set(derive([0] * len(FLOWS), [0] * len(LEVELS), 1.0))
    problems: list[str] = []
    groups: list[Group] = []
    for i, g in enumerate(data.get("groups", [])):
        try:
            groups.append(
                Group(str(g["id"]), str(g["name"]), float(g["max"]), str(g.get("not_measured", "")))
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"groups[{i}]: {exc!r}")
    ids = {g.id for g in groups}
    indicators: list[Indicator] = []
    for i, item in enumerate(data.get("indicators", [])):
        where = f"indicators[{i}]"
        try:
            ind = Indicator(
                id=str(item["id"]),
                group=str(item["group"]),
                name=str(item["name"]),
                rate=str(item["rate"]),
                max=float(item["max"]),
                award=str(item["award"]),
                at=float(item.get("at", 1.0)),
                source=str(item.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{where}: missing or invalid {exc}")
            continue
        if ind.group not in ids:
            problems.append(f"{where}: unknown group {ind.group!r}")
        if ind.rate not in known_rates:
            problems.append(f"{where}: {ind.rate!r} is not a KPI of ioc.kpis.derive")
        if ind.award not in AWARDS:
            problems.append(f"{where}: award must be one of {AWARDS}")
        if not 0 < ind.at <= 1:
            problems.append(f"{where}: 'at' must be in (0, 1]")
        if not ind.source:
            problems.append(f"{where}: 'source' is required")
        indicators.append(ind)
    for g in groups:
        measured = sum(i.max for i in indicators if i.group == g.id)
        if measured > g.max:
            problems.append(f"group {g.id}: its indicators carry {measured} > {g.max} points")
    if problems:
        raise ScorecardError(source, problems)
    return Scorecard(tuple(groups), tuple(indicators))
