"""Who hears about an alert: leaders of a unit, by level.

The routing file maps units (the province, communes, settling agencies,
receiving centres, sensor areas) to their leaders, each at a level: 1 is the
first to be told (e.g. the deputy in charge, or the office of the People's
Committee), 2 the head (the commune chair, the department director), and so
on. An escalation step of a rule names the unit kinds to look in and a
level; ``Routing.resolve`` finds the leaders.

Units are written as scope keys: ``province``, ``commune:00166``,
``agency:so-tu-phap-01``, ``centre:hcc-00166``, ``area:tram-long-bien``.
With a registry at hand, ``parse_routing`` also refuses units the province
file does not list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alerts.config import Checker, read_toml
from ioc.registry import Registry

UNIT_KINDS = ("province", "commune", "agency", "centre", "area")
CHANNELS = ("websocket", "email", "webhook")
_LEADER_KEYS = ("id", "unit", "level", "name", "role", "email", "webhook", "digest")


@dataclass(frozen=True, slots=True)
class Leader:
    id: str
    unit: str
    level: int
    name: str
    role: str
    email: str | None = None
    webhook: str | None = None
    # Whether this leader gets the daily digest of the alerts in their unit.
    digest: bool = False

    def address(self, channel: str) -> str | None:
        """Where ``channel`` reaches this leader; None when it cannot.
        Every leader has a console (the websocket), addressed by id."""
        if channel == "email":
            return self.email
        if channel == "webhook":
            return self.webhook
        return self.id if channel == "websocket" else None


@dataclass(slots=True)
class Routing:
    leaders: dict[str, Leader] = field(default_factory=dict)
    # unit -> level -> leaders, in file order
    by_unit: dict[str, dict[int, tuple[Leader, ...]]] = field(default_factory=dict)
    # Where a step goes when none of its units has a leader at its level:
    # this unit's lowest level (the province's duty office, by default).
    fallback: str = "province"

    def at(self, unit: str, level: int) -> tuple[Leader, ...]:
        return self.by_unit.get(unit, {}).get(level, ())

    def resolve(
        self, kinds: Iterable[str], level: int, units: Mapping[str, str]
    ) -> tuple[tuple[Leader, ...], bool]:
        """The leaders at ``level`` of the first of ``kinds`` that has any,
        where ``units`` names the subject's unit of each kind (``{"commune":
        "commune:00166", ...}``; ``province`` needs no entry). Falls back to
        the fallback unit's lowest level; the flag says whether it did."""
        for kind in kinds:
            unit = "province" if kind == "province" else units.get(kind)
            if unit is not None and (found := self.at(unit, level)):
                return found, False
        levels = self.by_unit.get(self.fallback, {})
        if not levels:
            return (), True
        return levels[min(levels)], True

    def in_unit(self, leader: Leader, units: Mapping[str, str]) -> bool:
        """Whether an alert whose subject has ``units`` lies in the leader's unit."""
        return leader.unit == "province" or leader.unit in units.values()


def load_routing(path: Path, registry: Registry | None = None) -> Routing:
    return parse_routing(read_toml(path), str(path), registry)


def parse_routing(
    data: dict[str, Any], source: str = "<routing>", registry: Registry | None = None
) -> Routing:
    check = Checker()
    routing = Routing()
    settings = data.get("routing", {})
    if not isinstance(settings, dict):
        check.add("routing", "must be a table ([routing])")
        settings = {}
    check.unknown_keys(settings, ("fallback",), "routing")
    routing.fallback = check.text(settings, "fallback", "routing", required=False) or "province"
    _check_unit(routing.fallback, "routing.fallback", registry, check)

    seen: set[str] = set()
    for i, item in enumerate(check.tables(data, "leaders")):
        where = f"leaders[{i}]"
        check.unknown_keys(item, _LEADER_KEYS, where)
        ident = check.text(item, "id", where)
        check.unique(seen, ident, where)
        unit = check.text(item, "unit", where)
        _check_unit(unit, where, registry, check)
        email = check.text(item, "email", where, required=False) or None
        if email is not None and (email.count("@") != 1 or email.startswith("@")):
            check.add(where, f"'email' {email!r} is not an address")
        webhook = check.text(item, "webhook", where, required=False) or None
        if webhook is not None and not _https_url(webhook):
            check.add(where, "'webhook' must be an https:// URL with a host")
        digest = item.get("digest", False)
        if not isinstance(digest, bool):
            check.add(where, "'digest' must be true or false")
        leader = Leader(
            id=ident,
            unit=unit,
            level=check.whole(item, "level", where),
            name=check.text(item, "name", where),
            role=check.text(item, "role", where),
            email=email,
            webhook=webhook,
            digest=digest is True,
        )
        routing.leaders[ident] = leader
        levels = routing.by_unit.setdefault(unit, {})
        levels[leader.level] = (*levels.get(leader.level, ()), leader)
    if routing.fallback not in routing.by_unit:
        check.add("routing.fallback", f"{routing.fallback!r} has no leaders under [[leaders]]")
    check.raise_if_any(source)
    return routing


def _check_unit(unit: str, where: str, registry: Registry | None, check: Checker) -> None:
    if not unit:
        return
    kind, _, key = unit.partition(":")
    if kind not in UNIT_KINDS or (kind == "province") != (key == ""):
        check.add(
            where,
            f"unit {unit!r} must be 'province' or <kind>:<key> with kind one of "
            f"{', '.join(UNIT_KINDS[1:])}",
        )
        return
    if registry is None or kind == "province":
        return
    tables: dict[str, dict[str, Any]] = {
        "commune": registry.communes,
        "agency": registry.agencies,
        "centre": registry.centres,
        "area": registry.areas,
    }
    if key not in tables[kind] and not (kind == "area" and key in registry.communes):
        check.add(where, f"unit {unit!r} is not in the province file")


def _https_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)
