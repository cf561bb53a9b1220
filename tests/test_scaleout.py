"""Scale-out (``docker compose up --scale worker=N``) on the real broker and
PostgreSQL: two workers share the procedure partitions; one is killed with
SIGKILL in the middle of a replay and the other takes its partitions over.
At the end the KPIs of every scope, the SLA transitions, the raw events (so
every dossier's state) and the hourly and 1-minute counters equal those of
one worker given the same events (in another database, on other topics),
with nothing lost or counted twice. Two API processes serve screens
meanwhile: each reads the update topics itself, so the screens of both get
the final figures and the SLA alerts, and both answer REST reads as the
single worker's data would.

Nothing depends on the machine's speed: the workers run on event time, both
runs end with a watermark at the same instant, and the kill is timed by what
the database holds, not by the clock."""

from __future__ import annotations

import json
import logging
import random
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ioc.clock import parse_instant
from ioc.feed import kpi_view, sum_counters
from streams.kafka import partition_for
from tests.conftest import free_port
from tests.processes import Process, created_database, ioc_env, wait_until
from tests.streams.helpers import world
from ui_feed.rest import describe_dossier, iso_fields

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

START = "2026-03-02T00:00:00+07:00"
# a Monday noon: the weekend before it turns many dossiers at risk and overdue
UNTIL = "2026-03-09T12:00:00+07:00"
PARTITIONS = 4
AT_RISK_SHARE = 0.8
# the first part of the replay is paced over about this many seconds
PACED_SECONDS = 10
REPLAY = [sys.executable, "-m", "ioc.cli", "replay"]
READY = re.compile(r"^\[?(\d{4}-\d\d-\d\d[ T][\d:,.]+)\]?\s.*\bpartition (\d+) ready\b", re.M)


@pytest.fixture
def reference_database() -> Iterator[str]:
    """A second fresh database, for the single-worker run."""
    with created_database() as url:
        yield url


# -- the load ------------------------------------------------------------------------


def ioc(env: dict[str, str], *args: str, timeout: float = 180) -> None:
    subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=timeout,
    )


def generated_load(env: dict[str, str], tmp: Path) -> list[bytes]:
    """A week of simulated dossiers up to UNTIL, in time order."""
    out = tmp / "load.ndjson"
    ioc(env, "generate", "--start", START, "--days", "7", "--rate", "300", "--out", str(out))
    until = parse_instant(UNTIL)
    lines = [line for line in out.read_bytes().split(b"\n") if line]
    timed = [(parse_instant(json.loads(line)["ts"]), line) for line in lines]
    return [line for ts, line in sorted(timed) if ts < until]


def per_partition(lines: list[bytes]) -> Counter[int]:
    return Counter(partition_for(json.loads(line)["dossier_id"], PARTITIONS) for line in lines)


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# -- what the database holds ---------------------------------------------------------


def committed(database: str) -> dict[int, int]:
    """The raw events committed per partition."""
    with psycopg.connect(database) as conn:
        return dict(conn.execute("SELECT part, seq FROM worker_partitions").fetchall())


def partition_clocks(database: str) -> dict[int, float]:
    """Each partition's clock at its last commit."""
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT part, extract(epoch FROM clock)::float8 FROM worker_partitions")
        return dict(rows.fetchall())


def settled(database: str, total: int) -> bool:
    """Every event committed, every partition's clock at UNTIL and every
    published counter row as of UNTIL (the watermark rolls every window, so
    every row is published again)."""
    until = parse_instant(UNTIL)
    with psycopg.connect(database) as conn:
        events, clocks, oldest = conn.execute(
            "SELECT coalesce(sum(seq), 0), coalesce(array_agg(extract(epoch FROM clock)::float8), "
            "'{}'), (SELECT extract(epoch FROM min(at))::float8 FROM kpi_latest) "
            "FROM worker_partitions"
        ).fetchone() or (0, [], None)
    return (
        events == total
        and len(clocks) == PARTITIONS
        and all(c == until for c in clocks)
        and oldest == until
    )


@dataclass
class Outcome:
    """What a run leaves in its database, in forms two runs can compare."""

    counters: dict[str, dict[str, Any]]  # kpi_latest summed per scope
    latest_at: dict[str, float]  # the newest kpi_latest time per scope
    hourly: dict[tuple[str, int, float], tuple[int, ...]]  # (scope, part, hour) -> flows
    minutely: dict[tuple[str, int, float], tuple[int, ...]]  # flows summed per minute
    transitions: Counter[tuple[Any, ...]]
    events: dict[str, tuple[str, int, str]]  # event id -> (dossier, partition, body digest)
    stored_rows: int

    @property
    def dossiers(self) -> set[str]:
        return {dossier for dossier, _, _ in self.events.values()}

    @classmethod
    def read(cls, database: str) -> Outcome:
        from streams.sinks.schema import FLOW_COLUMNS

        flows = ", ".join(f"sum(h.{c})::bigint" for c in FLOW_COLUMNS)
        with psycopg.connect(database) as conn:
            latest = conn.execute(
                "SELECT scope, extract(epoch FROM at)::float8, counters FROM kpi_latest"
            ).fetchall()
            hourly = conn.execute(
                f"SELECT s.key, h.part, extract(epoch FROM h.hour)::float8, {flows} "
                "FROM kpi_hourly h JOIN scopes s ON s.id = h.scope_id GROUP BY 1, 2, 3"
            ).fetchall()
            minutely = conn.execute(
                f"SELECT s.key, h.part, extract(epoch FROM h.minute)::float8, {flows} "
                "FROM kpi_points h JOIN scopes s ON s.id = h.scope_id GROUP BY 1, 2, 3"
            ).fetchall()
            transitions = conn.execute(
                "SELECT at, dossier_id, transition, due, consumed_hours, allotted_hours, "
                "commune, agency, centre, procedure, field FROM sla_transitions"
            ).fetchall()
            events = conn.execute(
                "SELECT event_id, dossier_id, part, md5(body::text) FROM procedure_events"
            ).fetchall()
        parts: dict[str, list[Any]] = {}
        latest_at: dict[str, float] = {}
        for scope, at, counters in latest:
            parts.setdefault(scope, []).append(counters)
            latest_at[scope] = max(latest_at.get(scope, 0.0), at)
        return cls(
            counters={scope: sum_counters(p) for scope, p in parts.items()},
            latest_at=latest_at,
            hourly={tuple(r[:3]): tuple(r[3:]) for r in hourly if any(r[3:])},
            minutely={tuple(r[:3]): tuple(r[3:]) for r in minutely if any(r[3:])},
            transitions=Counter(tuple(r) for r in transitions),
            events={r[0]: tuple(r[1:]) for r in events},
            stored_rows=len(events),
        )


def dossier_state(database: str, dossier_id: str) -> dict[str, Any]:
    """One dossier as of UNTIL, folded from its stored raw events with the
    API's own code, as ``GET /api/v1/dossiers/{id}?at=UNTIL`` answers."""
    registry, calendar = world()
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT body::text FROM procedure_events WHERE dossier_id = %s ORDER BY ts",
            (dossier_id,),
        ).fetchall()
    folded = describe_dossier(
        [body.encode() for (body,) in rows], registry, calendar, AT_RISK_SHARE, parse_instant(UNTIL)
    )
    assert folded is not None, dossier_id
    state: dict[str, Any] = json.loads(json.dumps(iso_fields(folded)))
    return state


def sample_dossiers(dossiers: set[str], transitions: Counter[tuple[Any, ...]]) -> list[str]:
    """Some dossiers with SLA transitions and some others, always the same."""
    rng = random.Random(7)
    alerted = sorted({t[1] for t in transitions})
    others = sorted(dossiers - set(alerted))
    return rng.sample(alerted, min(15, len(alerted))) + rng.sample(others, 10)


def same(what: str, got: dict[Any, Any], want: dict[Any, Any]) -> None:
    """Equal mappings, or an error naming how many keys differ and a few of them."""
    if got == want:
        return
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    changed = [k for k in want if k in got and got[k] != want[k]]
    raise AssertionError(
        f"{what}: {len(missing)} missing, {len(extra)} extra, {len(changed)} different; "
        f"missing {missing[:3]}, extra {extra[:3]}, "
        f"different {[(k, got[k], want[k]) for k in changed[:2]]}"
    )


# -- the processes -------------------------------------------------------------------


def ready_partitions(text: str) -> dict[int, str]:
    """The partitions a worker log says it loaded, with the time of the last load."""
    return {int(part): stamp for stamp, part in READY.findall(text)}


def owners(logs: dict[str, str]) -> dict[int, str]:
    """Who loaded each partition last, among the given log excerpts."""
    latest: dict[int, tuple[str, str]] = {}
    for name, text in logs.items():
        for part, stamp in ready_partitions(text).items():
            if part not in latest or stamp > latest[part][0]:
                latest[part] = (stamp, name)
    return {part: name for part, (_, name) in sorted(latest.items())}


def worker(name: str, env: dict[str, str], tmp: Path) -> Process:
    """One ``ioc worker``, as a container of ``--scale worker=N`` runs it:
    its own data directory and metrics port."""
    own = dict(env, IOC_DATA_DIR=str(tmp / name), IOC_WORKER_METRICS_PORT=str(free_port()))
    return Process(name, ["worker"], own, tmp / "logs")


def api(name: str, env: dict[str, str], tmp: Path) -> tuple[Process, str]:
    """One ``ioc api`` on a port of its own, once it serves (killed if it
    never does); it is ready when a worker moves too."""
    port = free_port()
    proc = Process(name, ["api"], dict(env, IOC_API_PORT=str(port)), tmp / "logs")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            f"{name} to serve",
            lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200,
            90,
        )
    except AssertionError:
        proc.kill()
        raise
    return proc, base


def ready(base: str) -> bool:
    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200


class Screen(threading.Thread):
    """A wall screen on one API, subscribed to ``kpi/province`` and
    ``alerts`` for the whole run: it keeps the newest province figures and
    every SLA alert (a stream channel's first appearance, and a resume the
    history cannot serve, come as a snapshot of recent items; those count
    once). If the server closes it, it notes why, reconnects and resumes."""

    CHANNELS = ("kpi/province", "alerts")

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.url = base.replace("http://", "ws://") + "/ws"
        self.province: dict[str, Any] | None = None
        self.alerts: Counter[AlertKey] = Counter()
        self.closes: list[str] = []
        self.seqs: dict[str, int] = {}
        self.subscribed = threading.Event()
        self._arrived = threading.Condition()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                with connect(self.url, open_timeout=10) as ws:
                    ws.send(
                        json.dumps(
                            {"op": "subscribe", "channels": self.CHANNELS, "resume": self.seqs}
                        )
                    )
                    self.subscribed.set()
                    while not self._done.is_set():
                        try:
                            self.receive(json.loads(ws.recv(timeout=0.5)))
                        except TimeoutError:
                            continue
            except (ConnectionClosed, OSError) as exc:
                self.closes.append(repr(exc))
                self._done.wait(1)

    def receive(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if channel not in self.CHANNELS:
            return
        self.seqs[channel] = message["seq"]
        if channel == "kpi/province":
            with self._arrived:
                # the figures, without the stage times they came with
                self.province = {k: v for k, v in message["data"].items() if k != "trace"}
                self._arrived.notify_all()
            return
        if message["type"] == "delta":
            items = [alert_key(message["data"])]
        else:
            items = [k for k in map(alert_key, message["data"]) if k not in self.alerts]
        with self._arrived:
            self.alerts.update(items)
            self._arrived.notify_all()

    def wait_for(self, what: Any, timeout: float) -> bool:
        """Until ``what(self)`` holds or ``timeout`` seconds passed."""
        with self._arrived:
            return bool(self._arrived.wait_for(lambda: what(self), timeout))

    def stop(self) -> None:
        self._done.set()
        self.join(10)


AlertKey = tuple[str, str, float]  # dossier, transition, instant


def alert_key(item: dict[str, Any]) -> AlertKey:
    return (item["dossier_id"], item["transition"], round(float(item["at"]), 3))


def stored_alerts(database: str) -> dict[AlertKey, int]:
    """Each stored SLA transition, with its dossier's partition."""
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT dossier_id, transition, extract(epoch FROM at)::float8 FROM sla_transitions"
        ).fetchall()
    return {(d, t, round(at, 3)): partition_for(d, PARTITIONS) for d, t, at in rows}


class AlertCheck:
    """What a screen must have got: every stored SLA transition, once, and
    nothing else (a transition the killed worker committed and could not
    send is sent by the survivor; one sent twice is dropped by the feed)."""

    def __init__(self, stored: dict[AlertKey, int]) -> None:
        self.want = Counter(stored.keys())

    def missing(self, screen: Screen) -> list[AlertKey]:
        return list(self.want - screen.alerts)

    def check(self, screen: Screen) -> None:
        extra = screen.alerts - self.want
        assert not extra, (
            f"{screen.url}: {extra.total()} alerts not stored, or twice: {list(extra)[:3]}"
        )
        missing = self.missing(screen)
        assert not missing, (
            f"{screen.url}: {len(missing)} of {len(self.want)} stored alerts never came, "
            f"e.g. {sorted(missing)[:3]}"
        )


# -- the single-worker reference ---------------------------------------------------------


def reference_run(env: dict[str, str], tmp: Path, load: Path, total: int) -> None:
    """The whole load through one worker, which then stops cleanly."""
    ioc(env, "db", "migrate")
    single = worker("reference", env, tmp)
    try:
        wait_until("the reference worker", lambda: "partition 3 ready" in single.output(), 90)
        subprocess.run(
            [*REPLAY, str(load), "--speed", "max", "--until", UNTIL],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        wait_until(
            "the reference run to settle", lambda: settled(env["IOC_DATABASE_URL"], total), 300
        )
    finally:
        assert single.stop() == 0, single.output()[-3000:]
    assert "Traceback" not in single.output(), single.output()[-3000:]


# -- the test ------------------------------------------------------------------------


def test_two_workers_one_killed_mid_replay_end_as_one_worker_and_both_apis_see_everything(
    tmp_path: Path,
    kafka_bootstrap: str,
    database_url: str,
    reference_database: str,
    mqtt_url: str,
) -> None:
    settings = {"IOC_CLOCK": "event", "IOC_SNAPSHOT_INTERVAL": "2"}
    env = ioc_env(tmp_path, kafka_bootstrap, database_url, mqtt_url, **settings)
    ref_env = ioc_env(tmp_path, kafka_bootstrap, reference_database, mqtt_url, **settings)
    assert env["IOC_TOPIC_PREFIX"] != ref_env["IOC_TOPIC_PREFIX"]
    lines = generated_load(env, tmp_path)
    total = len(lines)
    reference_run(
        ref_env, tmp_path / "reference", write_lines(tmp_path / "all.ndjson", lines), total
    )
    expected = Outcome.read(reference_database)
    assert expected.stored_rows == total
    assert expected.transitions, "the load must turn dossiers at risk and overdue"

    # The replay goes in two parts. The first is paced over about ten
    # seconds; one worker is killed once it has committed a third of its
    # share of that part (normally while events still arrive and some it
    # read wait for their commit; a loaded machine commits in bigger steps
    # and may have committed the whole part by then). The second part
    # reaches Kafka only after the kill, so whatever the machine's speed the
    # survivor restores the dead worker's partitions from the database and
    # finishes them.
    cut = total * 2 // 3
    first = write_lines(tmp_path / "first.ndjson", lines[:cut])
    rest = write_lines(tmp_path / "rest.ndjson", lines[cut:])
    in_first = per_partition(lines[:cut])
    span = parse_instant(json.loads(lines[cut - 1])["ts"]) - parse_instant(
        json.loads(lines[0])["ts"]
    )

    ioc(env, "db", "migrate")
    procs: list[Process] = []
    screens: list[Screen] = []
    pacer = None
    try:
        # the APIs first: their feeds wait for the topics a worker creates
        apis = []
        for name in ("api-1", "api-2"):
            proc, base = api(name, env, tmp_path)
            procs.append(proc)
            apis.append(base)
        a = worker("worker-a", env, tmp_path)
        procs.append(a)
        wait_until("worker-a to own every partition", lambda: "partition 3 ready" in a.output(), 90)
        for base in apis:
            wait_until(f"{base} to be ready", partial(ready, base), 60)
        screens = [Screen(base) for base in apis]
        for screen in screens:
            screen.start()
            assert screen.subscribed.wait(30), screen.closes
        a_mark = len(a.output())
        b = worker("worker-b", env, tmp_path)
        procs.append(b)

        def split() -> dict[int, str] | None:
            """The ownership once, since worker-b started, every partition
            has been loaded again and each worker holds some."""
            logs = {"worker-a": a.output()[a_mark:], "worker-b": b.output()}
            held = owners(logs)
            return held if len(held) == PARTITIONS and len(set(held.values())) == 2 else None

        held = wait_until("the two workers to split the partitions", split, 120)
        a_parts = sorted(p for p, name in held.items() if name == "worker-a")
        a_share = sum(in_first[p] for p in a_parts)
        a_total = sum(per_partition(lines)[p] for p in a_parts)

        pacer = subprocess.Popen(
            [*REPLAY, str(first), "--speed", str(span / PACED_SECONDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def a_committed() -> int:
            done = committed(database_url)
            return sum(done.get(p, 0) for p in a_parts)

        wait_until(
            "a third of worker-a's share of the first part committed",
            lambda: a_committed() > a_share / 3,
            120,
            every=0.05,
        )
        b_mark = len(b.output())
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(30)
        at_kill = a_committed()
        pacing = pacer.poll() is None
        out, _ = pacer.communicate(timeout=120)
        assert pacer.returncode == 0, out
        assert at_kill < a_total, "worker-a was killed with nothing left to do"
        ioc(env, "replay", str(rest), "--speed", "max", "--until", UNTIL)

        wait_until(
            "worker-b to take worker-a's partitions over",
            lambda: set(a_parts) <= set(ready_partitions(b.output()[b_mark:])),
            120,
        )
        wait_until("the run to settle", lambda: settled(database_url, total), 300)
        log.info(
            "partitions %s; worker-a killed at %d of its %d first-part events (%s), %d in all",
            held,
            at_kill,
            a_share,
            "still arriving" if pacing else "all sent",
            a_total,
        )

        # the database: as one worker left it
        got = Outcome.read(database_url)
        assert got.stored_rows == total, "raw events lost or stored twice"
        same("raw events (dossier, partition, body)", got.events, expected.events)
        same("KPI counters per scope", got.counters, expected.counters)
        same("hourly counters per scope, partition and hour", got.hourly, expected.hourly)
        same(
            "1-minute flow counters per scope, partition and minute",
            got.minutely,
            expected.minutely,
        )
        same("SLA transitions", dict(got.transitions), dict(expected.transitions))

        # the APIs: each answers from the database and feeds its own screens
        until = parse_instant(UNTIL)
        registry, _ = world()
        for base in apis:
            for scope, counters in expected.counters.items():
                answer = httpx.get(f"{base}/api/v1/kpis", params={"scope": scope}, timeout=10)
                assert answer.status_code == 200, (scope, answer.text)
                view = kpi_view(scope, registry.label(scope), counters, until)
                assert answer.json()["windows"] == json.loads(json.dumps(view["windows"])), scope
        for base in apis:
            for dossier_id in sample_dossiers(expected.dossiers, expected.transitions):
                answer = httpx.get(
                    f"{base}/api/v1/dossiers/{dossier_id}", params={"at": UNTIL}, timeout=10
                )
                assert answer.status_code == 200, answer.text
                assert answer.json() == dossier_state(reference_database, dossier_id)

        province = kpi_view(
            "province", registry.label("province"), expected.counters["province"], until
        )
        stored = stored_alerts(database_url)
        assert len(stored) == expected.transitions.total()
        alerts = AlertCheck(stored)
        for screen in screens:
            screen.wait_for(lambda s: s.province == json.loads(json.dumps(province)), 60)
            screen.wait_for(lambda s: not alerts.missing(s), 60)
    finally:
        for screen in screens:
            screen.stop()
        codes = {p.name: p.stop() for p in reversed(procs) if p.alive()}
        if pacer is not None and pacer.poll() is None:
            pacer.kill()
            pacer.communicate()
    assert codes == {"worker-b": 0, "api-2": 0, "api-1": 0}, codes
    for p in procs:
        if p.name != "worker-a":
            assert "Traceback" not in p.output(), p.output()[-3000:]
    for screen in screens:
        assert screen.province == json.loads(json.dumps(province)), screen.url
        assert not screen.closes, (screen.url, screen.closes)
    for screen in screens:
        alerts.check(screen)
    assert screens[0].alerts == screens[1].alerts, "the two APIs' screens got different alerts"
