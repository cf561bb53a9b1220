"""The alert stage's decoding of the alerts topic, without a broker."""

from __future__ import annotations

import orjson

from alerts.alert_messages import alert_message
from alerts.messages import SlaTransition, sla_messages
from alerts.model import Signal
from alerts.rules import load_rules
from alerts.stage_inputs import decode_inputs
from alerts.unit_kpis import UnitKpis
from alerts.unit_messages import encode_unit_counters
from tests.alerts.test_unit_kpis import counters


def test_sla_messages_become_signals_and_everything_else_is_skipped() -> None:
    item = SlaTransition(
        at=10.0,
        dossier_id="D1",
        transition="overdue",
        due=10.0,
        consumed_hours=24.0,
        allotted_hours=24.0,
        commune="00166",
        agency="ubnd-00166",
        centre="hcc-00166",
        procedure="1.000005",
        field="ho-tich",
    )
    malformed = b'{"type": "sla", "items": [{"dossier_id": "D2"}]}'
    values = [*sla_messages([item]), alert_message(0, []), b"not json", None, b"[]", malformed]
    inputs = decode_inputs(values, UnitKpis(load_rules()))
    assert [(s.kind, s.subject, s.ended) for s in inputs if isinstance(s, Signal)] == [
        ("dossier_at_risk", "dossier:D1", True),
        ("dossier_overdue", "dossier:D1", False),
    ]


def test_unit_messages_become_unit_signals_and_a_malformed_one_changes_nothing() -> None:
    units = UnitKpis(load_rules())
    good = encode_unit_counters(0, 10.0, {"commune:00166": orjson.dumps(counters(12)).decode()})
    bad = b'{"type": "unit", "part": 1, "at": 11.0, "scopes": {"commune:00166": {"flows": {}}}}'
    inputs = decode_inputs([bad, good], units)
    assert [(s.kind, s.subject, s.value) for s in inputs if isinstance(s, Signal)] == [
        ("overdue_backlog", "commune:00166", 12.0),
        ("on_time_rate", "commune:00166", 0.0),
        ("missing_apology", "commune:00166", 0.0),
    ]
    assert set(units.shares["commune:00166"]) == {"0"}
