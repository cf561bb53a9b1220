"""Builders shared by the streams tests."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ioc.calendar import WorkingCalendar, load_calendar
from ioc.clock import parse_instant
from ioc.events import ProcedureEvent, decode_procedure_event
from ioc.registry import Registry, load_registry
from ioc.settings import PACKAGE_DATA
from ioc.testing import RECEIPT


@cache
def world() -> tuple[Registry, WorkingCalendar]:
    return (
        load_registry(PACKAGE_DATA / "province-01-ha-noi.toml"),
        load_calendar(PACKAGE_DATA / "calendar-01-ha-noi.toml"),
    )


def vn(text: str) -> float:
    """Epoch seconds of a local (UTC+7) time like "2026-03-16 09:00"."""
    return parse_instant(text.replace(" ", "T") + ":00+07:00")


def event(kind: str, dossier: str, when: str, n: int = 0, **fields: Any) -> ProcedureEvent:
    body = {
        "schema": 1,
        "event_id": f"{dossier}/{kind}/{n}",
        "type": kind,
        "dossier_id": dossier,
        "ts": when.replace(" ", "T") + ":00+07:00",
        **fields,
    }
    if kind == "received":
        body = {**RECEIPT, **body}
    raw = json.dumps(body).encode()
    decoded = decode_procedure_event(body, raw)
    assert isinstance(decoded, ProcedureEvent), decoded
    return decoded
