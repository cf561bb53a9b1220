"""The ``unit`` message: units only, each on its unit's partition."""

from __future__ import annotations

import orjson

from alerts.unit_messages import SCOPES_PER_MESSAGE, unit_counters_of, unit_messages
from ioc import wire
from tests.alerts.test_unit_kpis import counters


def test_units_go_to_the_partition_of_their_key_and_other_scopes_stay_home() -> None:
    body = orjson.dumps(counters(3)).decode()
    scopes = {"commune:00166": body, "agency:a": body, "procedure:1.0": body, "province": body}
    parts = {"commune:00166": 1, "agency:a": 0, "province": 1}
    sent = unit_messages(2, 10.5, scopes, parts.__getitem__)
    decoded = [(p, unit_counters_of(wire.message(m, "unit"))) for p, m in sent]
    assert [(p, u.part, u.at, sorted(u.scopes)) for p, u in decoded] == [
        (0, 2, 10.5, ["agency:a"]),
        (1, 2, 10.5, ["commune:00166", "province"]),
    ]
    assert decoded[0][1].scopes["agency:a"] == counters(3)


def test_many_units_take_several_messages() -> None:
    body = orjson.dumps(counters(1)).decode()
    scopes = {f"commune:{i:05d}": body for i in range(SCOPES_PER_MESSAGE + 1)}
    assert [p for p, _ in unit_messages(0, 1.0, scopes, lambda _: 3)] == [3, 3]
