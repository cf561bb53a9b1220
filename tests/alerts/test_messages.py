import orjson

from alerts.messages import ITEMS_PER_MESSAGE, sla_items, sla_messages


def transition(i: int, kind: str = "overdue") -> dict[str, object]:
    return {"kind": "sla", "transition": kind, "dossier_id": f"D-{i}", "at": 1.0 * i}


def test_transitions_are_split_into_messages_in_order() -> None:
    items = [transition(i) for i in range(ITEMS_PER_MESSAGE * 2 + 5)]
    messages = [orjson.loads(m) for m in sla_messages(items)]
    assert [len(m["items"]) for m in messages] == [ITEMS_PER_MESSAGE, ITEMS_PER_MESSAGE, 5]
    assert all(m["type"] == "sla" for m in messages)
    assert [i for m in messages for i in m["items"]] == items


def test_no_transitions_no_message() -> None:
    assert list(sla_messages([])) == []


def test_reading_keeps_known_transitions_only() -> None:
    good = [transition(1, "at_risk"), transition(2, "overdue"), transition(3, "cleared")]
    message = {
        "type": "sla",
        "items": [*good, transition(4, "exploded"), {"transition": "overdue"}, 7],
    }
    assert sla_items(message) == good
    assert sla_items({"type": "sla"}) == []
    assert sla_items({"type": "sla", "items": "x"}) == []
