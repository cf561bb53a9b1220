"""Supervising the demo's processes: restart what dies, with backoff; end
on the death of a server whose state cannot come back.

``Plan`` holds the decisions (which death ends everything, when a dead child
starts again) and touches no process, so it is tested with numbers alone;
``Supervisor`` starts, polls and stops the processes and says what happens,
one line per death and per restart.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 20.0


# The supervisor's decisions, apart from any process ----------------------


@dataclass(frozen=True)
class Backoff:
    """Pauses before restarting a child that died: ``first`` after its first
    death in a row, doubling with each further one up to ``cap``. A child that
    had run for ``healthy_after`` seconds when it died starts the count over."""

    first: float = 1.0
    cap: float = 30.0
    healthy_after: float = 60.0

    def delay(self, in_a_row: int) -> float:
        # the exponent is bounded: a child dying for days must not overflow a float
        return min(self.cap, self.first * 2.0 ** min(max(in_a_row, 1) - 1, 32))


@dataclass(frozen=True)
class Restart:
    """Start ``name`` again at ``at`` (seconds on the supervisor's clock)."""

    name: str
    at: float
    delay: float
    count: int  # restarts of this child so far, this one included
    in_a_row: int  # deaths with no healthy run between them


@dataclass(frozen=True)
class End:
    """Stop the demo: ``name`` is a server whose state a restart cannot bring back."""

    name: str


class Plan:
    """Which death ends the demo, and when each dead child starts again."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.servers: set[str] = set()
        self._in_a_row: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._pending: dict[str, Restart] = {}

    def died(self, ran_for: dict[str, float], now: float) -> End | list[Restart]:
        """What to do about the children found dead at ``now``, given how long
        each had run. A server's death ends the demo even when others died with
        it: they most likely died of it, and restarting them would hide why."""
        for name in ran_for:
            if name in self.servers:
                return End(name)
        restarts = []
        for name, ran in ran_for.items():
            healthy = ran >= self.backoff.healthy_after
            in_a_row = 1 if healthy else self._in_a_row.get(name, 0) + 1
            delay = self.backoff.delay(in_a_row)
            restart = Restart(name, now + delay, delay, self._count.get(name, 0) + 1, in_a_row)
            self._in_a_row[name], self._count[name] = in_a_row, restart.count
            self._pending[name] = restart
            restarts.append(restart)
        return restarts

    def due(self, now: float) -> list[Restart]:
        """The restarts whose time has come, each returned once."""
        ready = [r for r in self._pending.values() if r.at <= now]
        for r in ready:
            del self._pending[r.name]
        return ready


def exit_status(returncode: int | None) -> str:
    """How a process ended, in words (``None``: a process that is not ours, gone)."""
    if returncode is None:
        return "is gone"
    if returncode < 0:  # Popen's way of saying "killed by this signal"
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def death_line(name: str, how: str, ran_for: float, log: Path, then: End | Restart) -> str:
    """One line for the operator: which child, how it ended, where its log is, what next."""
    said = f"{name} {how} after {ran_for:.0f} s (log: {log})"
    if isinstance(then, End):
        return f"{said}; the demo cannot go on without it: stopping everything"
    said += f"; restart {then.count} in {then.delay:g} s"
    if then.in_a_row > 1:
        said += f" (it keeps dying: {then.in_a_row} times in a row; retrying, with longer waits)"
    return said


# Processes -----------------------------------------------------------------


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


@dataclass
class Child:
    name: str
    log: Path
    started: float
    proc: subprocess.Popen[bytes] | None = None  # None while waiting to be restarted
    argv: list[str] | None = None  # how to start it again
    env: dict[str, str] | None = None
    alive: Callable[[], bool] | None = None  # for a server that is not our child process
    halt: Callable[[], None] | None = None  # and how to stop it

    def ended(self) -> str | None:
        """How it ended, or None while it runs or waits for its restart."""
        if self.alive is not None:
            return None if self.alive() else exit_status(None)
        code = None if self.proc is None else self.proc.poll()
        return None if code is None else exit_status(code)


class Supervisor:
    """Starts and watches the demo's processes; ``step`` restarts what died,
    as ``Plan`` decides, and says so."""

    def __init__(
        self,
        logs: Path,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.logs = logs
        self.plan = Plan(backoff)
        self.clock = clock
        self.say = say
        self.children: list[Child] = []  # in start order; stopped newest first

    def run(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        """Start a child that is restarted whenever it dies."""
        child = Child(name, self.logs / f"{name}.log", self.clock(), argv=argv, env=env)
        self._spawn(child)
        self.children.append(child)
        return child

    def adopt(self, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        """Watch a server started elsewhere: its death ends the demo."""
        self.plan.servers.add(name)
        self.children.append(Child(name, log, self.clock(), proc=proc))

    def watch(
        self, name: str, alive: Callable[[], bool], log: Path, stop: Callable[[], None]
    ) -> None:
        """Watch a server that is not our child process: its death ends the demo."""
        self.plan.servers.add(name)
        self.children.append(Child(name, log, self.clock(), alive=alive, halt=stop))

    def _spawn(self, child: Child) -> None:
        assert child.argv is not None
        with child.log.open("ab") as log:
            child.proc = subprocess.Popen(  # noqa: S603 - our own commands
                child.argv,
                env=child.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops them in order
            )
        child.started = self.clock()

    def step(self) -> int | None:
        """Look at every child once: None to go on, or the demo's exit code."""
        now = self.clock()
        dead = {c.name: (c, how) for c in self.children if (how := c.ended()) is not None}
        if dead:
            then = self.plan.died({name: now - c.started for name, (c, _) in dead.items()}, now)
            for decision in [then] if isinstance(then, End) else then:
                child, how = dead[decision.name]
                self.say(death_line(child.name, how, now - child.started, child.log, decision))
                child.proc = None
            if isinstance(then, End):
                return 1
        for restart in self.plan.due(now):
            child = next(c for c in self.children if c.name == restart.name)
            with child.log.open("ab") as log:
                log.write(f"\n--- ioc demo: restart {restart.count} ---\n".encode())
            self._spawn(child)
            self.say(f"{child.name} started again (restart {restart.count})")
        return None

    def stop(self) -> None:
        """Stop every child, newest first: SIGTERM, then SIGKILL after a while."""
        for child in reversed(self.children):
            if child.halt is not None and child.alive is not None and child.alive():
                print(f"  stopping {child.name}", flush=True)
                child.halt()
            elif child.proc is not None and child.proc.poll() is None:
                print(f"  stopping {child.name}", flush=True)
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    print(f"  {child.name} did not stop in {STOP_TIMEOUT:.0f} s; killing it")
                    child.proc.kill()
                    child.proc.wait()
