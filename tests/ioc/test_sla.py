"""The SLA timeline of one dossier: due times, pauses, states, level bits,
transition instants and finish classes (DESIGN "Precise SLA arithmetic").

Dates are in March 2026 (no holidays): Fri 13, Sat 14, Mon 16 ... Fri 20,
Mon 23 March."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ
from ioc.sla import (
    AGE_LABELS,
    AGE_SHIFT,
    AT_RISK,
    B_AT_RISK,
    B_ON_TRACK,
    B_OVERDUE,
    B_PAUSED,
    EARLY,
    INF,
    LATE,
    ON_TIME,
    ON_TRACK,
    OPEN,
    OVERDUE,
    OVERDUE_NO_APOLOGY,
    PAUSED,
    STRICT,
    WITHIN_DEADLINE,
    Timeline,
    pair_pauses,
)

HOUR = 3600
DAY = 8 * HOUR
CAL = WorkingCalendar()  # built once: it reads the holidays package


def vn(text: str) -> float:
    """Epoch seconds of a local (UTC+7) time written ``YYYY-MM-DD HH:MM[:SS]``."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=VN_TZ).timestamp()


def local(t: float | None) -> str:
    if t is None or t == INF:
        return str(t)
    dt = datetime.fromtimestamp(t, VN_TZ)
    return dt.strftime("%a %Y-%m-%d %H:%M:%S.%f")


def timeline(
    received: str,
    allotted: float = DAY,
    requests: Sequence[str] = (),
    supplied: Sequence[str] = (),
    end: str | None = None,
    apology: str | None = None,
    share: float = 0.8,
    cutoff: int | None = None,
) -> Timeline:
    r = vn(received)
    return Timeline(
        CAL,
        r,
        CAL.start_instant(r, cutoff),
        allotted,
        [vn(x) for x in requests],
        [vn(x) for x in supplied],
        end=INF if end is None else vn(end),
        apology=INF if apology is None else vn(apology),
        share=share,
    )


def age_label(mask: int) -> str | None:
    """The overdue-age bucket set in a mask, if any."""
    labels = [label for i, label in enumerate(AGE_LABELS) if mask & (1 << (AGE_SHIFT + i))]
    assert len(labels) <= 1
    return labels[0] if labels else None


# -- due times ----------------------------------------------------------------------


def test_due_without_pauses() -> None:
    tl = timeline("2026-03-16 09:00", 3 * DAY)
    assert tl.start == vn("2026-03-16 09:00")
    assert tl.due(vn("2026-03-16 10:00")) == vn("2026-03-19 09:00")
    assert tl.due(vn("2026-03-16 09:00")) == vn("2026-03-19 09:00")


def test_the_due_time_before_the_clock_starts_ignores_a_later_pause() -> None:
    # received Saturday; a supplement asked at 11:00 and supplied on Monday
    tl = timeline("2026-03-14 10:00", requests=["2026-03-14 11:00"], supplied=["2026-03-16 10:00"])
    assert tl.due(vn("2026-03-14 10:30")) == vn("2026-03-16 17:00")  # no pause known yet
    assert tl.due(vn("2026-03-14 12:00")) is None  # paused
    assert tl.due(vn("2026-03-16 11:00")) == vn("2026-03-17 10:00")  # resumed Monday 10:00


def test_due_of_the_design_examples() -> None:
    assert timeline("2026-03-13 15:00").due(vn("2026-03-13 16:00")) == vn("2026-03-16 15:00")
    saturday = timeline("2026-03-14 10:00")
    assert saturday.due(vn("2026-03-14 11:00")) == vn("2026-03-16 17:00")  # before the clock starts
    assert saturday.due(vn("2026-03-16 09:00")) == vn("2026-03-16 17:00")
    lunch = timeline("2026-03-16 12:30")
    assert lunch.start == vn("2026-03-16 13:00")
    assert lunch.due(vn("2026-03-16 14:00")) == vn("2026-03-17 12:00")


def test_due_in_working_hours() -> None:
    tl = timeline("2026-03-16 16:00", 2 * HOUR)
    assert tl.due(vn("2026-03-16 16:30")) == vn("2026-03-17 09:00")


def test_cutoff_moves_the_start_and_the_due() -> None:
    tl = timeline("2026-03-16 15:30", 8 * HOUR, cutoff=15 * HOUR)
    assert tl.start == vn("2026-03-17 08:00")
    assert tl.due(vn("2026-03-16 16:00")) == vn("2026-03-17 17:00")
    assert tl.state(vn("2026-03-16 16:00")) == ON_TRACK
    assert tl.consumed(vn("2026-03-16 16:59")) == 0


def test_a_pause_before_the_clock_starts_changes_nothing() -> None:
    # After the cut-off the clock starts Tuesday 08:00; a supplement asked and
    # given on Monday afternoon is over before then.
    tl = timeline(
        "2026-03-16 15:30",
        8 * HOUR,
        requests=["2026-03-16 15:40"],
        supplied=["2026-03-16 16:00"],
        cutoff=15 * HOUR,
    )
    assert tl.consumed(vn("2026-03-16 17:00")) == 0
    assert tl.consumed(vn("2026-03-17 12:00")) == 4 * HOUR
    assert tl.due(vn("2026-03-17 09:00")) == vn("2026-03-17 17:00")


def test_pause_removes_the_wait_and_moves_the_due() -> None:
    # 5 h used Mon 09:00-15:00; paused until Wed 10:00; 19 h left: Wed 6 h, Thu 8 h, Fri 5 h.
    tl = timeline(
        "2026-03-16 09:00", 3 * DAY, requests=["2026-03-16 15:00"], supplied=["2026-03-18 10:00"]
    )
    assert tl.due(vn("2026-03-16 14:00")) == vn("2026-03-19 09:00")  # before the pause
    assert tl.due(vn("2026-03-18 11:00")) == vn("2026-03-20 14:00")
    assert tl.consumed(vn("2026-03-18 10:00")) == 5 * HOUR
    assert tl.consumed(vn("2026-03-20 14:00")) == 3 * DAY


def test_no_due_while_paused() -> None:
    tl = timeline(
        "2026-03-16 09:00", 3 * DAY, requests=["2026-03-16 15:00"], supplied=["2026-03-18 10:00"]
    )
    for t in ("2026-03-16 15:00", "2026-03-17 10:00", "2026-03-18 09:59:59"):
        assert tl.paused(vn(t))
        assert tl.state(vn(t)) == PAUSED
        assert tl.due(vn(t)) is None
    assert not tl.paused(vn("2026-03-18 10:00"))
    assert tl.due(vn("2026-03-18 10:00")) is not None


def test_an_unanswered_request_pauses_for_good() -> None:
    tl = timeline("2026-03-16 09:00", DAY, requests=["2026-03-16 10:00"])
    assert tl.state(vn("2026-04-30 10:00")) == PAUSED
    assert tl.due(vn("2026-04-30 10:00")) is None
    assert tl.consumed(vn("2026-04-30 10:00")) == HOUR


def test_resumption_adds_the_remaining_time_from_the_resumption_instant() -> None:
    # 4 h used Mon 08:00-12:00, then supplied on Saturday: 4 h left from Monday 08:00.
    tl = timeline(
        "2026-03-16 08:00", DAY, requests=["2026-03-16 12:00"], supplied=["2026-03-21 10:00"]
    )
    assert tl.due(vn("2026-03-21 11:00")) == vn("2026-03-23 12:00")
    # Supplied during the lunch break: the remaining 4 h start at 13:00.
    lunch = timeline(
        "2026-03-16 08:00", DAY, requests=["2026-03-16 10:00"], supplied=["2026-03-17 12:15"]
    )
    # 6 h left from 13:00: Tue 13:00-17:00, Wed 08:00-10:00
    assert lunch.due(vn("2026-03-17 12:30")) == vn("2026-03-18 10:00")


def test_several_pauses_add_up() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        DAY,
        requests=["2026-03-16 09:00", "2026-03-17 09:00"],
        supplied=["2026-03-16 14:00", "2026-03-17 15:00"],
    )
    # Mon 08-09 (1 h), 14-17 (3 h), Tue 08-09 (1 h), 15-17 (2 h), Wed 08-09 (1 h)
    assert tl.consumed(vn("2026-03-17 17:00")) == 7 * HOUR
    assert tl.due(vn("2026-03-17 16:00")) == vn("2026-03-18 09:00")


# -- states ----------------------------------------------------------------------


def test_at_risk_at_the_default_share() -> None:
    tl = timeline("2026-03-16 08:00", DAY)  # 0.8 x 8 h = 6 h 24 min: Mon 15:24
    assert tl.state(vn("2026-03-16 15:23:59")) == ON_TRACK
    assert tl.state(vn("2026-03-16 15:24")) == AT_RISK
    assert tl.consumed(vn("2026-03-16 15:24")) == pytest.approx(0.8 * DAY)


def test_at_risk_at_another_share() -> None:
    tl = timeline("2026-03-16 08:00", DAY, share=0.5)  # 4 h: Mon 12:00
    assert tl.state(vn("2026-03-16 11:59:59")) == ON_TRACK
    assert tl.state(vn("2026-03-16 12:00")) == AT_RISK
    assert tl.state(vn("2026-03-16 12:30")) == AT_RISK


def test_overdue_strictly_after_due() -> None:
    tl = timeline("2026-03-16 08:00", DAY)
    due = tl.due(vn("2026-03-16 09:00"))
    assert due == vn("2026-03-16 17:00")
    assert tl.state(due) == AT_RISK
    assert tl.state(due + 1) == OVERDUE
    assert tl.state(due + STRICT) == OVERDUE


def test_states_across_a_weekend() -> None:
    tl = timeline("2026-03-13 15:00", DAY)  # due Mon 15:00
    assert tl.state(vn("2026-03-13 15:00")) == ON_TRACK
    assert tl.state(vn("2026-03-14 12:00")) == ON_TRACK
    assert tl.consumed(vn("2026-03-14 12:00")) == 2 * HOUR
    assert tl.consumed(vn("2026-03-15 23:59")) == 2 * HOUR
    assert tl.state(vn("2026-03-16 13:23:59")) == ON_TRACK  # 6 h 23 min 59 s used
    assert tl.state(vn("2026-03-16 13:24")) == AT_RISK
    assert tl.state(vn("2026-03-16 15:00")) == AT_RISK
    assert tl.state(vn("2026-03-16 15:00:01")) == OVERDUE


def test_overdue_over_a_weekend_without_working_time() -> None:
    tl = timeline("2026-03-20 08:00", DAY)  # due Fri 17:00
    for t in ("2026-03-20 17:00:01", "2026-03-21 10:00", "2026-03-22 23:00"):
        assert tl.state(vn(t)) == OVERDUE
        assert age_label(tl.mask(vn(t))) == "0-1"


def test_a_dossier_is_open_from_receipt_until_its_finish() -> None:
    tl = timeline("2026-03-16 09:00", DAY, end="2026-03-16 11:00")
    assert tl.state(vn("2026-03-16 08:59")) is None
    assert tl.is_open(vn("2026-03-16 09:00"))
    assert tl.state(vn("2026-03-16 10:59")) == ON_TRACK
    assert tl.state(vn("2026-03-16 11:00")) is None
    assert tl.mask(vn("2026-03-16 11:00")) == 0
    assert tl.consumed(vn("2026-03-17 11:00")) == 2 * HOUR


def test_paused_wins_over_overdue() -> None:
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-17 10:00"])
    assert tl.state(vn("2026-03-17 09:00")) == OVERDUE
    assert tl.state(vn("2026-03-17 10:00")) == PAUSED


def test_resumed_after_the_due_is_overdue_at_once() -> None:
    tl = timeline(
        "2026-03-16 08:00", DAY, requests=["2026-03-17 10:00"], supplied=["2026-03-18 10:00"]
    )
    assert tl.state(vn("2026-03-18 10:00")) == OVERDUE
    assert tl.due(vn("2026-03-18 10:00")) == vn("2026-03-16 17:00")


# -- level bits ----------------------------------------------------------------------


def test_mask_of_an_open_dossier_on_track() -> None:
    tl = timeline("2026-03-16 08:00", DAY)
    assert tl.mask(vn("2026-03-16 09:00")) == OPEN | B_ON_TRACK | WITHIN_DEADLINE
    assert tl.mask(vn("2026-03-16 07:00")) == 0  # before receipt


def test_mask_at_risk_is_still_within_deadline() -> None:
    tl = timeline("2026-03-16 08:00", DAY)
    assert tl.mask(vn("2026-03-16 16:00")) == OPEN | B_AT_RISK | WITHIN_DEADLINE


def test_mask_overdue_without_apology() -> None:
    tl = timeline("2026-03-16 08:00", DAY)
    mask = tl.mask(vn("2026-03-17 09:00"))
    assert mask & OPEN and mask & B_OVERDUE and mask & OVERDUE_NO_APOLOGY
    assert not mask & (WITHIN_DEADLINE | B_AT_RISK | B_ON_TRACK | B_PAUSED)
    assert age_label(mask) == "0-1"


def test_mask_overdue_with_an_apology() -> None:
    tl = timeline("2026-03-16 08:00", DAY, apology="2026-03-17 10:00")
    assert tl.mask(vn("2026-03-17 09:59")) & OVERDUE_NO_APOLOGY
    assert not tl.mask(vn("2026-03-17 10:00")) & OVERDUE_NO_APOLOGY
    assert tl.mask(vn("2026-03-17 10:00")) & B_OVERDUE


def test_mask_paused_within_deadline() -> None:
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-16 10:00"])
    assert tl.mask(vn("2026-03-17 10:00")) == OPEN | B_PAUSED | WITHIN_DEADLINE


def test_mask_paused_after_the_due_is_not_within_deadline() -> None:
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-17 10:00"])
    assert tl.mask(vn("2026-03-17 11:00")) == OPEN | B_PAUSED


def test_second_supplement_request_leaves_the_deadline() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        3 * DAY,
        requests=["2026-03-16 09:00", "2026-03-16 14:00"],
        supplied=["2026-03-16 10:00", "2026-03-16 15:00"],
    )
    assert tl.mask(vn("2026-03-16 11:00")) & WITHIN_DEADLINE
    assert tl.mask(vn("2026-03-16 13:59")) & WITHIN_DEADLINE
    assert tl.mask(vn("2026-03-16 14:00")) == OPEN | B_PAUSED
    assert tl.mask(vn("2026-03-16 16:00")) == OPEN | B_ON_TRACK


@pytest.mark.parametrize(
    ("past_due", "label"),
    [
        (1, "0-1"),
        (DAY, "0-1"),
        (DAY + 1, "1-3"),
        (3 * DAY, "1-3"),
        (3 * DAY + 1, "3-10"),
        (10 * DAY, "3-10"),
        (10 * DAY + 1, "10-30"),
        (30 * DAY, "10-30"),
        (30 * DAY + 1, "30+"),
    ],
)
def test_overdue_age_buckets_in_working_days_past_due(past_due: int, label: str) -> None:
    tl = timeline("2026-03-13 15:00", DAY)  # due Mon 16 Mar 15:00, mid-period
    due = vn("2026-03-16 15:00")
    t = CAL.add(due, past_due)
    assert tl.consumed(t) - tl.allotted == past_due
    assert age_label(tl.mask(t)) == label


def test_overdue_age_bounds_by_the_calendar() -> None:
    tl = timeline("2026-03-13 15:00", DAY)
    assert age_label(tl.mask(vn("2026-03-17 15:00"))) == "0-1"
    assert age_label(tl.mask(vn("2026-03-17 15:00:01"))) == "1-3"
    assert age_label(tl.mask(vn("2026-03-19 15:00"))) == "1-3"
    assert age_label(tl.mask(vn("2026-03-19 15:00:01"))) == "3-10"
    assert age_label(tl.mask(vn("2026-03-30 15:00"))) == "3-10"
    assert age_label(tl.mask(vn("2026-03-30 15:00:01"))) == "10-30"


def test_no_age_bucket_unless_overdue() -> None:
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-18 10:00"])
    assert age_label(tl.mask(vn("2026-03-16 16:00"))) is None
    assert age_label(tl.mask(vn("2026-03-18 11:00"))) is None  # paused


# -- next_change and since -------------------------------------------------------


def test_next_change_is_the_at_risk_instant() -> None:
    tl = timeline("2026-03-16 08:00", DAY)
    t = vn("2026-03-16 08:00")
    change = tl.next_change(t)
    assert change == vn("2026-03-16 15:24")
    assert tl.mask(change - 1) == tl.mask(t)
    assert tl.mask(change) == OPEN | B_AT_RISK | WITHIN_DEADLINE


def test_next_change_is_just_after_the_due() -> None:
    tl = timeline("2026-03-16 08:00", DAY)
    due = vn("2026-03-16 17:00")
    change = tl.next_change(vn("2026-03-16 15:24"))
    assert change == pytest.approx(due + STRICT)
    assert change > due
    assert tl.mask(due) == OPEN | B_AT_RISK | WITHIN_DEADLINE
    assert tl.mask(change) & B_OVERDUE


def test_next_change_is_just_after_an_age_bound_inside_a_period() -> None:
    tl = timeline("2026-03-13 15:00", DAY)  # due Mon 15:00; 1 day past due Tue 15:00
    change = tl.next_change(vn("2026-03-16 15:00:01"))
    assert change == pytest.approx(vn("2026-03-17 15:00") + STRICT)
    assert age_label(tl.mask(vn("2026-03-17 15:00"))) == "0-1"
    assert age_label(tl.mask(change)) == "1-3"


def test_next_change_reaches_an_age_bound_at_the_end_of_a_day() -> None:
    tl = timeline("2026-03-16 08:00", DAY)  # due Mon 17:00; 1 day past due Tue 17:00
    assert age_label(tl.mask(vn("2026-03-18 09:00"))) == "1-3"  # Wednesday morning
    t = vn("2026-03-16 17:00") + STRICT
    seen = []
    while t < vn("2026-03-18 12:00"):
        seen.append(age_label(tl.mask(t)))
        t = tl.next_change(t)
    assert "1-3" in seen  # walking the changes must not miss the bucket


def test_next_change_with_an_allotment_in_odd_seconds() -> None:
    tl = timeline("2026-03-16 08:00", HOUR + 1)  # at risk after 2880.8 s
    change = tl.next_change(vn("2026-03-16 08:00"))
    assert tl.state(change) == AT_RISK
    assert tl.next_change(change) < INF


def test_next_change_at_facts() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        3 * DAY,
        requests=["2026-03-16 09:00"],
        supplied=["2026-03-16 10:00"],
        end="2026-03-16 11:00",
    )
    assert tl.next_change(vn("2026-03-16 08:30")) == vn("2026-03-16 09:00")
    assert tl.mask(vn("2026-03-16 09:00")) & B_PAUSED
    assert tl.next_change(vn("2026-03-16 09:00")) == vn("2026-03-16 10:00")
    assert tl.mask(vn("2026-03-16 10:00")) & B_ON_TRACK
    assert tl.next_change(vn("2026-03-16 10:00")) == vn("2026-03-16 11:00")
    assert tl.mask(vn("2026-03-16 11:00")) == 0
    assert tl.next_change(vn("2026-03-16 11:00")) == INF


def test_next_change_at_the_apology_and_the_second_request() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        DAY,
        requests=["2026-03-17 09:00", "2026-03-17 10:00"],
        apology="2026-03-17 08:30",
    )
    assert tl.next_change(vn("2026-03-17 08:00")) == vn("2026-03-17 08:30")
    assert tl.next_change(vn("2026-03-17 08:30")) == vn("2026-03-17 09:00")


def test_since_gives_the_exact_transition_instant() -> None:
    tl = timeline(
        "2026-03-16 08:00", DAY, requests=["2026-03-17 09:00"], supplied=["2026-03-17 10:00"]
    )
    assert tl.since(vn("2026-03-16 10:00")) == vn("2026-03-16 08:00")
    assert tl.since(vn("2026-03-16 16:00")) == vn("2026-03-16 15:24")  # at risk
    assert tl.since(vn("2026-03-17 08:30")) == vn("2026-03-16 17:00")  # overdue: the due
    assert tl.since(vn("2026-03-17 09:30")) == vn("2026-03-17 09:00")  # paused
    assert tl.since(vn("2026-03-17 11:00")) == vn("2026-03-17 10:00")  # overdue again
    assert tl.since(vn("2026-03-15 10:00")) == vn("2026-03-15 10:00")  # not open


def test_since_after_resuming_below_the_risk_share() -> None:
    tl = timeline(
        "2026-03-16 08:00", DAY, requests=["2026-03-16 10:00"], supplied=["2026-03-17 10:00"]
    )
    assert tl.since(vn("2026-03-17 11:00")) == vn("2026-03-17 10:00")  # on track again
    # 2 h used Monday; 4 h 24 min more reach 80 %: Tue 10:00 + 2 h + 2 h 24 min
    assert tl.since(vn("2026-03-17 16:00")) == vn("2026-03-17 15:24")


def test_since_of_an_on_track_dossier_before_its_clock_starts() -> None:
    tl = timeline("2026-03-14 10:00", DAY)
    assert tl.since(vn("2026-03-14 11:00")) == vn("2026-03-14 10:00")


def test_since_of_an_on_track_dossier_received_at_lunch() -> None:
    tl = timeline("2026-03-16 12:30", DAY)
    assert tl.state(vn("2026-03-16 12:45")) == ON_TRACK
    assert tl.state(vn("2026-03-16 14:00")) == ON_TRACK
    assert local(tl.since(vn("2026-03-16 14:00"))) == local(vn("2026-03-16 12:30"))


# -- finish classes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "klass"),
    [
        ("2026-03-17 16:00", EARLY),  # the day before the due day
        ("2026-03-18 08:00", ON_TIME),  # the due day, before the due hour
        ("2026-03-18 17:00", ON_TIME),  # finish == due
        ("2026-03-18 17:00:01", LATE),
        ("2026-03-19 09:00", LATE),
    ],
)
def test_finish_classes(finish: str, klass: str) -> None:
    tl = timeline("2026-03-16 08:00", 3 * DAY, end=finish)  # due Wed 17:00
    assert tl.due_at_finish() == vn("2026-03-18 17:00")
    assert tl.finish_class() == klass


def test_early_is_by_local_calendar_day() -> None:
    # Due Tue 09:00 (Tue 02:00 UTC).
    tl = timeline("2026-03-16 08:00", DAY + HOUR, end="2026-03-16 23:30")
    assert tl.due_at_finish() == vn("2026-03-17 09:00")
    assert tl.finish_class() == EARLY
    # Tue 00:30 local is Mon 17:30 UTC: a UTC day before the due, but the same local day.
    tl = timeline("2026-03-16 08:00", DAY + HOUR, end="2026-03-17 00:30")
    assert tl.finish_class() == ON_TIME


def test_more_than_one_supplement_request_is_late() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        10 * DAY,
        requests=["2026-03-16 09:00", "2026-03-16 11:00"],
        supplied=["2026-03-16 10:00", "2026-03-16 12:00"],
        end="2026-03-17 10:00",
    )
    assert tl.end < tl.due_at_finish()
    assert tl.finish_class() == LATE


def test_one_supplement_request_is_not_late() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        DAY,
        requests=["2026-03-16 09:00"],
        supplied=["2026-03-17 09:00"],
        end="2026-03-17 15:00",
    )
    assert tl.due_at_finish() == vn("2026-03-17 17:00")  # 7 h left from Tue 09:00
    assert tl.finish_class() == ON_TIME


def test_finished_while_paused_is_judged_as_if_resumed_at_the_finish() -> None:
    # 4 h used by Mon 12:00; finished Wed 10:00 while paused: due Wed 15:00.
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-16 12:00"], end="2026-03-18 10:00")
    assert tl.due_at_finish() == vn("2026-03-18 15:00")
    assert tl.finish_class() == ON_TIME
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-16 12:00"], end="2026-03-16 14:00")
    assert tl.due_at_finish() == vn("2026-03-17 09:00")  # 4 h left: Mon 14-17, Tue 08-09
    assert tl.finish_class() == EARLY


def test_finished_while_paused_after_the_due_is_late() -> None:
    tl = timeline("2026-03-16 08:00", DAY, requests=["2026-03-17 10:00"], end="2026-03-18 10:00")
    assert tl.due_at_finish() == vn("2026-03-16 17:00")
    assert tl.finish_class() == LATE


def test_finished_before_the_clock_starts_is_early() -> None:
    tl = timeline("2026-03-14 10:00", DAY, end="2026-03-14 11:00")
    assert tl.due_at_finish() == vn("2026-03-16 17:00")
    assert tl.finish_class() == EARLY


# -- pair_pauses ------------------------------------------------------------------


def test_pair_pauses_in_time_order() -> None:
    assert pair_pauses([5.0, 1.0], [7.0, 3.0]) == ([(1.0, 3.0), (5.0, 7.0)], 0)


def test_pair_pauses_leaves_an_open_pause_to_infinity() -> None:
    assert pair_pauses([1.0], []) == ([(1.0, INF)], 0)
    assert pair_pauses([], []) == ([], 0)


def test_pair_pauses_counts_a_stray_receipt() -> None:
    assert pair_pauses([2.0], [1.0, 3.0]) == ([(2.0, 3.0)], 1)
    assert pair_pauses([], [4.0]) == ([], 1)


def test_pair_pauses_counts_a_second_request_while_paused() -> None:
    assert pair_pauses([1.0, 2.0], [3.0]) == ([(1.0, 3.0)], 1)
    assert pair_pauses([1.0, 2.0], [3.0, 4.0]) == ([(1.0, 3.0)], 2)


def test_second_request_while_paused_keeps_one_pause_and_counts_twice() -> None:
    tl = timeline(
        "2026-03-16 08:00",
        3 * DAY,
        requests=["2026-03-16 09:00", "2026-03-16 10:00"],
        supplied=["2026-03-16 11:00"],
        end="2026-03-16 16:00",
    )
    assert tl.pauses == [(vn("2026-03-16 09:00"), vn("2026-03-16 11:00"))]
    assert tl.consumed(vn("2026-03-16 16:00")) == 5 * HOUR  # 08-09, 11-12, 13-16
    assert tl.requests_by(vn("2026-03-16 09:30")) == 1
    assert tl.requests_by(vn("2026-03-16 10:30")) == 2
    assert not tl.mask(vn("2026-03-16 10:30")) & WITHIN_DEADLINE
    assert tl.finish_class() == LATE


# -- properties ------------------------------------------------------------------------

R_LO = int(vn("2026-01-01 00:00"))
R_HI = int(vn("2027-01-01 00:00"))


@st.composite
def dossiers(draw: st.DrawFn) -> tuple[Timeline, list[float]]:
    """A timeline with random receipt, allotment and supplement pattern, and
    probe instants over its life."""
    received = draw(st.integers(R_LO, R_HI))
    allotted = draw(st.integers(1, 20 * DAY))
    n = draw(st.integers(0, 6))
    marks = sorted(draw(st.lists(st.integers(0, 40 * 86400), min_size=n, max_size=n)))
    requests, supplied = [], []
    for i, m in enumerate(marks):
        # alternating request / receipt, or either at random (strays, double requests)
        is_request = draw(st.booleans()) if draw(st.booleans()) else i % 2 == 0
        (requests if is_request else supplied).append(float(received + m))
    end = draw(st.one_of(st.just(INF), st.integers(received, received + 60 * 86400)))
    share = draw(st.sampled_from([0.8, 0.5, 0.9]))
    tl = Timeline(
        CAL, received, CAL.start_instant(received), allotted, requests, supplied, end, INF, share
    )
    probes = draw(st.lists(st.integers(received - 86400, received + 70 * 86400), max_size=25))
    bounds = [x for a, b in tl.pauses for x in (a, b) if x < INF]
    return tl, sorted({float(p) for p in probes} | set(bounds) | {float(received)})


@settings(max_examples=120, deadline=None, database=None)
@given(case=dossiers())
def test_consumed_is_non_decreasing(case: tuple[Timeline, list[float]]) -> None:
    tl, probes = case
    values = [tl.consumed(t) for t in probes]
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert all(v >= 0 for v in values)


@settings(max_examples=120, deadline=None, database=None)
@given(case=dossiers())
def test_consumed_is_flat_inside_pauses(case: tuple[Timeline, list[float]]) -> None:
    tl, probes = case
    for a, b in tl.pauses:
        at_pause = tl.consumed(a)
        for t in probes:
            if a <= t <= b:
                assert tl.consumed(t) == at_pause


@settings(max_examples=120, deadline=None, database=None)
@given(case=dossiers())
def test_never_overdue_while_time_is_left(case: tuple[Timeline, list[float]]) -> None:
    tl, probes = case
    for t in probes:
        state = tl.state(t)
        if tl.consumed(t) < tl.allotted:
            assert state != OVERDUE
        if state == OVERDUE:
            assert not tl.paused(t)
            due = tl.due(t)
            assert due is not None and t > due
