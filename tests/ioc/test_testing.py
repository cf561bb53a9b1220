"""The shipped test builders make events the decoder accepts."""

from __future__ import annotations

import json

from ioc.events import PROCEDURE_TYPES, ProcedureEvent, decode_procedure_event
from ioc.testing import procedure_event, receipt

NEEDS = {
    "paid": {"online": True},
    "rated": {"score": 4},
    "apology_issued": {"new_due": "2026-03-20T17:00:00+07:00"},
}


def test_every_built_event_decodes() -> None:
    for kind in PROCEDURE_TYPES:
        body = procedure_event(kind, "D-1", **NEEDS.get(kind, {}))
        decoded = decode_procedure_event(body, json.dumps(body).encode())
        assert isinstance(decoded, ProcedureEvent), (kind, decoded)
        assert decoded.event_id == f"D-1/{kind}"


def test_a_receipt_takes_overrides() -> None:
    body = receipt("D-2", event_id="e-9", agency="so-tu-phap-01")
    assert body["event_id"] == "e-9" and body["agency"] == "so-tu-phap-01"
    assert body["type"] == "received" and body["allotted_working_days"] == 3
