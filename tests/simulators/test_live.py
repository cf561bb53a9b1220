"""The live simulator: two runs (a restart) send no event id or dossier id
twice, while a seeded load comes out the same every time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ioc.events import DecodeError, decode_procedure_event
from ioc.settings import Settings
from simulators import live
from simulators.replay import generated
from tests.streams.helpers import vn, world


class Hours:
    """A clock that moves an hour each time it is read."""

    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        self.t += 3600
        return self.t


def one_run(monkeypatch: pytest.MonkeyPatch, start: float) -> list[dict[str, Any]]:
    """What ``run_procedures`` sends (to the HTTP ingest) until 200 events."""
    registry, calendar = world()
    sent: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def send_http(_c: Any, _url: str, _token: str, events: list[dict[str, Any]]) -> None:
        sent.extend(events)
        if len(sent) >= 200:
            stop.set()

    monkeypatch.setattr(live, "send_http", send_http)
    settings = Settings(sim_dossiers_per_hour=40)
    clock: Any = Hours(start)
    asyncio.run(live.run_procedures(settings, registry, calendar, clock, "http", stop))
    return sent


def test_a_restarted_simulator_reuses_no_id(monkeypatch: pytest.MonkeyPatch) -> None:
    start = vn("2026-03-16 08:00")
    first, second = one_run(monkeypatch, start), one_run(monkeypatch, start + 600)
    assert len(first) >= 200 and len(second) >= 200
    assert not {e["event_id"] for e in first} & {e["event_id"] for e in second}
    assert not {e["dossier_id"] for e in first} & {e["dossier_id"] for e in second}
    for ev in first + second:  # the run tag keeps ids within the contract
        assert not isinstance(decode_procedure_event(ev, b""), DecodeError)


def test_a_seeded_load_is_the_same_every_time() -> None:
    registry, calendar = world()

    def load() -> list[bytes]:
        return list(generated(registry, calendar, "2026-03-16T00:00:00+07:00", 2, 20, seed=5))

    first = load()
    assert first and first == load()
    assert b"H01." in first[0]
