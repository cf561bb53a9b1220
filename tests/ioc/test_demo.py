"""The demo's pure helpers (the demo itself runs end to end in
tests/test_demo.py)."""

from __future__ import annotations

from ioc.clock import to_iso
from ioc.demo import office_opening
from tests.streams.helpers import vn, world


def test_the_demo_clock_starts_at_the_opening_of_the_office_day() -> None:
    _, calendar = world()
    assert to_iso(office_opening(vn("2026-03-17 15:20"), calendar)) == "2026-03-17T08:00:00+07:00"


def test_weekends_and_holidays_start_on_the_last_working_day() -> None:
    _, calendar = world()
    # Sunday
    assert to_iso(office_opening(vn("2026-03-22 10:00"), calendar)) == "2026-03-20T08:00:00+07:00"
    # 1 May (Friday) and 30 April are holidays
    assert to_iso(office_opening(vn("2026-05-01 10:00"), calendar)) == "2026-04-29T08:00:00+07:00"
