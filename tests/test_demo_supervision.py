"""``ioc demo`` supervises its children: the worker, the bridge and the API
killed with SIGKILL are started again, and nothing acknowledged is lost
(events answered 202 before or after a kill, sensor readings published while
the bridge is away); SIGTERM still stops everything. The embedded PostgreSQL
dying ends the demo with code 1."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
import psutil
import psycopg
import pytest

from ioc.testing import RECEIPT
from tests.conftest import free_port
from tests.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# A restarted worker owns its partitions again only once the group has
# dropped the killed member (its session expires): tens of seconds.
REBALANCE = 180


class Demo:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.data = tmp / "demo"
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
        env.update({"IOC_DATA_DIR": str(self.data), "IOC_API_PORT": str(self.port)})
        self.out = tmp / "demo.out"
        with self.out.open("wb") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ioc.cli", "demo"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.base = f"http://127.0.0.1:{self.port}"
        self.seen: set[int] = set()  # every process the demo ran, for the orphan check

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def addresses(self) -> dict[str, str]:
        """The servers' addresses the demo wrote for other commands."""
        lines = (self.data / "demo.env").read_text().splitlines()
        return dict(shlex.split(line)[0].split("=", 1) for line in lines)

    def children(self) -> dict[str, psutil.Process]:
        """The demo's ``ioc`` children by command (worker, bridge, api, simulate)."""
        found = {}
        for child in psutil.Process(self.proc.pid).children():
            self.seen.add(child.pid)
            with_args = child.cmdline()
            if "ioc.cli" in with_args:
                found[with_args[with_args.index("ioc.cli") + 1]] = child
        postmaster = self.data / "pg" / "postmaster.pid"
        if postmaster.exists():
            self.seen.add(int(postmaster.read_text().split()[0]))
        return found

    def kill(self, command: str) -> int:
        child = self.children()[command]
        child.kill()
        child.wait(30)
        return child.pid

    def said(self, text: str, times: int = 1) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the demo ended:\n{self.text()[-3000:]}")
        return self.text().count(text) >= times

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            raise AssertionError(f"the demo did not stop:\n{self.text()[-3000:]}") from None

    def orphans(self) -> list[int]:
        return [
            pid
            for pid in self.seen
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]


def receipts(tag: str, n: int, ts: str) -> list[dict[str, Any]]:
    return [
        {
            "schema": 1,
            "event_id": f"{tag}-{i}/0",
            "type": "received",
            "dossier_id": f"{tag}-{i}",
            "ts": ts,
            **RECEIPT,
        }
        for i in range(n)
    ]


def post(base: str, events: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{base}/api/v1/procedure-events", json=events, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(events), r.text


def missing(base: str, events: list[dict[str, Any]]) -> list[str]:
    ids = [e["dossier_id"] for e in events]
    return [
        i for i in ids if httpx.get(f"{base}/api/v1/dossiers/{i}", timeout=10).status_code != 200
    ]


def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    parts = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.time()}")
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def stored_readings(database: str, prefix: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sensor_readings WHERE sensor_id LIKE %s", (f"{prefix}%",)
        ).fetchone()
    return int(row[0]) if row else 0


def test_killed_children_come_back_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    try:
        wait_until("the wall URL", lambda: demo.said("Wall screen:"), timeout=150)
        servers = demo.addresses()
        opening = servers["IOC_CLOCK_START"]  # the demo's first instant
        # the worker consumes before the first kill, so the kill interrupts it
        post(demo.base, receipts("SUP-PROBE", 1, opening))
        wait_until(
            "the first dossier", lambda: not missing(demo.base, receipts("SUP-PROBE", 1, opening))
        )

        before = receipts("SUP-BEFORE", 40, opening)
        post(demo.base, before)
        killed = demo.kill("worker")
        wait_until("the worker restarted", lambda: demo.said("worker started again (restart 1)"))
        assert demo.children()["worker"].pid != killed
        log = demo.data / "logs" / "worker.log"
        assert "worker was killed by SIGKILL after " in demo.text()
        assert f"(log: {log}); restart 1 in 1 s" in demo.text()

        demo.kill("bridge")
        wait_until("the bridge's death reported", lambda: demo.said("bridge was killed by SIGKILL"))
        reading = json.dumps({"values": {"pm25": 30.0, "pm10": 55.0}}).encode()
        publish(
            servers["IOC_MQTT_URL"],
            [(f"ioc/sensors/00166/air_quality/aq-sup-{i}", reading) for i in range(5)],
        )
        wait_until("the bridge restarted", lambda: demo.said("bridge started again (restart 1)"))

        demo.kill("api")
        wait_until("the API restarted", lambda: demo.said("api started again (restart 1)"))
        wait_until(
            "/healthz again",
            lambda: httpx.get(f"{demo.base}/healthz", timeout=2).status_code == 200,
            timeout=60,
        )

        wait_until(
            "the events posted before the kill", lambda: not missing(demo.base, before), REBALANCE
        )
        database = servers["IOC_DATABASE_URL"]
        wait_until(
            "the readings published while the bridge was away",
            lambda: stored_readings(database, "aq-sup-") == 5,
            timeout=60,
        )

        demo.kill("worker")
        wait_until(
            "the second death reported", lambda: demo.said("worker was killed by SIGKILL", 2)
        )
        after = receipts("SUP-AFTER", 40, opening)
        post(demo.base, after)
        wait_until(
            "the events posted after the kill", lambda: not missing(demo.base, after), REBALANCE
        )
        assert demo.said("worker started again (restart 2)")

        # stopped while a child waits for its restart
        demo.kill("simulate")
        wait_until("the simulator's death reported", lambda: demo.said("simulator was killed"))
        demo.children()
    finally:
        code = demo.stop(signal.SIGTERM)
    text = demo.text()
    assert code == 0, text[-3000:]
    assert text.rstrip().endswith("stopped.")
    assert demo.orphans() == []
    assert not (demo.data / "demo.env").exists()


def test_the_embedded_database_dying_ends_the_demo(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    try:
        wait_until("the children", lambda: demo.said("any of them that dies"), timeout=120)
        demo.children()
        postmaster = int((demo.data / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        code = demo.proc.wait(90)
    finally:
        demo.stop()
    text = demo.text()
    assert code == 1, text[-3000:]
    assert "PostgreSQL (embedded) is gone" in text and "stopping everything" in text
    assert text.rstrip().endswith("stopped.")
    assert demo.orphans() == []
