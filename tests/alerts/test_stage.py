"""The alert stage's decoding of the alerts topic, without a broker."""

from __future__ import annotations

from alerts.alert_messages import alert_message
from alerts.messages import SlaTransition, sla_messages
from alerts.model import Signal
from alerts.stage import decode_inputs


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
    inputs = decode_inputs(values)
    assert [(s.kind, s.subject, s.ended) for s in inputs if isinstance(s, Signal)] == [
        ("dossier_at_risk", "dossier:D1", True),
        ("dossier_overdue", "dossier:D1", False),
    ]
