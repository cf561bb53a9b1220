"""When a wall-clock worker may judge a partition's dossiers at the clock's
time, and when only at the time of the events it has read.

Live, events arrive as they happen and the worker judges every dossier at
the wall clock's time, so one falls overdue at its due time even with no
new event. Catching up on a backlog (after a restart, an outage, a first
start against a topic that already holds events) is different: judged at
the wall clock after the first batch, a dossier finished on time in a
later batch of the backlog would be reported overdue first and cleared
later; leaders would be paged for it, and the alert stage's history would
differ from a replay's. So while a partition is behind, its dossiers are
judged only up to the newest event read (``judge_at``), as a replay on event
time judges them; once it has read what the broker holds, at the clock's
time again. The transitions and KPIs are the same either way (each carries
its own instant); only the order in which they come out changes.

A partition is behind while messages wait after the one just read (the
broker's end offset, ``highwater``) and the events read are older than
``SLACK`` s: a busy live stream always has a message waiting, but its
events are recent.

The end offset may promise messages that never come as messages: it is the
consumer's last fetch's, stale while the broker cannot be reached (its
messages may never have been handed over); transaction markers take offsets
and are never delivered; a tail deleted by retention while no worker ran is
skipped. So a partition that has read no message for ``IDLE_WAIT`` s counts
as caught up whatever the end offset says: a backlog that is not being
delivered is not being caught up on (time must pass while the broker is
away, even if a dossier of the undelivered part then falls overdue first).
The next message read judges afresh. The wait runs on the worker's
``clock``, which stops while it merges messages: a worker held up by the
database has not stopped receiving.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Events newer than this (s) are live traffic, whatever waits behind them.
SLACK = 60.0
# With no message read this long (s on ``CatchUp.clock``), none is coming.
IDLE_WAIT = 10.0

# (committed offset, end offset) of a partition, None where not known yet
Offsets = Callable[[], tuple[int | None, int | None]]


class CatchUp:
    """One partition's catching up. ``offsets`` None: always caught up.
    ``clock``: monotonic seconds that count the waits for messages."""

    def __init__(
        self, offsets: Offsets | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.offsets = offsets
        self.clock = clock
        self.behind = offsets is not None
        self.seen = float("-inf")  # the newest event time read
        self.next_offset: int | None = None  # after the last message read
        self.last_message = clock()

    def message(self, offset: int, newest: float | None, now: float) -> None:
        """A message at ``offset`` was read; ``newest``: its newest event
        time (None for one with no events, e.g. a watermark)."""
        self.next_offset = offset + 1
        self.last_message = self.clock()
        if newest is not None:
            self.seen = max(self.seen, newest)
        if self.offsets is None:
            return
        end = self.offsets()[1]
        waiting = end is not None and offset + 1 < end
        self.behind = waiting and self.seen < now - SLACK

    def judge_at(self, now: float) -> float:
        """The time to judge the partition's dossiers at."""
        if self.behind:
            self._check()
        return min(now, self.seen) if self.behind else now

    def _check(self) -> None:
        """Caught up once everything the broker held has been read, or
        once nothing more is being read."""
        assert self.offsets is not None
        committed, end = self.offsets()
        done = self.next_offset if self.next_offset is not None else committed
        if end == 0 or (end is not None and done is not None and done >= end):
            self.behind = False
        elif self.clock() - self.last_message >= IDLE_WAIT:
            # the end offset unknown, or promising what does not come
            self.behind = False
