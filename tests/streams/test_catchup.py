"""When a partition counts as behind (judged at the newest event read) and
when as caught up (judged at the clock's time), on a fake end offset and a
fake monotonic clock."""

from __future__ import annotations

from streams.catchup import IDLE_WAIT, SLACK, CatchUp

NOW = 1_800_000_000.0  # the wall clock the dossiers are judged on
OLD = NOW - 3600  # a backlog's events: older than SLACK


class Ticks:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Broker:
    """What the consumer knows of the partition: (committed, end offset)."""

    def __init__(self, committed: int | None, end: int | None) -> None:
        self.committed, self.end = committed, end

    def __call__(self) -> tuple[int | None, int | None]:
        return self.committed, self.end


def test_an_end_offset_never_reached_counts_as_caught_up_once_nothing_is_read() -> None:
    """A stale end offset (or one counting transaction markers, or a deleted
    tail) promises messages that never come: behind only for IDLE_WAIT."""
    ticks, broker = Ticks(), Broker(None, 5)
    catchup = CatchUp(broker, ticks)
    catchup.message(0, OLD, NOW)
    assert catchup.behind and catchup.judge_at(NOW) == OLD
    ticks.t += IDLE_WAIT - 0.5
    assert catchup.judge_at(NOW) == OLD
    ticks.t += 0.5
    assert catchup.judge_at(NOW) == NOW
    assert not catchup.behind
    # the next message judges afresh: still four waiting, and old, so behind
    catchup.message(1, OLD + 60, NOW + 10)
    assert catchup.behind and catchup.judge_at(NOW + 10) == OLD + 60
    ticks.t += IDLE_WAIT
    assert catchup.judge_at(NOW + 20) == NOW + 20


def test_a_backlog_read_steadily_stays_behind_until_it_is_read() -> None:
    ticks, broker = Ticks(), Broker(None, 100)
    catchup = CatchUp(broker, ticks)
    for offset in range(99):
        ticks.t += IDLE_WAIT / 2  # long past IDLE_WAIT in all, never that long idle
        catchup.message(offset, OLD + offset, NOW)
        assert catchup.judge_at(NOW) == OLD + offset
    catchup.message(99, OLD + 99, NOW)
    assert not catchup.behind and catchup.judge_at(NOW) == NOW


def test_a_backlog_that_grows_while_it_is_read_stays_behind() -> None:
    ticks, broker = Ticks(), Broker(None, 10)
    catchup = CatchUp(broker, ticks)
    for offset in range(30):
        ticks.t += 1
        broker.end = offset + 10
        catchup.message(offset, OLD, NOW)
        assert catchup.judge_at(NOW) == OLD


def test_with_no_end_offset_known_nothing_waits_after_the_wait() -> None:
    ticks, broker = Ticks(), Broker(None, None)
    catchup = CatchUp(broker, ticks)
    assert catchup.behind  # until the consumer knows the partition
    ticks.t += IDLE_WAIT - 0.5
    assert catchup.judge_at(NOW) == float("-inf")  # nothing read: no time passes
    ticks.t += 0.5
    assert catchup.judge_at(NOW) == NOW
    # a message read with no end offset known has nothing waiting after it
    catchup.message(0, OLD, NOW)
    assert not catchup.behind and catchup.judge_at(NOW) == NOW


def test_caught_up_at_once_when_the_end_offset_is_reached() -> None:
    ticks = Ticks()
    assert not _checked(CatchUp(Broker(None, 0), ticks))  # an empty partition
    assert not _checked(CatchUp(Broker(7, 7), ticks))  # committed is the end
    assert _checked(CatchUp(Broker(3, 7), ticks))  # four wait, none read yet
    assert _checked(CatchUp(Broker(None, 7), ticks))


def test_recent_events_are_live_whatever_waits_behind_them() -> None:
    catchup = CatchUp(Broker(None, 50), Ticks())
    catchup.message(0, NOW - SLACK / 2, NOW)
    assert not catchup.behind and catchup.judge_at(NOW) == NOW


def test_without_offsets_always_caught_up() -> None:
    catchup = CatchUp(None, Ticks())
    assert catchup.judge_at(NOW) == NOW
    catchup.message(0, OLD, NOW)
    assert catchup.judge_at(NOW) == NOW


def _checked(catchup: CatchUp) -> bool:
    """Whether it is still behind at its first judgement."""
    catchup.judge_at(NOW)
    return catchup.behind
