"""The working calendar: worked examples of the design, Vietnam's 2026 holidays
and swaps, the sample province's own entries, cut-offs, seasonal schedules,
validation of province files, and properties of ``add`` / ``between``."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc import calendar as calendar_module
from ioc.calendar import (
    FIRST_YEAR,
    LAST_YEAR,
    CalendarError,
    OutsideCalendar,
    Schedule,
    WorkingCalendar,
    load_calendar,
    parse_calendar,
)
from ioc.clock import VN_TZ
from ioc.events import MAX_ALLOTTED_DAYS

DATA = Path(calendar_module.__file__).parent / "data"
HOUR = 3600
DAY = 8 * HOUR  # one working day of working time
CUTOFF_15H = 15 * HOUR


def vn(text: str) -> float:
    """Epoch seconds of a local (UTC+7) time written ``YYYY-MM-DD HH:MM[:SS]``."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=VN_TZ).timestamp()


def local(t: float) -> str:
    """A local time as ``Www YYYY-MM-DD HH:MM[:SS]``, for readable failures."""
    dt = datetime.fromtimestamp(t, VN_TZ)
    return dt.strftime("%a %Y-%m-%d %H:%M" + (":%S" if dt.second else ""))


def entry(day: date, source: str = "test notice") -> dict[str, object]:
    return {"date": day, "source": source}


# Built once: each build reads the holidays package for 26 years.
CAL = WorkingCalendar()  # the package alone, default office hours
HANOI = load_calendar(DATA / "calendar-01-ha-noi.toml")
OVERRIDES = parse_calendar(
    {
        "days_off": [
            entry(date(2026, 3, 18)),  # a Wednesday the package has as working
            entry(date(2026, 8, 22)),  # the package's make-up Saturday
        ],
        "working_days": [
            entry(date(2026, 4, 27)),  # the package's Hùng Kings observed day
            entry(date(2026, 3, 21)),  # an ordinary Saturday
        ],
    },
    "overrides.toml",
)
# Vĩnh Phúc's hours (DOMAIN "Working time and holidays"), summer listed first.
SUMMER_FIRST = parse_calendar(
    {
        "hours": {
            "day_hours": 8,
            "schedules": [
                {
                    "name": "summer",
                    "from": "04-15",
                    "to": "10-14",
                    "periods": [["07:00", "11:30"], ["13:30", "17:00"]],
                },
                {"name": "winter", "periods": [["07:30", "12:00"], ["13:00", "16:30"]]},
            ],
        }
    }
)
# The same hours, with the winter season wrapping the new year listed first.
WINTER_FIRST = parse_calendar(
    {
        "hours": {
            "schedules": [
                {
                    "name": "winter",
                    "from": "10-15",
                    "to": "04-14",
                    "periods": [["07:30", "12:00"], ["13:00", "16:30"]],
                },
                {"name": "summer", "periods": [["07:00", "11:30"], ["13:30", "17:00"]]},
            ],
        }
    }
)


# -- the design's worked examples ----------------------------------------------


def test_received_friday_afternoon_with_one_day_is_due_monday_same_hour() -> None:
    assert local(CAL.add_days(vn("2026-03-13 15:00"), 1)) == local(vn("2026-03-16 15:00"))


def test_received_saturday_with_one_day_is_due_monday_end_of_day() -> None:
    received = vn("2026-03-14 10:00")
    start = CAL.start_instant(received)
    assert local(start) == local(vn("2026-03-16 08:00"))
    assert local(CAL.add_days(received, 1)) == local(vn("2026-03-16 17:00"))
    assert CAL.add_days(start, 1) == CAL.add_days(received, 1)


def test_received_at_lunch_starts_at_one_and_is_due_next_day_noon() -> None:
    received = vn("2026-03-16 12:30")
    assert local(CAL.start_instant(received)) == local(vn("2026-03-16 13:00"))
    assert local(CAL.add_days(received, 1)) == local(vn("2026-03-17 12:00"))


def test_add_hours_and_add_days_count_working_time() -> None:
    t = vn("2026-03-16 09:00")
    assert CAL.add_hours(t, 3) == vn("2026-03-16 12:00")
    assert CAL.add_hours(t, 3.5) == vn("2026-03-16 13:30")
    assert CAL.add_days(t, 0.5) == CAL.add_hours(t, 4) == vn("2026-03-16 14:00")
    assert CAL.add_days(t, 3) == vn("2026-03-19 09:00")
    assert CAL.add_days(t, 5) == vn("2026-03-23 09:00")  # a week later, over the weekend


def test_between_counts_only_office_periods() -> None:
    assert CAL.between(vn("2026-03-16 07:00"), vn("2026-03-16 18:00")) == DAY
    assert CAL.between(vn("2026-03-16 11:00"), vn("2026-03-16 14:00")) == 2 * HOUR
    assert CAL.between(vn("2026-03-13 16:00"), vn("2026-03-16 09:00")) == 2 * HOUR
    assert CAL.between(vn("2026-03-14 09:00"), vn("2026-03-15 16:00")) == 0
    assert CAL.between(vn("2026-03-16 14:00"), vn("2026-03-16 11:00")) == -2 * HOUR


def test_day_seconds_follows_day_hours() -> None:
    assert CAL.day_seconds == DAY
    seven = parse_calendar(
        {"hours": {"day_hours": 7, "schedules": [{"periods": [["08:00", "15:00"]]}]}}
    )
    assert seven.day_seconds == 7 * HOUR
    assert seven.add_days(vn("2026-03-16 08:00"), 1) == vn("2026-03-16 15:00")


# -- 2026 holidays and swaps from the holidays package ----------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 1, 1), False),  # New Year
        (date(2026, 2, 13), True),  # Friday before Tết
        *((date(2026, 2, d), False) for d in range(16, 21)),  # Tết, Mon 16 - Fri 20 Feb
        (date(2026, 2, 23), True),
        (date(2026, 4, 27), False),  # Hùng Kings (Sun 26 Apr), observed Monday
        (date(2026, 4, 28), True),
        (date(2026, 4, 30), False),  # Reunification Day
        (date(2026, 5, 1), False),  # Labour Day
        (date(2026, 8, 22), True),  # Saturday worked for the 31 August swap
        (date(2026, 8, 29), False),  # an ordinary Saturday
        (date(2026, 8, 31), False),  # Monday off, swapped
        (date(2026, 9, 1), False),  # National Day
        (date(2026, 9, 2), False),
        (date(2026, 9, 3), True),
    ],
)
def test_package_knows_2026_holidays_and_swaps(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-02-13 15:00", "2026-02-23 15:00"),  # over Tết
        ("2026-04-24 15:00", "2026-04-28 15:00"),  # over the Hùng Kings observed Monday
        ("2026-04-29 09:00", "2026-05-04 09:00"),  # over 30 April - 1 May
        ("2026-08-21 15:00", "2026-08-22 15:00"),  # into the worked Saturday
        ("2026-08-28 15:00", "2026-09-03 15:00"),  # over 31 August and 1-2 September
    ],
)
def test_one_working_day_across_2026_holidays(received: str, due: str) -> None:
    assert local(CAL.add_days(vn(received), 1)) == local(vn(due))


def test_worked_saturday_has_office_hours() -> None:
    assert CAL.is_working_time(vn("2026-08-22 10:00"))
    assert not CAL.is_working_time(vn("2026-08-29 10:00"))
    assert CAL.between(vn("2026-08-22 00:00"), vn("2026-08-23 00:00")) == DAY


# -- the sample province's own entries -------------------------------------------


def test_sample_province_takes_2_january_2026_off_against_the_package() -> None:
    assert CAL.is_working_day(date(2026, 1, 2))
    assert not HANOI.is_working_day(date(2026, 1, 2))
    received = vn("2025-12-31 15:00")
    assert local(CAL.add_days(received, 1)) == local(vn("2026-01-02 15:00"))
    assert local(HANOI.add_days(received, 1)) == local(vn("2026-01-05 15:00"))


def test_sample_province_works_saturday_10_january_2026() -> None:
    assert not CAL.is_working_day(date(2026, 1, 10))
    assert HANOI.is_working_day(date(2026, 1, 10))
    received = vn("2026-01-09 15:00")
    assert local(CAL.add_days(received, 1)) == local(vn("2026-01-12 15:00"))
    assert local(HANOI.add_days(received, 1)) == local(vn("2026-01-10 15:00"))


def test_sample_province_takes_24_november_2026_off() -> None:
    assert not HANOI.is_working_day(date(2026, 11, 24))
    assert local(HANOI.add_days(vn("2026-11-23 15:00"), 1)) == local(vn("2026-11-25 15:00"))


def test_sample_province_entries_keep_their_sources() -> None:
    for day in (date(2026, 1, 2), date(2026, 1, 10), date(2026, 11, 24)):
        assert HANOI.entries[day].source.strip()
    assert HANOI.entries[date(2026, 1, 2)].working is False
    assert HANOI.entries[date(2026, 1, 10)].working is True
    assert "12729/VPCP-KGVX" in HANOI.entries[date(2026, 1, 2)].source


def test_sample_province_otherwise_follows_the_package() -> None:
    for day in (date(2026, 2, 17), date(2026, 4, 27), date(2026, 8, 31), date(2026, 9, 2)):
        assert not HANOI.is_working_day(day)
    assert HANOI.is_working_day(date(2026, 8, 22))
    assert HANOI.schedule_for(date(2026, 6, 1)).periods == (
        (8 * HOUR, 12 * HOUR),
        (13 * HOUR, 17 * HOUR),
    )


# -- overriding the package both ways --------------------------------------------


def test_a_province_day_off_overrides_a_package_working_day() -> None:
    assert CAL.is_working_day(date(2026, 3, 18))
    assert not OVERRIDES.is_working_day(date(2026, 3, 18))
    assert OVERRIDES.add_days(vn("2026-03-17 15:00"), 1) == vn("2026-03-19 15:00")


def test_a_province_day_off_overrides_a_package_make_up_saturday() -> None:
    assert not OVERRIDES.is_working_day(date(2026, 8, 22))
    assert not OVERRIDES.is_working_time(vn("2026-08-22 10:00"))


def test_a_province_working_day_overrides_a_package_holiday() -> None:
    assert OVERRIDES.is_working_day(date(2026, 4, 27))
    assert OVERRIDES.add_days(vn("2026-04-24 15:00"), 1) == vn("2026-04-27 15:00")


def test_a_province_working_day_can_be_a_saturday() -> None:
    assert OVERRIDES.is_working_day(date(2026, 3, 21))
    assert OVERRIDES.add_days(vn("2026-03-20 15:00"), 1) == vn("2026-03-21 15:00")
    assert OVERRIDES.next_working_instant(vn("2026-03-20 17:30")) == vn("2026-03-21 08:00")


def test_entries_keep_source_and_note() -> None:
    cal = parse_calendar(
        {"days_off": [{"date": date(2026, 3, 18), "source": "letter 1/UBND", "note": "storm"}]}
    )
    e = cal.entries[date(2026, 3, 18)]
    assert (e.working, e.source, e.note) == (False, "letter 1/UBND", "storm")


def test_no_file_means_the_package_and_default_hours() -> None:
    cal = load_calendar(None)
    assert cal.entries == {}
    assert cal.is_working_day(date(2026, 1, 2))
    assert cal.schedule_for(date(2026, 1, 5)).periods == (
        (8 * HOUR, 12 * HOUR),
        (13 * HOUR, 17 * HOUR),
    )


# -- receipt cut-off ----------------------------------------------------------------


def test_receipt_after_the_cutoff_starts_next_working_day() -> None:
    start = CAL.start_instant(vn("2026-03-16 15:30"), CUTOFF_15H)
    assert local(start) == local(vn("2026-03-17 08:00"))


def test_receipt_after_the_cutoff_on_friday_starts_monday() -> None:
    start = CAL.start_instant(vn("2026-03-13 15:30"), CUTOFF_15H)
    assert local(start) == local(vn("2026-03-16 08:00"))


def test_receipt_after_the_cutoff_before_holidays_skips_them() -> None:
    start = CAL.start_instant(vn("2026-04-29 16:00"), CUTOFF_15H)
    assert local(start) == local(vn("2026-05-04 08:00"))


def test_receipt_before_or_at_the_cutoff_does_not_move() -> None:
    # DOMAIN: receipts *after* 15:00 move to the next working day
    for received in (vn("2026-03-16 14:59:59"), vn("2026-03-16 15:00")):
        assert CAL.start_instant(received, CUTOFF_15H) == received
    assert local(CAL.start_instant(vn("2026-03-16 15:00:01"), CUTOFF_15H)) == local(
        vn("2026-03-17 08:00")
    )
    assert CAL.start_instant(vn("2026-03-16 12:30"), CUTOFF_15H) == vn("2026-03-16 13:00")
    assert CAL.start_instant(vn("2026-03-16 07:00"), CUTOFF_15H) == vn("2026-03-16 08:00")


def test_saturday_receipt_with_a_cutoff_just_moves_to_monday_morning() -> None:
    for received in ("2026-03-14 10:00", "2026-03-14 16:00"):
        start = CAL.start_instant(vn(received), CUTOFF_15H)
        assert local(start) == local(vn("2026-03-16 08:00"))


def test_receipt_after_the_cutoff_on_a_worked_saturday() -> None:
    start = CAL.start_instant(vn("2026-08-22 15:30"), CUTOFF_15H)
    assert local(start) == local(vn("2026-08-24 08:00"))


def test_receipt_after_the_cutoff_before_the_national_day_swap() -> None:
    start = CAL.start_instant(vn("2026-08-28 15:30"), CUTOFF_15H)
    assert local(start) == local(vn("2026-09-03 08:00"))


def test_without_a_cutoff_a_late_receipt_counts_from_now() -> None:
    received = vn("2026-03-16 15:30")
    assert CAL.start_instant(received) == received
    assert CAL.start_instant(received, None) == received


# -- seasonal schedules ----------------------------------------------------------


@pytest.mark.parametrize("cal", [SUMMER_FIRST, WINTER_FIRST], ids=["summer-first", "winter-wraps"])
@pytest.mark.parametrize(
    ("day", "season"),
    [
        (date(2026, 1, 5), "winter"),
        (date(2026, 4, 14), "winter"),
        (date(2026, 4, 15), "summer"),
        (date(2026, 6, 15), "summer"),
        (date(2026, 10, 14), "summer"),
        (date(2026, 10, 15), "winter"),
        (date(2025, 12, 31), "winter"),
    ],
)
def test_seasonal_schedule_for_a_date(cal: WorkingCalendar, day: date, season: str) -> None:
    assert cal.schedule_for(day).name == season


@pytest.mark.parametrize("cal", [SUMMER_FIRST, WINTER_FIRST], ids=["summer-first", "winter-wraps"])
def test_seasonal_office_hours(cal: WorkingCalendar) -> None:
    # summer: 07:00-11:30 and 13:30-17:00
    assert cal.is_working_time(vn("2026-06-15 07:00"))
    assert not cal.is_working_time(vn("2026-06-15 11:30"))
    assert not cal.is_working_time(vn("2026-06-15 13:00"))
    assert cal.is_working_time(vn("2026-06-15 16:59"))
    # winter, on both sides of the new year: 07:30-12:00 and 13:00-16:30
    for day in ("2025-12-31", "2026-01-05"):
        assert not cal.is_working_time(vn(f"{day} 07:00"))
        assert cal.is_working_time(vn(f"{day} 07:30"))
        assert cal.is_working_time(vn(f"{day} 13:00"))
        assert not cal.is_working_time(vn(f"{day} 16:30"))


@pytest.mark.parametrize("cal", [SUMMER_FIRST, WINTER_FIRST], ids=["summer-first", "winter-wraps"])
def test_seasonal_arithmetic_crosses_the_season_change(cal: WorkingCalendar) -> None:
    # Tue 14 Apr is the last winter day (ends 16:30); Wed 15 Apr summer starts 07:00.
    assert cal.add_hours(vn("2026-04-14 16:00"), 1) == vn("2026-04-15 07:30")
    assert cal.between(vn("2026-04-14 00:00"), vn("2026-04-16 00:00")) == 2 * DAY
    assert cal.add_days(vn("2026-06-15 07:00"), 1) == vn("2026-06-15 17:00")
    assert cal.add_days(vn("2026-01-05 07:30"), 1) == vn("2026-01-05 16:30")


def test_schedule_season_wrapping_the_new_year() -> None:
    winter = Schedule("winter", ((0, 1),), ((11, 1), (2, 28)))
    assert winter.applies_to(date(2026, 11, 1))
    assert winter.applies_to(date(2026, 12, 31))
    assert winter.applies_to(date(2027, 1, 1))
    assert winter.applies_to(date(2027, 2, 28))
    assert not winter.applies_to(date(2027, 3, 1))
    assert not winter.applies_to(date(2026, 10, 31))
    summer = Schedule("summer", ((0, 1),), ((4, 15), (10, 14)))
    assert summer.applies_to(date(2026, 4, 15)) and summer.applies_to(date(2026, 10, 14))
    assert not summer.applies_to(date(2026, 4, 14)) and not summer.applies_to(date(2026, 10, 15))
    assert Schedule("all year", ((0, 1),)).applies_to(date(2026, 2, 28))


# -- is_working_time, next_working_instant, next_working_day_start ---------------


@pytest.mark.parametrize(
    ("instant", "working"),
    [
        ("2026-03-16 07:59:59", False),
        ("2026-03-16 08:00", True),
        ("2026-03-16 11:59:59", True),
        ("2026-03-16 12:00", False),
        ("2026-03-16 12:59:59", False),
        ("2026-03-16 13:00", True),
        ("2026-03-16 16:59:59", True),
        ("2026-03-16 17:00", False),
        ("2026-03-14 10:00", False),  # Saturday
        ("2026-03-15 10:00", False),  # Sunday
        ("2026-04-30 10:00", False),  # holiday
        ("2026-08-22 10:00", True),  # worked Saturday
    ],
)
def test_is_working_time(instant: str, working: bool) -> None:
    assert CAL.is_working_time(vn(instant)) is working


@pytest.mark.parametrize(
    ("instant", "next_instant"),
    [
        ("2026-03-16 09:15", "2026-03-16 09:15"),
        ("2026-03-16 08:00", "2026-03-16 08:00"),
        ("2026-03-16 06:00", "2026-03-16 08:00"),
        ("2026-03-16 12:00", "2026-03-16 13:00"),
        ("2026-03-16 12:30", "2026-03-16 13:00"),
        ("2026-03-16 17:00", "2026-03-17 08:00"),
        ("2026-03-13 17:30", "2026-03-16 08:00"),
        ("2026-03-14 10:00", "2026-03-16 08:00"),
        ("2026-04-29 18:00", "2026-05-04 08:00"),
        ("2026-08-21 18:00", "2026-08-22 08:00"),
    ],
)
def test_next_working_instant(instant: str, next_instant: str) -> None:
    assert local(CAL.next_working_instant(vn(instant))) == local(vn(next_instant))


@pytest.mark.parametrize(
    ("instant", "day_start"),
    [
        ("2026-03-16 00:00", "2026-03-17 08:00"),
        ("2026-03-16 07:00", "2026-03-17 08:00"),
        ("2026-03-16 10:00", "2026-03-17 08:00"),
        ("2026-03-19 23:59", "2026-03-20 08:00"),
        ("2026-03-13 10:00", "2026-03-16 08:00"),
        ("2026-03-15 10:00", "2026-03-16 08:00"),
        ("2026-04-29 09:00", "2026-05-04 08:00"),
        ("2026-08-21 09:00", "2026-08-22 08:00"),
    ],
)
def test_next_working_day_start(instant: str, day_start: str) -> None:
    assert local(CAL.next_working_day_start(vn(instant))) == local(vn(day_start))


def test_next_working_day_start_uses_the_seasonal_first_period() -> None:
    assert SUMMER_FIRST.next_working_day_start(vn("2026-06-15 10:00")) == vn("2026-06-16 07:00")
    assert SUMMER_FIRST.next_working_day_start(vn("2026-01-05 10:00")) == vn("2026-01-06 07:30")


# -- add(t, 0) --------------------------------------------------------------------


def test_add_zero_inside_a_period_is_the_instant_itself() -> None:
    t = vn("2026-03-16 09:30")
    assert CAL.add(t, 0) == t
    assert CAL.add(vn("2026-03-16 12:00"), 0) == vn("2026-03-16 12:00")  # a period's end


@pytest.mark.parametrize(
    "instant",
    ["2026-03-16 12:30", "2026-03-16 07:00", "2026-03-14 10:00", "2026-03-16 08:00"],
)
def test_add_zero_is_the_instant_itself_in_or_out_of_working_time(instant: str) -> None:
    assert CAL.add(vn(instant), 0) == vn(instant)


# -- validation of province calendars -----------------------------------------


def problems_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(CalendarError) as info:
        parse_calendar(data, "prov.toml")
    assert info.value.source == "prov.toml"
    assert str(info.value).startswith(f"prov.toml: {len(info.value.problems)} problem(s):")
    return info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {
            "hours": {
                "day_hours": 8,
                "schedules": [
                    {
                        "name": "summer",
                        "from": "04-15",
                        "to": "10-14",
                        "periods": [["07:00", "11:30"], ["13:30", "16:00"]],
                    },
                    {
                        "name": "winter",
                        "from": "10-15",
                        "to": "04-14",
                        "periods": [["08:00", "12:00"], ["11:00", "15:00"]],
                    },
                ],
            },
            "days_off": [
                {"date": date(2026, 1, 2)},
                entry(date(2026, 3, 3), "x"),
                entry(date(2026, 3, 3), "y"),
                entry(date(2026, 3, 4), "z"),
            ],
            "working_days": [entry(date(2026, 3, 4), "w")],
        }
    )
    assert problems == [
        "hours.schedules[0]: periods add up to 7 h but a working day is 8 h (hours.day_hours)",
        "hours.schedules[1]: office periods overlap",
        "hours.schedules: one schedule needs no season, to cover the whole year",
        "days_off[0]: 'source' is required (the notice that decides 2026-01-02)",
        "days_off[2]: 2026-03-03 is already listed under days_off[1]",
        "working_days[0]: 2026-03-04 is already listed under days_off[3]",
    ]


def test_missing_or_blank_source_is_a_problem() -> None:
    assert problems_of({"working_days": [{"date": date(2026, 3, 21), "source": "  "}]}) == [
        "working_days[0]: 'source' is required (the notice that decides 2026-03-21)"
    ]


def test_duplicate_date_in_one_list_is_a_problem() -> None:
    assert problems_of({"working_days": [entry(date(2026, 3, 21)), entry(date(2026, 3, 21))]}) == [
        "working_days[1]: 2026-03-21 is already listed under working_days[0]"
    ]


def test_date_in_both_lists_is_a_problem() -> None:
    problems = problems_of(
        {"days_off": [entry(date(2026, 1, 2))], "working_days": [entry(date(2026, 1, 2))]}
    )
    assert problems == ["working_days[0]: 2026-01-02 is already listed under days_off[0]"]


@pytest.mark.parametrize("value", ["2026-01-02", 20260102, datetime(2026, 1, 2, tzinfo=VN_TZ)])
def test_date_must_be_a_toml_date(value: object) -> None:
    assert problems_of({"days_off": [{"date": value, "source": "x"}]}) == [
        "days_off[0]: 'date' must be a date like 2026-01-02"
    ]


def test_periods_not_adding_up_to_day_hours() -> None:
    problems = problems_of(
        {
            "hours": {
                "day_hours": 7.5,
                "schedules": [{"periods": [["08:00", "12:00"], ["13:00", "17:00"]]}],
            }
        }
    )
    assert problems == [
        "hours.schedules[0]: periods add up to 8 h but a working day is 7.5 h (hours.day_hours)"
    ]


def test_overlapping_periods() -> None:
    problems = problems_of(
        {"hours": {"schedules": [{"periods": [["08:00", "12:00"], ["11:00", "15:00"]]}]}}
    )
    assert problems == ["hours.schedules[0]: office periods overlap"]


def test_touching_periods_do_not_overlap() -> None:
    cal = parse_calendar(
        {"hours": {"schedules": [{"periods": [["08:00", "12:00"], ["12:00", "16:00"]]}]}}
    )
    assert cal.is_working_time(vn("2026-03-16 12:00"))
    assert cal.add_days(vn("2026-03-16 08:00"), 1) == vn("2026-03-16 16:00")


def test_all_schedules_seasonal() -> None:
    problems = problems_of(
        {
            "hours": {
                "schedules": [
                    {
                        "from": "04-15",
                        "to": "10-14",
                        "periods": [["08:00", "12:00"], ["13:00", "17:00"]],
                    },
                    {
                        "from": "10-15",
                        "to": "04-14",
                        "periods": [["08:00", "12:00"], ["13:00", "17:00"]],
                    },
                ]
            }
        }
    )
    assert problems == ["hours.schedules: one schedule needs no season, to cover the whole year"]


@pytest.mark.parametrize("day_hours", [0, -8, "8", True])
def test_day_hours_must_be_a_positive_number(day_hours: object) -> None:
    assert problems_of({"hours": {"day_hours": day_hours}}) == [
        "hours.day_hours must be a positive number"
    ]


def test_malformed_periods() -> None:
    problems = problems_of(
        {
            "hours": {
                "schedules": [
                    {"periods": [["8:00"]]},
                    {"periods": []},
                    {"periods": [["17:00", "09:00"]], "from": "02-30"},
                    "08:00-17:00",
                ]
            }
        }
    )
    assert problems == [
        'hours.schedules[0].periods[0]: expected ["HH:MM", "HH:MM"]',
        "hours.schedules[0]: needs at least one office period",
        "hours.schedules[1]: needs at least one office period",
        "hours.schedules[2].periods[0]: ends before it starts",
        "hours.schedules[2]: periods add up to -8 h but a working day is 8 h (hours.day_hours)",
        "hours.schedules[2]: 'from' and 'to' must both be \"MM-DD\"",
        "hours.schedules[3]: must be a table",
    ]


def test_bad_toml_is_reported_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text("[hours\nday_hours = 8\n", encoding="utf-8")
    with pytest.raises(CalendarError) as info:
        load_calendar(path)
    assert info.value.source == str(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("not valid TOML: ")


def test_missing_file_is_reported_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(CalendarError) as info:
        load_calendar(path)
    assert info.value.problems == ["file not found"]
    assert str(info.value) == f"{path}: 1 problem(s):\n  - file not found"


def test_a_calendar_file_loads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(
        "[hours]\nday_hours = 8\n"
        '[[hours.schedules]]\nperiods = [["07:30", "11:30"], ["13:00", "17:00"]]\n'
        '[[days_off]]\ndate = 2026-03-18\nsource = "letter 9/UBND"\n',
        encoding="utf-8",
    )
    cal = load_calendar(path)
    assert not cal.is_working_day(date(2026, 3, 18))
    assert cal.next_working_instant(vn("2026-03-17 07:00")) == vn("2026-03-17 07:30")


# -- properties ---------------------------------------------------------------------

T_LO = int(vn("2025-01-01 00:00"))
T_HI = int(vn("2028-01-01 00:00")) - 1
instants = st.integers(T_LO, T_HI)
durations = st.integers(0, 60 * DAY)
positive = st.integers(1, 30 * DAY)
PROPS = settings(max_examples=150, deadline=None, database=None)


def in_office_period(cal: WorkingCalendar, t: float) -> bool:
    """``t`` lies within an office period of a working day, its end included."""
    dt = datetime.fromtimestamp(t, VN_TZ)
    if not cal.is_working_day(dt.date()):
        return False
    secs = dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond / 1e6
    return any(a <= secs <= b for a, b in cal.schedule_for(dt.date()).periods)


@PROPS
@given(t1=instants, t2=instants, n=durations)
def test_add_is_monotonic_in_the_instant(t1: int, t2: int, n: int) -> None:
    t1, t2 = sorted((t1, t2))
    assert CAL.add(t1, n) <= CAL.add(t2, n)


@PROPS
@given(t=instants, a=durations, b=durations)
def test_add_is_monotonic_in_the_duration(t: int, a: int, b: int) -> None:
    a, b = sorted((a, b))
    assert CAL.add(t, a) <= CAL.add(t, b)
    if a < b:
        assert CAL.add(t, a) < CAL.add(t, b)


@PROPS
@given(t=instants, a=positive, b=positive)
def test_add_is_additive(t: int, a: int, b: int) -> None:
    assert CAL.add(CAL.add(t, a), b) == CAL.add(t, a + b)


@PROPS
@given(t=instants, n=st.integers(1, 60 * DAY), cal=st.sampled_from([CAL, HANOI, SUMMER_FIRST]))
def test_positive_add_lands_within_an_office_period(t: int, n: int, cal: WorkingCalendar) -> None:
    due = cal.add(t, n)
    assert due > t
    assert in_office_period(cal, due), local(due)


@PROPS
@given(t=instants, n=durations)
def test_between_undoes_add(t: int, n: int) -> None:
    assert CAL.between(t, CAL.add(t, n)) == n


@PROPS
@given(a=instants, b=instants, c=instants)
def test_between_is_additive_over_a_middle_point(a: int, b: int, c: int) -> None:
    assert CAL.between(a, b) + CAL.between(b, c) == pytest.approx(CAL.between(a, c), abs=1e-6)
    assert CAL.between(a, c) == -CAL.between(c, a)


@PROPS
@given(a=instants, b=instants)
def test_between_is_bounded_by_elapsed_time(a: int, b: int) -> None:
    a, b = sorted((a, b))
    assert 0 <= CAL.between(a, b) <= b - a


@PROPS
@given(t=instants)
def test_add_zero_is_t(t: int) -> None:
    assert CAL.add(t, 0) == t


@PROPS
@given(t=instants)
def test_next_working_instant_is_the_earliest_working_instant(t: int) -> None:
    nxt = CAL.next_working_instant(t)
    assert nxt >= t
    assert CAL.is_working_time(nxt)
    assert CAL.between(t, nxt) == 0
    assert CAL.add(t, 1) == nxt + 1


# -- the table's bounds --------------------------------------------------------


def weekdays() -> WorkingCalendar:
    """A calendar of bare weekdays, quick to build over a century."""
    return WorkingCalendar(
        package_working_day=lambda d: d.weekday() < 5, first_year=2026, last_year=2026
    )


@pytest.mark.parametrize(
    "instant",
    [
        datetime(7000, 6, 1, tzinfo=VN_TZ).timestamp(),
        datetime(9999, 12, 31, tzinfo=VN_TZ).timestamp(),
        datetime(1970, 1, 1, tzinfo=VN_TZ).timestamp(),
        1e300,
        float("nan"),
    ],
)
def test_an_instant_outside_the_years_is_refused_and_grows_nothing(instant: float) -> None:
    cal = weekdays()
    start = vn("2026-03-16 09:00")
    for call in (
        lambda: cal.between(start, instant),
        lambda: cal.add(instant, HOUR),
        lambda: cal.is_working_time(instant),
        lambda: cal.next_working_instant(instant),
    ):
        with pytest.raises(OutsideCalendar, match="outside the working calendar's years 1999–2102"):
            call()
    assert cal.years == (2026, 2026)


def test_a_deadline_beyond_the_last_year_is_refused() -> None:
    cal = weekdays()
    with pytest.raises(OutsideCalendar, match="working seconds after 2102-"):
        cal.add_days(vn("2102-12-30 09:00"), 10)
    assert cal.years == (2026, LAST_YEAR)
    with pytest.raises(OutsideCalendar, match="next working instant after 2102-12-31"):
        cal.next_working_instant(vn("2102-12-31 18:00"))


def test_every_event_year_and_the_longest_allotment_fit() -> None:
    cal = weekdays()
    # the earliest event instant (still 1999 in Hà Nội) and the last day's longest allotment
    first = datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=14))).timestamp()
    assert cal.next_working_instant(first) == vn("2000-01-03 08:00")
    due = cal.add_days(vn("2100-12-31 16:00"), MAX_ALLOTTED_DAYS)
    assert datetime.fromtimestamp(due, VN_TZ).year == 2102
    assert cal.years == (FIRST_YEAR, LAST_YEAR)


def test_an_instant_within_the_years_grows_the_table_to_its_year_only() -> None:
    cal = weekdays()
    cal.between(vn("2026-03-16 09:00"), vn("2060-06-01 09:00"))
    assert cal.years == (2026, 2061)


def test_the_table_is_built_within_the_years_only() -> None:
    with pytest.raises(ValueError, match="1999–2102"):
        WorkingCalendar(package_working_day=lambda d: True, first_year=1990, last_year=2000)
