"""The administrative world of one province, as of the two-tier reform.

Since 1 July 2025 a province has communes (xã, phường, đặc khu) and no
districts. Dossiers are received at Public Administration Service Centres and
settled by agencies that are often elsewhere. The registry lists the
province's communes, centres, agencies, procedures and optional groups of
communes (a legacy district, for data from before July 2025), loaded from a
TOML file and validated with every problem reported at once.

Everything is keyed by code or id; names are display labels only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

COMMUNE_LEVELS = ("xa", "phuong", "dac_khu")
CENTRE_LEVELS = ("province", "branch", "commune")
AGENCY_LEVELS = ("province", "commune", "vertical")
SCOPE_KINDS = ("province", "commune", "agency", "centre", "procedure", "field", "group")


class RegistryError(ValueError):
    """A province file that cannot be used; ``problems`` lists each reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True, slots=True)
class Commune:
    code: str
    name: str
    level: str
    valid_from: date | None = None
    valid_to: date | None = None


@dataclass(frozen=True, slots=True)
class Centre:
    id: str
    name: str
    level: str
    parent: str | None = None
    commune: str | None = None


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    name: str
    level: str
    commune: str | None = None


@dataclass(frozen=True, slots=True)
class Procedure:
    code: str
    name: str
    field: str
    allotted_working_days: float | None = None
    allotted_working_hours: float | None = None
    # Receipts after this local time count from the next working day.
    receipt_cutoff: time | None = None
    fee_required: bool = False
    agency_level: str = "province"
    # The agency that settles it, for provincial and vertical procedures
    # (commune procedures are settled by the commune's People's Committee).
    agency: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    kind: str
    communes: tuple[str, ...]
    valid_to: date | None = None


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    name: str
    communes: tuple[str, ...] = ()


@dataclass(slots=True)
class Registry:
    province_code: str
    province_name: str
    communes: dict[str, Commune] = field(default_factory=dict)
    centres: dict[str, Centre] = field(default_factory=dict)
    agencies: dict[str, Agency] = field(default_factory=dict)
    procedures: dict[str, Procedure] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    areas: dict[str, Area] = field(default_factory=dict)
    groups_of_commune: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def label(self, scope: str) -> str:
        """Display name of a scope key such as ``commune:00166``."""
        kind, _, key = scope.partition(":")
        if kind == "province":
            return self.province_name
        table = self._table(kind)
        if kind == "field":
            return self.fields.get(key, key)
        item = table.get(key)
        return item.name if item is not None else key

    def area_label(self, area: str) -> str:
        """Display name of a sensor area: a commune code or an ``[[areas]]`` id."""
        unit = self.communes.get(area) or self.areas.get(area)
        return unit.name if unit is not None else area

    def knows(self, kind: str, key: str) -> bool:
        if kind == "province":
            return key == self.province_code
        return key in self._table(kind)

    def _table(self, kind: str) -> dict[str, Any]:
        """The units of one scope kind, by key."""
        tables: dict[str, dict[str, Any]] = {
            "commune": self.communes,
            "agency": self.agencies,
            "centre": self.centres,
            "procedure": self.procedures,
            "field": self.fields,
            "group": self.groups,
        }
        return tables.get(kind, {})

    def cutoff_seconds(self, procedure_code: str) -> int | None:
        """The receipt cut-off of a procedure as seconds after local midnight."""
        proc = self.procedures.get(procedure_code)
        if proc is None or proc.receipt_cutoff is None:
            return None
        c = proc.receipt_cutoff
        return c.hour * 3600 + c.minute * 60 + c.second


def load_registry(path: Path) -> Registry:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_registry(data, str(path))


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def text(self, item: dict[str, Any], key: str, where: str, required: bool = True) -> str:
        value = item.get(key)
        if value is None:
            if required:
                self.problems.append(f"{where}: missing '{key}'")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{where}: '{key}' must be a non-empty string")
            return ""
        return value

    def choice(self, item: dict[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str:
        value = self.text(item, key, where)
        if value and value not in allowed:
            self.problems.append(f"{where}: '{key}' is {value!r}, expected one of {allowed}")
        return value

    def day(self, item: dict[str, Any], key: str, where: str) -> date | None:
        value = item.get(key)
        if value is None:
            return None
        if isinstance(value, date):
            return value
        self.problems.append(f"{where}: '{key}' must be a date like 2025-07-01")
        return None

    def unique(self, seen: set[str], key: str, where: str) -> None:
        if key in seen:
            self.problems.append(f"{where}: duplicate {key!r}")
        seen.add(key)


def parse_registry(data: dict[str, Any], source: str = "<registry>") -> Registry:
    check = _Checker()
    prov = data.get("province")
    if not isinstance(prov, dict):
        raise RegistryError(source, ["missing [province] table"])
    code = check.text(prov, "code", "province")
    if code and not _digits(code, 2):
        check.problems.append(f"province: code {code!r} must be 2 digits (Decision 19/2025/QĐ-TTg)")
    reg = Registry(province_code=code, province_name=check.text(prov, "name", "province"))

    seen: set[str] = set()
    for i, item in enumerate(_items(data, "communes", check)):
        where = f"communes[{i}]"
        c = check.text(item, "code", where)
        if c and not _digits(c, 5):
            check.problems.append(f"{where}: code {c!r} must be 5 digits")
        check.unique(seen, c, where)
        commune = Commune(
            code=c,
            name=check.text(item, "name", where),
            level=check.choice(item, "level", where, COMMUNE_LEVELS),
            valid_from=check.day(item, "valid_from", where),
            valid_to=check.day(item, "valid_to", where),
        )
        if commune.valid_from and commune.valid_to and commune.valid_to < commune.valid_from:
            check.problems.append(f"{where}: valid_to is before valid_from")
        reg.communes[c] = commune

    seen = set()
    for i, item in enumerate(_items(data, "centres", check)):
        where = f"centres[{i}]"
        ident = check.text(item, "id", where)
        check.unique(seen, ident, where)
        reg.centres[ident] = Centre(
            id=ident,
            name=check.text(item, "name", where),
            level=check.choice(item, "level", where, CENTRE_LEVELS),
            parent=item.get("parent"),
            commune=item.get("commune"),
        )
    for ident, centre in reg.centres.items():
        if centre.parent is not None and centre.parent not in reg.centres:
            check.problems.append(f"centre {ident!r}: parent {centre.parent!r} is not a centre")
        if centre.commune is not None and centre.commune not in reg.communes:
            check.problems.append(f"centre {ident!r}: commune {centre.commune!r} is not listed")

    seen = set()
    for i, item in enumerate(_items(data, "agencies", check)):
        where = f"agencies[{i}]"
        ident = check.text(item, "id", where)
        check.unique(seen, ident, where)
        agency = Agency(
            id=ident,
            name=check.text(item, "name", where),
            level=check.choice(item, "level", where, AGENCY_LEVELS),
            commune=item.get("commune"),
        )
        if agency.commune is not None and agency.commune not in reg.communes:
            check.problems.append(f"{where}: commune {agency.commune!r} is not listed")
        reg.agencies[ident] = agency

    for i, item in enumerate(_items(data, "fields", check)):
        where = f"fields[{i}]"
        ident = check.text(item, "id", where)
        if ident in reg.fields:
            check.problems.append(f"{where}: duplicate {ident!r}")
        reg.fields[ident] = check.text(item, "name", where)

    _parse_procedures(data, reg, check)
    _parse_groups(data, reg, check)

    for i, item in enumerate(_items(data, "areas", check)):
        where = f"areas[{i}]"
        ident = check.text(item, "id", where)
        members = tuple(item.get("communes", ()))
        for m in members:
            if m not in reg.communes:
                check.problems.append(f"{where}: commune {m!r} is not listed")
        reg.areas[ident] = Area(ident, check.text(item, "name", where), members)

    if check.problems:
        raise RegistryError(source, check.problems)
    return reg


def _parse_procedures(data: dict[str, Any], reg: Registry, check: _Checker) -> None:
    seen: set[str] = set()
    for i, item in enumerate(_items(data, "procedures", check)):
        where = f"procedures[{i}]"
        code = check.text(item, "code", where)
        check.unique(seen, code, where)
        fld = check.text(item, "field", where)
        if fld and fld not in reg.fields:
            check.problems.append(f"{where}: field {fld!r} is not listed under [[fields]]")
        cutoff = item.get("receipt_cutoff")
        if cutoff is not None and not isinstance(cutoff, time):
            check.problems.append(f"{where}: receipt_cutoff must be a time like 15:00:00")
            cutoff = None
        days = item.get("allotted_working_days")
        hours = item.get("allotted_working_hours")
        if (days is None) == (hours is None):
            check.problems.append(
                f"{where}: give exactly one of allotted_working_days, allotted_working_hours"
            )
        for name, value in (("allotted_working_days", days), ("allotted_working_hours", hours)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                check.problems.append(f"{where}: {name} must be a positive number")
        fee = item.get("fee_required", False)
        if not isinstance(fee, bool):
            check.problems.append(f"{where}: fee_required must be true or false")
        level = (
            check.choice(item, "agency_level", where, AGENCY_LEVELS)
            if "agency_level" in item
            else "province"
        )
        agency = item.get("agency")
        if agency is not None:
            known = reg.agencies.get(agency) if isinstance(agency, str) else None
            if known is None:
                check.problems.append(f"{where}: agency {agency!r} is not under [[agencies]]")
                agency = None
            elif level == "commune":
                check.problems.append(
                    f"{where}: a commune procedure is settled by each commune's People's "
                    "Committee; remove 'agency'"
                )
            elif known.level != level:
                check.problems.append(
                    f"{where}: agency {agency!r} is {known.level}-level, "
                    f"the procedure {level}-level"
                )
        reg.procedures[code] = Procedure(
            code=code,
            name=check.text(item, "name", where),
            field=fld,
            allotted_working_days=days,
            allotted_working_hours=hours,
            receipt_cutoff=cutoff,
            fee_required=fee is True,
            agency_level=level,
            agency=agency,
        )


def _parse_groups(data: dict[str, Any], reg: Registry, check: _Checker) -> None:
    seen: set[str] = set()
    member_of: dict[str, list[str]] = {}
    for i, item in enumerate(_items(data, "groups", check)):
        where = f"groups[{i}]"
        ident = check.text(item, "id", where)
        check.unique(seen, ident, where)
        members = item.get("communes")
        if not isinstance(members, list) or not members:
            check.problems.append(f"{where}: 'communes' must be a non-empty list of codes")
            members = []
        for m in members:
            if m not in reg.communes:
                check.problems.append(f"{where}: commune {m!r} is not listed")
            member_of.setdefault(m, []).append(ident)
        reg.groups[ident] = Group(
            id=ident,
            name=check.text(item, "name", where),
            kind=check.text(item, "kind", where, required=False) or "legacy_district",
            communes=tuple(members),
            valid_to=check.day(item, "valid_to", where),
        )
    reg.groups_of_commune = {c: tuple(g) for c, g in member_of.items()}


def _digits(text: str, n: int) -> bool:
    return len(text) == n and text.isascii() and text.isdigit()


def _items(data: dict[str, Any], key: str, check: _Checker) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        check.problems.append(f"'{key}' must be an array of tables ([[{key}]])")
        return []
    return value
