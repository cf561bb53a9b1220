"""The SLA clock of one dossier, as a timeline over its facts.

A dossier's facts (when it was received, when supplements were requested and
received, when it finished, ...) are timestamped, so its SLA state is a
function of time that can be built once and read at any instant: the state a
wall screen shows now, the state at a given past instant, the instants at
which it will change next. Facts only affect the timeline after their own
time, so the state at ``t`` depends only on facts up to ``t``.

Rules (DESIGN "Precise SLA arithmetic"):

- the clock starts at the next instant of working time after receipt (or
  the next working day for a receipt after the procedure's cut-off);
- consumed = working time since the start, minus working time paused while
  a supplement is awaited;
- due = the earliest instant consumed reaches the allotted time if no
  further pause happens; a paused dossier has no due time;
- overdue: open, not paused, now > due; at risk: open, not overdue,
  consumed >= share x allotted; paused wins over both;
- finished early (a local calendar day before the due day), on time
  (finish <= due) or late (finish > due, or more than one supplement).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime

from ioc.calendar import WorkingCalendar
from ioc.clock import VN_TZ

INF = float("inf")
# Transitions that happen strictly after an instant ("now > due") are
# scheduled this much later, so a tick at exactly that instant sees no change.
STRICT = 0.001
# Float slack when comparing consumed working time with a threshold.
EPS = 1e-6

# SLA states of an open dossier, and the classes of a closed one.
ON_TRACK, AT_RISK, OVERDUE, PAUSED = "on_track", "at_risk", "overdue", "paused"
EARLY, ON_TIME, LATE = "early", "on_time", "late"
WITHDRAWN, REJECTED = "withdrawn", "rejected_at_intake"

# Level bits: what an open dossier counts towards at an instant.
OPEN = 1 << 0
B_ON_TRACK = 1 << 1
B_AT_RISK = 1 << 2
B_OVERDUE = 1 << 3
B_PAUSED = 1 << 4
WITHIN_DEADLINE = 1 << 5
OVERDUE_NO_APOLOGY = 1 << 6
AGE_SHIFT = 7
# Overdue age buckets in working days past due: [0,1], (1,3], (3,10], (10,30], >30.
AGE_BOUNDS_DAYS = (1, 3, 10, 30)
AGE_LABELS = ("0-1", "1-3", "3-10", "10-30", "30+")

_STATE_BIT = {ON_TRACK: B_ON_TRACK, AT_RISK: B_AT_RISK, OVERDUE: B_OVERDUE, PAUSED: B_PAUSED}


def pair_pauses(
    requests: list[float], supplied: list[float]
) -> tuple[list[tuple[float, float]], int]:
    """Pause intervals from supplement requests and receipts, in time order.

    A request opens a pause unless one is open; a receipt closes the open
    pause. Returns the intervals (the last may end at +inf) and the number of
    events that did not fit (a receipt with no open request, a second request
    while paused).
    """
    marks = sorted([(t, 0) for t in requests] + [(t, 1) for t in supplied])
    pauses: list[tuple[float, float]] = []
    opened: float | None = None
    stray = 0
    for t, kind in marks:
        if kind == 0:
            if opened is None:
                opened = t
            else:
                stray += 1
        elif opened is not None:
            pauses.append((opened, t))
            opened = None
        else:
            stray += 1
    if opened is not None:
        pauses.append((opened, INF))
    return pauses, stray


@dataclass(slots=True)
class Segment:
    start: float
    end: float
    consumed: float  # working seconds consumed at ``start``
    due: float  # when consumed reaches the allotted time, without further pauses


class Timeline:
    """The SLA clock of one dossier over time."""

    __slots__ = (
        "_cal",
        "allotted",
        "apology",
        "end",
        "pauses",
        "received",
        "requests",
        "risk",
        "segments",
        "share",
        "start",
    )

    def __init__(
        self,
        cal: WorkingCalendar,
        received: float,
        start: float,
        allotted: float,
        requests: list[float],
        supplied: list[float],
        end: float = INF,
        apology: float = INF,
        share: float = 0.8,
    ) -> None:
        self._cal = cal
        self.received = received
        self.start = start
        self.allotted = allotted
        self.requests = sorted(requests)
        self.end = end
        self.apology = apology
        self.share = share
        self.pauses, _ = pair_pauses(self.requests, supplied)
        # whole seconds, so the at-risk instant is exact in float arithmetic
        self.risk = math.ceil(share * allotted - EPS)
        self.segments = self._segments()

    def _segments(self) -> list[Segment]:
        cal, allotted = self._cal, self.allotted
        spans: list[tuple[float, float]] = []
        cur = self.start
        for a, b in self.pauses:
            a = max(a, self.start)
            if a >= self.end:
                break
            if a > cur:
                spans.append((cur, a))
            cur = max(cur, b)
            if cur >= self.end:
                break
        if cur < self.end:
            spans.append((cur, self.end))
        segments: list[Segment] = []
        consumed = 0.0
        crossed = INF
        for s, e in spans:
            if consumed < allotted:
                due = cal.add(s, allotted - consumed)
                if due <= e:
                    crossed = due
            else:
                due = crossed
            segments.append(Segment(s, e, consumed, due))
            if e < INF:
                consumed += cal.between(s, e)
        return segments

    # -- reading the timeline ---------------------------------------------------

    def _segment_at(self, t: float) -> Segment | None:
        found = None
        for seg in self.segments:
            if seg.start <= t:
                found = seg
            else:
                break
        return found

    def consumed(self, t: float) -> float:
        """Working seconds consumed by ``t`` (pauses excluded)."""
        seg = self._segment_at(min(t, self.end))
        if seg is None:
            return 0.0
        return seg.consumed + self._cal.between(seg.start, min(t, seg.end))

    def paused(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.pauses)

    def due(self, t: float) -> float | None:
        """The due instant as known at ``t``; ``None`` while paused."""
        if self.paused(t) and t < self.end:
            return None
        seg = self._segment_at(t)
        if seg is None:
            # before the clock starts: no pause has happened yet by ``t`` (a
            # pause over ``t`` is handled above; one entirely before the
            # start changes nothing), whatever comes later
            return self._cal.add(self.start, self.allotted)
        return seg.due

    def past_due(self, t: float) -> bool:
        """Consumed time has passed the allotted time (paused or not): the
        crossing happened before ``t`` and while the clock was running."""
        seg = self._segment_at(t)
        return seg is not None and t > seg.due and seg.due <= seg.end

    def is_open(self, t: float) -> bool:
        return self.received <= t < self.end

    def state(self, t: float) -> str | None:
        """SLA state of the open dossier at ``t``; ``None`` when not open."""
        if not self.is_open(t):
            return None
        if self.paused(t):
            return PAUSED
        if self.past_due(t):
            return OVERDUE
        if self.consumed(t) >= self.risk - EPS:
            return AT_RISK
        return ON_TRACK

    def requests_by(self, t: float) -> int:
        return bisect_right(self.requests, t)

    def mask(self, t: float) -> int:
        """Level bits at ``t``: open, its state, within deadline, overdue
        without an apology letter, and the overdue age bucket."""
        return self.mask_and_next(t)[0]

    def next_change(self, t: float) -> float:
        """The first instant after ``t`` at which ``mask`` may change: a fact
        (pause boundary, second supplement request, apology, end), or, inside
        the running segment, reaching the at-risk share, the due instant, or
        the next overdue-age bound."""
        return self.mask_and_next(t)[1]

    def mask_and_next(self, t: float) -> tuple[int, float]:
        """``mask(t)`` and ``next_change(t)`` in one pass (the worker's hot path)."""
        seg = self._segment_at(t)
        running = seg is not None and t < seg.end
        consumed = 0.0
        if seg is not None:
            consumed = seg.consumed + self._cal.between(seg.start, min(t, seg.end))
        nxt = self._next_fact(t)
        if running:
            assert seg is not None
            change = self._running_change(seg, t, consumed)
            if t < change < nxt:  # float fuzz can put it at t itself: never go back
                nxt = change
        if not self.received <= t < self.end:
            return 0, nxt
        past_due = seg is not None and t > seg.due and seg.due <= seg.end
        if any(a <= t < b for a, b in self.pauses):
            bits = OPEN | B_PAUSED
        elif past_due:
            bits = OPEN | B_OVERDUE
            if self.apology > t:
                bits |= OVERDUE_NO_APOLOGY
            over_days = (consumed - self.allotted - EPS) / self._cal.day_seconds
            # bucket i holds (bound[i-1], bound[i]]
            bits |= 1 << (AGE_SHIFT + bisect_left(AGE_BOUNDS_DAYS, over_days))
        elif consumed >= self.risk - EPS:
            bits = OPEN | B_AT_RISK
        else:
            bits = OPEN | B_ON_TRACK
        if not past_due and bisect_right(self.requests, t) <= 1:
            bits |= WITHIN_DEADLINE
        return bits, nxt

    def _next_fact(self, t: float) -> float:
        """The first fact instant after ``t``."""
        nxt = INF
        for c in (self.received, self.start, self.apology, self.end):
            if t < c < nxt:
                nxt = c
        for a, b in self.pauses:
            if t < a < nxt:
                nxt = a
            if t < b < nxt:
                nxt = b
        if len(self.requests) > 1 and t < self.requests[1] < nxt:
            nxt = self.requests[1]
        return nxt

    def _running_change(self, seg: Segment, t: float, consumed: float) -> float:
        cal = self._cal
        if consumed < self.risk - EPS:
            return cal.add(seg.start, self.risk - seg.consumed)
        if t <= seg.due:
            return seg.due + STRICT
        over = consumed - self.allotted
        for bound in AGE_BOUNDS_DAYS:
            if over <= bound * cal.day_seconds + EPS:
                target = self.allotted + bound * cal.day_seconds - seg.consumed
                # the age passes the bound once working time runs past the
                # instant it reaches it: after a period's end, the next start
                return cal.next_working_instant(cal.add(seg.start, target)) + STRICT
        return INF

    def since(self, t: float) -> float:
        """When the state held at ``t`` began (the exact transition instant,
        whatever the moment it was noticed)."""
        state = self.state(t)
        if state is None:
            return t
        if state == PAUSED:
            return max(a for a, b in self.pauses if a <= t < b)
        seg = self._segment_at(t)
        if seg is None:
            return self.received
        if state == OVERDUE:
            return seg.due if seg.due >= seg.start else seg.start
        if state == AT_RISK:
            if seg.consumed >= self.risk - EPS:
                return seg.start
            return self._cal.add(seg.start, self.risk - seg.consumed)
        # on track since the receipt, or since the end of the last pause
        return self.received if seg is self.segments[0] else seg.start

    # -- at the finish ----------------------------------------------------------

    def due_at_finish(self) -> float:
        """The due instant against which a finished dossier is judged. A
        dossier finished while paused is judged as if resumed at its finish."""
        f = self.end
        if self.paused(f) or self._segment_at(f) is None:
            used = self.consumed(f)
            if used >= self.allotted:
                crossed = [s.due for s in self.segments if s.due <= s.end]
                return crossed[0] if crossed else f
            return self._cal.add(max(f, self.start), self.allotted - used)
        seg = self._segment_at(f)
        assert seg is not None
        return seg.due

    def finish_class(self) -> str:
        """early, on_time or late, for a dossier that finished at ``end``."""
        due = self.due_at_finish()
        if len(self.requests) > 1 or self.end > due:
            return LATE
        finish_day = datetime.fromtimestamp(self.end, VN_TZ).date()
        due_day = datetime.fromtimestamp(due, VN_TZ).date()
        return EARLY if finish_day < due_day else ON_TIME
