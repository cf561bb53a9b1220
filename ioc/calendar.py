"""The working calendar: office periods on working days, in Asia/Ho_Chi_Minh.

Working days are Monday to Friday minus public holidays, as the ``holidays``
package knows them for Vietnam (observed days and make-up Saturdays included),
adjusted by the province's own file of days off and make-up working days,
each with its source. Office periods come from the province's schedules
(default 08:00-12:00 and 13:00-17:00), optionally seasonal.

All arithmetic runs on one precomputed table of office periods: ``W(t)``, the
working seconds elapsed since the table's origin, is a bisection away, so
"working time between" and "add working time" cost about a microsecond.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from ioc.clock import VN_TZ, to_iso
from ioc.events import MAX_YEAR, MIN_YEAR

# The years the table may cover: the event years, one before (an event at
# 2000-01-01T00:00+14:00 is still 1999 in Hà Nội) and two after (the longest
# allotment, 365 working days, from the last day of MAX_YEAR). A year costs
# about 6 ms and 50 kB to build; without a bound one far-off instant could
# make the table grow by centuries.
FIRST_YEAR, LAST_YEAR = MIN_YEAR - 1, MAX_YEAR + 2

DEFAULT_PERIODS = ((8 * 3600, 12 * 3600), (13 * 3600, 17 * 3600))
DEFAULT_DAY_HOURS = 8.0


class CalendarError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class OutsideCalendar(ValueError):
    """An instant, or a deadline, outside the years the calendar covers."""

    def __init__(self, t: float, what: str = "") -> None:
        try:
            when = datetime.fromtimestamp(t, VN_TZ).isoformat()
        except (OverflowError, ValueError, OSError):
            when = f"epoch second {t:g}"
        super().__init__(
            f"{what or when} is outside the working calendar's years {FIRST_YEAR}–{LAST_YEAR}"
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """Office periods (seconds after local midnight) for part of the year.

    ``season`` is an inclusive (month, day) range that may wrap the new
    year, e.g. ((10, 15), (4, 14)) for a winter schedule; ``None`` means all
    year. The first schedule whose season contains a date applies.
    """

    name: str
    periods: tuple[tuple[int, int], ...]
    season: tuple[tuple[int, int], tuple[int, int]] | None = None

    def applies_to(self, d: date) -> bool:
        if self.season is None:
            return True
        (m0, d0), (m1, d1) = self.season
        md = (d.month, d.day)
        if (m0, d0) <= (m1, d1):
            return (m0, d0) <= md <= (m1, d1)
        return md >= (m0, d0) or md <= (m1, d1)


@dataclass(frozen=True, slots=True)
class DayEntry:
    """A province's decision about one date, overriding the package."""

    day: date
    working: bool
    source: str
    note: str = ""


def vietnam_working_day() -> Callable[[date], bool]:
    """Working days per the ``holidays`` package for Vietnam (observed days,
    make-up Saturdays)."""
    import holidays

    vn = holidays.country_holidays("VN")

    def is_working(d: date) -> bool:
        return bool(vn.is_working_day(d))

    return is_working


class WorkingCalendar:
    def __init__(
        self,
        schedules: Iterable[Schedule] = (Schedule("default", DEFAULT_PERIODS),),
        entries: Iterable[DayEntry] = (),
        day_hours: float = DEFAULT_DAY_HOURS,
        package_working_day: Callable[[date], bool] | None = None,
        first_year: int = 2015,
        last_year: int = 2040,
    ) -> None:
        self.schedules = tuple(schedules)
        self.entries = {e.day: e for e in entries}
        self.day_seconds = round(day_hours * 3600)
        self._package = package_working_day or vietnam_working_day()
        if not FIRST_YEAR <= first_year <= last_year <= LAST_YEAR:
            raise ValueError(f"the table's years must lie within {FIRST_YEAR}–{LAST_YEAR}")
        self._build(first_year, last_year)

    # -- the period table ---------------------------------------------------

    def _build(self, first_year: int, last_year: int) -> None:
        starts: list[float] = []
        ends: list[float] = []
        cum: list[float] = []
        total = 0.0
        d = date(first_year, 1, 1)
        stop = date(last_year + 1, 1, 1)
        while d < stop:
            if self.is_working_day(d):
                midnight = datetime(d.year, d.month, d.day, tzinfo=VN_TZ).timestamp()
                for a, b in self.schedule_for(d).periods:
                    starts.append(midnight + a)
                    ends.append(midnight + b)
                    cum.append(total)
                    total += b - a
            d += timedelta(days=1)
        self._first_year, self._last_year = first_year, last_year
        self._starts, self._ends, self._cum = starts, ends, cum
        self._cum_end = [c + (e - s) for c, s, e in zip(cum, starts, ends, strict=True)]
        self._lo = datetime(first_year, 1, 1, tzinfo=VN_TZ).timestamp()
        self._hi = datetime(last_year + 1, 1, 1, tzinfo=VN_TZ).timestamp()

    def _cover(self, t: float) -> None:
        if self._lo <= t < self._hi:
            return
        if not _LIMIT_LO <= t < _LIMIT_HI:
            raise OutsideCalendar(t)
        year = datetime.fromtimestamp(t, VN_TZ).year
        self._build(
            max(FIRST_YEAR, min(self._first_year, year - 1)),
            min(LAST_YEAR, max(self._last_year, year + 1)),
        )

    def _extend(self, t: float, what: str) -> None:
        """Ten more years at the end, for an answer beyond the table."""
        if self._last_year >= LAST_YEAR:
            raise OutsideCalendar(t, what)
        self._build(self._first_year, min(LAST_YEAR, self._last_year + 10))

    @property
    def years(self) -> tuple[int, int]:
        """The first and last year the table covers now."""
        return self._first_year, self._last_year

    def schedule_for(self, d: date) -> Schedule:
        for s in self.schedules:
            if s.applies_to(d):
                return s
        return self.schedules[-1]

    def is_working_day(self, d: date) -> bool:
        entry = self.entries.get(d)
        if entry is not None:
            return entry.working
        return self._package(d)

    # -- arithmetic -----------------------------------------------------------

    def _w(self, t: float) -> float:
        """Working seconds from the table's origin to ``t``."""
        i = bisect_right(self._starts, t) - 1
        if i < 0:
            return 0.0
        return self._cum[i] + min(t - self._starts[i], self._ends[i] - self._starts[i])

    def _at(self, w: float) -> float:
        """The earliest instant at which ``_w`` reaches ``w``."""
        i = bisect_left(self._cum_end, w)
        if i >= len(self._cum_end):
            raise OverflowError("beyond the calendar's table")
        return self._starts[i] + max(0.0, w - self._cum[i])

    def between(self, a: float, b: float) -> float:
        """Working seconds in [a, b] (negative if b < a)."""
        self._cover(a)
        self._cover(b)
        return self._w(b) - self._w(a)

    def add(self, t: float, seconds: float) -> float:
        """The earliest instant by which ``seconds`` (> 0) of working time have
        elapsed after ``t``; it may be the end of an office period.
        ``add(t, 0)`` is ``t``."""
        if seconds <= 0:
            return t
        self._cover(t)
        while True:
            target = self._w(t) + seconds
            try:
                return self._at(target)
            except OverflowError:
                self._extend(t, f"the end of {seconds:g} working seconds after {to_iso(t)}")

    def add_days(self, t: float, days: float) -> float:
        return self.add(t, days * self.day_seconds)

    def add_hours(self, t: float, hours: float) -> float:
        return self.add(t, hours * 3600)

    def is_working_time(self, t: float) -> bool:
        self._cover(t)
        i = bisect_right(self._starts, t) - 1
        return i >= 0 and t < self._ends[i]

    def next_working_instant(self, t: float) -> float:
        """``t`` if it is working time, else the start of the next period."""
        self._cover(t)
        i = bisect_right(self._starts, t) - 1
        if i >= 0 and t < self._ends[i]:
            return t
        if i + 1 >= len(self._starts):
            self._extend(t, f"the next working instant after {to_iso(t)}")
            return self.next_working_instant(t)
        return self._starts[i + 1]

    def next_working_day_start(self, t: float) -> float:
        """The first office period's start on the first working day after
        ``t``'s local date."""
        d = datetime.fromtimestamp(t, VN_TZ).date()
        end_of_day = datetime(d.year, d.month, d.day, tzinfo=VN_TZ) + timedelta(days=1)
        return self.next_working_instant(end_of_day.timestamp())

    def start_instant(self, received: float, cutoff_seconds: int | None = None) -> float:
        """When a dossier's clock starts: the next instant of working time, or
        the next working day when received after the procedure's cut-off."""
        if cutoff_seconds is not None:
            local = datetime.fromtimestamp(received, VN_TZ)
            since_midnight = local.hour * 3600 + local.minute * 60 + local.second
            if self.is_working_day(local.date()) and since_midnight > cutoff_seconds:
                return self.next_working_day_start(received)
        return self.next_working_instant(received)


_LIMIT_LO = datetime(FIRST_YEAR, 1, 1, tzinfo=VN_TZ).timestamp()
_LIMIT_HI = datetime(LAST_YEAR + 1, 1, 1, tzinfo=VN_TZ).timestamp()


# -- loading ----------------------------------------------------------------


def load_calendar(path: Path | None) -> WorkingCalendar:
    """A calendar from a province's TOML file, or the defaults when ``None``."""
    if path is None:
        return WorkingCalendar()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalendarError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_calendar(data, str(path))


def parse_calendar(data: dict[str, Any], source: str = "<calendar>") -> WorkingCalendar:
    problems: list[str] = []
    hours = data.get("hours", {})
    day_hours = hours.get("day_hours", DEFAULT_DAY_HOURS)
    if isinstance(day_hours, bool) or not isinstance(day_hours, int | float) or day_hours <= 0:
        problems.append("hours.day_hours must be a positive number")
        day_hours = DEFAULT_DAY_HOURS
    schedules = [
        _schedule(item, f"hours.schedules[{i}]", float(day_hours), problems)
        for i, item in enumerate(hours.get("schedules", []))
    ]
    if not schedules:
        schedules = [Schedule("default", DEFAULT_PERIODS)]
    elif all(s.season is not None for s in schedules):
        problems.append("hours.schedules: one schedule needs no season, to cover the whole year")

    entries: list[DayEntry] = []
    seen: dict[date, str] = {}
    for key, working in (("days_off", False), ("working_days", True)):
        for i, item in enumerate(data.get(key, [])):
            where = f"{key}[{i}]"
            day = item.get("date")
            src = item.get("source")
            if not isinstance(day, date) or isinstance(day, datetime):
                problems.append(f"{where}: 'date' must be a date like 2026-01-02")
                continue
            if not isinstance(src, str) or not src.strip():
                problems.append(f"{where}: 'source' is required (the notice that decides {day})")
                continue
            if day in seen:
                problems.append(f"{where}: {day} is already listed under {seen[day]}")
                continue
            seen[day] = where
            entries.append(DayEntry(day, working, src, str(item.get("note", ""))))
    if problems:
        raise CalendarError(source, problems)
    return WorkingCalendar(schedules, entries, float(day_hours))


def _schedule(item: Any, where: str, day_hours: float, problems: list[str]) -> Schedule:
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table")
        return Schedule("invalid", DEFAULT_PERIODS)
    periods: list[tuple[int, int]] = []
    for j, pair in enumerate(item.get("periods", [])):
        try:
            a, b = (_seconds(x) for x in pair)
        except (TypeError, ValueError):
            problems.append(f'{where}.periods[{j}]: expected ["HH:MM", "HH:MM"]')
            continue
        if b <= a:
            problems.append(f"{where}.periods[{j}]: ends before it starts")
        periods.append((a, b))
    periods.sort()
    for (_, b0), (a1, _) in pairwise(periods):
        if a1 < b0:
            problems.append(f"{where}: office periods overlap")
    if not periods:
        problems.append(f"{where}: needs at least one office period")
    total = sum(b - a for a, b in periods)
    if periods and abs(total - day_hours * 3600) > 0.5:
        problems.append(
            f"{where}: periods add up to {total / 3600:g} h but a working day is "
            f"{day_hours:g} h (hours.day_hours)"
        )
    season = None
    if "from" in item or "to" in item:
        try:
            season = (_month_day(item["from"]), _month_day(item["to"]))
        except (KeyError, TypeError, ValueError):
            problems.append(f"{where}: 'from' and 'to' must both be \"MM-DD\"")
    return Schedule(str(item.get("name", where)), tuple(periods), season)


def _seconds(text: Any) -> int:
    if isinstance(text, time):
        return text.hour * 3600 + text.minute * 60
    h, m = str(text).split(":")
    hh, mm = int(h), int(m)
    if not (0 <= hh <= 24 and 0 <= mm < 60):
        raise ValueError(text)
    return hh * 3600 + mm * 60


def _month_day(text: Any) -> tuple[int, int]:
    m, d = str(text).split("-")
    md = (int(m), int(d))
    date(2024, *md)  # validates, leap day allowed
    return md
