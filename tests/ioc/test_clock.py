"""The injected clock. Real time is replaced by a controllable stand-in, so
nothing here depends on how fast the test runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from ioc import clock as clock_module
from ioc.clock import (
    VN_TZ,
    EventTimeClock,
    ManualClock,
    WallClock,
    build_clock,
    parse_instant,
    to_datetime,
    to_iso,
    utc_datetime,
)

T = 1_773_626_400.0  # 2026-03-16T09:00:00+07:00


class RealTime:
    """Stands in for the ``time`` module inside ``ioc.clock``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch) -> RealTime:
    fake = RealTime(1_000_000.0)
    monkeypatch.setattr(clock_module, "time", SimpleNamespace(time=fake.time))
    return fake


# -- WallClock ----------------------------------------------------------------------


def test_wall_clock_follows_real_time_by_default(real: RealTime) -> None:
    clock = WallClock()
    assert clock.now() == 1_000_000.0
    real.now += 90
    assert clock.now() == 1_000_090.0


def test_wall_clock_starts_at_another_instant(real: RealTime) -> None:
    clock = WallClock(start=T)
    assert clock.now() == T
    real.now += 10
    assert clock.now() == T + 10


def test_wall_clock_runs_faster(real: RealTime) -> None:
    clock = WallClock(start=T, speed=60)
    real.now += 8 * 60  # eight real minutes: an office day
    assert clock.now() == pytest.approx(T + 8 * 3600)


def test_wall_clock_reads_start_at_its_anchor(real: RealTime) -> None:
    clock = WallClock(start=T, speed=2, anchor=real.now - 100)
    assert clock.now() == pytest.approx(T + 200)


def test_two_clocks_with_the_same_anchor_agree(real: RealTime) -> None:
    anchor = real.now
    first = WallClock(start=T, speed=60, anchor=anchor)
    real.now += 37.5  # the second process starts later
    second = WallClock(start=T, speed=60, anchor=anchor)
    assert first.now() == second.now() == pytest.approx(T + 37.5 * 60)
    real.now += 100
    assert first.now() == second.now()


def test_two_clocks_without_an_anchor_drift_apart(real: RealTime) -> None:
    first = WallClock(start=T, speed=60)
    real.now += 1
    second = WallClock(start=T, speed=60)
    assert first.now() - second.now() == pytest.approx(60)


# -- ManualClock and EventTimeClock ----------------------------------------------------


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T)
    assert clock.now() == T
    clock.advance(90)
    assert clock.now() == T + 90
    clock.set(T - 5)
    assert clock.now() == T - 5
    assert ManualClock().now() == 0.0


def test_event_time_clock_keeps_the_newest_event_time() -> None:
    clock = EventTimeClock()
    assert clock.now() == 0.0
    clock.observe(T)
    assert clock.now() == T
    clock.observe(T + 60)
    assert clock.now() == T + 60


def test_event_time_clock_never_goes_back() -> None:
    clock = EventTimeClock(T)
    clock.observe(T - 3600)  # a late event
    assert clock.now() == T
    clock.observe(T)
    assert clock.now() == T


# -- instants -----------------------------------------------------------------------------


def test_parse_instant_with_offsets() -> None:
    assert parse_instant("2026-03-16T09:00:00+07:00") == T
    assert parse_instant("2026-03-16T02:00:00+00:00") == T
    assert parse_instant("2026-03-16T02:00:00Z") == T
    assert parse_instant("2026-03-16T09:00:00.250+07:00") == T + 0.25


@pytest.mark.parametrize("text", ["2026-03-16T09:00:00", "2026-03-16 09:00", "2026-03-16"])
def test_parse_instant_refuses_naive_times(text: str) -> None:
    with pytest.raises(ValueError, match="time without offset"):
        parse_instant(text)


def test_parse_instant_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        parse_instant("yesterday")


def test_to_iso_is_in_plus_seven() -> None:
    assert to_iso(T) == "2026-03-16T09:00:00+07:00"
    assert to_iso(T - 9 * 3600) == "2026-03-16T00:00:00+07:00"
    assert parse_instant(to_iso(T + 0.5)) == T + 0.5


def test_to_datetime_and_utc_datetime() -> None:
    local = to_datetime(T)
    assert local.utcoffset() == timedelta(hours=7)
    assert (local.hour, local.tzinfo) == (9, VN_TZ)
    utc = utc_datetime(T)
    assert utc.utcoffset() == timedelta(0)
    assert utc.hour == 2
    assert local == utc
    assert VN_TZ.utcoffset(datetime(2026, 7, 1)) == timedelta(hours=7)  # no daylight saving


# -- build_clock -------------------------------------------------------------------------


def test_build_event_clock() -> None:
    clock = build_clock("event", "2026-03-16T09:00:00+07:00")
    assert isinstance(clock, EventTimeClock)
    assert clock.now() == T
    assert build_clock("event").now() == 0.0


def test_build_wall_clock(real: RealTime) -> None:
    clock = build_clock("wall", "2026-03-16T09:00:00+07:00", speed=10, anchor=real.now)
    assert isinstance(clock, WallClock)
    real.now += 6
    assert clock.now() == pytest.approx(T + 60)


def test_build_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="time without offset"):
        build_clock("wall", "2026-03-16T09:00:00")
