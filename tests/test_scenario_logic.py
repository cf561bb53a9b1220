"""The hand-checked scenario, through the pure code (no servers): the same
store and processor the worker runs."""

from __future__ import annotations

import json

from ioc.clock import EventTimeClock, parse_instant
from ioc.events import decode_procedure_event
from ioc.feed import kpi_view
from ioc.scorecard import load_scorecard
from ioc.settings import PACKAGE_DATA
from streams.dossiers import Deltas, DossierStore
from streams.processor import PartitionProcessor
from streams.scopes import ScopeIndex
from tests.scenario import check_dossier, check_kpis, check_scorecard, events, load
from tests.streams.helpers import world

SCENARIO = load()
AT = parse_instant(SCENARIO["evaluation_instant"])


def decoded(objs):
    out = []
    for obj in objs:
        raw = json.dumps(obj).encode()
        out.append(decode_procedure_event(obj, raw))
    return out


def test_every_dossier_has_its_hand_checked_due_states_and_class() -> None:
    registry, calendar = world()
    for d in SCENARIO["dossiers"]:
        store = DossierStore(calendar, registry, ScopeIndex(registry))
        for ev in decoded(d["events"]):
            store.apply(ev, AT, Deltas())
        row = store.row_of(d["id"])

        def described(at, store=store, row=row):
            return store.describe(row, AT if at is None else parse_instant(at))

        check_dossier(d, described)


def test_the_kpis_are_the_hand_checked_ones() -> None:
    registry, calendar = world()
    proc = PartitionProcessor(0, calendar, registry, ScopeIndex(registry), 0.0)
    clock = EventTimeClock()
    proc.apply(decoded(events(SCENARIO)), 0.0, clock)
    clock.observe(AT)
    proc.move(AT)
    counters = proc.all_counters()
    for case in SCENARIO["kpis"]:
        view = kpi_view(case["scope"], "", counters[case["scope"]], AT)
        check_kpis(case["expect"], view["windows"][case["window"]], case["scope"])
    case = SCENARIO["scorecard"]
    view = kpi_view(case["scope"], "", counters[case["scope"]], AT)
    scorecard = load_scorecard(PACKAGE_DATA / "scorecard-766.toml")
    check_scorecard(case["expect"], scorecard.score(view["windows"][case["window"]]))
