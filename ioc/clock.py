"""The injected clock. Pure code asks a clock for the time and never calls
``datetime.now()``, so replays and tests drive time themselves.

Time is carried as epoch seconds (``float``) in hot paths and as aware
datetimes at the edges.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

# Asia/Ho_Chi_Minh has been UTC+7 without daylight saving since 1975.
VN_TZ = timezone(timedelta(hours=7), "ICT")


class Clock(Protocol):
    def now(self) -> float:
        """Current time in epoch seconds."""
        ...


class WallClock:
    """Real time, optionally started at another instant and run faster.

    ``WallClock(start=t, speed=60)`` makes a demo live through an office day
    in eight minutes while every rule still sees consistent time.
    """

    def __init__(
        self, start: float | None = None, speed: float = 1.0, anchor: float | None = None
    ) -> None:
        # The clock reads ``start`` at real time ``anchor``.
        self._anchor = time.time() if anchor is None else anchor
        self._origin = self._anchor if start is None else start
        self._speed = speed

    def now(self) -> float:
        return self._origin + (time.time() - self._anchor) * self._speed


class ManualClock:
    """A clock that moves only when told to; for tests and recomputation."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        self._now = t

    def advance(self, seconds: float) -> None:
        self._now += seconds


class EventTimeClock:
    """Event time: the newest event timestamp observed so far, never past
    ``limit`` (a recomputation's end: an event dated later must not judge
    the other dossiers at its time).

    A replay at any speed sees the same instants it would have seen live,
    so SLA transitions fire at the same event times.
    """

    def __init__(self, start: float = 0.0, limit: float = float("inf")) -> None:
        self._now = start
        self._limit = limit

    def now(self) -> float:
        return self._now

    def observe(self, t: float) -> None:
        t = min(t, self._limit)
        if t > self._now:
            self._now = t


def parse_instant(text: str) -> float:
    """Epoch seconds from ISO 8601 with an offset; naive times are refused."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return dt.timestamp()


def to_datetime(t: float) -> datetime:
    """Aware datetime in the IOC's zone (UTC+7)."""
    return datetime.fromtimestamp(t, VN_TZ)


def to_iso(t: float) -> str:
    return to_datetime(t).isoformat()


def utc_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def build_clock(
    kind: str, start: str = "", speed: float = 1.0, anchor: float | None = None
) -> WallClock | EventTimeClock:
    """The clock an entry point runs on, from settings."""
    origin = parse_instant(start) if start else None
    if kind == "event":
        return EventTimeClock(origin or 0.0)
    return WallClock(origin, speed, anchor)
