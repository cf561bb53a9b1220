"""Alert rules, from the province's rules file (TOML, like the province file).

Each ``[[rules]]`` entry has an id, a kind, a severity, the kind of subject
it judges, its threshold, optional mute windows and an escalation chain.
``docs/alerts.md`` is the reference of the file; the sample is
``ioc/data/alert-rules-01-ha-noi.toml``.

Kinds, what a signal's value means for them, and their threshold:

- ``dossier_overdue``, ``dossier_at_risk``: a dossier (no threshold; the
  signal's ``ended`` flag ends it);
- ``overdue_backlog``: open overdue dossiers of a unit, fires ``above``;
- ``on_time_rate``: a unit's on-time rate (0-1) over ``window``, fires
  ``below``, judged only over at least ``min_dossiers`` dossiers to settle;
- ``missing_apology``: dossiers of a unit late or overdue with no apology
  letter over ``window``, fires ``above``;
- ``aqi``: VN_AQI of an area or sensor, fires at or above ``band``;
- ``flood_level``: the alarm level reached (0-3) at a water-level station,
  fires at or above ``level`` (I, II or III);
- ``flood_rising``: 1 while a water-level station rises faster than its
  ``rise_alarm_m_per_h`` (the stations file);
- ``sensor_health``: 1 for a faulty sensor (silent, stuck, out of range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from alerts.config import Checker, read_toml
from alerts.model import Signal
from alerts.routing import CHANNELS, UNIT_KINDS
from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ
from ioc.kpis import WINDOWS
from ioc.settings import PACKAGE_DATA

SAMPLE_RULES = PACKAGE_DATA / "alert-rules-01-ha-noi.toml"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


UNITS = ("commune", "agency", "centre", "province")
# kind -> the subject kinds it may judge (the first is the default)
SUBJECTS: dict[str, tuple[str, ...]] = {
    "dossier_overdue": ("dossier",),
    "dossier_at_risk": ("dossier",),
    "overdue_backlog": UNITS,
    "on_time_rate": UNITS,
    "missing_apology": UNITS,
    "aqi": ("area", "sensor"),
    "flood_level": ("sensor", "area"),
    "flood_rising": ("sensor",),
    "sensor_health": ("sensor",),
}
KINDS = tuple(SUBJECTS)
# VN_AQI bands (Decision 1459/QĐ-TCMT) by their lowest index value.
AQI_BANDS = {"good": 0, "moderate": 51, "poor": 101, "bad": 151, "very_bad": 201, "hazardous": 301}
FLOOD_LEVELS = {"I": 1, "II": 2, "III": 3}
MUTE_WHEN = ("outside_working_time", "days_off", "daily")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_REOPEN_MINUTES = 30.0
DEFAULT_DIGEST_AT = 7 * 3600 + 30 * 60

_RULE_KEYS = (
    *("id", "kind", "severity", "subject", "title", "above", "below", "window"),
    *("min_dossiers", "band", "level", "reopen_within_minutes", "mute", "escalation"),
)
_STEP_KEYS = ("after_working_days", "to", "level", "channels")
_MUTE_KEYS = ("when", "from", "to", "days")


@dataclass(frozen=True, slots=True)
class MuteWindow:
    """When a rule's deliveries wait (the alert itself still opens, updates
    and resolves). ``daily`` windows run from ``start`` to ``end`` local
    time (through midnight when ``end <= start``) on the ``days`` they start."""

    when: str
    start: int = 0
    end: int = 0
    days: frozenset[int] = frozenset(range(7))

    def muted(self, t: float, cal: WorkingCalendar) -> bool:
        if self.when == "outside_working_time":
            # the end of an office period still counts: a deadline may fall on it
            return not (cal.is_working_time(t) or cal.is_working_time(t - 0.001))
        local = datetime.fromtimestamp(t, VN_TZ)
        if self.when == "days_off":
            return not cal.is_working_day(local.date())
        s = local.hour * 3600 + local.minute * 60 + local.second
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.start < self.end:
            return self.start <= s < self.end and today in self.days
        return (s >= self.start and today in self.days) or (s < self.end and yesterday in self.days)

    def end_after(self, t: float, cal: WorkingCalendar) -> float:
        """When the window holding ``t`` ends."""
        if self.when == "outside_working_time":
            return cal.next_working_instant(t)
        if self.when == "days_off":
            return cal.next_working_day_start(t)
        local = datetime.fromtimestamp(t, VN_TZ)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        s = local.hour * 3600 + local.minute * 60 + local.second
        if self.start >= self.end and s >= self.start:
            midnight += timedelta(days=1)
        return (midnight + timedelta(seconds=self.end)).timestamp()


def unmute(t: float, windows: Sequence[MuteWindow], cal: WorkingCalendar) -> float:
    """The first instant at or after ``t`` outside every mute window."""
    for _ in range(1000):  # windows that chain end within a few rounds
        held = [w for w in windows if w.muted(t, cal)]
        if not held:
            return t
        t = max(w.end_after(t, cal) for w in held)
    return t


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Reached ``after_working_days`` of working time after the alert's
    reference instant (a dossier's due time; otherwise the opening); goes to
    the leaders at ``level`` of the first of the subject's units ``to``
    that has any."""

    after_working_days: float
    to: tuple[str, ...]
    level: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str
    severity: Severity
    subject: str
    title: str = ""
    above: float | None = None
    below: float | None = None
    at_or_above: float | None = None
    window: str | None = None
    min_dossiers: int = 0
    mute: tuple[MuteWindow, ...] = ()
    escalation: tuple[EscalationStep, ...] = ()
    reopen_within: float = DEFAULT_REOPEN_MINUTES * 60

    def judges(self, s: Signal) -> bool:
        return s.kind == self.kind and s.subject_kind == self.subject and s.window == self.window

    def breached(self, s: Signal) -> bool | None:
        """Whether ``s`` shows the cause; None when it cannot tell (no value,
        too few dossiers): then nothing changes."""
        if s.ended:
            return False
        if self.kind in ("dossier_overdue", "dossier_at_risk"):
            return True
        if s.value is None or (s.sample is not None and s.sample < self.min_dossiers):
            return None
        if self.above is not None:
            return s.value > self.above
        if self.below is not None:
            return s.value < self.below
        return s.value >= (self.at_or_above if self.at_or_above is not None else 1.0)

    def level_of(self, value: float | None) -> int:
        """A sensor value's level: AQI band (1 good .. 6 hazardous), flood alarm level."""
        if value is None:
            return 0
        if self.kind == "aqi":
            return sum(1 for low in AQI_BANDS.values() if value >= low)
        if self.kind == "flood_level":
            return int(value)
        return 0


@dataclass(frozen=True, slots=True)
class DigestConfig:
    """A daily digest per leader (``digest = true`` in the routing file) at
    local time ``at`` (seconds after midnight) on working days."""

    at: int = DEFAULT_DIGEST_AT
    top: int = 5
    overdue_rules: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("email",)


@dataclass(slots=True)
class RuleSet:
    rules: dict[str, Rule] = field(default_factory=dict)
    digest: DigestConfig | None = None

    def for_signal(self, s: Signal) -> list[Rule]:
        return [r for r in self.rules.values() if r.judges(s)]


def load_rules(path: Path = SAMPLE_RULES) -> RuleSet:
    return parse_rules(read_toml(path), str(path))


def parse_rules(data: dict[str, Any], source: str = "<rules>") -> RuleSet:
    check = Checker()
    check.unknown_keys(data, ("rules", "digest"), "the file")
    rules = RuleSet()
    seen: set[str] = set()
    for i, item in enumerate(check.tables(data, "rules")):
        rule = _rule(item, f"rules[{i}]", check)
        check.unique(seen, rule.id, f"rules[{i}]")
        rules.rules[rule.id] = rule
    if "digest" in data:
        rules.digest = _digest(data["digest"], rules, check)
    check.raise_if_any(source)
    return rules


def _rule(item: dict[str, Any], where: str, check: Checker) -> Rule:
    ident = check.text(item, "id", where)
    where = f"{where} ({ident})" if ident else where
    check.unknown_keys(item, _RULE_KEYS, where)
    kind = check.choice(item, "kind", where, KINDS)
    subjects = SUBJECTS.get(kind, ("",))
    subject = check.choice(item, "subject", where, subjects, default=subjects[0])
    sev = check.choice(item, "severity", where, [s.value for s in Severity])
    reopen = check.number(item, "reopen_within_minutes", where, DEFAULT_REOPEN_MINUTES, 1.0)
    rule: dict[str, Any] = {}
    if kind in ("overdue_backlog", "missing_apology"):
        rule["above"] = check.number(item, "above", where)
    if kind == "on_time_rate":
        below = check.number(item, "below", where)
        if below is not None and below > 1:
            check.add(where, "'below' is a rate between 0 and 1 (0.9 for 90%)")
        rule["below"] = below
        rule["min_dossiers"] = check.whole(item, "min_dossiers", where, 20, 0)
    if kind in ("on_time_rate", "missing_apology"):
        default = "month" if kind == "missing_apology" else None
        rule["window"] = check.choice(item, "window", where, WINDOWS, default) or None
    if kind == "aqi":
        band = check.choice(item, "band", where, tuple(AQI_BANDS))
        rule["at_or_above"] = float(AQI_BANDS.get(band, 0))
    if kind == "flood_level":
        level = check.choice(item, "level", where, tuple(FLOOD_LEVELS))
        rule["at_or_above"] = float(FLOOD_LEVELS.get(level, 1))
    allowed = {"above", "below", "window", "band", "level", "min_dossiers"}
    used = {"above", "below", "window", "min_dossiers"} & set(rule) | (
        {"band"} if kind == "aqi" else {"level"} if kind == "flood_level" else set()
    )
    for key in sorted(allowed - used):
        if key in item:
            check.add(where, f"'{key}' does not apply to a {kind or '?'} rule")
    mute = tuple(
        _mute(m, f"{where}.mute[{j}]", check)
        for j, m in enumerate(check.tables(item, "mute", where))
    )
    steps = tuple(
        _step(s, f"{where}.escalation[{j}]", check)
        for j, s in enumerate(check.tables(item, "escalation", where))
    )
    days = [s.after_working_days for s in steps]
    if days != sorted(days) or len(set(days)) != len(days):
        check.add(where, "escalation steps must come in increasing 'after_working_days'")
    return Rule(
        id=ident,
        kind=kind,
        severity=Severity(sev) if sev else Severity.WARNING,
        subject=subject,
        title=check.text(item, "title", where, required=False),
        mute=mute,
        escalation=steps,
        reopen_within=(reopen or DEFAULT_REOPEN_MINUTES) * 60,
        **rule,
    )


def _mute(item: dict[str, Any], where: str, check: Checker) -> MuteWindow:
    check.unknown_keys(item, _MUTE_KEYS, where)
    when = check.choice(item, "when", where, MUTE_WHEN, default="daily")
    if when != "daily":
        for key in ("from", "to", "days"):
            if key in item:
                check.add(where, f"'{key}' applies to daily windows only")
        return MuteWindow(when)
    start = check.clock_time(item, "from", where)
    end = check.clock_time(item, "to", where)
    if start is not None and start == end:
        check.add(where, "'from' and 'to' are equal: the window is empty")
    days = check.texts(item, "days", where, WEEKDAYS) or WEEKDAYS
    return MuteWindow("daily", start or 0, end or 0, frozenset(WEEKDAYS.index(d) for d in days))


def _step(item: dict[str, Any], where: str, check: Checker) -> EscalationStep:
    check.unknown_keys(item, _STEP_KEYS, where)
    to = check.texts(item, "to", where, UNIT_KINDS)
    if not to:
        check.add(where, f"'to' must list unit kinds among {', '.join(UNIT_KINDS)}")
    channels = check.texts(item, "channels", where, CHANNELS) or ("websocket",)
    return EscalationStep(
        after_working_days=check.number(item, "after_working_days", where) or 0.0,
        to=to,
        level=check.whole(item, "level", where),
        channels=channels,
    )


def _digest(item: Any, rules: RuleSet, check: Checker) -> DigestConfig:
    if not isinstance(item, dict):
        check.add("digest", "must be a table ([digest])")
        return DigestConfig()
    check.unknown_keys(item, ("at", "top", "overdue_rules", "channels"), "digest")
    at = check.clock_time(item, "at", "digest")
    overdue = check.texts(item, "overdue_rules", "digest")
    for rid in overdue:
        rule = rules.rules.get(rid)
        if rule is None or rule.kind != "dossier_overdue":
            check.add("digest", f"'overdue_rules' names {rid!r}, not a dossier_overdue rule")
    if not overdue:
        overdue = tuple(r.id for r in rules.rules.values() if r.kind == "dossier_overdue")
    return DigestConfig(
        at=DEFAULT_DIGEST_AT if at is None else at,
        top=check.whole(item, "top", "digest", 5),
        overdue_rules=overdue,
        channels=check.texts(item, "channels", "digest", CHANNELS) or ("email",),
    )
