"""When to try a delivery again, and when to leave an endpoint alone.

Both are pure and take an injected clock, so tests drive time themselves.
"""

from __future__ import annotations

import random
import time
from typing import Final, Literal, Protocol

BreakerState = Literal["closed", "open", "half_open"]
CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"


class Clock(Protocol):
    def now(self) -> float: ...


class MonotonicClock:
    """The breaker's default clock: immune to wall-clock steps."""

    def now(self) -> float:
        return time.monotonic()


def backoff_delay(
    attempt: int, base: float, cap: float, rand: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based):
    ``base * 2**(attempt-1)`` capped at ``cap``, with "equal jitter" (half
    fixed, half random) so endpoints that failed together do not all retry
    in the same instant, and a retry never comes at once."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    r: float = (rand or random).random()
    return float(delay / 2 + r * delay / 2)


class CircuitBreaker:
    """Per endpoint: after ``failures`` consecutive failures the circuit
    opens for ``cooldown`` seconds (nothing is sent there); then it is
    half-open and lets exactly one trial through. The trial's success closes
    it, its failure opens it again for another cool-down."""

    def __init__(self, failures: int, cooldown: float, clock: Clock | None = None) -> None:
        self.threshold = max(1, failures)
        self.cooldown = cooldown
        self.clock = clock or MonotonicClock()
        self.state: BreakerState = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self._trial_out = False

    def allow(self) -> bool:
        """Whether a request may go now; in half-open, True once per trial."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.clock.now() - self.opened_at < self.cooldown:
                return False
            self.state = HALF_OPEN
            self._trial_out = False
        if self._trial_out:
            return False
        self._trial_out = True
        return True

    def allow_queueing(self) -> bool:
        """Whether to queue a row for this endpoint: not while open and
        cooling down (checking does not take the half-open trial)."""
        return not (self.state == OPEN and self.clock.now() - self.opened_at < self.cooldown)

    def release_trial(self) -> None:
        """The trial let through was not sent after all: let another go."""
        if self.state == HALF_OPEN:
            self._trial_out = False

    def retry_in(self) -> float:
        """Seconds until a request may be tried (0 when closed)."""
        if self.state == OPEN:
            return max(0.0, self.opened_at + self.cooldown - self.clock.now())
        if self.state == HALF_OPEN and self._trial_out:
            # the trial is in flight: look again after a short while
            return min(self.cooldown, 1.0)
        return 0.0

    def success(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self._trial_out = False

    def failure(self) -> None:
        self.consecutive += 1
        if self.state == HALF_OPEN or self.consecutive >= self.threshold:
            self.state = OPEN
            self.opened_at = self.clock.now()
            self._trial_out = False

    @property
    def is_open(self) -> bool:
        return self.state != CLOSED


class InflightLimit:
    """How many requests an endpoint may have in flight: ``low`` to begin
    with; one more after each quick answer (within ``quick`` s) while rows
    wait for it, up to ``high``; halved, never below ``low``, after a slow
    answer or a failure worth retrying. An endpoint that answers fast gets
    the parallelism a burst needs; a slow or struggling one is not pushed
    harder than ``low``."""

    def __init__(self, low: int, high: int, quick: float) -> None:
        self.low = max(1, low)
        self.high = max(self.low, high)
        self.quick = quick
        self.value = self.low

    def answered(self, seconds: float, healthy: bool, rows_waiting: bool) -> None:
        """After an attempt: it took ``seconds``; ``healthy`` unless it
        failed in a way worth retrying (a refusal shows the endpoint up)."""
        if not healthy or seconds > self.quick:
            self.value = max(self.low, self.value // 2)
        elif rows_waiting:
            self.value = min(self.high, self.value + 1)
