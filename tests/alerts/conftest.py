"""Fixtures of the alert tests: the sample province's calendar, registry
and routing, and a small rule set built in code."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.routing import Routing, load_routing
from alerts.rules import RuleSet, parse_rules
from ioc.calendar import WorkingCalendar, load_calendar
from ioc.registry import Registry, load_registry
from ioc.settings import PACKAGE_DATA

ROUTING_FILE = PACKAGE_DATA / "alert-routing-01-ha-noi.toml"


@pytest.fixture(scope="session")
def cal() -> WorkingCalendar:
    return load_calendar(PACKAGE_DATA / "calendar-01-ha-noi.toml")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(PACKAGE_DATA / "province-01-ha-noi.toml")


@pytest.fixture(scope="session")
def routing(registry: Registry) -> Routing:
    return load_routing(ROUTING_FILE, registry)


def overdue_rule(**extra: Any) -> dict[str, Any]:
    """An overdue-dossier rule with steps at due, 1, 2 and 5 working days."""
    steps = [
        {"after_working_days": 0, "to": ["agency"], "level": 1, "channels": ["email"]},
        {"after_working_days": 1, "to": ["agency"], "level": 2, "channels": ["email"]},
        {"after_working_days": 2, "to": ["commune", "agency"], "level": 2, "channels": ["email"]},
        {"after_working_days": 5, "to": ["province"], "level": 2, "channels": ["email"]},
    ]
    return {
        "id": "overdue",
        "kind": "dossier_overdue",
        "severity": "major",
        "escalation": steps,
        **extra,
    }


def rule_set(*rules: dict[str, Any], digest: dict[str, Any] | None = None) -> RuleSet:
    data: dict[str, Any] = {"rules": list(rules)}
    if digest is not None:
        data["digest"] = digest
    return parse_rules(data, "<test rules>")
