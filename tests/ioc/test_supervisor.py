"""The demo's supervisor: its decisions with numbers alone, then the
supervisor on tiny real processes, driven by a fake clock (the demo itself
is killed and restarted end to end in tests/test_demo_supervision.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ioc.supervisor import Backoff, End, Plan, Restart, Supervisor, death_line, exit_status

QUICK = 5.0  # seconds: well under the default healthy_after
EXIT_3 = [sys.executable, "-c", "raise SystemExit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_the_pause_doubles_from_one_second_up_to_thirty() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.delay(10_000) == 30  # a child dying for days


def test_a_child_that_keeps_dying_keeps_being_restarted_with_longer_pauses() -> None:
    plan = Plan()
    now, pauses = 0.0, []
    for _ in range(7):
        restarts = plan.died({"api": QUICK}, now)
        assert isinstance(restarts, list) and len(restarts) == 1
        pauses.append(restarts[0].delay)
        now = restarts[0].at
        assert [r.name for r in plan.due(now)] == ["api"]
    assert pauses == [1, 2, 4, 8, 16, 30, 30]
    assert restarts[0].count == 7 and restarts[0].in_a_row == 7


def test_a_child_that_ran_for_a_while_starts_the_pauses_over() -> None:
    plan = Plan(Backoff(first=1, cap=30, healthy_after=60))
    for _ in range(4):
        plan.died({"worker": QUICK}, 0.0)
    restarts = plan.died({"worker": 61.0}, 100.0)
    assert isinstance(restarts, list)
    [restart] = restarts
    assert (restart.delay, restart.in_a_row, restart.count) == (1, 1, 5)


def test_each_child_has_its_own_count() -> None:
    plan = Plan()
    plan.died({"worker": QUICK}, 0.0)
    plan.died({"worker": QUICK}, 10.0)
    restarts = plan.died({"worker": QUICK, "bridge": QUICK}, 20.0)
    assert restarts == [
        Restart("worker", 24.0, 4.0, 3, 3),
        Restart("bridge", 21.0, 1.0, 1, 1),
    ]


def test_a_restart_is_due_once_and_only_when_its_pause_is_over() -> None:
    plan = Plan()
    plan.died({"bridge": QUICK}, 100.0)
    assert plan.due(100.5) == []
    assert [r.name for r in plan.due(101.0)] == ["bridge"]
    assert plan.due(200.0) == []


def test_a_server_dying_ends_the_demo_even_when_others_died_with_it() -> None:
    plan = Plan()
    plan.servers.add("Kafka broker (Tansu)")
    assert plan.died({"worker": QUICK, "Kafka broker (Tansu)": 300.0}, 0.0) == End(
        "Kafka broker (Tansu)"
    )
    assert plan.due(1000.0) == []  # nothing restarted after the end


def test_how_a_process_ended_in_words() -> None:
    assert exit_status(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_status(1) == "exited with code 1"
    assert exit_status(0) == "exited with code 0"
    assert exit_status(None) == "is gone"
    assert exit_status(-200) == "was killed by signal 200"


def test_the_line_names_the_child_its_end_its_log_and_what_comes_next() -> None:
    log = Path("/data/logs/worker.log")
    first = death_line("worker", "was killed by SIGKILL", 73.4, log, Restart("worker", 0, 1, 1, 1))
    assert first == (
        "worker was killed by SIGKILL after 73 s (log: /data/logs/worker.log); restart 1 in 1 s"
    )
    again = death_line("api", "exited with code 1", 0.2, log, Restart("api", 0, 8, 4, 4))
    assert again.endswith(
        "restart 4 in 8 s (it keeps dying: 4 times in a row; retrying, with longer waits)"
    )
    end = death_line("PostgreSQL (embedded)", "is gone", 9, log, End("PostgreSQL (embedded)"))
    assert end.startswith("PostgreSQL (embedded) is gone") and "stopping everything" in end


# The supervisor on real processes ------------------------------------------


class Rig:
    """A supervisor on a fake clock, with what it said."""

    def __init__(self, logs: Path) -> None:
        self.now = 1000.0
        self.said: list[str] = []
        self.sup = Supervisor(logs, clock=lambda: self.now, say=self.said.append)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.sup.stop()


def test_a_dead_child_is_started_again_after_its_pause(rig: Rig, tmp_path: Path) -> None:
    child = rig.sup.run("api", EXIT_3, {})
    assert child.proc is not None
    first = child.proc
    first.wait(30)
    assert rig.sup.step() is None
    assert rig.said == [
        f"api exited with code 3 after 0 s (log: {tmp_path / 'api.log'}); restart 1 in 1 s"
    ]
    assert child.proc is None  # waiting
    rig.now += 0.5
    assert rig.sup.step() is None and child.proc is None
    rig.now += 0.5
    assert rig.sup.step() is None
    assert rig.said[-1] == "api started again (restart 1)"
    assert child.proc is not None and child.proc.pid != first.pid
    child.proc.wait(30)
    rig.sup.step()
    assert rig.said[-1].endswith(
        "restart 2 in 2 s (it keeps dying: 2 times in a row; retrying, with longer waits)"
    )
    assert "--- ioc demo: restart 1 ---" in (tmp_path / "api.log").read_text()


def test_a_server_dying_stops_everything_with_code_1(rig: Rig, tmp_path: Path) -> None:
    worker = rig.sup.run("worker", SLEEP, {})
    broker = subprocess.Popen(SLEEP)
    rig.sup.adopt("Kafka broker (Tansu)", broker, tmp_path / "tansu.log")
    assert rig.sup.step() is None
    broker.kill()
    broker.wait(30)
    assert rig.sup.step() == 1
    assert rig.said[-1].startswith("Kafka broker (Tansu) was killed by SIGKILL")
    rig.sup.stop()
    assert worker.proc is not None and worker.proc.returncode == -signal.SIGTERM


class Postmaster:
    """A server that is not the supervisor's child: a flag and a count of stops."""

    def __init__(self) -> None:
        self.running = True
        self.stops = 0

    def alive(self) -> bool:
        return self.running

    def stop(self) -> None:
        self.stops += 1
        self.running = False


def test_a_watched_server_that_is_gone_stops_everything(rig: Rig, tmp_path: Path) -> None:
    pg = Postmaster()
    rig.sup.watch("PostgreSQL (embedded)", pg.alive, tmp_path / "pg.log", pg.stop)
    assert rig.sup.step() is None
    pg.running = False
    assert rig.sup.step() == 1
    assert rig.said[-1].startswith(
        f"PostgreSQL (embedded) is gone after 0 s (log: {tmp_path / 'pg.log'})"
    )
    rig.sup.stop()
    assert pg.stops == 0  # nothing left to stop


def test_a_watched_server_is_stopped_with_the_rest(rig: Rig, tmp_path: Path) -> None:
    pg = Postmaster()
    rig.sup.watch("PostgreSQL (embedded)", pg.alive, tmp_path / "pg.log", pg.stop)
    worker = rig.sup.run("worker", SLEEP, {})
    rig.sup.stop()
    assert pg.stops == 1
    assert worker.proc is not None and worker.proc.returncode == -signal.SIGTERM


def test_stopping_during_a_pause_starts_nothing_more(rig: Rig) -> None:
    dying = rig.sup.run("simulator", EXIT_3, {})
    running = rig.sup.run("bridge", SLEEP, {})
    assert dying.proc is not None and running.proc is not None
    dying.proc.wait(30)
    rig.sup.step()  # the simulator now waits for its restart
    bridge = running.proc
    rig.sup.stop()
    assert dying.proc is None
    assert bridge.returncode == -signal.SIGTERM
