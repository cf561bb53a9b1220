"""Builders for tests of this project, and of a deployment's own rules and
loads: events shaped as producers send them (plain dicts, to be posted or
sent as JSON). The injected clocks for tests are in ``ioc.clock``
(``ManualClock``, ``EventTimeClock``)."""

from __future__ import annotations

from typing import Any

# What a ``received`` event says besides its identity and time: a commune
# procedure of the sample Hà Nội file, three working days.
RECEIPT: dict[str, Any] = {
    "province": "01",
    "centre": "hcc-00166",
    "agency": "ubnd-00166",
    "commune": "00166",
    "procedure_code": "1.000005",
    "field": "ho-tich",
    "channel": "online",
    "allotted_working_days": 3,
    "fee_required": True,
}


def procedure_event(
    kind: str,
    dossier_id: str,
    ts: str = "2026-03-16T09:00:00+07:00",
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One procedure event; a ``received`` one gets ``RECEIPT``'s fields,
    which ``fields`` override. The event id defaults to ``<dossier>/<kind>``."""
    body = {
        "schema": 1,
        "event_id": event_id or f"{dossier_id}/{kind}",
        "type": kind,
        "dossier_id": dossier_id,
        "ts": ts,
    }
    if kind == "received":
        body.update(RECEIPT)
    return {**body, **fields}


def receipt(
    dossier_id: str,
    ts: str = "2026-03-16T09:00:00+07:00",
    event_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``received`` event (see ``procedure_event``)."""
    return procedure_event("received", dossier_id, ts, event_id, **fields)
