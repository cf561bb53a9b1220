"""docker-compose.yml cannot run here (no Docker engine): these checks keep it
consistent with the code it runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ioc.cli import parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
IOC_SERVICES = [name for name, s in SERVICES.items() if s.get("build") == "."]


def test_the_project_image_runs_migrations_worker_bridge_api_and_simulator() -> None:
    assert set(IOC_SERVICES) == {
        "migrate",
        "worker",
        "alerts",
        "notify",
        "bridge",
        "api",
        "simulator",
    }
    assert {"redpanda", "timescaledb", "mosquitto"} <= set(SERVICES)


@pytest.mark.parametrize("name", IOC_SERVICES)
def test_every_command_is_an_ioc_command(name: str) -> None:
    parser().parse_args(SERVICES[name]["command"])


@pytest.mark.parametrize("name", list(SERVICES))
def test_dependencies_wait_for_health_or_completion(name: str) -> None:
    for dependency, rule in SERVICES[name].get("depends_on", {}).items():
        condition = rule["condition"]
        assert condition in ("service_healthy", "service_completed_successfully"), name
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"


def test_secrets_come_from_required_variables() -> None:
    env = SERVICES["worker"]["environment"]
    assert env["IOC_ENV"] == "production"
    for variable in ("IOC_INGEST_TOKEN", "IOC_READ_TOKEN"):
        assert re.fullmatch(r"\$\{" + variable + r":\?[^}]+\}", env[variable]), variable
    assert ":?" in env["IOC_DATABASE_URL"]
    assert ":?" in SERVICES["timescaledb"]["environment"]["POSTGRES_PASSWORD"]
    secret = SERVICES["notify"]["environment"]["IOC_WEBHOOK_SECRET"]
    assert re.fullmatch(r"\$\{IOC_WEBHOOK_SECRET:\?[^}]+\}", secret)


def test_the_image_holds_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in ("ioc", "streams", "alerts", "ui_feed", "simulators"):
        assert f"COPY {package} {package}" in dockerfile


def test_mosquitto_keeps_sessions_for_qos1() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text(encoding="utf-8")
    assert "persistence true" in conf


@pytest.mark.integration
def test_mosquitto_keeps_a_backlog_for_a_bridge_catching_up(tmp_path: Path) -> None:
    """A persistent QoS 1 session away while 3000 readings come in gets every
    one of them back (Mosquitto's default queue of 1000 dropped the rest)."""
    import socket
    import time
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from tests.streams.sources.test_mqtt_bridge import mqtt_client, private_mosquitto, publish

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    keep = ("allow_anonymous", "max_queued_messages", "max_inflight_messages")
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text(encoding="utf-8")
    lines = [line for line in conf.splitlines() if line.startswith(keep)]
    (tmp_path / "test.conf").write_text("\n".join([f"listener {port}", *lines, ""]))
    broker = private_mosquitto(port, tmp_path / "test.conf")
    url, client_id, topic = f"mqtt://127.0.0.1:{port}", f"bridge-{uuid.uuid4().hex[:6]}", "t/x"
    got: set[bytes] = set()
    try:
        away = mqtt_client(url, client_id, clean=False)
        away.subscribe(topic, qos=1)
        away.disconnect()
        away.loop_stop()
        publish(url, [(topic, b"%d" % i) for i in range(3000)])
        back = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        back.on_message = lambda _c, _u, msg: got.add(bytes(msg.payload))  # before any comes
        back.connect("127.0.0.1", port)
        back.loop_start()
        idle = 0
        while len(got) < 3000 and idle < 100:  # 100 rounds that bring nothing: all came
            before = len(got)
            time.sleep(0.05)
            idle = idle + 1 if len(got) == before else 0
        back.disconnect()
        back.loop_stop()
    finally:
        broker.terminate()
        broker.wait(10)
    assert len(got) == 3000
