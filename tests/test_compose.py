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
    assert set(IOC_SERVICES) == {"migrate", "worker", "alerts", "bridge", "api", "simulator"}
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


def test_the_image_holds_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for package in ("ioc", "streams", "alerts", "ui_feed", "simulators"):
        assert f"COPY {package} {package}" in dockerfile


def test_mosquitto_keeps_sessions_for_qos1() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text(encoding="utf-8")
    assert "persistence true" in conf
